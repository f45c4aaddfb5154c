//! Autopay: `POST https://api-auth.autopay.io/oauth/token`, JSON body with
//! `client_id`, `client_secret`, `audience` and `grant_type`; no
//! `Authorization` header. Autopay warns that minting a token per request
//! "may lead to termination of API access": cache what this source fetches.
//!
//! ```no_run
//! use paytokens::autopay::{Autopay, AutopayConfig};
//! use paytokens::{Credentials, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let config = AutopayConfig::new(Credentials::new("kWmliLIrb79QfsF9r3vJE4xrKMcdcrrA", "secret"));
//! let token = Autopay::new(config)?.fetch().await?;
//! println!("{token}");
//! # Ok(()) }
//! ```

use autopay_client::Password;
use autopay_client::types::{TokenRequest, TokenRequestAudience, TokenRequestGrantType};
use secrecy::{ExposeSecret, SecretString};

use crate::exchange::{Exchange, Grant, Lifetime, attempt};
use crate::source::impl_token_source;
use crate::{AccessToken, CacheKey, Credentials, HttpOptions, Provider, TokenError};

/// Autopay's documented token host.
pub const DEFAULT_BASE_URL: &str = "https://api-auth.autopay.io";

/// Configuration of an [`Autopay`] source.
#[derive(Clone, Debug)]
pub struct AutopayConfig {
    /// Default: [`DEFAULT_BASE_URL`], the host Autopay documents.
    pub base_url: String,
    /// Client credentials from your Autopay representative, sent in the body.
    pub credentials: Credentials,
    /// Timeouts, limits and retries.
    pub http: HttpOptions,
}

impl AutopayConfig {
    /// A configuration for Autopay's documented host with default [`HttpOptions`].
    pub fn new(credentials: Credentials) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            credentials,
            http: HttpOptions::default(),
        }
    }
}

/// Tokens from Autopay.
pub struct Autopay {
    exchange: Exchange,
    key: CacheKey,
    client_id: String,
    client_secret: SecretString,
}

impl Autopay {
    /// Checks the configuration and builds the source.
    pub fn new(config: AutopayConfig) -> Result<Self, TokenError> {
        let exchange = Exchange::new(
            Provider::Autopay,
            &config.base_url,
            &config.credentials,
            &config.http,
            false,
        )?;
        let audience = TokenRequestAudience::HttpsApiAutopayIo.to_string();
        Ok(Self {
            key: exchange.cache_key(&[], Some(audience), None),
            exchange,
            client_id: config.credentials.client_id,
            client_secret: config.credentials.client_secret,
        })
    }

    async fn attempt(&self) -> Result<AccessToken, TokenError> {
        let body = TokenRequest {
            client_id: self.client_id.clone(),
            client_secret: Password::new(self.client_secret.expose_secret()),
            audience: TokenRequestAudience::HttpsApiAutopayIo,
            grant_type: TokenRequestGrantType::ClientCredentials,
        };
        attempt!(
            &self.exchange,
            autopay_client,
            |client| client.request_token(&body),
            |token, sent| self.exchange.token(
                sent,
                Grant {
                    access_token: token.access_token,
                    token_type: &token.token_type,
                    expires_in: Lifetime::Seconds(token.expires_in),
                    scope: token.scope.as_deref(),
                }
            ),
            |refusal| (Some(refusal.error), refusal.error_description),
        )
    }
}

impl_token_source!(Autopay);
