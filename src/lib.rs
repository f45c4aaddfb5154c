//! paytokens: OAuth2 client-credentials access tokens from payment providers
//! whose token endpoints do not follow the standard.
//!
//! Every provider becomes the same [`AccessToken`] through the same
//! [`TokenSource`] trait, and fails with the same typed [`TokenError`]:
//!
//! | provider | source | config |
//! |---|---|---|
//! | Pyng B2B Receivables | [`pyng_billing::PyngBilling`] | [`pyng_billing::PyngBillingConfig`] |
//! | Pyng Checkout | [`pyng_checkout::PyngCheckout`] | [`pyng_checkout::PyngCheckoutConfig`] |
//! | Autopay | [`autopay::Autopay`] | [`autopay::AutopayConfig`] |
//! | Singapay | [`singapay::Singapay`] | [`singapay::SingapayConfig`] |
//!
//! Each adapter drives a client generated from `specs/<provider>.yaml` (the
//! crates under `generated/`); secrets and tokens are [`secrecy`] types and
//! never appear in `Debug`, `Display`, errors or logs.
//!
//! ```no_run
//! use paytokens::autopay::{Autopay, AutopayConfig};
//! use paytokens::{Credentials, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let source = Autopay::new(AutopayConfig::new(Credentials::new("id", "secret")))?;
//! let token = source.fetch().await?;
//! let header = token.authorization_header(); // `Bearer ...`, marked sensitive
//! # let _ = header; Ok(()) }
//! ```
#![deny(missing_docs)]

mod cache;
mod clock;
mod config;
mod error;
mod exchange;
mod provider;
mod providers;
#[cfg(feature = "sandbox")]
pub mod sandbox;
mod source;
mod token;

pub use cache::{CachePolicy, CachedToken, TokenCache};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Credentials, HttpOptions, RetryPolicy};
pub use error::TokenError;
pub use provider::{Provider, UnknownProvider};
pub use providers::{autopay, pyng_billing, pyng_checkout, singapay};
pub use secrecy::{ExposeSecret, SecretString};
pub use source::{CacheKey, TokenSource};
pub use token::{AccessToken, TokenType};
