//! Pyng Checkout: `POST /checkout/oauth2/token`, form body
//! `grant_type=client_credentials&scope=...`, HTTP Basic. Scopes are
//! partner-defined, given at onboarding.
//!
//! ```no_run
//! use paytokens::pyng_checkout::{PyngCheckout, PyngCheckoutConfig};
//! use paytokens::{Credentials, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let config = PyngCheckoutConfig::new(
//!     "https://your-host.pyng.com.au",
//!     Credentials::new("s6BhdRkqt3", "gX1fBat3bV"),
//!     ["pyng_defined_scope"],
//! );
//! let token = PyngCheckout::new(config)?.fetch().await?;
//! println!("{token}");
//! # Ok(()) }
//! ```

use pyng_checkout_client::types::{TokenRequest, TokenRequestGrantType};

use crate::config::Check;
use crate::exchange::{Exchange, Grant, Lifetime, attempt};
use crate::source::impl_token_source;
use crate::{AccessToken, CacheKey, Credentials, HttpOptions, Provider, TokenError};

/// Configuration of a [`PyngCheckout`] source.
#[derive(Clone, Debug)]
pub struct PyngCheckoutConfig {
    /// The host Pyng gave at onboarding (no default).
    pub base_url: String,
    /// Partner API credentials, sent as HTTP Basic.
    pub credentials: Credentials,
    /// Partner-defined scopes to request; at least one, each a valid
    /// RFC 6749 scope token.
    pub scopes: Vec<String>,
    /// Timeouts, limits and retries.
    pub http: HttpOptions,
}

impl PyngCheckoutConfig {
    /// A configuration with default [`HttpOptions`].
    pub fn new<S: Into<String>>(
        base_url: impl Into<String>,
        credentials: Credentials,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            credentials,
            scopes: scopes.into_iter().map(Into::into).collect(),
            http: HttpOptions::default(),
        }
    }
}

/// Tokens from Pyng Checkout.
pub struct PyngCheckout {
    exchange: Exchange,
    key: CacheKey,
    scope: String,
}

impl PyngCheckout {
    /// Checks the configuration and builds the source.
    pub fn new(config: PyngCheckoutConfig) -> Result<Self, TokenError> {
        let provider = Provider::PyngCheckout;
        let exchange = Exchange::new(
            provider,
            &config.base_url,
            &config.credentials,
            &config.http,
            true,
        )?;
        Check(provider).scopes(&config.scopes)?;
        let scopes: Vec<&str> = config.scopes.iter().map(String::as_str).collect();
        Ok(Self {
            key: exchange.cache_key(&scopes, None, None),
            exchange,
            scope: config.scopes.join(" "),
        })
    }

    async fn attempt(&self) -> Result<AccessToken, TokenError> {
        let body = TokenRequest {
            grant_type: TokenRequestGrantType::ClientCredentials,
            scope: self.scope.clone(),
        };
        attempt!(
            &self.exchange,
            pyng_checkout_client,
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

impl_token_source!(PyngCheckout);
