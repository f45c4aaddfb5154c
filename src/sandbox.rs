//! An offline sandbox of every provider's token endpoint (feature
//! `sandbox`): an HTTP server on 127.0.0.1 driven by the providers' specs;
//! those paytokens ships, and your own ([`Sandbox::builder`]).
//! Each provider's route, method, media type, credential placement (HTTP
//! Basic, or a body field, header or query parameter of any name), header
//! parameters, constants and scopes come from its spec; request bodies are
//! checked by decoding them into the generated request types; answers are
//! the spec's own success example, with the status it documents, a fresh
//! token, the lifetime (relative, or an absolute time) and the granted
//! scopes put in at the paths of their roles (each keeping its JSON type:
//! Singapay's `expires_in` stays a string), and refusals the spec's error
//! example with the code and message put in at theirs. Its clients are the ones each spec declares in
//! `x-paytokens-sandbox` (the documents' example credentials), plus any
//! added; it counts mints and injects faults.
//!
//! ```no_run
//! use paytokens::sandbox::Sandbox;
//! use paytokens::autopay::Autopay;
//! use paytokens::{Provider, Source, TokenSource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::start().await?;
//! let autopay: Provider = "autopay".parse()?;
//! let token = Source::<Autopay>::new(sandbox.config(autopay))?.fetch().await?;
//! assert_eq!(sandbox.mints(autopay), 1);
//! # Ok(()) }
//! ```
//!
//! Each provider is served under its own prefix (`/autopay/oauth/token`,
//! `/singapay/api/v1.0/access-token/b2b`, ...), so one server stands in for
//! all of them and [`Sandbox::base_url`] gives the base URL to configure.
//!
//! Each provider also has a protected API, `/<id>/api/protected`
//! ([`Sandbox::api_url`]): a resource that accepts `Authorization: Bearer
//! <token>` only for a token this sandbox minted for that provider, not
//! revoked ([`Sandbox::revoke`], [`Sandbox::revoke_token`]) and not expired,
//! and answers `401` with `WWW-Authenticate: Bearer error="invalid_token"`
//! otherwise. `?scope=<s>` requires a scope of the token (`403
//! insufficient_scope`). It is what to point a client that attaches tokens
//! at in tests: revoke, and the next call gets the 401 a real API sends for
//! a token it no longer accepts.
//!
//! [`Sandbox::on_request`] reports every answered request as a
//! [`RequestRecord`], one line each, never with a credential or token:
//!
//! ```text
//! pyng-billing POST /pyng-billing/billing/oauth2/token -> 200 minted
//! autopay POST /autopay/oauth/token -> 401 refused: wrong client secret
//! singapay POST /singapay/api/v1.0/access-token/b2b -> 503 injected fault
//! autopay GET /autopay/api/protected -> 200 authorized
//! autopay GET /autopay/api/protected -> 401 refused: revoked token
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, any, on};
use base64::Engine as _;
use paytokens_runtime::{Auth, Expiry, ParamValue, Place, ScopeJoin, TimeFormat};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::{Config, Credentials, Provider};

/// A client the sandbox accepts for one provider.
#[derive(Clone, Debug)]
pub struct SandboxClient {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
    /// Header parameters it must send (name as the spec writes it, value),
    /// e.g. Singapay's `X-PARTNER-ID`.
    pub headers: Vec<(String, String)>,
    /// Scopes the client may request, where the request carries scopes;
    /// otherwise the scopes its answers report.
    pub granted_scopes: Vec<String>,
    /// Lifetime of the tokens it is given.
    pub lifetime: Duration,
}

impl SandboxClient {
    /// The first client `provider`'s spec declares in `x-paytokens-sandbox`:
    /// the credentials of the provider document's own examples, so that those
    /// examples work verbatim against the sandbox.
    pub fn demo(provider: Provider) -> Self {
        let spec = provider.spec();
        let declared = spec.sandbox_clients.first();
        let owned = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect()
        };
        Self {
            client_id: declared
                .map_or("sandbox-client", |c| c.client_id)
                .to_owned(),
            client_secret: SecretString::from(
                declared.map_or("sandbox-secret", |c| c.client_secret),
            ),
            headers: declared.map_or_else(Vec::new, |c| owned(c.headers)),
            granted_scopes: declared.map_or_else(Vec::new, |c| {
                c.scopes.iter().map(|s| (*s).to_owned()).collect()
            }),
            lifetime: Duration::from_secs(declared.map_or(3600, |c| c.lifetime)),
        }
    }

    /// The value of header parameter `name` this client sends.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A fault the sandbox injects into a provider's next answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// Answer with this status and a short plain-text body.
    Status(u16),
    /// HTTP 429 with `Retry-After` in seconds.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after: u64,
    },
    /// HTTP 200 with a truncated JSON body.
    MalformedBody,
    /// Start a 200 answer and drop the connection in the middle of the body.
    DropConnection,
}

/// One request the sandbox answered, as [`Sandbox::on_request`] reports it.
/// It never holds a credential, secret or token; `Display` is one line:
/// `autopay POST /autopay/oauth/token -> 401 refused: unknown client id`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// Whose endpoint was called.
    pub provider: Provider,
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// The status of the answer.
    pub status: u16,
    /// At a token endpoint: `minted`, `injected fault`, or `refused: ` and
    /// why (`unknown client id`, `wrong client secret`, `wrong partner id`,
    /// ...). At the protected API: `authorized`, or `refused: ` and why (`no
    /// bearer token`, `unknown token`, `revoked token`, `expired token`,
    /// `token of another provider`, `insufficient scope`).
    pub outcome: String,
}

impl fmt::Display for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            provider,
            method,
            path,
            status,
            outcome,
        } = self;
        write!(f, "{provider} {method} {path} -> {status} {outcome}")
    }
}

/// How a handler answered; carried to [`log`] in the response's extensions.
#[derive(Clone)]
enum Outcome {
    Minted,
    Authorized,
    Fault,
    Refused(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Minted => f.write_str("minted"),
            Outcome::Authorized => f.write_str("authorized"),
            Outcome::Fault => f.write_str("injected fault"),
            Outcome::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// `response` marked with how it answered.
fn with_outcome(mut response: Response, outcome: Outcome) -> Response {
    response.extensions_mut().insert(outcome);
    response
}

type OnRequest = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

#[derive(Default)]
struct Shared {
    clients: HashMap<Provider, Vec<SandboxClient>>,
    mints: HashMap<(Provider, String), usize>,
    requests: HashMap<Provider, usize>,
    api_requests: HashMap<Provider, usize>,
    /// Every token minted, by its value.
    issued: HashMap<String, Issued>,
    faults: HashMap<Provider, VecDeque<Fault>>,
    on_request: Option<OnRequest>,
}

/// A token the sandbox minted: what the protected API checks.
struct Issued {
    provider: Provider,
    client_id: String,
    scopes: Vec<String>,
    expires_at: Instant,
    revoked: bool,
}

type AppState = Arc<Mutex<Shared>>;

/// Which providers a [`Sandbox`] serves, and where: [`Sandbox::builder`].
#[derive(Clone, Debug)]
pub struct SandboxBuilder {
    providers: Vec<Provider>,
    port: u16,
}

impl SandboxBuilder {
    /// Serves `provider` too, under `/<id>/`, with the clients its spec
    /// declares (`x-paytokens-sandbox`): a provider generated in your own
    /// crate, `Provider::of::<acme::Client>()`. A provider with the id of
    /// one already served replaces it.
    pub fn provider(mut self, provider: Provider) -> Self {
        self.providers.retain(|p| *p != provider);
        self.providers.push(provider);
        self
    }

    /// Listens on `127.0.0.1:port` (0, the default, for any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Starts the sandbox.
    pub async fn start(self) -> std::io::Result<Sandbox> {
        let mut shared = Shared::default();
        for provider in &self.providers {
            shared
                .clients
                .insert(*provider, vec![SandboxClient::demo(*provider)]);
        }
        let state: AppState = Arc::new(Mutex::new(shared));
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(Arc::clone(&state), &self.providers);
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "sandbox server failed");
            }
        });
        Ok(Sandbox {
            addr,
            state,
            stop: Some(stop),
        })
    }
}

/// A running sandbox; stops when dropped or on [`Sandbox::shutdown`].
pub struct Sandbox {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
}

impl Sandbox {
    /// Starts on an ephemeral 127.0.0.1 port with the demo client of every
    /// provider paytokens ships.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// Starts on `127.0.0.1:port` (0 for any free port) with the demo clients.
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        Self::builder().port(port).start().await
    }

    /// A sandbox of more providers than paytokens ships (your own, generated
    /// by `paytokens_codegen::Builder`), or on a given port:
    ///
    /// ```no_run
    /// # mod acme { pub use paytokens::autopay::Autopay as Client; }
    /// use paytokens::Provider;
    /// use paytokens::sandbox::Sandbox;
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// // `acme`: the module `paytokens::include_provider!("acme")` defines.
    /// let sandbox = Sandbox::builder()
    ///     .provider(Provider::of::<acme::Client>())
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            providers: Provider::all().collect(),
            port: 0,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure for `provider`, e.g. `http://127.0.0.1:PORT/autopay`.
    pub fn base_url(&self, provider: Provider) -> String {
        format!("http://{}/{}", self.addr, provider.id())
    }

    /// The demo client of `provider` (the first one configured).
    pub fn client(&self, provider: Provider) -> SandboxClient {
        self.lock().clients[&provider][0].clone()
    }

    /// The demo client's credentials, ready for a provider config.
    pub fn credentials(&self, provider: Provider) -> Credentials {
        let client = self.client(provider);
        Credentials::new(client.client_id, client.client_secret)
    }

    /// A whole configuration for `provider`'s demo client against this
    /// sandbox: base URL, credentials, its granted scopes (where the request
    /// carries scopes) and header parameters.
    pub fn config(&self, provider: Provider) -> Config {
        let client = self.client(provider);
        let mut config = Config::new(Credentials::new(
            client.client_id.clone(),
            client.client_secret.clone(),
        ))
        .base_url(self.base_url(provider));
        if provider.spec().scope.is_some() {
            config = config.scopes(&client.granted_scopes);
        }
        config.headers = client.headers;
        config
    }

    /// Accepts another client for `provider`.
    pub fn add_client(&self, provider: Provider, client: SandboxClient) {
        self.lock()
            .clients
            .entry(provider)
            .or_default()
            .push(client);
    }

    /// Tokens minted for `provider`, all clients together.
    pub fn mints(&self, provider: Provider) -> usize {
        self.lock()
            .mints
            .iter()
            .filter(|((p, _), _)| *p == provider)
            .map(|(_, n)| n)
            .sum()
    }

    /// Tokens minted for one client of `provider`.
    pub fn mints_for(&self, provider: Provider, client_id: &str) -> usize {
        let shared = self.lock();
        shared
            .mints
            .get(&(provider, client_id.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Requests `provider`'s endpoint received, whatever their outcome
    /// (refused, faulted or minted).
    pub fn requests(&self, provider: Provider) -> usize {
        self.lock().requests.get(&provider).copied().unwrap_or(0)
    }

    /// The URL of `provider`'s protected API, e.g.
    /// `http://127.0.0.1:PORT/autopay/api/protected` (any method). It
    /// answers `200` with `{"provider": "<id>", "scope": "<granted scopes>"}`
    /// to `Authorization: Bearer <token>` for a token this sandbox minted for
    /// `provider`, not revoked and not expired; `401` with `WWW-Authenticate:
    /// Bearer error="invalid_token"` to an unknown, revoked, expired or
    /// another provider's token (without `error` when no bearer token was
    /// sent, as RFC 6750 says). Add `?scope=<s>` (several separated by
    /// spaces) to require scopes: `403` with `error="insufficient_scope"`
    /// when the token was not granted one of them. A provider whose tokens
    /// carry no scopes (Singapay) ignores `scope`.
    pub fn api_url(&self, provider: Provider) -> String {
        format!("{}/api/protected", self.base_url(provider))
    }

    /// Requests `provider`'s protected API received, whatever their outcome.
    pub fn api_requests(&self, provider: Provider) -> usize {
        self.lock()
            .api_requests
            .get(&provider)
            .copied()
            .unwrap_or(0)
    }

    /// Revokes every token minted for `provider` so far: the protected API
    /// refuses them from now on (`401 invalid_token`). Returns how many were
    /// revoked (tokens already revoked are not counted again).
    pub fn revoke(&self, provider: Provider) -> usize {
        self.revoke_where(|issued| issued.provider == provider)
    }

    /// Revokes every token minted for one client of `provider` so far;
    /// returns how many.
    pub fn revoke_client(&self, provider: Provider, client_id: &str) -> usize {
        self.revoke_where(|issued| issued.provider == provider && issued.client_id == client_id)
    }

    /// Revokes one token; `false` when the sandbox never minted it or it
    /// was already revoked.
    pub fn revoke_token(&self, token: &str) -> bool {
        match self.lock().issued.get_mut(token) {
            Some(issued) if !issued.revoked => {
                issued.revoked = true;
                true
            }
            _ => false,
        }
    }

    fn revoke_where(&self, mut which: impl FnMut(&Issued) -> bool) -> usize {
        let mut shared = self.lock();
        let mut revoked = 0;
        for issued in shared.issued.values_mut() {
            if !issued.revoked && which(issued) {
                issued.revoked = true;
                revoked += 1;
            }
        }
        revoked
    }

    /// Queues `fault` for the next `times` requests to `provider`.
    pub fn inject(&self, provider: Provider, fault: Fault, times: usize) {
        let mut shared = self.lock();
        let queue = shared.faults.entry(provider).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Calls `callback` with a [`RequestRecord`] for every request to a
    /// token endpoint or a protected API, once its answer is ready (before
    /// it is sent), faults included. Replaces the previous callback. The callback runs on the
    /// server's tasks: keep it short (print a line, push to a channel).
    pub fn on_request(&self, callback: impl Fn(&RequestRecord) + Send + Sync + 'static) {
        self.lock().on_request = Some(Arc::new(callback));
    }

    /// Removes every queued fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Stops the server.
    pub fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        lock(&self.state)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One route per provider served, at `/<id><path>` with the spec's
/// method, all served by [`token_endpoint`]; and its protected API at
/// `/<id>/api/protected`, served by [`protected_api`].
fn router(state: AppState, providers: &[Provider]) -> Router {
    let mut router = Router::new();
    for &provider in providers {
        let spec = provider.spec();
        let method = Method::from_bytes(spec.method.as_bytes())
            .ok()
            .and_then(|method| MethodFilter::try_from(method).ok())
            .unwrap_or(MethodFilter::POST);
        let handler =
            move |State(state): State<AppState>, headers: HeaderMap, uri: Uri, body: Bytes| {
                token_endpoint(state, provider, headers, uri, body)
            };
        router = router.route(&format!("/{}{}", spec.id, spec.path), on(method, handler));
        let api = move |State(state): State<AppState>, headers: HeaderMap, uri: Uri| async move {
            protected_api(&state, provider, &headers, &uri)
        };
        router = router.route(&format!("/{}/api/protected", spec.id), any(api));
    }
    router
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), log))
        .with_state(state)
}

/// Reports the answered request to the [`Sandbox::on_request`] callback.
async fn log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let id = path.split('/').nth(1).unwrap_or_default().to_owned();
    let response = next.run(request).await;
    let (callback, provider) = {
        let shared = lock(&state);
        let provider = shared.clients.keys().find(|p| p.id() == id).copied();
        (shared.on_request.clone(), provider)
    };
    if let (Some(callback), Some(provider)) = (callback, provider) {
        let status = response.status();
        let outcome = match response.extensions().get::<Outcome>() {
            Some(outcome) => outcome.to_string(),
            // Refused before a handler ran (a body that cannot be read).
            None => format!(
                "refused: {}",
                status.canonical_reason().unwrap_or("unreadable request")
            ),
        };
        callback(&RequestRecord {
            provider,
            method,
            path,
            status: status.as_u16(),
            outcome,
        });
    }
    response
}

fn lock(state: &AppState) -> std::sync::MutexGuard<'_, Shared> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts the request; then the next queued fault's answer, if one is
/// queued (latency is waited out and the request then handled normally).
async fn fault(state: &AppState, provider: Provider) -> Option<Response> {
    let next = {
        let mut shared = lock(state);
        *shared.requests.entry(provider).or_default() += 1;
        shared
            .faults
            .get_mut(&provider)
            .and_then(VecDeque::pop_front)
    };
    let response = match next? {
        Fault::Latency(wait) => {
            tokio::time::sleep(wait).await;
            return None;
        }
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, "sandbox: injected failure").into_response()
        }
        Fault::TooManyRequests { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.to_string())],
            "sandbox: slow down",
        )
            .into_response(),
        Fault::MalformedBody => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"access_token": "trunc"#,
        )
            .into_response(),
        Fault::DropConnection => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(br#"{"access_token": "#)),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected",
                )),
            ];
            let body = Body::from_stream(futures_util::stream::iter(chunks));
            let mut response = Response::new(body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // A declared length the body never reaches.
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("400"));
            response
        }
    };
    Some(with_outcome(response, Outcome::Fault))
}

/// `response` refused, for the request log.
fn refused(response: Response, why: impl Into<String>) -> Response {
    with_outcome(response, Outcome::Refused(why.into()))
}

/// The answers of one provider, made from its spec's examples.
struct Answers(Provider);

impl Answers {
    /// The spec's success example, with the first status the spec gives,
    /// and `token`, `lifetime` and `scopes` put in at the paths of their
    /// roles, each in the example's JSON type (an absolute expiry as the
    /// time `lifetime` from now); an envelope's conditions hold.
    fn minted(&self, token: &str, lifetime: Duration, scopes: &[String]) -> Response {
        let spec = self.0.spec();
        let answer = &spec.answer;
        let status = answer.statuses.first().copied().unwrap_or(200);
        let mut body = example(spec.examples.success).unwrap_or_else(|| json!({}));
        answer.token.set(&mut body, Value::from(token));
        if let Some(field) = &answer.token_type
            && field.get(&body).is_none()
        {
            field.set(&mut body, Value::from("Bearer"));
        }
        let seconds = lifetime.as_secs();
        match &answer.expiry {
            Expiry::In(field) => {
                let text = field.get(&body).is_some_and(Value::is_string);
                let value = if text {
                    Value::from(seconds.to_string())
                } else {
                    Value::from(seconds)
                };
                field.set(&mut body, value);
            }
            Expiry::At(field, format) => {
                let at = std::time::SystemTime::now() + lifetime;
                let value = match format {
                    TimeFormat::DateTime => Value::from(paytokens_runtime::format_time(at)),
                    // Rounded up: the token lasts at least its lifetime.
                    TimeFormat::UnixSeconds => Value::from(
                        at.duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
                            .unwrap_or_default(),
                    ),
                };
                field.set(&mut body, value);
            }
        }
        if let Some(field) = &answer.scopes {
            let array = field.get(&body).is_some_and(Value::is_array);
            let join = match spec.scope.as_ref().map(|s| s.join) {
                _ if array => ScopeJoin::Array,
                Some(ScopeJoin::Comma) => ScopeJoin::Comma,
                _ => ScopeJoin::Space,
            };
            field.set(&mut body, join.to_json(scopes));
        }
        for (field, expect) in answer.expect {
            let value = match expect {
                paytokens_runtime::Expect::Value(text) => {
                    serde_json::from_str(text).unwrap_or_default()
                }
                paytokens_runtime::Expect::HttpStatus => Value::from(status),
            };
            field.set(&mut body, value);
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        with_outcome((status, axum::Json(body)).into_response(), Outcome::Minted)
    }

    /// The spec's error example (or, where the document has none, the
    /// smallest body its error schema allows), as HTTP `status`: `code` and
    /// `message` put in at the paths of the error roles where given (a numeric code stays
    /// a number: the status), and the status numbers the example holds
    /// (Singapay's `status`) replaced by `status`.
    fn refusal(
        &self,
        status: StatusCode,
        code: Option<&str>,
        message: Option<&str>,
        why: impl Into<String>,
    ) -> Response {
        let spec = self.0.spec();
        let mut body = example(spec.examples.refusal)
            .or_else(|| example(Some(spec.refusal.smallest)))
            .unwrap_or_else(|| json!({}));
        replace(&mut body, &mut |_, value| match value {
            Value::Number(n) if n.as_u64().is_some_and(|n| (100..600).contains(&n)) => {
                Some(Value::from(status.as_u16()))
            }
            _ => None,
        });
        if let Some(field) = &spec.refusal.code {
            let numeric = field.get(&body).is_some_and(Value::is_number);
            match code {
                _ if numeric => field.set(&mut body, Value::from(status.as_u16())),
                Some(code) => field.set(&mut body, Value::from(code)),
                // Unset, or empty in the schema's smallest body.
                None if field.get(&body).is_none_or(|v| v == "") => {
                    field.set(&mut body, Value::from("invalid_client"));
                }
                None => {}
            }
        }
        if let Some(field) = &spec.refusal.message {
            match message {
                Some(message) => field.set(&mut body, Value::from(message)),
                // RFC 6749's words for a failed client authentication.
                None if field.get(&body).is_none_or(|v| v == "") => {
                    field.set(&mut body, Value::from("Client authentication failed"));
                }
                None => {}
            }
        }
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED && spec.auth == Auth::Basic {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sandbox\""),
            );
        }
        refused(response, why)
    }

    /// HTTP 401 with the spec's example as it is (the documents' example is
    /// their authentication failure), or with `message`.
    fn unauthorized(&self, message: Option<&str>, why: impl Into<String>) -> Response {
        self.refusal(StatusCode::UNAUTHORIZED, None, message, why)
    }

    /// HTTP 400 with an RFC 6749 error code.
    fn bad_request(&self, code: &str, message: &str, why: impl Into<String>) -> Response {
        self.refusal(StatusCode::BAD_REQUEST, Some(code), Some(message), why)
    }
}

/// An example's JSON text, parsed.
fn example(text: Option<&str>) -> Option<Value> {
    serde_json::from_str(text?).ok()
}

/// Replaces, anywhere in `value`, each object member for which `with`
/// returns a new value.
fn replace(value: &mut Value, with: &mut impl FnMut(&str, &Value) -> Option<Value>) {
    match value {
        Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                match with(key, member) {
                    Some(new) => *member = new,
                    None => replace(member, with),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| replace(item, with)),
        _ => {}
    }
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The (id, secret) of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The body's members, from a form (each a string) or a JSON object as the
/// spec's media type says; `None` when it is neither.
fn body_fields(content_type: &str, body: &[u8]) -> Option<Map<String, Value>> {
    if content_type == "application/x-www-form-urlencoded" {
        let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).ok()?;
        return Some(
            pairs
                .into_iter()
                .map(|(key, value)| (key, Value::from(value)))
                .collect(),
        );
    }
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    Some(members)
}

/// The configured client with this id and secret, or why there is none
/// (for the request log).
fn find_client(
    state: &AppState,
    provider: Provider,
    id: &str,
    secret: &str,
) -> Result<SandboxClient, &'static str> {
    let shared = lock(state);
    let mut with_id = shared
        .clients
        .get(&provider)
        .into_iter()
        .flatten()
        .filter(|c| c.client_id == id)
        .peekable();
    if with_id.peek().is_none() {
        return Err("unknown client id");
    }
    with_id
        .find(|c| c.client_secret.expose_secret() == secret)
        .cloned()
        .ok_or("wrong client secret")
}

/// Records a mint of a token granted `scopes` and returns the new random
/// token.
fn mint(state: &AppState, provider: Provider, client: &SandboxClient, scopes: &[String]) -> String {
    let mut shared = lock(state);
    *shared
        .mints
        .entry((provider, client.client_id.clone()))
        .or_default() += 1;
    let random: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(40)
        .collect();
    let token = format!("sbx_{random}");
    shared.issued.insert(
        token.clone(),
        Issued {
            provider,
            client_id: client.client_id.clone(),
            scopes: scopes.to_vec(),
            expires_at: Instant::now() + client.lifetime,
            revoked: false,
        },
    );
    token
}

/// Any provider's protected API: the bearer token must be one this sandbox
/// minted for `provider`, not revoked and not expired; `?scope=` names
/// scopes it must have been granted.
fn protected_api(state: &AppState, provider: Provider, headers: &HeaderMap, uri: &Uri) -> Response {
    let mut shared = lock(state);
    *shared.api_requests.entry(provider).or_default() += 1;
    let Some(token) = bearer_token(headers) else {
        return api_refusal(StatusCode::UNAUTHORIZED, None, "no bearer token", None);
    };
    let unauthorized =
        |why: &str| api_refusal(StatusCode::UNAUTHORIZED, Some("invalid_token"), why, None);
    let Some(issued) = shared.issued.get(token) else {
        return unauthorized("unknown token");
    };
    if issued.provider != provider {
        return unauthorized("token of another provider");
    }
    if issued.revoked {
        return unauthorized("revoked token");
    }
    if Instant::now() >= issued.expires_at {
        return unauthorized("expired token");
    }
    let required: Vec<String> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| name == "scope")
        .flat_map(|(_, value)| {
            value
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let scoped = provider.spec().scope.is_some() || !issued.scopes.is_empty();
    if scoped && !required.iter().all(|s| issued.scopes.contains(s)) {
        return api_refusal(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "insufficient scope",
            Some(&required.join(" ")),
        );
    }
    let body = json!({"provider": provider.id(), "scope": issued.scopes.join(" ")});
    with_outcome(axum::Json(body).into_response(), Outcome::Authorized)
}

/// The token of an `Authorization: Bearer` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A refusal of the protected API as RFC 6750 words it: `WWW-Authenticate:
/// Bearer` with `error` (none when no token was sent), a JSON body with the
/// same `error` and why, for the request log too.
fn api_refusal(
    status: StatusCode,
    error: Option<&str>,
    why: &str,
    scope: Option<&str>,
) -> Response {
    let mut challenge = "Bearer realm=\"paytokens-sandbox\"".to_owned();
    if let Some(error) = error {
        challenge.push_str(&format!(", error=\"{error}\", error_description=\"{why}\""));
    }
    if let Some(scope) = scope.filter(|s| s.bytes().all(|b| b.is_ascii_graphic() || b == b' ')) {
        challenge.push_str(&format!(", scope=\"{}\"", scope.replace(['"', '\\'], "")));
    }
    let body = json!({"error": error, "error_description": why});
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::try_from(challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    refused(response, why)
}

/// What a request carries, by place: its body (form fields or a JSON
/// object), headers and query.
struct Sent<'r> {
    body: Map<String, Value>,
    headers: &'r HeaderMap,
    query: HashMap<String, String>,
}

impl Sent<'_> {
    /// The text at `place`, when there is one.
    fn text(&self, place: Place) -> Option<String> {
        match place {
            Place::Body(name) => self.body.get(name)?.as_str().map(str::to_owned),
            Place::Header(name) => Some(self.headers.get(name)?.to_str().ok()?.to_owned()),
            Place::Query(name) => self.query.get(name).cloned(),
        }
    }

    /// The scopes at `place`, split as the spec joins them.
    fn scopes(&self, place: Place, join: ScopeJoin) -> Option<Vec<String>> {
        if let (Place::Body(name), ScopeJoin::Array) = (place, join) {
            return self
                .body
                .get(name)?
                .as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect();
        }
        let text = self.text(place)?;
        let separator = if join == ScopeJoin::Comma { ',' } else { ' ' };
        Some(
            text.split(separator)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

/// Any provider's token endpoint, as its spec describes it: the client's
/// credentials where the spec puts them (HTTP Basic, or a body field, a
/// header or a query parameter) and its header parameters, the media type
/// (or no body), the constants (the grant type first), the body as the
/// generated request type, then the scopes (declared, and granted to the
/// client).
async fn token_endpoint(
    state: AppState,
    provider: Provider,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(response) = fault(&state, provider).await {
        return response;
    }
    let spec = provider.spec();
    let answers = Answers(provider);
    let mut client = None;
    if spec.auth == Auth::Basic {
        let found = basic_credentials(&headers)
            .ok_or("no client credentials")
            .and_then(|(id, secret)| find_client(&state, provider, &id, &secret));
        match found {
            Ok(found) => client = Some(found),
            Err(why) => return answers.unauthorized(None, why),
        }
    }
    if let Some(client) = &client
        && let Some(response) = check_headers(&answers, client, &headers)
    {
        return response;
    }
    let fields = match spec.content_type {
        Some(content_type) => {
            if media_type(&headers) != content_type {
                let message = format!("Content-Type must be {content_type}");
                return answers.bad_request("invalid_request", &message, "wrong Content-Type");
            }
            let Some(fields) = body_fields(content_type, &body) else {
                let message = format!("The body is not {content_type}");
                return answers.bad_request("invalid_request", &message, "unreadable body");
            };
            fields
        }
        None if body.is_empty() => Map::new(),
        None => {
            let message = "The request takes no body";
            return answers.bad_request("invalid_request", message, "a body where none is taken");
        }
    };
    let query = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let sent = Sent {
        body: fields,
        headers: &headers,
        query,
    };
    // A query parameter the spec does not declare is refused (a request
    // the spec does not describe).
    if sent
        .query
        .keys()
        .any(|name| !spec.params.iter().any(|p| !p.header && p.name == name))
    {
        let message = "The request has a query parameter the spec does not declare";
        return answers.bad_request("invalid_request", message, "undeclared query parameter");
    }
    // The grant type first: a request wrong in several ways is refused for
    // the most fundamental one.
    let mut constants: Vec<(Place, &str)> = spec
        .constants
        .iter()
        .map(|(name, value)| (Place::Body(name), *value))
        .chain(spec.params.iter().filter_map(|param| match param.value {
            ParamValue::Constant(value) if param.header => Some((Place::Header(param.name), value)),
            ParamValue::Constant(value) => Some((Place::Query(param.name), value)),
            _ => None,
        }))
        .collect();
    constants.sort_by_key(|(place, _)| !is_grant_type(place.name()));
    for (place, value) in constants {
        let name = place.name();
        let message = format!("{name} must be {value}");
        match sent.text(place) {
            Some(given) if given == value => {}
            Some(_) if is_grant_type(name) => {
                let why = format!("wrong {name}");
                return answers.bad_request("unsupported_grant_type", &message, why);
            }
            Some(_) => {
                return answers.bad_request("invalid_request", &message, format!("wrong {name}"));
            }
            None => {
                let message = format!("{name} is required");
                return answers.bad_request("invalid_request", &message, format!("no {name}"));
            }
        }
    }
    let client = match (client, spec.auth) {
        (Some(client), _) => client,
        (None, Auth::Basic) => return answers.unauthorized(None, "no client credentials"),
        (
            None,
            Auth::Fields {
                client_id,
                client_secret,
            },
        ) => {
            let (Some(id), Some(secret)) = (sent.text(client_id), sent.text(client_secret)) else {
                return answers.unauthorized(None, "no client credentials");
            };
            match find_client(&state, provider, &id, &secret) {
                Ok(client) => client,
                Err(why) => return answers.unauthorized(None, why),
            }
        }
    };
    if (provider.registration().decode_request)(&body).is_err() {
        return answers.bad_request(
            "invalid_request",
            "The body does not match the request schema",
            "body does not match the request schema",
        );
    }
    if spec.auth != Auth::Basic
        && let Some(response) = check_headers(&answers, &client, &headers)
    {
        return response;
    }
    let scopes = match &spec.scope {
        None => client.granted_scopes.clone(),
        Some(field) => {
            let Some(requested) = sent.scopes(field.place, field.join).or_else(|| {
                // Absent is no scopes; present but of another shape is wrong.
                let present = match field.place {
                    Place::Body(name) => sent.body.contains_key(name),
                    _ => sent.text(field.place).is_some(),
                };
                (!present).then(Vec::new)
            }) else {
                return answers.bad_request(
                    "invalid_request",
                    "The scopes are not in the shape the spec gives",
                    "scopes of the wrong shape",
                );
            };
            if field.required && requested.is_empty() {
                return answers.bad_request("invalid_request", "scope is required", "no scope");
            }
            let known = |s: &String| {
                field
                    .declared
                    .is_none_or(|declared| declared.contains(&s.as_str()))
            };
            let granted = |s: &String| client.granted_scopes.contains(s);
            if !requested.iter().all(|s| known(s) && granted(s)) {
                return answers.bad_request(
                    "invalid_scope",
                    "A requested scope is unknown or not granted to this client",
                    "scope unknown or not granted",
                );
            }
            requested
        }
    };
    let token = mint(&state, provider, &client, &scopes);
    answers.minted(&token, client.lifetime, &scopes)
}

/// Whether a body property is the OAuth grant type (`grant_type`, or
/// Singapay's `grantType`).
fn is_grant_type(name: &str) -> bool {
    name.replace('_', "").eq_ignore_ascii_case("granttype")
}

/// A 401 unless the request carries each header parameter the spec
/// declares with the client's value.
fn check_headers(
    answers: &Answers,
    client: &SandboxClient,
    headers: &HeaderMap,
) -> Option<Response> {
    for param in answers.0.spec().headers {
        let expected = client.header(param.name);
        if !param.required && expected.is_none() {
            continue;
        }
        let sent = headers.get(param.name).and_then(|v| v.to_str().ok());
        if sent.is_none() || sent != expected {
            let message = format!("Invalid {}", param.name);
            return Some(answers.unauthorized(Some(&message), format!("wrong {}", param.name)));
        }
    }
    None
}
