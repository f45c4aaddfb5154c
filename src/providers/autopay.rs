//! Autopay: `POST https://api-auth.autopay.io/oauth/token`, JSON body with
//! `client_id`, `client_secret`, `audience` and `grant_type`; no
//! `Authorization` header. Autopay warns that minting a token per request
//! "may lead to termination of API access": cache what this source fetches.
//!
//! ```no_run
//! use paytokens::autopay::Autopay;
//! use paytokens::{Config, Credentials, Source, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let credentials = Credentials::new("kWmliLIrb79QfsF9r3vJE4xrKMcdcrrA", "secret");
//! // The base URL defaults to the spec's server, https://api-auth.autopay.io.
//! let token = Source::<Autopay>::new(Config::new(credentials))?.fetch().await?;
//! println!("{token}");
//! # Ok(()) }
//! ```

use autopay_client::{Client, types};

/// Autopay: the RFC 6749 shapes, nothing to map; the spec puts the
/// credentials in the body (`security: []`, `format: password`).
pub struct Autopay;

impl crate::Adapter for Autopay {
    type Client = Client;
    type Success = types::TokenResponse;
    type Refusal = types::OAuthError;
}
