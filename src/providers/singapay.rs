//! Singapay: `POST /api/v1.0/access-token/b2b`, JSON body
//! `{"grantType":"client_credentials"}`, HTTP Basic plus `X-PARTNER-ID`. The
//! answer is wrapped in `{status, success, data}`, and `expires_in` arrives as
//! a string (`"3600"`) although documented as a number: both are accepted.
//!
//! ```no_run
//! use paytokens::singapay::{Singapay, SingapayConfig};
//! use paytokens::{Credentials, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let config = SingapayConfig::new(
//!     "https://your-singapay-host",
//!     Credentials::new("client-id", "client-secret"),
//!     "b3ed7d4b-a96c-6c08-b3c7-12c3124242d9",
//! );
//! let token = Singapay::new(config)?.fetch().await?;
//! println!("{token}");
//! # Ok(()) }
//! ```

use singapay_client::types::{ExpiresIn, TokenRequest, TokenRequestGrantType};

use crate::config::Check;
use crate::exchange::{Exchange, Grant, Lifetime, attempt};
use crate::source::impl_token_source;
use crate::{AccessToken, CacheKey, Credentials, HttpOptions, Provider, TokenError};

/// Configuration of a [`Singapay`] source.
#[derive(Clone, Debug)]
pub struct SingapayConfig {
    /// Singapay's API host (no default: the document names none).
    pub base_url: String,
    /// Client id and secret, sent as HTTP Basic.
    pub credentials: Credentials,
    /// The `X-PARTNER-ID` header: the api_key from the merchant dashboard.
    pub partner_id: String,
    /// Timeouts, limits and retries.
    pub http: HttpOptions,
}

impl SingapayConfig {
    /// A configuration with default [`HttpOptions`].
    pub fn new(
        base_url: impl Into<String>,
        credentials: Credentials,
        partner_id: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            credentials,
            partner_id: partner_id.into(),
            http: HttpOptions::default(),
        }
    }
}

/// Tokens from Singapay.
pub struct Singapay {
    exchange: Exchange,
    key: CacheKey,
    partner_id: String,
}

impl Singapay {
    /// Checks the configuration and builds the source.
    pub fn new(config: SingapayConfig) -> Result<Self, TokenError> {
        let provider = Provider::Singapay;
        let exchange = Exchange::new(
            provider,
            &config.base_url,
            &config.credentials,
            &config.http,
            true,
        )?;
        Check(provider).header_value("partner id", &config.partner_id)?;
        Ok(Self {
            key: exchange.cache_key(&[], None, Some(config.partner_id.clone())),
            exchange,
            partner_id: config.partner_id,
        })
    }

    async fn attempt(&self) -> Result<AccessToken, TokenError> {
        let x = &self.exchange;
        let body = TokenRequest {
            grant_type: TokenRequestGrantType::ClientCredentials,
        };
        attempt!(
            x,
            singapay_client,
            |client| client.request_token(&self.partner_id, &body),
            |wrapper, sent| {
                if !wrapper.success {
                    return Err(x.invalid(200, "success is false in an HTTP 200 response"));
                }
                if wrapper.status != 200 {
                    let problem = format!("status field is {}, HTTP status is 200", wrapper.status);
                    return Err(x.invalid(200, &problem));
                }
                let Some(data) = wrapper.data else {
                    return Err(x.invalid(200, "success is true but `data` is missing"));
                };
                let expires_in = match &data.expires_in {
                    ExpiresIn::Int64(seconds) => Lifetime::Seconds(*seconds),
                    ExpiresIn::String(text) => Lifetime::Text(text),
                };
                x.token(
                    sent,
                    Grant {
                        access_token: data.access_token,
                        token_type: &data.token_type,
                        expires_in,
                        scope: None,
                    },
                )
            },
            |refusal| match refusal.error {
                Some(detail) => (detail.code.map(|c| c.to_string()), detail.message),
                None => (None, None),
            },
        )
    }
}

impl_token_source!(Singapay);
