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
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | (none, the default) | the four sources, [`TokenCache`], the typed errors |
//! | `sandbox` | [`sandbox`]: an offline sandbox of the four token endpoints (axum on 127.0.0.1), for your own tests |
//! | `cli` | the `paytokens` command-line tool (includes `sandbox`) |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
mod clock;
mod config;
mod error;
mod exchange;
mod provider;
mod providers;
#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;
mod source;
mod token;

pub use cache::{CachePolicy, CachedToken, TokenCache};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Credentials, HttpOptions, RetryPolicy};
pub use error::{TokenError, TransientCause};
pub use provider::{Provider, UnknownProvider};
pub use providers::{autopay, pyng_billing, pyng_checkout, singapay};
pub use secrecy::{ExposeSecret, SecretString};
pub use source::{CacheKey, TokenSource};
pub use token::{AccessToken, TokenType};
