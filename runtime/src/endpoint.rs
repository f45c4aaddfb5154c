//! What codegen reads from a spec about its token endpoint
//! ([`ProviderSpec`]), and the traits it implements for the generated client
//! ([`TokenEndpoint`]) and, where the spec uses the RFC 6749 shapes, for its
//! success and error types ([`TokenResponse`], [`ErrorResponse`]).

use std::future::Future;

use progenitor_client::{Error, ResponseValue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ResponseGuard;

/// One provider's token endpoint as its spec describes it. Codegen writes one
/// `static SPEC` per generated crate; nothing in it is written by hand.
#[derive(Debug)]
pub struct ProviderSpec {
    /// The provider id: the spec's file name (`pyng-billing`).
    pub id: &'static str,
    /// The provider's name for people (`info.x-paytokens-provider`).
    pub name: &'static str,
    /// The spec file, relative to the workspace (`specs/pyng-billing.yaml`).
    pub spec_file: &'static str,
    /// The first `servers` URL not marked `x-paytokens-example-host`: the
    /// host to use when none is configured.
    pub default_base_url: Option<&'static str>,
    /// The operation's HTTP method, upper case.
    pub method: &'static str,
    /// The operation's path, appended to the base URL.
    pub path: &'static str,
    /// The request body's media type.
    pub content_type: &'static str,
    /// Where the client credentials go.
    pub auth: Auth,
    /// Header parameters the operation declares, in the order
    /// [`TokenEndpoint::send`] takes their values.
    pub headers: &'static [HeaderParam],
    /// The request body property carrying the space-separated scopes.
    pub scope: Option<ScopeField>,
    /// Request body properties with one allowed value (`grant_type`).
    pub constants: &'static [(&'static str, &'static str)],
    /// The spec's `document` examples, as JSON text.
    pub examples: Examples,
    /// The sandbox's clients (`x-paytokens-sandbox`).
    pub sandbox_clients: &'static [SandboxClientSpec],
}

/// Where a provider expects the client id and secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Basic base64(id:secret)` (an `http`/`basic` scheme).
    Basic,
    /// In these request body properties (the operation has `security: []`;
    /// the secret is the `format: password` property).
    Body {
        /// The property holding the client id.
        client_id: &'static str,
        /// The property holding the client secret.
        client_secret: &'static str,
    },
}

/// A header the operation takes as a parameter (Singapay's `X-PARTNER-ID`).
#[derive(Debug)]
pub struct HeaderParam {
    /// The header name as the spec writes it.
    pub name: &'static str,
    /// The spec's description.
    pub description: &'static str,
    /// Whether the request must carry it.
    pub required: bool,
    /// The spec's example value.
    pub example: Option<&'static str>,
}

/// The request property that carries scopes.
#[derive(Debug)]
pub struct ScopeField {
    /// The property name (`scope`).
    pub property: &'static str,
    /// Whether the request must carry at least one scope.
    pub required: bool,
    /// The scopes the spec's oauth2 scheme declares; `None` when it declares
    /// none (partner-defined scopes).
    pub declared: Option<&'static [&'static str]>,
}

/// The spec's `document` examples of the operation, as JSON text.
#[derive(Debug)]
pub struct Examples {
    /// The request body.
    pub request: Option<&'static str>,
    /// The success (200) body.
    pub success: Option<&'static str>,
    /// The error (`4XX`) body.
    pub refusal: Option<&'static str>,
}

/// A client the sandbox accepts, declared in the spec's
/// `x-paytokens-sandbox` extension (the documents' example credentials).
/// `Debug` leaves the secret out.
pub struct SandboxClientSpec {
    /// The client id.
    pub client_id: &'static str,
    /// The client secret.
    pub client_secret: &'static str,
    /// Header parameter values the client must send.
    pub headers: &'static [(&'static str, &'static str)],
    /// Scopes granted (all declared ones when the spec says `all`).
    pub scopes: &'static [&'static str],
    /// Lifetime of its tokens, in seconds.
    pub lifetime: u64,
}

impl std::fmt::Debug for SandboxClientSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxClientSpec")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("headers", &self.headers)
            .field("scopes", &self.scopes)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// A generated client of one token endpoint. Codegen implements it for
/// every generated `Client`.
pub trait TokenEndpoint: Sized + Send + Sync + 'static {
    /// What codegen read from the spec.
    const SPEC: &'static ProviderSpec;
    /// The request body.
    type Request: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The success (200) body.
    type Success: DeserializeOwned + Send + 'static;
    /// The error (`4XX`) body.
    type Refusal: DeserializeOwned + Send + 'static;

    /// A client of `base_url` over `http`; read `guard` after one call.
    fn with_guard(base_url: &str, http: reqwest::Client, guard: ResponseGuard) -> Self;

    /// The guard given to [`with_guard`](Self::with_guard).
    fn guard(&self) -> &ResponseGuard;

    /// Requests a token; `headers` holds the values of
    /// [`ProviderSpec::headers`], in that order.
    fn send<'a>(
        &'a self,
        request: &'a Self::Request,
        headers: &'a [&'a str],
    ) -> impl Future<Output = Result<ResponseValue<Self::Success>, Error<Self::Refusal>>> + Send + 'a;
}

/// `expires_in` as the provider sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// A JSON integer.
    Seconds(i64),
    /// A JSON string (`"3600"`), to be parsed strictly.
    Text(String),
}

/// The parts of a success body that make an access token. `Debug` never
/// shows the token.
pub struct Grant {
    /// The token (secret: never print it).
    pub access_token: String,
    /// The token type, e.g. `Bearer`.
    pub token_type: String,
    /// `expires_in`.
    pub expires_in: Lifetime,
    /// The space-separated granted scopes, when reported.
    pub scope: Option<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("access_token", &"[REDACTED]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A success body that holds a token. Codegen implements it for success
/// types of the RFC 6749 shape (`access_token`, `token_type`, `expires_in`,
/// optional `scope`); an adapter implements it for any other shape.
pub trait TokenResponse {
    /// The token's parts, or what is wrong (naming fields, never quoting
    /// values).
    fn into_grant(self) -> Result<Grant, String>;
}

/// What a provider's error body said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusal {
    /// The provider's error code (`invalid_client`).
    pub code: Option<String>,
    /// The provider's message.
    pub message: Option<String>,
}

/// An error body. Codegen implements it for error types of the RFC 6749
/// shape (`error`, optional `error_description`); an adapter implements it
/// for any other shape.
pub trait ErrorResponse {
    /// The code and message it carries.
    fn into_refusal(self) -> Refusal;
}
