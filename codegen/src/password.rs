//! `format: password` strings become [`TYPE_NAME`], emitted into the generated
//! crate: it serialises to the wire unchanged, but its `Debug` and `Display`
//! are redacted, so even a user who debug-prints a generated request type
//! (Autopay's carries `client_secret`) leaks nothing.

use proc_macro2::TokenStream;
use quote::quote;
use schemars::schema::{InstanceType, SchemaObject, SingleOrVec};

use crate::spec::Spec;

/// The generated type's path, as typify writes it into fields.
pub const TYPE_NAME: &str = "crate::Password";

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

/// The type's definition, for the root of the generated crate.
pub fn tokens() -> TokenStream {
    quote! {
        /// A `format: password` string: sent to the provider unchanged, never
        /// shown by `Debug` or `Display`. Read it with [`Password::expose`].
        #[derive(Clone, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(transparent)]
        pub struct Password(::std::string::String);

        impl Password {
            /// Wraps a secret value.
            pub fn new(value: impl Into<::std::string::String>) -> Self {
                Self(value.into())
            }

            /// The secret value itself.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl ::std::convert::From<::std::string::String> for Password {
            fn from(value: ::std::string::String) -> Self {
                Self(value)
            }
        }

        impl ::std::fmt::Debug for Password {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str("Password([REDACTED])")
            }
        }

        impl ::std::fmt::Display for Password {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str("[REDACTED]")
            }
        }
    }
}
