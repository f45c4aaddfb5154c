//! The per-call response guard emitted into every generated crate and wired in
//! as progenitor's inner type and async post-hook.
//!
//! progenitor decodes a response body before the caller sees the response, and
//! when that fails (`Error::InvalidResponsePayload`) the status and headers are
//! gone: a 401 with an HTML body would look like a broken 200. The guard keeps
//! them, and it refuses a body whose `Content-Length` is over a limit before
//! progenitor reads it whole.

use proc_macro2::TokenStream;
use quote::quote;

/// The inner type progenitor stores in `Client` and passes to the hook.
pub const INNER_TYPE: &str = "ResponseGuard";
/// The async post-hook progenitor calls with the raw response.
pub const POST_HOOK: &str = "inspect_response";

/// The guard's definition, for the root of the generated crate.
pub fn tokens() -> TokenStream {
    quote! {
        /// What one call saw of the raw response before its body was decoded.
        ///
        /// Pass a new guard to [`Client::new_with_client`] for every call and
        /// read it afterwards: it keeps the status and headers that
        /// [`Error::InvalidResponsePayload`] drops, and makes the call fail with
        /// [`Error::Custom`] when `Content-Length` exceeds `max_body_bytes`.
        #[derive(Clone, Debug)]
        pub struct ResponseGuard {
            max_body_bytes: u64,
            status: ::std::sync::OnceLock<::reqwest::StatusCode>,
            headers: ::std::sync::OnceLock<::reqwest::header::HeaderMap>,
        }

        impl ResponseGuard {
            /// A guard that refuses bodies declared longer than `max_body_bytes`.
            pub fn new(max_body_bytes: u64) -> Self {
                Self {
                    max_body_bytes,
                    status: ::std::sync::OnceLock::new(),
                    headers: ::std::sync::OnceLock::new(),
                }
            }

            /// The response's status, once a response arrived.
            pub fn status(&self) -> Option<::reqwest::StatusCode> {
                self.status.get().copied()
            }

            /// The response's headers, once a response arrived.
            pub fn headers(&self) -> Option<&::reqwest::header::HeaderMap> {
                self.headers.get()
            }
        }

        /// A response body declared longer than the guard allows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct BodyTooLarge {
            /// The declared `Content-Length`.
            pub length: u64,
            /// The guard's limit.
            pub limit: u64,
        }

        impl ::std::fmt::Display for BodyTooLarge {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(
                    f,
                    "response body of {} bytes exceeds the limit of {} bytes",
                    self.length, self.limit
                )
            }
        }

        impl ::std::error::Error for BodyTooLarge {}

        async fn inspect_response(
            guard: &ResponseGuard,
            result: &::std::result::Result<::reqwest::Response, ::reqwest::Error>,
        ) -> ::std::result::Result<(), BodyTooLarge> {
            let Ok(response) = result else {
                return Ok(());
            };
            let _ = guard.status.set(response.status());
            let _ = guard.headers.set(response.headers().clone());
            match response.content_length() {
                Some(length) if length > guard.max_body_bytes => Err(BodyTooLarge {
                    length,
                    limit: guard.max_body_bytes,
                }),
                _ => Ok(()),
            }
        }
    }
}
