//! Settings shared by every provider: credentials, HTTP timeouts and limits,
//! the retry policy, and the checks that refuse a bad configuration when a
//! token source is built rather than on its first request.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use paytokens_runtime::{Auth, HeaderParam, Place, ScopeField, ScopeJoin};

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

/// How to reach one provider: what [`Source::new`](crate::Source::new) and
/// [`Provider::source`](crate::Provider::source) check against the
/// provider's spec and build a source from.
///
/// ```
/// use paytokens::{Config, Credentials};
/// use paytokens::pyng_billing::Scope;
///
/// let config = Config::new(Credentials::new("s6BhdRkqt3", "gX1fBat3bV"))
///     .base_url("https://your-host.pyng.com.au")
///     .scopes([Scope::BillingCustomersRead, Scope::BillingBatchesSubmit]);
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// The token endpoint's base URL; `None` for the server of
    /// [`environment`](Self::environment), or else the spec's default host
    /// (Autopay's), which providers without one refuse.
    pub base_url: Option<String>,
    /// The spec's server to use, by its `x-paytokens-environment` name
    /// (`sandbox`, `production`), when no base URL is given.
    pub environment: Option<String>,
    /// Client id and secret.
    pub credentials: Credentials,
    /// Scopes to request, for providers whose request carries them (refused
    /// for the others); checked against the scopes the spec declares, when it
    /// declares them.
    pub scopes: Vec<String>,
    /// Header parameters the spec declares, by name (case-insensitive),
    /// e.g. Singapay's `X-PARTNER-ID`.
    pub headers: Vec<(String, String)>,
    /// Timeouts, limits and retries.
    pub http: HttpOptions,
}

impl Config {
    /// A configuration with these credentials, the spec's default host, no
    /// scopes, no header parameters and default [`HttpOptions`].
    pub fn new(credentials: Credentials) -> Self {
        Self {
            base_url: None,
            environment: None,
            credentials,
            scopes: Vec::new(),
            headers: Vec::new(),
            http: HttpOptions::default(),
        }
    }

    /// Sets the base URL (the host the provider gave at onboarding).
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Selects the spec's server of this environment (`sandbox`,
    /// `production`), for providers whose document names several hosts.
    pub fn environment(mut self, name: impl Into<String>) -> Self {
        self.environment = Some(name.into());
        self
    }

    /// Sets the scopes: strings, or a provider's generated `Scope` values.
    pub fn scopes<S: ToString>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets a header parameter the spec declares, e.g. `X-PARTNER-ID`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the HTTP options.
    pub fn http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
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

    /// The host to ask: the base URL given, or the server of the
    /// environment named, or the spec's default host.
    pub(crate) fn host<'c>(&self, config: &'c Config) -> Result<&'c str, TokenError> {
        let spec = self.0.spec();
        let environments = || {
            let names: Vec<&str> = spec.environments().collect();
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        match (&config.base_url, &config.environment) {
            (Some(_), Some(_)) => Err(self.fail("give a base URL or an environment, not both")),
            (Some(url), None) => Ok(url),
            (None, Some(name)) => match spec.environment(name) {
                Some(server) => Ok(server.url),
                None => Err(self.fail(format!(
                    "{} has no `{}` environment; its spec names: {}",
                    self.0,
                    name.escape_debug(),
                    environments()
                ))),
            },
            (None, None) => spec.default_base_url.ok_or_else(|| {
                let hint = match spec.environments().next() {
                    Some(_) => format!("choose an environment ({}) or ", environments()),
                    None => String::new(),
                };
                self.fail(format!(
                    "{} has no default host: {hint}set the base URL",
                    self.0
                ))
            }),
        }
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
        let secret = creds.client_secret.expose_secret();
        if secret.is_empty() {
            return Err(self.fail("client secret is empty"));
        }
        let in_header = matches!(
            self.0.spec().auth,
            Auth::Fields {
                client_secret: Place::Header(_),
                ..
            }
        );
        if in_header && secret.chars().any(char::is_control) {
            return Err(self.fail(
                "client secret contains control characters, which an HTTP header cannot carry",
            ));
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

    /// The values of the spec's header parameters, in its order, from
    /// `given` (names compared case-insensitively); a required one missing,
    /// a value that cannot be sent, or a header the spec does not declare is
    /// refused. An optional one not given is empty.
    pub(crate) fn headers(
        &self,
        params: &[HeaderParam],
        given: &[(String, String)],
    ) -> Result<Vec<String>, TokenError> {
        if let Some((name, _)) = given
            .iter()
            .find(|(name, _)| !params.iter().any(|p| p.name.eq_ignore_ascii_case(name)))
        {
            let declared: Vec<&str> = params.iter().map(|p| p.name).collect();
            return Err(self.fail(format!(
                "{} takes no `{}` header; it declares: {}",
                self.0,
                name.escape_debug(),
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            )));
        }
        let mut values = Vec::with_capacity(params.len());
        for param in params {
            let given_twice = given
                .iter()
                .filter(|(name, _)| param.name.eq_ignore_ascii_case(name))
                .count()
                > 1;
            if given_twice {
                return Err(self.fail(format!("the {} header is given twice", param.name)));
            }
            let value = given
                .iter()
                .find(|(name, _)| param.name.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str());
            match value {
                None if param.required => {
                    return Err(self.fail(format!(
                        "{} needs the {} header: {}",
                        self.0,
                        param.name,
                        param.description.trim_end_matches('.')
                    )));
                }
                None => values.push(String::new()),
                Some(value) => {
                    self.header_value(param.name, value)?;
                    values.push(value.to_owned());
                }
            }
        }
        Ok(values)
    }

    /// A value sent as an HTTP header (Singapay's partner id).
    fn header_value(&self, name: &str, value: &str) -> Result<(), TokenError> {
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

    /// The scopes to request, without duplicates, in the order given:
    /// scope tokens as RFC 6749, section 3.3 defines them, at least one where
    /// the spec requires the scope property, and only declared ones where the
    /// spec declares them. A provider whose request has no scope property
    /// takes none: asking it for scopes is refused rather than ignored.
    pub(crate) fn scopes(
        &self,
        field: Option<&ScopeField>,
        scopes: &[String],
    ) -> Result<Vec<String>, TokenError> {
        let Some(field) = field else {
            if scopes.is_empty() {
                return Ok(Vec::new());
            }
            return Err(self.fail(format!(
                "{}'s token request carries no scopes (its spec gives no place the \
                 `x-paytokens-role: scopes`); request none",
                self.0
            )));
        };
        if field.required && scopes.is_empty() {
            return Err(self.fail("request at least one scope"));
        }
        let mut unique: Vec<String> = Vec::with_capacity(scopes.len());
        for (number, scope) in scopes.iter().enumerate() {
            let valid = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            // Not shown: a value this malformed may be a pasted secret.
            if !valid {
                return Err(self.fail(format!(
                    "scope {} of {} is not a valid scope token (RFC 6749, 3.3: printable \
                     ASCII, no spaces, quotes or backslashes)",
                    number + 1,
                    scopes.len()
                )));
            }
            if field.join == ScopeJoin::Comma && scope.contains(',') {
                return Err(self.fail(format!(
                    "scope {} of {} contains `,`, which separates {}'s scopes",
                    number + 1,
                    scopes.len(),
                    self.0
                )));
            }
            if let Some(declared) = field.declared
                && !declared.contains(&scope.as_str())
            {
                return Err(self.fail(format!(
                    "scope {} of {} is not one of the spec's: {}",
                    number + 1,
                    scopes.len(),
                    declared.join(", ")
                )));
            }
            if !unique.contains(scope) {
                unique.push(scope.clone());
            }
        }
        Ok(unique)
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
        use crate::Provider;
        let check = Check(Provider::of::<crate::autopay::Autopay>());
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
