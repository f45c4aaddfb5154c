//! The providers paytokens knows. Each is its spec (`specs/<id>.yaml`):
//! `cargo xtask regen` generates its client (`generated/<id>/`) and writes
//! its module and registry entry here (`registry.rs`) and its dependency
//! in `Cargo.toml`. [`Provider::all`](crate::Provider::all), the CLI, the
//! sandbox, the demo and the tests find every provider in the registry.

use paytokens_runtime::{ProviderSpec, TokenEndpoint};

use crate::{AnySource, Config, Source, TokenError};

mod registry;

pub use registry::*;

pub(crate) use registry::REGISTRY;

/// What the rest of the crate can do with a provider without knowing its
/// types: a [`Provider`](crate::Provider) is a reference to one.
pub(crate) struct Registration {
    pub(crate) spec: &'static ProviderSpec,
    /// `Source::<C>::new`, type-erased.
    pub(crate) build: fn(Config) -> Result<AnySource, TokenError>,
    /// Decodes a request body (of the spec's media type) into the generated
    /// request type, and returns it as JSON: the sandbox's check of what
    /// clients send.
    #[cfg(feature = "sandbox")]
    pub(crate) decode_request: fn(&[u8]) -> Result<serde_json::Value, String>,
}

/// Every generated client's [`Registration`], made once per client type at
/// compile time (so that `Provider::of::<C>()` is a `const fn` for a
/// client generated anywhere, in this crate or a user's).
pub(crate) trait Registered {
    const REGISTRATION: &'static Registration;
}

impl<C: TokenEndpoint> Registered for C {
    const REGISTRATION: &'static Registration = &Registration::of::<C>();
}

impl Registration {
    const fn of<C: TokenEndpoint>() -> Self {
        Self {
            spec: C::SPEC,
            build: build::<C>,
            #[cfg(feature = "sandbox")]
            decode_request: decode_request::<C>,
        }
    }
}

fn build<C: TokenEndpoint>(config: Config) -> Result<AnySource, TokenError> {
    Source::<C>::new(config).map(AnySource::new)
}

#[cfg(feature = "sandbox")]
fn decode_request<C: TokenEndpoint>(body: &[u8]) -> Result<serde_json::Value, String> {
    let request: C::Request = match C::SPEC.content_type {
        Some("application/x-www-form-urlencoded") => {
            serde_urlencoded::from_bytes(body).map_err(|e| e.to_string())?
        }
        Some(_) => serde_json::from_slice(body).map_err(|e| e.to_string())?,
        None if body.is_empty() => {
            serde_json::from_value(serde_json::Value::Null).map_err(|e| e.to_string())?
        }
        None => return Err("the request has a body; the spec gives it none".to_owned()),
    };
    serde_json::to_value(request).map_err(|e| e.to_string())
}
