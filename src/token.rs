//! [`AccessToken`], the one type every provider's response becomes.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::Provider;

/// The kind of access token. Every provider paytokens supports issues Bearer
/// tokens; a response naming any other type is refused as
/// [`TokenError::InvalidResponse`](crate::TokenError::InvalidResponse).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenType {
    /// RFC 6750 Bearer token, sent as `Authorization: Bearer <token>`.
    Bearer,
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer")
    }
}

/// An access token from one provider, with what it grants and when it expires.
///
/// The token value is a [`SecretString`]: `Debug` and `Display` never show
/// it. Use [`AccessToken::authorization_header`] to send it.
pub struct AccessToken {
    secret: SecretString,
    header: HeaderValue,
    provider: Provider,
    scopes: Vec<String>,
    lifetime: Duration,
    issued_at: Instant,
}

impl AccessToken {
    /// A token issued by `provider`, valid for `lifetime` from `issued_at`,
    /// the moment its request was **sent** (so the expiry errs early, never
    /// late). Returns `None` when the value cannot be sent in an HTTP header
    /// (it is empty or has bytes outside visible ASCII).
    pub fn new(
        provider: Provider,
        secret: SecretString,
        scopes: Vec<String>,
        lifetime: Duration,
        issued_at: Instant,
    ) -> Option<Self> {
        let value = secret.expose_secret();
        let printable = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
        if !printable {
            return None;
        }
        let mut header = HeaderValue::try_from(format!("Bearer {value}")).ok()?;
        header.set_sensitive(true);
        Some(Self {
            secret,
            header,
            provider,
            scopes,
            lifetime,
            issued_at,
        })
    }

    /// The provider that issued it.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The token type; always [`TokenType::Bearer`].
    pub fn token_type(&self) -> TokenType {
        TokenType::Bearer
    }

    /// The token value, kept secret.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// The `Authorization` header value, `Bearer <token>`, marked sensitive
    /// so that HTTP clients do not log it.
    pub fn authorization_header(&self) -> HeaderValue {
        self.header.clone()
    }

    /// The scopes the provider granted; empty where it reports none.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The lifetime the provider gave (`expires_in`).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// When the request that obtained it was sent.
    pub fn issued_at(&self) -> Instant {
        self.issued_at
    }

    /// When it expires: [`issued_at`](Self::issued_at) plus the lifetime.
    pub fn expires_at(&self) -> Instant {
        self.issued_at + self.lifetime
    }

    /// Time left before expiry at `now`; zero once expired.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at().saturating_duration_since(now)
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("provider", &self.provider)
            .field("token_type", &TokenType::Bearer)
            .field("secret", &"[REDACTED]")
            .field("scopes", &self.scopes)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} Bearer token [REDACTED], lifetime {}s",
            self.provider,
            self.lifetime.as_secs()
        )?;
        if !self.scopes.is_empty() {
            write!(f, ", scopes {}", self.scopes.join(" "))?;
        }
        Ok(())
    }
}
