//! [`TokenError`]: every way fetching a token can fail, typed by what the
//! caller should do about it.

use std::time::Duration;

use crate::Provider;

/// Why a token could not be had. No variant's `Display` or `Debug` ever holds
/// a client secret, an access token or a raw response body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The provider said no (HTTP 4xx other than 408 and 429): bad
    /// credentials, unknown scope, wrong partner id. Retrying will not help.
    #[error(
        "{provider} rejected the token request with HTTP {status}{}",
        detail(*status, code, message)
    )]
    Rejected {
        /// Who refused.
        provider: Provider,
        /// The HTTP status.
        status: u16,
        /// The provider's error code (`invalid_client`, `access_denied`,
        /// Singapay's `error.code`), when its body carried one. `Display`
        /// leaves it out when it only repeats the status (Singapay's `401`).
        code: Option<String>,
        /// The provider's message, when its body carried one (trimmed to 200
        /// characters, with the client secret masked should it appear).
        message: Option<String>,
    },
    /// A failure that may pass: HTTP 5xx, 408 or 429, a timeout, a refused or
    /// reset connection, a host that does not resolve, a failed TLS handshake. Retryable, after [`TokenError::retry_after`] if set.
    #[error("{provider} is unavailable: {reason}")]
    Transient {
        /// Who failed.
        provider: Provider,
        /// What happened, e.g. `HTTP 503`, `connection refused by
        /// http://127.0.0.1:8080` or `request to https://pay.example:443
        /// timed out after 10 s`. A failure on the wire names the endpoint
        /// as scheme, host and port (never its path, userinfo or query).
        reason: String,
        /// What kind of failure it was; [`TokenError::advice`] reads it.
        cause: TransientCause,
        /// The HTTP status, when there was a response.
        status: Option<u16>,
        /// The provider's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The provider answered, but not with a usable token: a body that is not
    /// JSON or misses a field, a non-Bearer token type, a bad `expires_in`,
    /// Singapay's `success: false` inside a 200, an unexpected status.
    #[error("{provider} sent an unusable token response (HTTP {status}): {problem}")]
    InvalidResponse {
        /// Who answered.
        provider: Provider,
        /// The HTTP status of the answer.
        status: u16,
        /// What was wrong, without any of the body.
        problem: String,
    },
    /// The cache refused to ask the provider: this credential already used
    /// its mint budget for the window (see
    /// [`CachePolicy`](crate::CachePolicy)). Nothing was sent.
    #[error(
        "{provider}: mint budget of {max_mints} tokens per {}s is exhausted; not asking the \
         provider again for {}s",
        window.as_secs(),
        retry_after.as_secs()
    )]
    MintBudgetExhausted {
        /// Whose budget.
        provider: Provider,
        /// The budget.
        max_mints: u32,
        /// The budget's window.
        window: Duration,
        /// When the oldest mint leaves the window.
        retry_after: Duration,
    },
    /// The configuration was refused when the token source was built.
    #[error("invalid {provider} configuration: {problem}")]
    Config {
        /// Whose configuration.
        provider: Provider,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// What kind of [`TokenError::Transient`] failure happened: whether it is
/// likely to pass, or points at the base URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransientCause {
    /// The provider answered HTTP 5xx, 408 or 429.
    Status,
    /// The connection or the whole attempt timed out.
    Timeout,
    /// Nothing listens at the base URL's host and port.
    ConnectionRefused,
    /// The base URL's host name does not resolve.
    HostNotFound,
    /// The TLS handshake failed (certificate, protocol, or not TLS at all).
    Tls,
    /// The connection was reset or closed mid-exchange.
    ConnectionReset,
    /// Anything else: a failure on the wire without a clearer cause, or a
    /// fetch task that was cancelled.
    Other,
}

/// `: code: message`, leaving out a code that only repeats the status
/// (Singapay's `error.code` is the status number).
fn detail(status: u16, code: &Option<String>, message: &Option<String>) -> String {
    let code = code.as_ref().filter(|code| **code != status.to_string());
    match (code, message) {
        (Some(code), Some(message)) => format!(": {code}: {message}"),
        (Some(text), None) | (None, Some(text)) => format!(": {text}"),
        (None, None) => String::new(),
    }
}

impl TokenError {
    /// Whether trying again later may succeed: true only for
    /// [`TokenError::Transient`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, TokenError::Transient { .. })
    }

    /// The provider's suggested delay before a retry, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TokenError::Transient { retry_after, .. } => *retry_after,
            TokenError::MintBudgetExhausted { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The error's class, as the metrics (`outcome`, `class` labels) and
    /// `paytokens cache status` name it: `rejected`, `transient`,
    /// `invalid_response`, `config` or `budget_exhausted`.
    pub fn class(&self) -> &'static str {
        match self {
            TokenError::Rejected { .. } => "rejected",
            TokenError::Transient { .. } => "transient",
            TokenError::InvalidResponse { .. } => "invalid_response",
            TokenError::Config { .. } => "config",
            TokenError::MintBudgetExhausted { .. } => "budget_exhausted",
        }
    }

    /// What a person should do about the error, as one short phrase to
    /// follow the message (the CLI prints `{error}; {advice}`):
    ///
    /// | Error | Advice |
    /// |---|---|
    /// | [`Config`](TokenError::Config) | fix the configuration and run again |
    /// | [`Rejected`](TokenError::Rejected) | check the client id, secret, scopes and partner id |
    /// | [`InvalidResponse`](TokenError::InvalidResponse) | check the base URL; if it is right, report this to the provider |
    /// | [`MintBudgetExhausted`](TokenError::MintBudgetExhausted) | wait N s before asking again |
    /// | [`Transient`](TokenError::Transient): connection refused, host not found | check the base URL (host and port) |
    /// | [`Transient`](TokenError::Transient): TLS handshake failed | check the base URL and the server's certificate |
    /// | [`Transient`](TokenError::Transient): timeout, reset, HTTP 5xx, 408, 429 | try again later |
    pub fn advice(&self) -> String {
        match self {
            TokenError::Config { .. } => "fix the configuration and run again".into(),
            TokenError::Rejected { .. } => {
                "check the client id, secret, scopes and partner id".into()
            }
            TokenError::InvalidResponse { .. } => {
                "check the base URL; if it is right, report this to the provider".into()
            }
            TokenError::MintBudgetExhausted { retry_after, .. } => {
                // Rounded up: waiting less would be refused again.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                format!("wait {seconds} s before asking again")
            }
            TokenError::Transient { cause, .. } => match cause {
                TransientCause::ConnectionRefused | TransientCause::HostNotFound => {
                    "check the base URL (host and port)".into()
                }
                TransientCause::Tls => "check the base URL and the server's certificate".into(),
                _ => "try again later".into(),
            },
        }
    }

    /// The provider the error is about.
    pub fn provider(&self) -> Provider {
        match self {
            TokenError::Rejected { provider, .. }
            | TokenError::Transient { provider, .. }
            | TokenError::InvalidResponse { provider, .. }
            | TokenError::MintBudgetExhausted { provider, .. }
            | TokenError::Config { provider, .. } => *provider,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Provider;

    #[test]
    fn an_exhausted_mint_budget_advises_the_wait_in_whole_seconds() {
        let err = |retry_after| TokenError::MintBudgetExhausted {
            provider: Provider::of::<crate::autopay::Autopay>(),
            max_mints: 3,
            window: Duration::from_secs(60),
            retry_after,
        };
        assert_eq!(
            err(Duration::from_secs(30)).advice(),
            "wait 30 s before asking again"
        );
        assert_eq!(
            err(Duration::from_millis(29_001)).advice(),
            "wait 30 s before asking again"
        );
    }

    #[test]
    fn only_unreachable_endpoints_blame_the_base_url() {
        use TransientCause::*;
        for (cause, advice) in [
            (ConnectionRefused, "check the base URL (host and port)"),
            (HostNotFound, "check the base URL (host and port)"),
            (Tls, "check the base URL and the server's certificate"),
            (Status, "try again later"),
            (Timeout, "try again later"),
            (ConnectionReset, "try again later"),
            (Other, "try again later"),
        ] {
            let err = TokenError::Transient {
                provider: Provider::of::<crate::autopay::Autopay>(),
                reason: "reason".to_owned(),
                cause,
                status: None,
                retry_after: None,
            };
            assert_eq!(err.advice(), advice, "{cause:?}");
        }
    }
}
