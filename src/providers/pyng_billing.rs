//! Pyng B2B Receivables: `POST /billing/oauth2/token`, form body
//! `grant_type=client_credentials&scope=...`, HTTP Basic; four scopes,
//! generated from the spec as [`Scope`].
//!
//! ```no_run
//! use paytokens::pyng_billing::{PyngBilling, Scope};
//! use paytokens::{Config, Credentials, Source, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let config = Config::new(Credentials::new("s6BhdRkqt3", "gX1fBat3bV"))
//!     .base_url("https://your-host.pyng.com.au")
//!     .scopes([Scope::BillingCustomersRead, Scope::BillingBatchesSubmit]);
//! let token = Source::<PyngBilling>::new(config)?.fetch().await?;
//! assert_eq!(token.scopes().len(), 2);
//! # Ok(()) }
//! ```

use pyng_billing_client::{Client, types};
pub use pyng_billing_client::{Scope, UnknownScope};

/// Pyng B2B Receivables: the RFC 6749 shapes, nothing to map.
pub struct PyngBilling;

impl crate::Adapter for PyngBilling {
    type Client = Client;
    type Success = types::TokenResponse;
    type Refusal = types::OAuthError;
}
