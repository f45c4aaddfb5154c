//! Pyng Checkout: `POST /checkout/oauth2/token`, form body
//! `grant_type=client_credentials&scope=...`, HTTP Basic. Scopes are
//! partner-defined, given at onboarding.
//!
//! ```no_run
//! use paytokens::pyng_checkout::PyngCheckout;
//! use paytokens::{Config, Credentials, Source, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let config = Config::new(Credentials::new("s6BhdRkqt3", "gX1fBat3bV"))
//!     .base_url("https://your-host.pyng.com.au")
//!     .scopes(["pyng_defined_scope"]);
//! let token = Source::<PyngCheckout>::new(config)?.fetch().await?;
//! println!("{token}");
//! # Ok(()) }
//! ```

use pyng_checkout_client::{Client, types};

/// Pyng Checkout: the RFC 6749 shapes, nothing to map.
pub struct PyngCheckout;

impl crate::Adapter for PyngCheckout {
    type Client = Client;
    type Success = types::TokenResponse;
    type Refusal = types::OAuthError;
}
