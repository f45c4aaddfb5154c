//! paytokens: OAuth2 client-credentials access tokens from payment providers
//! whose token endpoints do not follow the standard.
//!
//! Every provider becomes the same [`AccessToken`] through the same
//! [`TokenSource`] trait, configured by the same [`Config`], and fails with
//! the same typed [`TokenError`]. A provider is its spec
//! (`specs/<id>.yaml`): `cargo xtask regen` generates a client crate under
//! `generated/` with a [`ProviderSpec`] saying where each role of the
//! request, the answer and the error body is, and registers it in a module
//! of its own (`paytokens::autopay::Autopay`, ...); [`Source`] does the
//! rest for any of them, with no code per provider, and [`Provider::all`]
//! lists the registered ones.
//!
//! A [`TokenCache`] asks the provider once per token lifetime, whatever
//! the load, within one process; with a [`TokenStore`] (Redis, or a
//! directory) once per lifetime across every process that shares the store
//! ([`TokenCache::with_store`]).
//!
//! Secrets and tokens are [`secrecy`] types and never appear in `Debug`,
//! `Display`, errors or logs; a store holds them only encrypted, under keys
//! derived from the client secret.
//!
//! ```no_run
//! use paytokens::autopay::Autopay;
//! use paytokens::{Config, Credentials, Source, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let source = Source::<Autopay>::new(Config::new(Credentials::new("id", "secret")))?;
//! let token = source.fetch().await?;
//! let header = token.authorization_header(); // `Bearer ...`, marked sensitive
//! # let _ = header; Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature | what it adds | what it compiles |
//! |---|---|---|
//! | (none, the default) | every provider's [`Source`], [`TokenCache`], [`TokenStore::file`] (a directory shared by the processes of one machine), the typed errors | reqwest (rustls), tokio, serde, aws-lc-rs |
//! | `redis` | `TokenStore::redis`: the shared store on Redis, for a fleet on many machines | redis-rs (with its rustls support) |
//! | `sandbox` | [`sandbox`]: an offline sandbox of every provider's token endpoint (axum on 127.0.0.1), for your own tests | axum |
//! | `cli` | the `paytokens` command-line tool (includes `sandbox`, `redis` and `reqwest-middleware`) | clap, anyhow |
//! | `reqwest-middleware` | [`Bearer`] is a `reqwest_middleware::Middleware`: attaches the token to requests for its origins, handles a 401 once | reqwest-middleware |
//! | `tower` | [`BearerLayer`]: the same for `http::Request` services (hyper clients, tonic-style stacks) | tower (its core traits) |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Includes the module that [`paytokens_codegen::Builder`] generated in the
/// crate's build script for the provider `id` (the spec file's name without
/// `.yaml`): `paytokens::include_provider!("acme");` defines `pub mod acme`
/// with its generated `Client` (use it as `Source::<acme::Client>` and
/// [`Provider::of::<acme::Client>()`](Provider::of)), `SPEC` and, when the
/// spec declares scopes, `Scope`.
///
/// [`paytokens_codegen::Builder`]: https://docs.rs/paytokens-codegen
#[macro_export]
macro_rules! include_provider {
    ($id:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $id, ".rs"));
    };
}

mod bearer;
mod cache;
mod clock;
mod config;
mod error;
mod exchange;
mod provider;
pub mod providers;
#[cfg(feature = "sandbox")]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub mod sandbox;
mod source;
mod store;
mod token;

pub use bearer::{Bearer, InvalidOrigin};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use bearer::{BearerError, BearerLayer, BearerService, RetryBody};
pub use cache::{CachePolicy, CachedToken, TokenCache};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, Credentials, HttpOptions, RetryPolicy};
pub use error::{TokenError, TransientCause};
/// What generated code is written against, whole: the code
/// [`include_provider!`] includes names everything through this path, so a
/// crate with its own provider depends on `paytokens` alone.
pub use paytokens_runtime as runtime;
/// What codegen reads from a spec: where each role of a token request, its
/// answer and its error body is.
pub use paytokens_runtime::{
    AnswerSpec, Auth, Expect, Expiry, Field, Grant, HeaderParam, Lifetime, Param, ParamValue,
    Place, ProviderSpec, Refusal, RefusalSpec, ScopeField, ScopeJoin, Server, TimeFormat,
    TokenEndpoint,
};
pub use provider::{Provider, UnknownProvider};
/// Every provider's module (`paytokens::autopay`, ...), written by
/// `cargo xtask regen` from the specs into [`providers`].
pub use providers::*;
/// The HTTP client paytokens uses (with rustls), for the client that carries
/// the [`Bearer`] middleware: the same version, with no dependency of your
/// own to pin.
pub use reqwest;
/// reqwest-middleware, for building a client with the [`Bearer`]
/// middleware: the same version as paytokens'.
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use reqwest_middleware;
pub use secrecy::{ExposeSecret, SecretString};
pub use source::{AnySource, CacheKey, Source, TokenSource};
pub use store::{CredentialStatus, EntryStatus, StoreError, StoreOptions, TokenStore};
pub use token::{AccessToken, TokenType};
