//! One adapter per provider. Each builds its generated client's request, makes
//! the call and maps the answer through [`crate::exchange`]; everything
//! provider-specific lives in its adapter and its spec, nothing else.

pub mod autopay;
pub mod pyng_billing;
pub mod pyng_checkout;
pub mod singapay;
