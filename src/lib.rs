//! paytokens: OAuth2 client-credentials access tokens from payment providers
//! whose token endpoints do not follow the standard (Pyng B2B Receivables,
//! Pyng Checkout, Autopay, Singapay).
//!
//! The typed client for each provider is generated from its spec in `specs/`
//! into `generated/<provider>/` by `cargo xtask regen`, and re-exported here.
#![deny(missing_docs)]

pub use autopay_client as autopay;
pub use pyng_billing_client as pyng_billing;
pub use pyng_checkout_client as pyng_checkout;
pub use singapay_client as singapay;
