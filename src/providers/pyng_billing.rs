//! Pyng B2B Receivables: `POST /billing/oauth2/token`, form body
//! `grant_type=client_credentials&scope=...`, HTTP Basic.
//!
//! ```no_run
//! use paytokens::pyng_billing::{PyngBilling, PyngBillingConfig, Scope};
//! use paytokens::{Credentials, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let config = PyngBillingConfig::new(
//!     "https://your-host.pyng.com.au",
//!     Credentials::new("s6BhdRkqt3", "gX1fBat3bV"),
//!     [Scope::BillingCustomersRead, Scope::BillingBatchesSubmit],
//! );
//! let token = PyngBilling::new(config)?.fetch().await?;
//! assert_eq!(token.scopes().len(), 2);
//! # Ok(()) }
//! ```

use pyng_billing_client::types::{TokenRequest, TokenRequestGrantType};
pub use pyng_billing_client::{Scope, UnknownScope};

use crate::config::Check;
use crate::exchange::{Exchange, Grant, Lifetime, attempt};
use crate::source::impl_token_source;
use crate::{AccessToken, CacheKey, Credentials, HttpOptions, Provider, TokenError};

/// Configuration of a [`PyngBilling`] source.
#[derive(Clone, Debug)]
pub struct PyngBillingConfig {
    /// The host Pyng gave at onboarding, e.g. `https://your-host.pyng.com.au`
    /// (no default: the document names only an example host).
    pub base_url: String,
    /// Partner API credentials, sent as HTTP Basic.
    pub credentials: Credentials,
    /// Scopes to request; at least one. Request only those the integration uses.
    pub scopes: Vec<Scope>,
    /// Timeouts, limits and retries.
    pub http: HttpOptions,
}

impl PyngBillingConfig {
    /// A configuration with default [`HttpOptions`].
    pub fn new(
        base_url: impl Into<String>,
        credentials: Credentials,
        scopes: impl IntoIterator<Item = Scope>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            credentials,
            scopes: scopes.into_iter().collect(),
            http: HttpOptions::default(),
        }
    }
}

/// Tokens from Pyng B2B Receivables.
pub struct PyngBilling {
    exchange: Exchange,
    key: CacheKey,
    scope: String,
}

impl PyngBilling {
    /// Checks the configuration and builds the source.
    pub fn new(config: PyngBillingConfig) -> Result<Self, TokenError> {
        let provider = Provider::PyngBilling;
        let exchange = Exchange::new(
            provider,
            &config.base_url,
            &config.credentials,
            &config.http,
            true,
        )?;
        let mut scopes: Vec<&str> = Vec::with_capacity(config.scopes.len());
        for scope in &config.scopes {
            if !scopes.contains(&scope.as_str()) {
                scopes.push(scope.as_str());
            }
        }
        Check(provider).scopes(&scopes)?;
        Ok(Self {
            key: exchange.cache_key(&scopes, None, None),
            exchange,
            scope: scopes.join(" "),
        })
    }

    async fn attempt(&self) -> Result<AccessToken, TokenError> {
        let body = TokenRequest {
            grant_type: TokenRequestGrantType::ClientCredentials,
            scope: self.scope.clone(),
        };
        attempt!(
            &self.exchange,
            pyng_billing_client,
            |client| client.request_token(&body),
            |token, sent| self.exchange.token(
                sent,
                Grant {
                    access_token: token.access_token,
                    token_type: &token.token_type,
                    expires_in: Lifetime::Seconds(token.expires_in),
                    scope: Some(&token.scope),
                }
            ),
            |refusal| (Some(refusal.error), refusal.error_description),
        )
    }
}

impl_token_source!(PyngBilling);
