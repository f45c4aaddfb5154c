//! Settings shared by every provider: credentials, HTTP timeouts and limits,
//! the retry policy, and the checks that refuse a bad configuration when a
//! token source is built rather than on its first request.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::{Provider, TokenError};

/// A client id and secret issued by a provider.
///
/// `Debug` shows the id and never the secret.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The client id (Basic auth username, or Autopay's `client_id`).
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
}

impl Credentials {
    /// Credentials from an id and a secret.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<SecretString>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

/// HTTP behaviour of a token source. The defaults suit a token endpoint that
/// is called once per token lifetime: a slow answer is better retried than
/// waited for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// Time allowed to open a connection. Default: 5 s.
    pub connect_timeout: Duration,
    /// Time allowed for one whole attempt, body included. Default: 10 s.
    pub request_timeout: Duration,
    /// Largest response body accepted, success or error. Bytes are counted
    /// as they arrive: a longer declared `Content-Length` fails before the
    /// body is read, and a chunked or undeclared body the moment it passes
    /// the limit (the connection is dropped), as
    /// [`TokenError::InvalidResponse`], never retried. Default: 64 KiB, far
    /// above any token response.
    pub max_body_bytes: u64,
    /// Retries of transient failures within one fetch.
    pub retry: RetryPolicy,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            retry: RetryPolicy::default(),
        }
    }
}

/// How a fetch retries [`TokenError::Transient`] failures: exponential
/// backoff with jitter, bounded attempts, and the provider's `Retry-After`
/// honoured up to a cap. Rejected and invalid responses are never retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 disables retries. Default: 3.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one. Default: 200 ms.
    pub initial_backoff: Duration,
    /// Longest delay between attempts. Default: 5 s.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a provider asking for more ends the
    /// fetch with the transient error (carrying its `retry_after`) instead
    /// of waiting. Default: 30 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// The config checks; each failure is a [`TokenError::Config`] naming the
/// provider and what to fix.
pub(crate) struct Check(pub Provider);

impl Check {
    pub(crate) fn fail(&self, problem: impl Into<String>) -> TokenError {
        TokenError::Config {
            provider: self.0,
            problem: problem.into(),
        }
    }

    /// Returns the base URL without a trailing slash. Accepts `https://`
    /// anywhere and plain `http://` only to a loopback address. Errors show
    /// the URL without userinfo, query or fragment.
    pub(crate) fn base_url(&self, raw: &str) -> Result<String, TokenError> {
        // Text that is not a URL at all is not shown: it may be anything
        // pasted in the wrong place, a secret included.
        let url = reqwest::Url::parse(raw).map_err(|e| {
            self.fail(format!(
                "base URL is not a URL ({e}); expected https://host[:port][/path]"
            ))
        })?;
        let shown = shown_url(&url);
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.fail(format!(
                "base URL `{shown}` must not carry a username or password"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(self.fail(format!(
                "base URL `{shown}` must not have a query or fragment"
            )));
        }
        let loopback = match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(self.fail(format!(
                    "base URL `{shown}` uses plain http to a non-loopback host; use https"
                )));
            }
            other => {
                return Err(self.fail(format!(
                    "base URL `{shown}` has scheme `{other}`; use https"
                )));
            }
        }
        if url.host().is_none() {
            return Err(self.fail(format!("base URL `{shown}` has no host")));
        }
        Ok(url.as_str().trim_end_matches('/').to_owned())
    }

    /// Checks the id and secret; `basic` when they travel as HTTP Basic.
    pub(crate) fn credentials(&self, creds: &Credentials, basic: bool) -> Result<(), TokenError> {
        let id = &creds.client_id;
        if id.trim().is_empty() {
            return Err(self.fail("client id is empty"));
        }
        if id.chars().any(char::is_control) {
            return Err(self.fail("client id contains control characters"));
        }
        if basic && id.contains(':') {
            return Err(
                self.fail("client id contains `:`, which HTTP Basic authentication cannot carry")
            );
        }
        if creds.client_secret.expose_secret().is_empty() {
            return Err(self.fail("client secret is empty"));
        }
        Ok(())
    }

    /// Checks timeouts and retry bounds.
    pub(crate) fn http(&self, options: &HttpOptions) -> Result<(), TokenError> {
        if options.connect_timeout.is_zero() || options.request_timeout.is_zero() {
            return Err(self.fail("timeouts must be greater than zero"));
        }
        if options.retry.max_attempts == 0 {
            return Err(self.fail("retry.max_attempts must be at least 1"));
        }
        if options.max_body_bytes == 0 {
            return Err(self.fail("max_body_bytes must be greater than zero"));
        }
        Ok(())
    }

    /// A value sent as an HTTP header (Singapay's partner id).
    pub(crate) fn header_value(&self, name: &str, value: &str) -> Result<(), TokenError> {
        if value.is_empty() {
            return Err(self.fail(format!("{name} is empty")));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.fail(format!(
                "{name} must be visible ASCII without spaces (it is sent as an HTTP header)"
            )));
        }
        Ok(())
    }

    /// Scope tokens as RFC 6749, section 3.3 defines them; at least one.
    pub(crate) fn scopes<S: AsRef<str>>(&self, scopes: &[S]) -> Result<(), TokenError> {
        if scopes.is_empty() {
            return Err(self.fail("request at least one scope"));
        }
        for (number, scope) in scopes.iter().enumerate() {
            let scope = scope.as_ref();
            let valid = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                // Not shown: a value this malformed may be a pasted secret.
                return Err(self.fail(format!(
                    "scope {} of {} is not a valid scope token (RFC 6749, 3.3: printable \
                     ASCII, no spaces, quotes or backslashes)",
                    number + 1,
                    scopes.len()
                )));
            }
        }
        Ok(())
    }
}

/// `url` as an error may show it: without userinfo (a password is a
/// secret), query or fragment (they may carry keys).
fn shown_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have userinfo: nothing to remove.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_errors_never_show_userinfo_or_query() {
        let check = Check(Provider::Autopay);
        for raw in [
            "https://pay.example/?api_key=SECRET",
            "https://pay.example/#SECRET",
            "https://me:SECRET@pay.example/",
            "http://me:SECRET@pay.example/?SECRET",
        ] {
            let err = check.base_url(raw).unwrap_err().to_string();
            assert!(!err.contains("SECRET"), "{err}");
            assert!(err.contains("pay.example"), "{err}");
        }
        // Text that is not a URL is not shown at all.
        for raw in ["SECRET", "https://me:SECRET@pay ex ample/?SECRET"] {
            let err = check.base_url(raw).unwrap_err().to_string();
            assert!(!err.contains("SECRET"), "{err}");
        }
    }
}
