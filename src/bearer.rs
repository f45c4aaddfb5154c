//! [`Bearer`]: attaching a [`TokenCache`]'s token to API calls, with one
//! policy for every HTTP stack (the reqwest-middleware `Middleware` and the
//! tower `Layer` both call it).
//!
//! - The token goes only to the configured origins (scheme, host and port,
//!   default ports normalised), and never replaces an `Authorization` header
//!   the request already has.
//! - No token, nothing sent: the [`TokenError`] is returned instead.
//! - A 401 from the origin is answered at most once, by the decision in
//!   [`Bearer::retry_token`]: retry with a newer token another task already
//!   got; wait for the refresh another task already started; invalidate the
//!   sent token and retry with a fresh one, at most once per
//!   [`invalidation_interval`](Bearer::invalidation_interval); or, in a 401
//!   storm (permissions, not the token), return the 401 as is.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::{Clock, SystemClock};
use crate::{CachedToken, Provider, TokenCache, TokenError, TokenSource};

#[cfg(feature = "tower")]
mod layer;
#[cfg(feature = "reqwest-middleware")]
mod middleware;

#[cfg(feature = "tower")]
pub use layer::{BearerError, BearerLayer, BearerService, RetryBody};

/// Where tracing events of the policy go.
const TARGET: &str = "paytokens::bearer";

/// Attaches the token of a [`TokenCache`] to requests for the origins it is
/// built for, and handles a 401 from them once. Cheap to clone; clones share
/// the cache and the 401 policy's state.
///
/// With the `reqwest-middleware` feature it is a
/// `reqwest_middleware::Middleware`; with the `tower` feature,
/// [`Bearer::layer`] makes a tower `Layer` of it. Both follow the same
/// policy:
///
/// - **Which requests**: only those whose URL has one of the configured
///   origins (scheme, host and port; `https://api.example` and
///   `https://api.example:443` are one origin) get `Authorization: Bearer
///   ...` (the header value is marked sensitive). Other requests, and any
///   that already carry an `Authorization` header, pass through untouched.
/// - **No token**: when the cache cannot give one, the request is not sent
///   and the [`TokenError`] is returned.
/// - **A 401 from that origin**, for a request whose body can be cloned: at
///   most one retry, decided as follows. If the cache already holds another
///   token than the one sent (another task refreshed), retry with it: no
///   invalidation, no mint. If the sent token is the one this policy last
///   invalidated (another task is refreshing it), wait for that refresh and
///   retry with its token. Otherwise, if the last invalidation was at least
///   the [invalidation interval](Bearer::invalidation_interval) ago (or never
///   happened), invalidate exactly the sent token, get a fresh one and retry.
///   Otherwise (a 401 storm: the API refuses for another reason, such as
///   permissions) return the 401 as is. A 401 to the retry is returned as
///   is; a request whose body cannot be cloned is never retried; when no
///   fresh token can be had the 401 is returned. So a storm of 401s causes
///   at most one mint per interval, within the cache's mint budget.
/// - **Other origins**: a 401 that comes from another origin than the
///   request's (after a redirect the client followed) is returned as is; the
///   token was not sent there.
///
/// Build one `Bearer` per cache and clone it (for the middleware and the
/// layer alike): the invalidation interval is kept by the clones of one
/// `Bearer`.
///
/// ```
/// use std::time::Duration;
/// use paytokens::{Bearer, Config, Credentials, Provider, TokenCache};
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let provider: Provider = "autopay".parse()?;
/// let cache = TokenCache::new(provider.source(Config::new(Credentials::new("id", "secret")))?);
/// let bearer = Bearer::new(cache, ["https://api.autopay.io"])?
///     .invalidation_interval(Duration::from_secs(60));
/// # let _ = bearer; Ok(()) }
/// ```
#[cfg_attr(
    feature = "reqwest-middleware",
    doc = concat!(
        "With the `reqwest-middleware` feature, as a middleware (the README's example):\n\n",
        "```no_run\n",
        include_str!("bearer/example_middleware.rs"),
        "```"
    )
)]
pub struct Bearer<S, C = SystemClock> {
    shared: Arc<Shared<S, C>>,
    interval: Duration,
}

struct Shared<S, C> {
    cache: TokenCache<S, C>,
    clock: C,
    origins: Vec<Origin>,
    /// The token this policy last invalidated, and when.
    last: Mutex<Option<Invalidated>>,
}

struct Invalidated {
    at: Instant,
    token: CachedToken,
}

/// What [`Bearer::invalidate_once`] did.
enum Step {
    /// The sent token was invalidated now.
    Invalidated,
    /// This policy had already invalidated the sent token.
    AlreadyInvalidated,
    /// Another token was invalidated less than the interval ago.
    Storm,
}

impl<S, C> Clone for Bearer<S, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            interval: self.interval,
        }
    }
}

impl<S: TokenSource + 'static, C: Clock> fmt::Debug for Bearer<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("provider", &self.shared.cache.key().provider)
            .field("origins", &self.shared.origins)
            .field("invalidation_interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The default [`Bearer::invalidation_interval`].
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

impl<S: TokenSource + 'static> Bearer<S> {
    /// A `Bearer` attaching `cache`'s token to requests for `origins`, each
    /// written as `scheme://host[:port]` (e.g. `https://api.pyng.com.au`).
    ///
    /// Refused ([`InvalidOrigin`]): no origin at all; an origin that is not
    /// an absolute `http` or `https` URL with a host; one with a path (other
    /// than `/`), query, fragment, user name or password; plain `http` to a
    /// host other than a loopback address (`localhost`, `127.0.0.0/8`,
    /// `::1`), which would send the token in clear.
    pub fn new(
        cache: TokenCache<S>,
        origins: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, InvalidOrigin> {
        Self::with_clock(cache, origins, SystemClock)
    }
}

impl<S: TokenSource + 'static, C: Clock> Bearer<S, C> {
    /// As [`new`](Bearer::new), measuring the invalidation interval on
    /// `clock`: for a cache built with
    /// [`TokenCache::with_clock`](crate::TokenCache::with_clock), pass the
    /// same clock (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(
        cache: TokenCache<S, C>,
        origins: impl IntoIterator<Item = impl AsRef<str>>,
        clock: C,
    ) -> Result<Self, InvalidOrigin> {
        let origins = origins
            .into_iter()
            .enumerate()
            .map(|(index, text)| {
                Origin::parse(text.as_ref()).map_err(|reason| InvalidOrigin { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if origins.is_empty() {
            return Err(InvalidOrigin {
                index: 0,
                reason: "is missing: give at least one origin, or the token is never attached",
            });
        }
        Ok(Self {
            shared: Arc::new(Shared {
                cache,
                clock,
                origins,
                last: Mutex::new(None),
            }),
            interval: DEFAULT_INTERVAL,
        })
    }

    /// The shortest time between two 401-driven invalidations (default
    /// 30 s): a 401 within it of the last one, for a token that is still the
    /// cached one, is returned as is instead of invalidating again. This is
    /// what bounds the mints caused by an API that answers 401 for another
    /// reason than the token (missing permissions) to one per interval.
    pub fn invalidation_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The cache the token comes from.
    pub fn cache(&self) -> &TokenCache<S, C> {
        &self.shared.cache
    }

    /// Whether a request to `url` gets the token: its origin is one of the
    /// configured ones.
    pub fn covers(&self, url: &url::Url) -> bool {
        self.origin_of_url(url).is_some()
    }

    /// The provider whose token is attached.
    fn provider(&self) -> Provider {
        self.shared.cache.key().provider
    }

    /// The configured origin `url` has, if any.
    #[cfg_attr(not(feature = "reqwest-middleware"), allow(dead_code))]
    fn origin_of_url(&self, url: &url::Url) -> Option<&Origin> {
        let host = url.host_str()?;
        self.find(url.scheme(), host, url.port())
    }

    /// The configured origin with this scheme, host and port (the scheme's
    /// default when `None`), if any.
    fn find(&self, scheme: &str, host: &str, port: Option<u16>) -> Option<&Origin> {
        let port = port.or_else(|| default_port(scheme))?;
        self.shared
            .origins
            .iter()
            .find(|origin| origin.is(scheme, host, port))
    }

    /// The token to attach, as an owned clone (kept across the request's
    /// `.await`s, to know later which token was sent).
    #[cfg_attr(
        not(any(feature = "reqwest-middleware", feature = "tower")),
        allow(dead_code)
    )]
    async fn token(&self) -> Result<CachedToken, TokenError> {
        let token = self.shared.cache.token().await?;
        Ok(token.clone())
    }

    /// After a 401 from the origin to a request that carried `sent`: the
    /// token to retry once with, or `None` to return the 401 as is. The one
    /// decision both integrations make (see [`Bearer`]).
    #[cfg_attr(
        not(any(feature = "reqwest-middleware", feature = "tower")),
        allow(dead_code)
    )]
    async fn retry_token(&self, sent: &CachedToken) -> Option<CachedToken> {
        let provider = self.provider();
        let cache = &self.shared.cache;
        // Another task may already have replaced the token (or be replacing
        // it: then this waits for that one fetch).
        let current = match cache.token().await {
            Ok(current) => current.clone(),
            Err(err) => {
                tracing::debug!(target: TARGET, %provider, decision = "no_token", error = %err,
                    "401: no token to retry with; returning the 401");
                return None;
            }
        };
        if !current.is_same(sent) {
            tracing::debug!(target: TARGET, %provider, decision = "retry_with_newer",
                "401 to a token already replaced: retrying once with the current one");
            return Some(current);
        }
        drop(current);
        match self.invalidate_once(sent) {
            Step::Storm => {
                tracing::debug!(target: TARGET, %provider, decision = "storm",
                    interval_ms = self.interval.as_millis() as u64,
                    "401 within the invalidation interval of the last one: not the token \
                     (permissions?); returning the 401, not retried");
                return None;
            }
            Step::Invalidated => {
                tracing::debug!(target: TARGET, %provider, decision = "invalidated",
                    "401: invalidated the token sent; retrying once with a fresh one");
            }
            Step::AlreadyInvalidated => {
                tracing::debug!(target: TARGET, %provider, decision = "wait_for_refresh",
                    "401 to the token being replaced: retrying once with its replacement");
            }
        }
        match cache.token().await {
            Ok(fresh) if !fresh.is_same(sent) => Some(fresh.clone()),
            Ok(_) => {
                tracing::debug!(target: TARGET, %provider, decision = "no_token",
                    "401: the cache still holds the token sent; returning the 401");
                None
            }
            Err(err) => {
                tracing::debug!(target: TARGET, %provider, decision = "no_token", error = %err,
                    "401: no fresh token; returning the 401");
                None
            }
        }
    }

    /// Invalidates `sent`, unless this policy already did, or did so for
    /// another token less than the interval ago (a storm).
    fn invalidate_once(&self, sent: &CachedToken) -> Step {
        let mut last = self
            .shared
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = self.shared.clock.now();
        match &*last {
            Some(previous) if previous.token.is_same(sent) => Step::AlreadyInvalidated,
            Some(previous) if now.saturating_duration_since(previous.at) < self.interval => {
                Step::Storm
            }
            _ => {
                *last = Some(Invalidated {
                    at: now,
                    token: sent.clone(),
                });
                self.shared.cache.invalidate(sent);
                Step::Invalidated
            }
        }
    }

    /// After a 401 to a request that cannot be retried (its body cannot be
    /// cloned): the same invalidation as [`retry_token`](Self::retry_token)
    /// would make, so that the next request gets a fresh token, but no wait
    /// for it and no retry.
    #[cfg_attr(
        not(any(feature = "reqwest-middleware", feature = "tower")),
        allow(dead_code)
    )]
    fn refused_unclonable(&self, sent: &CachedToken) {
        let replaced = self
            .shared
            .cache
            .cached()
            .is_some_and(|current| !current.is_same(sent));
        let invalidated = !replaced && matches!(self.invalidate_once(sent), Step::Invalidated);
        tracing::debug!(target: TARGET, provider = %self.provider(), decision = "unclonable_body",
            invalidated, "401 not retried: the request body cannot be cloned");
    }

    /// Notes a 401 that is returned without a retry: it came from another
    /// origin than the request's (after a redirect), where the token was not
    /// sent.
    #[cfg_attr(not(feature = "reqwest-middleware"), allow(dead_code))]
    fn other_origin(&self) {
        tracing::debug!(target: TARGET, provider = %self.provider(), decision = "other_origin",
            "401 not retried: it came from another origin after a redirect, where the token \
             was not sent");
    }

    /// Notes the second 401, to the retry, returned as is.
    #[cfg_attr(
        not(any(feature = "reqwest-middleware", feature = "tower")),
        allow(dead_code)
    )]
    fn second_unauthorized(&self) {
        tracing::debug!(target: TARGET, provider = %self.provider(), decision = "second_401",
            "401 to the retry as well: returned as is");
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

/// An origin the token is for: scheme, host and port.
#[derive(Clone, PartialEq, Eq)]
struct Origin {
    scheme: &'static str,
    host: Box<str>,
    port: u16,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Origin {
    fn parse(text: &str) -> Result<Self, &'static str> {
        let url = url::Url::parse(text)
            .map_err(|_| "is not an absolute URL such as https://api.example.com")?;
        let scheme = match url.scheme() {
            "https" => "https",
            "http" => "http",
            _ => return Err("must use https (or http to a loopback address)"),
        };
        let host = url.host().ok_or("must name a host")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not hold a user name or password");
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("must be scheme, host and port only: no path, query or fragment");
        }
        let loopback = match &host {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        if scheme == "http" && !loopback {
            return Err(
                "uses plain http to a host that is not a loopback address: the token \
                        would travel in clear; use https",
            );
        }
        let port = url.port_or_known_default().ok_or("must have a port")?;
        Ok(Self {
            scheme,
            host: url.host_str().ok_or("must name a host")?.into(),
            port,
        })
    }

    fn is(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.port == port
            && self.scheme.eq_ignore_ascii_case(scheme)
            && self.host.eq_ignore_ascii_case(host)
    }

    /// Whether `url` has this origin.
    #[cfg_attr(not(feature = "reqwest-middleware"), allow(dead_code))]
    fn matches(&self, url: &url::Url) -> bool {
        let port = url.port().or_else(|| default_port(url.scheme()));
        match (url.host_str(), port) {
            (Some(host), Some(port)) => self.is(url.scheme(), host, port),
            _ => false,
        }
    }
}

/// An origin given to [`Bearer::new`] that was refused. Its text is not
/// repeated (it might hold a password); `index` says which one it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bearer origin #{index} (counting from 0) {reason}")]
pub struct InvalidOrigin {
    /// The position of the refused origin among those given.
    pub index: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalise_default_ports_and_refuse_anything_but_an_origin() {
        let origin = Origin::parse("https://API.example.com").unwrap();
        assert_eq!(
            origin,
            Origin::parse("https://api.example.com:443/").unwrap()
        );
        assert!(origin.is("https", "api.example.com", 443));
        assert!(!origin.is("http", "api.example.com", 443));
        assert!(!origin.is("https", "api.example.com", 8443));
        assert!(!origin.is("https", "api.example.com.evil", 443));
        assert!(Origin::parse("http://127.0.0.1:8080").is_ok());
        assert!(Origin::parse("http://localhost").is_ok());
        assert!(Origin::parse("http://[::1]:9").is_ok());
        for refused in [
            "api.example.com",
            "ftp://api.example.com",
            "https://api.example.com/v1",
            "https://api.example.com/?a=b",
            "https://api.example.com/#x",
            "https://user:pass@api.example.com",
            "http://api.example.com",
            "http://10.0.0.1",
        ] {
            assert!(Origin::parse(refused).is_err(), "{refused}");
        }
    }

    /// The README's examples are these files, compiled as doctests of
    /// `Bearer` and `BearerLayer`.
    #[test]
    fn the_readme_shows_the_compiled_examples() {
        let readme = include_str!("../README.md");
        for example in [
            include_str!("bearer/example_middleware.rs"),
            include_str!("bearer/example_tower.rs"),
        ] {
            let block = format!("```rust\n{example}```");
            assert!(readme.contains(&block), "README lacks:\n{block}");
        }
    }

    #[test]
    fn an_invalid_origin_names_its_position_not_its_text() {
        let err = InvalidOrigin {
            index: 1,
            reason: Origin::parse("https://user:CANARY@api.example.com").unwrap_err(),
        };
        let text = err.to_string();
        assert!(text.contains("#1") && !text.contains("CANARY"), "{text}");
    }
}
