//! The providers paytokens knows. Each is its spec (`specs/<id>.yaml`, from
//! which `cargo xtask regen` generates `generated/<id>/`) plus one adapter
//! module here, registered with one line in this module's registry:
//! [`Provider::all`](crate::Provider::all), the CLI, the sandbox, the demo
//! and the tests find every provider there.

use paytokens_runtime::{ProviderSpec, TokenEndpoint};

use crate::{Adapter, AnySource, Config, Source, TokenError};

pub mod autopay;
pub mod pyng_billing;
pub mod pyng_checkout;
pub mod singapay;

/// Every provider, in the order the README lists them.
pub(crate) static REGISTRY: &[Registration] = &[
    Registration::of::<pyng_billing::PyngBilling>(),
    Registration::of::<pyng_checkout::PyngCheckout>(),
    Registration::of::<autopay::Autopay>(),
    Registration::of::<singapay::Singapay>(),
];

/// What the rest of the crate can do with a registered provider without
/// knowing its types.
pub(crate) struct Registration {
    pub(crate) spec: &'static ProviderSpec,
    /// `Source::<A>::new`, type-erased.
    pub(crate) build: fn(Config) -> Result<AnySource, TokenError>,
    /// Decodes a request body (of the spec's media type) into the generated
    /// request type, and returns it as JSON: the sandbox's check of what
    /// clients send.
    #[cfg(feature = "sandbox")]
    pub(crate) decode_request: fn(&[u8]) -> Result<serde_json::Value, String>,
}

impl Registration {
    const fn of<A: Adapter>() -> Self {
        Self {
            spec: <A::Client as TokenEndpoint>::SPEC,
            build: build::<A>,
            #[cfg(feature = "sandbox")]
            decode_request: decode_request::<A::Client>,
        }
    }
}

fn build<A: Adapter>(config: Config) -> Result<AnySource, TokenError> {
    Source::<A>::new(config).map(AnySource::new)
}

#[cfg(feature = "sandbox")]
fn decode_request<C: TokenEndpoint>(body: &[u8]) -> Result<serde_json::Value, String> {
    let request: C::Request = if C::SPEC.content_type == "application/x-www-form-urlencoded" {
        serde_urlencoded::from_bytes(body).map_err(|e| e.to_string())?
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())?
    };
    serde_json::to_value(request).map_err(|e| e.to_string())
}
