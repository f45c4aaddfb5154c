//! [`TokenCache`]: one mint per token lifetime, whatever the load.
//!
//! A payments service asks for a token on every outgoing request, from many
//! tasks at once, and providers punish minting too often (Autopay: "may lead
//! to termination of API access"). The cache wraps any [`TokenSource`]:
//!
//! - **Hit**: one coarse clock read and one `arc_swap` guarded load, handed
//!   out as a [`CachedToken`] that borrows the token. No lock, no I/O, no
//!   allocation, and no write to memory shared between threads.
//! - **Refresh ahead** of expiry by a margin proportional to the lifetime,
//!   bounded by a floor and a cap, plus jitter so a fleet spreads out.
//! - **Single-flight**: a miss or refresh is one spawned fetch shared by every
//!   caller that needs it; a caller that goes away does not cancel it.
//! - **Stale while valid**: during a refresh, or after a refresh failed with a
//!   transient error, callers keep getting the current token until it
//!   expires; failed refreshes back off exponentially (or per `Retry-After`).
//! - **Rejected** (e.g. `invalid_client`) is returned at once and cools down
//!   before the provider is asked again: no retry storm.
//! - **Mint budget**: at most `max_mints` fetches per credential per window;
//!   past it, [`TokenError::MintBudgetExhausted`] without calling the provider.
//! - **Metrics** through the [`metrics`] facade (the application installs a
//!   recorder; none is installed here), emitted where fetches start, end or
//!   are refused and where a token is invalidated: never on the hit path
//!   (hits are requests minus mints). Labels are the provider id only, never
//!   a client id, secret or token. See [`metric_names`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::FutureExt;
use futures_util::future::{self, BoxFuture};
use tokio::time::Instant;
use tracing::Instrument;

mod fleet;

use crate::clock::{Clock, SystemClock};
use crate::store::Keys;
use crate::{AccessToken, CacheKey, Provider, StoreError, TokenError, TokenSource, TokenStore};
use fleet::Shared as Store;

/// The names of the metrics the cache emits (documented in the README's
/// metrics table). Every one has the label `provider` (the provider id).
pub(crate) mod metric_names {
    /// Counter: each fetch the cache started, by `outcome` (`minted` or the
    /// error class), and each it refused (`budget_exhausted`).
    pub const MINTS: &str = "paytokens_mints_total";
    /// Counter: each failed fetch or refused one, by error `class`.
    pub const REFRESH_FAILURES: &str = "paytokens_refresh_failures_total";
    /// Histogram: how long each fetch took (retries included), in seconds.
    pub const REFRESH_DURATION: &str = "paytokens_refresh_duration_seconds";
    /// Gauge: fetches left in the credential's budget, after each take.
    pub const BUDGET_REMAINING: &str = "paytokens_mint_budget_remaining";
    /// Gauge: the lifetime left of the token just minted, in seconds.
    pub const EXPIRES_IN: &str = "paytokens_token_expires_in_seconds";
    /// Gauge: the Unix time at which the token just minted expires.
    pub const EXPIRY_TIMESTAMP: &str = "paytokens_token_expiry_timestamp_seconds";
    /// Counter: tokens dropped by [`TokenCache::invalidate`](crate::TokenCache::invalidate).
    pub const UNAUTHORIZED_INVALIDATIONS: &str = "paytokens_unauthorized_invalidations_total";
    /// Counter: store calls that failed or did not answer in time.
    pub const STORE_FAILURES: &str = "paytokens_store_failures_total";
}

/// The `provider` label: the id, a `&'static str` (no allocation).
const PROVIDER: &str = "provider";

/// When to refresh, how to back off, and how many mints to allow.
///
/// The defaults, and why:
/// - refresh `refresh_ratio` = 10 % of the lifetime early, at least
///   `min_margin` = 10 s (time for a slow token endpoint and a retry or two)
///   and at most `max_margin` = 5 min (a 24 h token needs no hour of slack),
///   never more than half the lifetime; then up to `jitter` = 25 % more, at
///   random, so that instances started together do not refresh together.
///   A 15 min Pyng token refreshes 90-112 s early, a 24 h Autopay token
///   5-6.25 min early.
/// - failed refreshes back off from `retry_initial` = 1 s, doubling, to
///   `retry_max` = 30 s, or as long as the provider's `Retry-After` says.
/// - a rejection cools down for `rejected_cooldown` = 60 s: bad credentials
///   do not fix themselves in a second.
/// - at most `max_mints` = 30 fetches per credential per `mint_window` = 1 h:
///   twice what the shortest documented lifetime (15 min) needs even with
///   frequent invalidations, and far below any abuse threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct CachePolicy {
    /// Fraction of the lifetime to refresh early. Default: 0.1.
    pub refresh_ratio: f64,
    /// Smallest refresh margin. Default: 10 s.
    pub min_margin: Duration,
    /// Largest refresh margin (before jitter). Default: 5 min.
    pub max_margin: Duration,
    /// Random extra margin, as a fraction of the margin. Default: 0.25.
    pub jitter: f64,
    /// First backoff after a failed refresh. Default: 1 s.
    pub retry_initial: Duration,
    /// Longest backoff after failed refreshes. Default: 30 s.
    pub retry_max: Duration,
    /// Wait after a [`TokenError::Rejected`] before asking again. Default: 60 s.
    pub rejected_cooldown: Duration,
    /// Fetches allowed per credential per `mint_window`. Default: 30.
    pub max_mints: u32,
    /// The budget's sliding window. Default: 1 h.
    pub mint_window: Duration,
    /// Refresh from a background task when the refresh time comes, so that
    /// callers never wait once warm. Default: off (the first caller past the
    /// refresh time waits for the refresh; the others get the current token).
    pub background_refresh: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            refresh_ratio: 0.1,
            min_margin: Duration::from_secs(10),
            max_margin: Duration::from_secs(300),
            jitter: 0.25,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            rejected_cooldown: Duration::from_secs(60),
            max_mints: 30,
            mint_window: Duration::from_secs(3600),
            background_refresh: false,
        }
    }
}

impl CachePolicy {
    /// How long before expiry a token of `lifetime` is refreshed, without
    /// jitter: `refresh_ratio` of it, clamped to the margins, at most half.
    pub fn margin(&self, lifetime: Duration) -> Duration {
        lifetime
            .mul_f64(self.refresh_ratio.clamp(0.0, 1.0))
            .clamp(self.min_margin, self.max_margin.max(self.min_margin))
            .min(lifetime / 2)
    }

    /// When to refresh a token expiring at `expires_at`.
    fn refresh_at(&self, lifetime: Duration, expires_at: Instant) -> Instant {
        let margin = self.margin(lifetime);
        let jittered = margin.mul_f64(1.0 + fastrand::f64() * self.jitter.clamp(0.0, 1.0));
        expires_at - jittered.min(lifetime / 2)
    }

    fn backoff(&self, failures: u32, err: &TokenError) -> Duration {
        if matches!(err, TokenError::Rejected { .. }) {
            return self.rejected_cooldown;
        }
        if let Some(wait) = err.retry_after() {
            return wait;
        }
        let doubled = self
            .retry_initial
            .saturating_mul(1 << failures.saturating_sub(1).min(16));
        let capped = doubled.min(self.retry_max);
        // Full jitter on the upper half keeps instances apart.
        capped / 2 + capped.mul_f64(fastrand::f64() / 2.0)
    }
}

/// A cache of tokens from one [`TokenSource`]. Cheap to clone; clones share
/// the cached token.
///
/// ```no_run
/// use paytokens::autopay::Autopay;
/// use paytokens::{Config, Credentials, Source, TokenCache};
///
/// # async fn run() -> Result<(), paytokens::TokenError> {
/// let source = Source::<Autopay>::new(Config::new(Credentials::new("id", "secret")))?;
/// let cache = TokenCache::new(source);
/// // On every outgoing request, from any task:
/// let token = cache.token().await?;
/// # let _ = token.authorization_header();
/// // After the API answered 401 to that token:
/// cache.invalidate(&token);
/// # Ok(()) }
/// ```
pub struct TokenCache<S, C = SystemClock> {
    state: Arc<State<S, C>>,
}

impl<S, C> Clone for TokenCache<S, C> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

struct State<S, C> {
    source: S,
    clock: C,
    policy: CachePolicy,
    entry: ArcSwapOption<Entry>,
    flight: Mutex<Flight>,
    budget: Arc<Budget>,
    /// The shared store, when the cache has one.
    shared: Option<Store>,
}

/// A cached token with its times on the cache's clock.
struct Entry {
    token: AccessToken,
    refresh_at: Instant,
    expires_at: Instant,
    origin: Origin,
}

/// Where a cached token came from.
enum Origin {
    /// Minted for this cache alone (no store).
    Local,
    /// Minted here while the store failed; offered to the store once it is
    /// back, so that the fleet converges on one token.
    Fallback,
    /// Read from or written to the store: mint `mint`, sealed as `sealed`
    /// (what compare-and-delete compares).
    Shared { mint: String, sealed: Vec<u8> },
}

/// What a fetch in the background ended with.
enum Outcome {
    /// A token to cache.
    Token(Arc<Entry>),
    /// No token: the error goes to the waiting callers, and the cache backs off.
    Failed(TokenError),
    /// The store failed while the cached token is still valid: keep serving
    /// it and ask the store again later (no mint, no warning per attempt).
    Deferred(TokenError),
}

type Mint = future::Shared<BoxFuture<'static, Result<Arc<Entry>, TokenError>>>;

/// A token handed out by [`TokenCache::token`]; derefs to [`AccessToken`].
///
/// On a cache hit it borrows the cached token through an `arc_swap` guard,
/// so that many threads reading one cache never write to a shared cache
/// line (an `Arc` clone would: its reference count). Use it for the request
/// at hand and drop it; hold it for long and a thread runs out of the fast
/// guard slots, which only makes later hits a little slower.
pub struct CachedToken {
    inner: Held,
}

enum Held {
    Borrowed(arc_swap::Guard<Option<Arc<Entry>>>),
    Owned(Arc<Entry>),
}

impl CachedToken {
    fn owned(entry: Arc<Entry>) -> Self {
        Self {
            inner: Held::Owned(entry),
        }
    }

    /// Whether `self` and `other` are the same cached token (the same
    /// mint), not merely equal values.
    pub fn is_same(&self, other: &CachedToken) -> bool {
        std::ptr::eq::<AccessToken>(&**self, &**other)
    }
}

/// A clone holds the token by reference count, not through the `arc_swap`
/// guard: keep clones across `.await`s and for as long as needed.
impl Clone for CachedToken {
    fn clone(&self) -> Self {
        match &self.inner {
            Held::Owned(entry) => Self::owned(Arc::clone(entry)),
            Held::Borrowed(guard) => match guard.as_ref() {
                Some(entry) => Self::owned(Arc::clone(entry)),
                // Borrowed is only built from a guard holding an entry.
                None => unreachable!("a borrowed CachedToken always holds an entry"),
            },
        }
    }
}

impl std::ops::Deref for CachedToken {
    type Target = AccessToken;

    fn deref(&self) -> &AccessToken {
        match &self.inner {
            Held::Owned(entry) => &entry.token,
            Held::Borrowed(guard) => match guard.as_ref() {
                Some(entry) => &entry.token,
                // Borrowed is only built from a guard holding an entry.
                None => unreachable!("a borrowed CachedToken always holds an entry"),
            },
        }
    }
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl std::fmt::Display for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&**self, f)
    }
}

#[derive(Default)]
struct Flight {
    running: Option<Mint>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<TokenError>,
}

impl<S: TokenSource + 'static> TokenCache<S, SystemClock> {
    /// A cache with the default [`CachePolicy`].
    pub fn new(source: S) -> Self {
        Self::with_policy(source, CachePolicy::default())
    }

    /// A cache with `policy`.
    pub fn with_policy(source: S, policy: CachePolicy) -> Self {
        Self::with_clock(source, policy, SystemClock)
    }

    /// A cache that shares its tokens through `store` with every other
    /// cache, in any process, of the same credential, scopes and header
    /// parameters (see [`TokenStore`]):
    ///
    /// - hits stay in-process and never touch the store;
    /// - on a miss or when a refresh is due, the store is read first; if it
    ///   has no fresh token, exactly one process takes the mint lock and
    ///   mints (within the budget, counted per credential in the store),
    ///   while the others wait for it and read what it stored;
    /// - [`invalidate`](Self::invalidate) deletes the token from the store
    ///   only if it is still the one stored, and other processes drop their
    ///   copy;
    /// - every store call is bounded by [`StoreOptions::op_timeout`](crate::StoreOptions);
    ///   when the store fails, callers keep the valid token, and a process
    ///   with none mints alone under its own budget, logging it once; when
    ///   the store is back, the processes converge on one token.
    ///
    /// Fails with [`TokenError::Config`] when `source` has no secret to key
    /// the store with ([`TokenSource::store_secret`]).
    pub fn with_store(
        source: S,
        policy: CachePolicy,
        store: TokenStore,
    ) -> Result<Self, TokenError> {
        let secret = source.store_secret().ok_or_else(|| TokenError::Config {
            provider: source.provider(),
            problem: "this token source has no client secret to key a shared store with".into(),
        })?;
        let keys = Keys::derive(secret, source.cache_key());
        let mut cache = Self::with_clock(source, policy, SystemClock);
        let state = Arc::get_mut(&mut cache.state)
            .unwrap_or_else(|| unreachable!("a cache just built has one handle"));
        state.shared = Some(Store::new(store, keys));
        Ok(cache)
    }
}

impl<S: TokenSource + 'static, C: Clock> TokenCache<S, C> {
    /// A cache reading time from `clock` (see [`ManualClock`](crate::ManualClock)
    /// for tests).
    pub fn with_clock(source: S, policy: CachePolicy, clock: C) -> Self {
        let budget = Budget::for_credential(source.cache_key(), &policy);
        Self {
            state: Arc::new(State {
                source,
                clock,
                policy,
                entry: ArcSwapOption::empty(),
                flight: Mutex::new(Flight::default()),
                budget,
                shared: None,
            }),
        }
    }

    /// The key of the tokens this cache holds.
    pub fn key(&self) -> &CacheKey {
        self.state.source.cache_key()
    }

    /// Offers the token this cache minted without its store (the store was
    /// failing then) to the store, where none is stored, so that other
    /// processes take it instead of minting: what a short-lived process
    /// does before it exits (a long-lived one does it at its next refresh
    /// check). One store call, bounded by [`StoreOptions::op_timeout`](crate::StoreOptions::op_timeout).
    /// `Ok(true)` when it was stored; `Ok(false)` when there was nothing to
    /// offer or the store already holds a token.
    pub async fn share_with_store(&self) -> Result<bool, StoreError> {
        let Some(shared) = &self.state.shared else {
            return Ok(false);
        };
        match self.state.offer_fallback(shared).await {
            None | Some(Ok(None)) => Ok(false),
            Some(Ok(Some(entry))) => {
                let _flight = self.state.lock_flight();
                self.state.entry.store(Some(entry));
                Ok(true)
            }
            Some(Err(err)) => {
                shared.failed(self.key().provider, &err);
                Err(err)
            }
        }
    }

    /// Why this cache's [`TokenStore`] could not be used, while it has not
    /// answered since: its tokens were then kept or minted without the
    /// store. `None` when the store answered last, or there is no store.
    /// The error names the store without its password, never a token.
    pub fn store_error(&self) -> Option<StoreError> {
        self.state.shared.as_ref().and_then(Store::last_error)
    }

    /// A valid token: the cached one while it is fresh, otherwise the result
    /// of the one fetch that every concurrent caller shares.
    pub async fn token(&self) -> Result<CachedToken, TokenError> {
        match self.hit() {
            Ok(token) => Ok(token),
            // Boxed so that the hit path's future stays small.
            Err(now) => Box::pin(self.state.slow(now)).await,
        }
    }

    /// The cached token if it is fresh (not yet due for refresh), without
    /// waiting and without starting a fetch; `None` means: call
    /// [`token`](Self::token).
    pub fn cached(&self) -> Option<CachedToken> {
        self.hit().ok()
    }

    /// The hit path: one clock read, one guarded load. On a miss, the time
    /// it was decided at.
    #[inline]
    fn hit(&self) -> Result<CachedToken, Instant> {
        let now = self.state.clock.now();
        let guard = self.state.entry.load();
        if guard.as_ref().is_some_and(|entry| now < entry.refresh_at) {
            tracing::trace!(target: "paytokens::cache", "hit");
            return Ok(CachedToken {
                inner: Held::Borrowed(guard),
            });
        }
        Err(now)
    }

    /// Drops `token` after the API refused it (HTTP 401), so that the next
    /// [`token`](Self::token) fetches a new one. Only the token currently
    /// cached is dropped: a burst of callers invalidating the same token
    /// causes one refresh, still single-flight and within the mint budget.
    ///
    /// With a store, the token is also deleted from it if it is still the
    /// one stored (compare-and-delete, in a background task), and the other
    /// processes drop their copies.
    pub fn invalidate(&self, token: &AccessToken) {
        let _flight = self.state.lock_flight();
        let current = self.state.entry.load_full();
        let Some(entry) = current.filter(|e| std::ptr::eq(&e.token, token)) else {
            return;
        };
        let provider = self.key().provider;
        tracing::debug!(target: "paytokens::cache", %provider, "invalidated");
        self.state.entry.store(None);
        metrics::counter!(metric_names::UNAUTHORIZED_INVALIDATIONS, PROVIDER => provider.id())
            .increment(1);
        if let (Some(shared), Origin::Shared { mint, .. }) = (&self.state.shared, &entry.origin) {
            shared.revoke(mint);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let state = Arc::clone(&self.state);
                runtime.spawn(async move {
                    let Some(shared) = &state.shared else { return };
                    if let Origin::Shared { mint, sealed } = &entry.origin {
                        let backend = &shared.store.backend;
                        let deleted = shared.call(backend.delete_if(&shared.keys, sealed, mint));
                        if let Err(err) = deleted.await {
                            shared.failed(provider, &err);
                        }
                    }
                });
            }
        }
    }
}

impl<S: TokenSource + 'static, C: Clock> State<S, C> {
    fn lock_flight(&self) -> MutexGuard<'_, Flight> {
        // The lock guards plain data that is valid at every step.
        self.flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Miss, refresh due, or backing off. The flight lock is held only to
    /// decide, never across an await; the entry is read under it because a
    /// finishing mint updates both together.
    async fn slow(self: &Arc<Self>, now: Instant) -> Result<CachedToken, TokenError> {
        let (valid, mint) = {
            let mut flight = self.lock_flight();
            let entry = self.entry.load_full();
            if let Some(entry) = &entry
                && now < entry.refresh_at
            {
                return Ok(CachedToken::owned(Arc::clone(entry)));
            }
            let valid = entry.filter(|e| now < e.expires_at);
            if let Some(mint) = &flight.running {
                match valid {
                    // Someone is refreshing: keep serving the current token.
                    Some(entry) => return Ok(CachedToken::owned(entry)),
                    None => (None, mint.clone()),
                }
            } else if flight.retry_at.is_some_and(|at| now < at) {
                match (valid, flight.last_error.clone()) {
                    (Some(entry), _) => return Ok(CachedToken::owned(entry)),
                    (None, Some(err)) => return Err(err),
                    (None, None) => (None, self.start(&mut flight, now)?),
                }
            } else {
                match self.start(&mut flight, now) {
                    Ok(mint) => (valid, mint),
                    Err(err) => return valid.map(CachedToken::owned).ok_or(err),
                }
            }
        };
        tracing::debug!(target: "paytokens::cache", provider = %self.source.provider(),
            kind = if valid.is_some() { "refresh" } else { "miss" }, "waiting for a token fetch");
        match (mint.await, valid) {
            (Ok(entry), _) => Ok(CachedToken::owned(entry)),
            // A rejection is reported at once, even while the old token lives.
            (Err(err @ TokenError::Rejected { .. }), _) => Err(err),
            (Err(_), Some(still_valid)) => Ok(CachedToken::owned(still_valid)),
            (Err(err), None) => Err(err),
        }
    }

    /// Starts the one fetch, within the budget.
    fn start(self: &Arc<Self>, flight: &mut Flight, now: Instant) -> Result<Mint, TokenError> {
        if self.shared.is_none() {
            self.take_local(flight, now)?;
        }
        let state = Arc::clone(self);
        let task = tokio::spawn(async move {
            let outcome = match &state.shared {
                None => match state.fetch().await {
                    Ok(token) => Outcome::Token(state.entry(token, Origin::Local, true)),
                    Err(err) => Outcome::Failed(err),
                },
                Some(shared) => state.shared_fetch(shared).await,
            };
            state.finish(outcome)
        });
        let provider = self.source.provider();
        let mint = async move {
            match task.await {
                Ok(result) => result,
                // A panic is a bug: it reaches the caller, not disguised.
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(_) => Err(TokenError::Transient {
                    provider,
                    reason: "the token fetch task was cancelled".to_owned(),
                    cause: crate::TransientCause::Other,
                    status: None,
                    retry_after: None,
                }),
            }
        }
        .boxed()
        .shared();
        flight.running = Some(mint.clone());
        Ok(mint)
    }

    /// Takes one mint from this process's budget of the credential, or
    /// records why not in `flight`.
    fn take_local(&self, flight: &mut Flight, now: Instant) -> Result<(), TokenError> {
        let id = self.source.provider().id();
        match self.budget.take(now, self.source.provider()) {
            Ok(remaining) => {
                metrics::gauge!(metric_names::BUDGET_REMAINING, PROVIDER => id)
                    .set(f64::from(remaining));
                Ok(())
            }
            Err(err) => {
                tracing::warn!(target: "paytokens::cache", provider = %self.source.provider(),
                    max_mints = self.budget.max_mints, window_s = self.budget.window.as_secs(),
                    "mint budget exhausted; not calling the provider");
                let class = err.class();
                metrics::gauge!(metric_names::BUDGET_REMAINING, PROVIDER => id).set(0.0);
                metrics::counter!(metric_names::MINTS, PROVIDER => id, "outcome" => class)
                    .increment(1);
                metrics::counter!(metric_names::REFRESH_FAILURES, PROVIDER => id, "class" => class)
                    .increment(1);
                flight.retry_at =
                    Some(now + err.retry_after().unwrap_or(self.policy.retry_initial));
                flight.last_error = Some(err.clone());
                Err(err)
            }
        }
    }

    /// One request to the provider (retries included), measured.
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let provider = self.source.provider();
        let span = tracing::info_span!(target: "paytokens::cache", "token_fetch",
            %provider, outcome = tracing::field::Empty, latency_ms = tracing::field::Empty);
        let started = std::time::Instant::now();
        let result = self.source.fetch().instrument(span.clone()).await;
        let elapsed = started.elapsed();
        span.record("latency_ms", elapsed.as_millis() as u64);
        let id = provider.id();
        metrics::histogram!(metric_names::REFRESH_DURATION, PROVIDER => id)
            .record(elapsed.as_secs_f64());
        let outcome = result.as_ref().map_or_else(TokenError::class, |_| "minted");
        span.record("outcome", outcome);
        metrics::counter!(metric_names::MINTS, PROVIDER => id, "outcome" => outcome).increment(1);
        if result.is_err() {
            metrics::counter!(metric_names::REFRESH_FAILURES, PROVIDER => id, "class" => outcome)
                .increment(1);
        }
        result
    }

    /// `token` as a cache entry, its times moved onto the cache's clock;
    /// `minted` says it was minted just now (for the expiry gauges).
    fn entry(&self, token: AccessToken, origin: Origin, minted: bool) -> Arc<Entry> {
        let now = self.clock.now();
        // The source stamps tokens with tokio's clock; move the expiry onto
        // the cache's (they differ only for a test clock).
        let skew = now.saturating_duration_since(Instant::now());
        let expires_at = token.expires_at() + skew;
        let mut refresh_at = self.policy.refresh_at(token.lifetime(), expires_at);
        if let (Origin::Fallback, Some(shared)) = (&origin, &self.shared) {
            // Offer it to the store soon, so that the fleet converges.
            refresh_at = refresh_at.min(now + shared.store.options.recheck);
        }
        if minted {
            // At most the lifetime: the cache's clock is coarse.
            let left = expires_at
                .saturating_duration_since(now)
                .min(token.lifetime());
            let id = self.source.provider().id();
            metrics::gauge!(metric_names::EXPIRES_IN, PROVIDER => id).set(left.as_secs_f64());
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            metrics::gauge!(metric_names::EXPIRY_TIMESTAMP, PROVIDER => id)
                .set((unix + left).as_secs_f64());
        }
        Arc::new(Entry {
            token,
            refresh_at,
            expires_at,
            origin,
        })
    }

    /// Stores the outcome of a fetch and decides when to try again.
    fn finish(self: &Arc<Self>, outcome: Outcome) -> Result<Arc<Entry>, TokenError> {
        let provider = self.source.provider();
        let now = self.clock.now();
        let mut flight = self.lock_flight();
        flight.running = None;
        match outcome {
            Outcome::Token(entry) => {
                self.entry.store(Some(Arc::clone(&entry)));
                *flight = Flight::default();
                drop(flight);
                self.schedule(entry.refresh_at);
                if matches!(entry.origin, Origin::Fallback) {
                    // Minted while the store failed: leave it there once
                    // the store answers, so that the fleet converges.
                    self.offer_when_back();
                }
                Ok(entry)
            }
            Outcome::Failed(err) => {
                flight.failures = flight.failures.saturating_add(1);
                let wait = self.policy.backoff(flight.failures, &err);
                flight.retry_at = Some(now + wait);
                flight.last_error = Some(err.clone());
                drop(flight);
                tracing::warn!(target: "paytokens::cache", %provider, error = %err,
                    retry_in_ms = wait.as_millis() as u64, "token fetch failed");
                self.schedule(now + wait);
                Err(err)
            }
            Outcome::Deferred(err) => {
                flight.failures = flight.failures.saturating_add(1);
                let recheck = self
                    .shared
                    .as_ref()
                    .map_or(self.policy.retry_initial, |s| s.store.options.recheck);
                let doubled =
                    recheck.saturating_mul(1 << flight.failures.saturating_sub(1).min(16));
                let mut retry_at = now + doubled.min(self.policy.retry_max.max(recheck));
                // Never past the cached token's expiry: then this process
                // mints alone.
                if let Some(entry) = self.entry.load().as_ref() {
                    retry_at = retry_at.min(entry.expires_at);
                }
                flight.retry_at = Some(retry_at);
                flight.last_error = Some(err.clone());
                drop(flight);
                tracing::debug!(target: "paytokens::cache", %provider,
                    retry_in_ms = retry_at.saturating_duration_since(now).as_millis() as u64,
                    "token store unavailable; keeping the cached token");
                self.schedule(retry_at);
                Err(err)
            }
        }
    }

    /// With background refresh, wakes at `at` and refreshes if still due.
    fn schedule(self: &Arc<Self>, at: Instant) {
        if !self.policy.background_refresh {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let clock = self.clock.clone();
        tokio::spawn(async move {
            clock.sleep_until(at).await;
            let Some(state) = weak.upgrade() else { return };
            let now = state.clock.now();
            let mut flight = state.lock_flight();
            let fresh = state
                .entry
                .load()
                .as_ref()
                .is_some_and(|e| now < e.refresh_at);
            let waiting = flight.retry_at.is_some_and(|t| now < t);
            if fresh || waiting || flight.running.is_some() {
                return;
            }
            tracing::debug!(target: "paytokens::cache", provider = %state.source.provider(), "background refresh");
            // The budget error, if any, is recorded in the flight state.
            let _ = state.start(&mut flight, now);
        });
    }
}

/// The mint budget of one credential (provider, base URL, client id), shared
/// by every cache in the process that uses it.
struct Budget {
    max_mints: u32,
    window: Duration,
    mints: Mutex<VecDeque<Instant>>,
}

type Credential = (Provider, String, String);

static BUDGETS: LazyLock<Mutex<HashMap<Credential, Weak<Budget>>>> =
    LazyLock::new(Default::default);

impl Budget {
    /// The budget of `key`'s credential; the first cache to use a credential
    /// sets its limits.
    fn for_credential(key: &CacheKey, policy: &CachePolicy) -> Arc<Budget> {
        let credential = (key.provider, key.base_url.clone(), key.client_id.clone());
        let mut budgets = BUDGETS.lock().unwrap_or_else(PoisonError::into_inner);
        budgets.retain(|_, budget| budget.strong_count() > 0);
        if let Some(budget) = budgets.get(&credential).and_then(Weak::upgrade) {
            return budget;
        }
        let budget = Arc::new(Budget {
            max_mints: policy.max_mints,
            window: policy.mint_window,
            mints: Mutex::new(VecDeque::new()),
        });
        budgets.insert(credential, Arc::downgrade(&budget));
        budget
    }

    /// Records one mint at `now` that was counted elsewhere (in a shared
    /// store), so that this process's budget still caps it should it fall
    /// back to minting alone.
    fn record(&self, now: Instant) {
        let mut mints = self.mints.lock().unwrap_or_else(PoisonError::into_inner);
        mints.push_back(now);
        while mints.len() > self.max_mints as usize {
            mints.pop_front();
        }
    }

    /// Records one mint at `now` and says how many are left in the window,
    /// or says how long until one is allowed.
    fn take(&self, now: Instant, provider: Provider) -> Result<u32, TokenError> {
        let mut mints = self.mints.lock().unwrap_or_else(PoisonError::into_inner);
        while mints
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            mints.pop_front();
        }
        if mints.len() < self.max_mints as usize {
            mints.push_back(now);
            let left = (self.max_mints as usize).saturating_sub(mints.len());
            return Ok(u32::try_from(left).unwrap_or(u32::MAX));
        }
        let oldest = mints.front().copied().unwrap_or(now);
        Err(TokenError::MintBudgetExhausted {
            provider,
            max_mints: self.max_mints,
            window: self.window,
            retry_after: (oldest + self.window).saturating_duration_since(now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Provider;

    #[test]
    fn margins_scale_with_lifetime_within_floor_and_cap() {
        let policy = CachePolicy::default();
        assert_eq!(
            policy.margin(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            policy.margin(Duration::from_secs(900)),
            Duration::from_secs(90)
        );
        assert_eq!(
            policy.margin(Duration::from_secs(86_400)),
            Duration::from_secs(300)
        );
        assert_eq!(
            policy.margin(Duration::from_secs(60)),
            Duration::from_secs(10)
        );
        // Never more than half the lifetime.
        assert_eq!(
            policy.margin(Duration::from_secs(8)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = CachePolicy::default();
        let transient = TokenError::Transient {
            provider: Provider::of::<crate::autopay::Autopay>(),
            reason: "HTTP 503".into(),
            cause: crate::TransientCause::Status,
            status: Some(503),
            retry_after: None,
        };
        for (failures, cap) in [(1, 1), (2, 2), (3, 4), (10, 30)] {
            let wait = policy.backoff(failures, &transient);
            let cap = Duration::from_secs(cap);
            assert!(wait >= cap / 2 && wait <= cap, "{failures}: {wait:?}");
        }
    }
}
