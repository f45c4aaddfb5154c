//! How generated crates use `paytokens-runtime`: its `ResponseGuard` is
//! progenitor's inner type, its `exec` (every body read through the byte
//! cap) is the client's `ClientHooks::exec`, and its `inspect_response` is
//! the async post-hook that turns a body over the cap into the call's error.
//! The support code itself lives once, in the runtime crate.

use proc_macro2::TokenStream;
use quote::quote;

/// The inner type progenitor stores in `Client` and passes to the hook.
pub fn inner_type() -> TokenStream {
    quote!(ResponseGuard)
}

/// The async post-hook progenitor calls with the raw response.
pub fn post_hook() -> TokenStream {
    quote!(::paytokens_runtime::inspect_response)
}

/// The re-export and the `ClientHooks` implementation, for the root of the
/// generated crate (progenitor is told to expect one, so none is emitted
/// twice).
pub fn tokens() -> TokenStream {
    quote! {
        pub use ::paytokens_runtime::{BodyTooLarge, ResponseGuard};

        impl ClientHooks<ResponseGuard> for Client {
            /// Every response body is read through the guard's byte cap.
            async fn exec(
                &self,
                request: ::reqwest::Request,
                _info: &OperationInfo,
            ) -> ::reqwest::Result<::reqwest::Response> {
                ::paytokens_runtime::exec(&self.client, request, &self.inner).await
            }
        }
    }
}
