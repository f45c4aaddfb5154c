//! `format: password` strings become [`TYPE_NAME`], `paytokens_runtime::Password`
//! re-exported by the generated crate: it serialises to the wire unchanged,
//! but its `Debug` and `Display` are redacted, so even a user who
//! debug-prints a generated request type (Autopay's carries `client_secret`)
//! leaks nothing.

use proc_macro2::TokenStream;
use quote::quote;
use schemars::schema::{InstanceType, SchemaObject, SingleOrVec};

use crate::spec::Spec;

/// The generated type's path, as typify writes it into fields.
pub const TYPE_NAME: &str = "::paytokens_runtime::Password";

/// The schema that maps onto it (typify ignores descriptions when matching).
pub fn schema() -> SchemaObject {
    SchemaObject {
        instance_type: Some(SingleOrVec::Single(Box::new(InstanceType::String))),
        format: Some("password".to_owned()),
        ..SchemaObject::default()
    }
}

/// Whether the spec has a `format: password` anywhere.
pub fn used_by(spec: &Spec) -> bool {
    spec.keys_named("format")
        .iter()
        .any(|(_, value)| value == "password")
}

/// The re-export of the runtime's type, for the root of the generated crate.
pub fn tokens() -> TokenStream {
    quote! {
        pub use ::paytokens_runtime::Password;
    }
}
