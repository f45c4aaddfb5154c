//! What every provider's [`Source`](crate::Source) shares: the HTTP client
//! (timeouts, no redirects, HTTP Basic where the spec says so), the retry
//! loop, the mapping of generated-client errors onto [`TokenError`], and the
//! validation that turns a decoded response into an [`AccessToken`].

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::sync::{OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument as _;

use paytokens_runtime::{Auth, Grant, Lifetime, Refusal};

use crate::config::{Check, Credentials, HttpOptions, RetryPolicy};
use crate::{AccessToken, Provider, TokenError, TransientCause};

/// The longest token lifetime accepted: anything above a year is a broken
/// `expires_in`, not a policy.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// Longest provider error message kept in a [`TokenError::Rejected`].
const MAX_MESSAGE_CHARS: usize = 200;

/// One provider endpoint, configured and ready to call.
pub(crate) struct Exchange {
    provider: Provider,
    base_url: String,
    /// The HTTP client, built on the first request: building it loads the
    /// TLS roots, which a source that is only ever served from a store (a
    /// warm `paytokens token`) never needs. `Err` holds why it could not be
    /// built.
    http: OnceLock<Result<reqwest::Client, String>>,
    /// What every request carries (`Authorization: Basic …` where the spec
    /// says HTTP Basic, marked sensitive), for building the client.
    default_headers: HeaderMap,
    retry: RetryPolicy,
    /// The client's timeouts, named in the errors they cause.
    connect_timeout: Duration,
    request_timeout: Duration,
    max_body_bytes: u64,
    /// Kept only to mask it should a provider echo it in an error message.
    secret: SecretString,
}

impl Exchange {
    /// Checks the shared configuration and builds the HTTP client. Where
    /// the spec says HTTP Basic, every request carries `Authorization: Basic
    /// base64(id:secret)`, marked sensitive.
    pub(crate) fn new(
        provider: Provider,
        base_url: &str,
        credentials: &Credentials,
        options: &HttpOptions,
    ) -> Result<Self, TokenError> {
        let check = Check(provider);
        let basic_auth = provider.spec().auth == Auth::Basic;
        let base_url = check.base_url(base_url)?;
        check.credentials(credentials, basic_auth)?;
        check.http(options)?;
        let mut headers = HeaderMap::new();
        if basic_auth {
            let pair = format!(
                "{}:{}",
                credentials.client_id,
                credentials.client_secret.expose_secret()
            );
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
                .map_err(|_| check.fail("credentials cannot be sent as a header"))?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        Ok(Self {
            provider,
            base_url,
            http: OnceLock::new(),
            default_headers: headers,
            retry: options.retry.clone(),
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
            max_body_bytes: options.max_body_bytes,
            secret: credentials.client_secret.clone(),
        })
    }

    pub(crate) fn secret(&self) -> &SecretString {
        &self.secret
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The HTTP client, built on first use (timeouts, no redirects, the
    /// default headers); a client that cannot be built (no TLS backend) is
    /// a [`TokenError::Config`], every time it is asked for.
    pub(crate) fn http(&self) -> Result<reqwest::Client, TokenError> {
        let built = self.http.get_or_init(|| {
            reqwest::Client::builder()
                .default_headers(self.default_headers.clone())
                .connect_timeout(self.connect_timeout)
                .timeout(self.request_timeout)
                // A redirect would resend the credentials to wherever it points.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("paytokens/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        });
        built
            .clone()
            .map_err(|problem| Check(self.provider).fail(problem))
    }

    pub(crate) fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retry policy
    /// is spent. Only [`TokenError::Transient`] is retried; a `Retry-After`
    /// replaces the backoff delay, and one above the cap ends the retries.
    ///
    /// Each attempt runs in a `token_request` span with the fields
    /// `provider` (the id), `attempt` (1-based), `status` (the HTTP status,
    /// when there was a response) and, when a retry follows, `retry_in_ms`.
    /// Never a credential or token.
    pub(crate) async fn with_retries<F, Fut>(
        &self,
        mut attempt: F,
    ) -> Result<AccessToken, TokenError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<AccessToken, TokenError>>,
    {
        let policy = &self.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.initial_backoff)
            .with_max_delay(policy.max_backoff)
            .with_max_times(policy.max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        let cap = policy.max_retry_after;
        // The span of the attempt that just ended, for `notify` to record
        // the retry delay on: a mutex (never contended) keeps the future Send.
        let last_span = std::sync::Mutex::new(tracing::Span::none());
        let mut number: u32 = 0;
        let provider = self.provider;
        let traced = || {
            number += 1;
            let span = tracing::info_span!(
                "token_request",
                %provider,
                attempt = number,
                status = tracing::field::Empty,
                retry_in_ms = tracing::field::Empty,
            );
            *last_span.lock().unwrap_or_else(PoisonError::into_inner) = span.clone();
            let attempt = attempt();
            async move {
                let result = attempt.instrument(span.clone()).await;
                if let Some(status) = status_of(&result) {
                    span.record("status", status);
                }
                result
            }
        };
        traced
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(TokenError::is_retryable)
            .adjust(move |err, delay| match (delay, err.retry_after()) {
                (None, _) => None,
                (Some(_), Some(wait)) if wait > cap => None,
                (Some(_), Some(wait)) => Some(wait),
                (Some(delay), None) => Some(delay),
            })
            .notify(|err, delay| {
                let span = last_span.lock().unwrap_or_else(PoisonError::into_inner);
                let retry_in_ms = delay.as_millis() as u64;
                span.record("retry_in_ms", retry_in_ms);
                span.in_scope(|| {
                    tracing::warn!(
                        provider = %self.provider,
                        error = %err,
                        retry_in_ms,
                        "token request failed; retrying"
                    );
                });
            })
            .await
    }

    /// Checks a success response's grant and builds the token; `sent` and
    /// `sent_at` are when the request left (monotonic and wall clock: an
    /// absolute expiry is judged against the latter). Problems name the
    /// spec's fields.
    pub(crate) fn token(
        &self,
        sent: Instant,
        sent_at: SystemTime,
        grant: Grant,
    ) -> Result<AccessToken, TokenError> {
        let answer = &self.provider.spec().answer;
        let status = answer.statuses.first().copied().unwrap_or(200);
        let invalid = |problem: &str| self.invalid(status, problem);
        let token_name = answer.token.name;
        if grant.access_token.is_empty() {
            return Err(invalid(&format!("{token_name} is empty")));
        }
        if !grant.token_type.eq_ignore_ascii_case("bearer") {
            let name = answer.token_type.as_ref().map_or("token_type", |f| f.name);
            return Err(invalid(&token_type_problem(name, &grant.token_type)));
        }
        let expiry_name = match &answer.expiry {
            paytokens_runtime::Expiry::In(field) | paytokens_runtime::Expiry::At(field, _) => {
                field.name
            }
        };
        let lifetime = lifetime(grant.lifetime, expiry_name, sent_at).map_err(|p| invalid(&p))?;
        let scopes = grant.scopes.unwrap_or_default();
        let secret = SecretString::from(grant.access_token);
        AccessToken::new(self.provider, secret, scopes, lifetime, sent).ok_or_else(|| {
            invalid(&format!(
                "{token_name} has characters that cannot be sent in an HTTP header"
            ))
        })
    }

    /// A [`TokenError::InvalidResponse`] for this provider.
    pub(crate) fn invalid(&self, status: u16, problem: &str) -> TokenError {
        TokenError::InvalidResponse {
            provider: self.provider,
            status,
            problem: problem.to_owned(),
        }
    }

    /// Maps a generated client's error onto [`TokenError`]. `status` and
    /// `headers` come from the call's response guard (they survive a body
    /// that does not decode); `T` is the success type, re-read to say which
    /// field was wrong; `refusal` reads code and message from the provider's
    /// error type.
    pub(crate) fn error<T: DeserializeOwned, E>(
        &self,
        err: progenitor_client::Error<E>,
        status: Option<StatusCode>,
        headers: Option<&HeaderMap>,
        refusal: impl FnOnce(E) -> Refusal,
    ) -> TokenError {
        use progenitor_client::Error as E;
        let provider = self.provider;
        match err {
            E::ErrorResponse(response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers());
                self.by_status(status, retry_after)
                    .unwrap_or_else(|| self.rejected(status, refusal(response.into_inner())))
            }
            E::UnexpectedResponse(response) => {
                let status = response.status();
                self.by_status(status, retry_after(response.headers()))
                    .unwrap_or_else(|| self.unexpected_status(status))
            }
            E::InvalidResponsePayload(bytes, cause) => {
                let status = status.unwrap_or(StatusCode::OK);
                if let Some(err) = self.by_status(status, headers.and_then(retry_after)) {
                    return err;
                }
                if status.is_client_error() {
                    // A refusal whose body is not the documented shape is
                    // still a refusal: with the code and message found at
                    // the spec's error roles when it is JSON at all (an
                    // HTML page has none).
                    let found = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .map(|body| self.provider.spec().refusal.refusal(&body))
                        .unwrap_or_default();
                    return self.rejected(status, found);
                }
                self.invalid(status.as_u16(), &describe_payload::<T>(&bytes, &cause))
            }
            E::CommunicationError(e) | E::ResponseBodyError(e) | E::InvalidUpgrade(e) => {
                let (cause, reason) = self.transport_failure(&e);
                TokenError::Transient {
                    provider,
                    reason,
                    cause,
                    status: status.map(|s| s.as_u16()),
                    retry_after: None,
                }
            }
            // Only our response guard returns Custom: its text is ours.
            E::Custom(problem) => self.invalid(status.map_or(0, |s| s.as_u16()), &problem),
            E::InvalidRequest(problem) => TokenError::Config {
                provider,
                problem: format!("the request cannot be built: {problem}"),
            },
        }
    }

    /// Transient statuses: 408, 429 and 5xx.
    fn by_status(&self, status: StatusCode, retry_after: Option<Duration>) -> Option<TokenError> {
        let transient = status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error();
        transient.then(|| TokenError::Transient {
            provider: self.provider,
            reason: format!("HTTP {}", status.as_u16()),
            cause: TransientCause::Status,
            status: Some(status.as_u16()),
            retry_after,
        })
    }

    fn unexpected_status(&self, status: StatusCode) -> TokenError {
        let problem = if status.is_redirection() {
            "redirect not followed (token requests never follow redirects); check the base URL"
                .to_owned()
        } else {
            format!("unexpected HTTP status {}", status.as_u16())
        };
        self.invalid(status.as_u16(), &problem)
    }

    fn rejected(&self, status: StatusCode, Refusal { code, message }: Refusal) -> TokenError {
        TokenError::Rejected {
            provider: self.provider,
            status: status.as_u16(),
            code: code.map(|c| self.clean(&c)),
            message: message.map(|m| self.clean(&m)),
        }
    }

    /// What went wrong on the wire, and the reason to show: it names the
    /// endpoint (scheme, host and port only) and the cause found in the
    /// error's source chain.
    fn transport_failure(&self, err: &reqwest::Error) -> (TransientCause, String) {
        use TransientCause as C;
        let endpoint = err.url().map_or_else(|| "the base URL".to_owned(), origin);
        let has = |kinds: &[io::ErrorKind]| {
            causes(err).any(|e| {
                e.downcast_ref::<io::Error>()
                    .is_some_and(|e| kinds.contains(&e.kind()))
            })
        };
        // The innermost cause says most (`received corrupt message ...`).
        // reqwest's own errors are skipped: their text holds the full URL.
        let detail = causes(err)
            .filter(|e| !e.is::<reqwest::Error>())
            .last()
            .map_or_else(|| "no details".to_owned(), ToString::to_string);
        let tls = endpoint.starts_with("https:")
            && has(&[io::ErrorKind::InvalidData, io::ErrorKind::UnexpectedEof]);
        if err.is_timeout() && err.is_connect() {
            let after = duration(self.connect_timeout);
            (
                C::Timeout,
                format!("connecting to {endpoint} timed out after {after}"),
            )
        } else if err.is_timeout() {
            let after = duration(self.request_timeout);
            (
                C::Timeout,
                format!("request to {endpoint} timed out after {after}"),
            )
        } else if err.is_dns() {
            (
                C::HostNotFound,
                format!("cannot resolve the host of {endpoint}"),
            )
        } else if has(&[io::ErrorKind::ConnectionRefused]) {
            (
                C::ConnectionRefused,
                format!("connection refused by {endpoint}"),
            )
        } else if has(&[
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
        ]) {
            (
                C::ConnectionReset,
                format!("connection to {endpoint} was reset"),
            )
        } else if err.is_connect() && tls {
            (
                C::Tls,
                format!("TLS handshake failed with {endpoint}: {detail}"),
            )
        } else if err.is_connect() {
            (C::Other, format!("cannot connect to {endpoint}: {detail}"))
        } else if err.is_body() || err.is_decode() {
            let reason = format!(
                "connection to {endpoint} failed while reading the response body: {detail}"
            );
            (C::Other, reason)
        } else {
            (C::Other, format!("request to {endpoint} failed: {detail}"))
        }
    }

    /// Provider text made safe to show: the client secret masked, control
    /// characters dropped, at most [`MAX_MESSAGE_CHARS`] characters.
    fn clean(&self, text: &str) -> String {
        let secret = self.secret.expose_secret();
        let masked = if secret.is_empty() {
            text.to_owned()
        } else {
            text.replace(secret, "[REDACTED]")
        };
        masked
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_MESSAGE_CHARS)
            .collect()
    }
}

/// The HTTP status an attempt's outcome came with: 200 for a token (the
/// only status a token is accepted with), the error's status otherwise
/// (none for a failure on the wire).
fn status_of(result: &Result<AccessToken, TokenError>) -> Option<u16> {
    match result {
        Ok(_) => Some(200),
        Err(TokenError::Rejected { status, .. }) => Some(*status),
        Err(TokenError::Transient { status, .. }) => *status,
        Err(TokenError::InvalidResponse { status, .. }) => Some(*status).filter(|s| *s != 0),
        Err(_) => None,
    }
}

/// Validates a lifetime: whole seconds (or an absolute time, counted from
/// `sent_at`), from 1 to [`MAX_LIFETIME`]; `name` is the spec's field.
fn lifetime(raw: Lifetime, name: &str, sent_at: SystemTime) -> Result<Duration, String> {
    let seconds = match raw {
        Lifetime::Seconds(n) => n,
        Lifetime::Text(text) => {
            if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{name} is a string that is not a whole number of seconds"
                ));
            }
            text.parse()
                .map_err(|_| format!("{name} is not a whole number of seconds"))?
        }
        // What is left of an absolute time, to the nanosecond: a whole-second
        // time rounded down may leave less than a second.
        Lifetime::Until(at) => {
            return match at.duration_since(sent_at) {
                Ok(left) if left.is_zero() => {
                    Err(format!("{name} is not after the time the request was sent"))
                }
                Ok(left) if left > MAX_LIFETIME => Err(format!(
                    "{name} is {} s after the request, more than the {} s accepted",
                    left.as_secs(),
                    MAX_LIFETIME.as_secs()
                )),
                Ok(left) => Ok(left),
                Err(_) => Err(format!("{name} is not after the time the request was sent")),
            };
        }
    };
    if seconds <= 0 {
        return Err(format!("{name} is {seconds}; it must be positive"));
    }
    let lifetime = Duration::from_secs(seconds as u64);
    if lifetime > MAX_LIFETIME {
        return Err(format!(
            "{name} is {seconds} s, more than the {} s accepted",
            MAX_LIFETIME.as_secs()
        ));
    }
    Ok(lifetime)
}

/// `Retry-After` as delta-seconds or an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// `err` and its causes, outermost first. An `io::Error`'s `source()` skips
/// the error it wraps, so the walk steps into that error instead: that is
/// where rustls and the OS put the reason.
fn causes(err: &reqwest::Error) -> impl Iterator<Item = &(dyn StdError + 'static)> {
    let first: &(dyn StdError + 'static) = err;
    std::iter::successors(Some(first), |&e| match e.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

/// `scheme://host:port` of `url`: never its userinfo, path or query.
fn origin(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// `5 s`, or `500 ms` for a timeout that is not whole seconds.
fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Names a short alphanumeric token type (`mac`); anything else could be a
/// misplaced token, so it is not quoted.
fn token_type_problem(name: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{name} is empty, not Bearer")
    } else if value.len() <= 16 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        format!("{name} is `{value}`, not Bearer")
    } else {
        format!("{name} is not Bearer")
    }
}

/// Says what is wrong with a success body that did not decode, naming the
/// field but never quoting a value from the body.
fn describe_payload<T: DeserializeOwned>(bytes: &[u8], cause: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match cause.classify() {
        Category::Eof if bytes.iter().all(u8::is_ascii_whitespace) => "body is empty".into(),
        Category::Eof => "body is truncated JSON".into(),
        Category::Syntax | Category::Io => {
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first == Some(&b'<') {
                "body is HTML, not JSON".into()
            } else {
                "body is not JSON".into()
            }
        }
        Category::Data => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Ok(_) => "body does not match the token response schema".into(),
                Err(err) => {
                    let path = err.path().to_string();
                    let what = without_values(&err.into_inner().to_string());
                    if path == "." {
                        format!("body does not match the token response schema: {what}")
                    } else {
                        format!("`{path}`: {what}")
                    }
                }
            }
        }
    }
}

/// serde's message without the values it quotes (`invalid type: string
/// "…"` could be a token): field names after "missing field" and the like
/// are kept, every other quoted or back-ticked run is dropped.
pub(crate) fn without_values(message: &str) -> String {
    let message = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    if message.starts_with("missing field") || message.starts_with("duplicate field") {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ,", ",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Provider;
    use crate::autopay::Autopay;

    #[test]
    fn serde_values_are_removed_from_messages() {
        assert_eq!(
            without_values(r#"invalid type: string "tok\"en", expected i64 at line 1 column 9"#),
            "invalid type: string, expected i64"
        );
        assert_eq!(
            without_values("invalid type: floating point `1.5`, expected i64"),
            "invalid type: floating point, expected i64"
        );
        assert_eq!(
            without_values("missing field `access_token`"),
            "missing field `access_token`"
        );
    }

    #[test]
    fn lifetimes_must_be_whole_positive_seconds() {
        assert_eq!(
            lifetime(
                Lifetime::Text("3600".into()),
                "expires_in",
                SystemTime::now()
            ),
            Ok(Duration::from_secs(3600))
        );
        for bad in ["", "abc", "3600s", "-1", "1.5", " 3600", "99999999999999"] {
            assert!(
                lifetime(Lifetime::Text(bad.into()), "expires_in", SystemTime::now()).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(lifetime(Lifetime::Seconds(0), "expires_in", SystemTime::now()).is_err());
        assert!(lifetime(Lifetime::Seconds(-1), "expires_in", SystemTime::now()).is_err());
        assert!(lifetime(Lifetime::Seconds(i64::MAX), "expires_in", SystemTime::now()).is_err());
    }

    /// A resolver that fails every lookup, or never answers one: name
    /// resolution fails without contacting any server.
    struct Resolver {
        fail: bool,
    }

    impl reqwest::dns::Resolve for Resolver {
        fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
            if self.fail {
                Box::pin(async { Err("no such host".into()) })
            } else {
                Box::pin(std::future::pending())
            }
        }
    }

    /// The error a token request to `https://pay.example.test:8443/api`
    /// gets when names resolve through `resolver`.
    async fn unresolved(resolver: Resolver) -> TokenError {
        let options = HttpOptions {
            connect_timeout: Duration::from_millis(100),
            ..HttpOptions::default()
        };
        let base = "https://pay.example.test:8443/api";
        let credentials = Credentials::new("id", "secret");
        let exchange =
            Exchange::new(Provider::of::<Autopay>(), base, &credentials, &options).unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(resolver)
            .connect_timeout(options.connect_timeout)
            .build()
            .unwrap();
        let err = http
            .post(format!("{base}/oauth/token?q=1"))
            .send()
            .await
            .unwrap_err();
        exchange.error::<serde_json::Value, ()>(
            progenitor_client::Error::CommunicationError(err),
            None,
            None,
            |()| Refusal::default(),
        )
    }

    #[tokio::test]
    async fn an_unresolvable_host_is_named_and_the_base_url_blamed() {
        let err = unresolved(Resolver { fail: true }).await;
        assert_eq!(
            err.to_string(),
            "autopay is unavailable: cannot resolve the host of https://pay.example.test:8443"
        );
        assert!(err.is_retryable());
        assert_eq!(err.advice(), "check the base URL (host and port)");
    }

    #[tokio::test]
    async fn a_connect_timeout_names_the_connect_timeout() {
        let err = unresolved(Resolver { fail: false }).await;
        assert_eq!(
            err.to_string(),
            "autopay is unavailable: connecting to https://pay.example.test:8443 timed out after \
             100 ms"
        );
        assert_eq!(err.advice(), "try again later");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let date = httpdate::fmt_http_date(later);
        headers.insert(header::RETRY_AFTER, HeaderValue::try_from(date).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait <= Duration::from_secs(120) && wait >= Duration::from_secs(115));
    }
}
