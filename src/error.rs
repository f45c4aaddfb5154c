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
        detail(code, message)
    )]
    Rejected {
        /// Who refused.
        provider: Provider,
        /// The HTTP status.
        status: u16,
        /// The provider's error code (`invalid_client`, `access_denied`,
        /// Singapay's `error.code`), when its body carried one.
        code: Option<String>,
        /// The provider's message, when its body carried one (trimmed to 200
        /// characters, with the client secret masked should it appear).
        message: Option<String>,
    },
    /// A failure that may pass: HTTP 5xx, 408 or 429, a timeout, a refused or
    /// reset connection. Retryable, after [`TokenError::retry_after`] if set.
    #[error("{provider} is unavailable: {reason}")]
    Transient {
        /// Who failed.
        provider: Provider,
        /// What happened, e.g. `HTTP 503` or `timed out`.
        reason: String,
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

fn detail(code: &Option<String>, message: &Option<String>) -> String {
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
