//! An offline sandbox of all four token endpoints (feature `sandbox`): an
//! HTTP server on 127.0.0.1 that checks requests the way each provider's
//! document says and answers in each provider's documented shapes, with
//! configurable clients, a count of mints per client, and fault injection.
//!
//! ```no_run
//! use paytokens::sandbox::Sandbox;
//! use paytokens::autopay::{Autopay, AutopayConfig};
//! use paytokens::{Provider, TokenSource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::start().await?;
//! let mut config = AutopayConfig::new(sandbox.credentials(Provider::Autopay));
//! config.base_url = sandbox.base_url(Provider::Autopay);
//! let token = Autopay::new(config)?.fetch().await?;
//! assert_eq!(sandbox.mints(Provider::Autopay), 1);
//! # Ok(()) }
//! ```
//!
//! Each provider is served under its own prefix (`/autopay/oauth/token`,
//! `/singapay/api/v1.0/access-token/b2b`, ...), so one server stands in for
//! all four and [`Sandbox::base_url`] gives the base URL to configure.
//!
//! [`Sandbox::on_request`] reports every answered request as a
//! [`RequestRecord`], one line each, never with a credential or token:
//!
//! ```text
//! pyng-billing POST /pyng-billing/billing/oauth2/token -> 200 minted
//! autopay POST /autopay/oauth/token -> 401 refused: wrong client secret
//! singapay POST /singapay/api/v1.0/access-token/b2b -> 503 injected fault
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{Credentials, Provider};

/// A client the sandbox accepts for one provider.
#[derive(Clone, Debug)]
pub struct SandboxClient {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
    /// Singapay's `X-PARTNER-ID`; ignored by the other providers.
    pub partner_id: Option<String>,
    /// Scopes the client may request (Pyng); the scope Autopay reports.
    pub granted_scopes: Vec<String>,
    /// Lifetime of the tokens it is given.
    pub lifetime: Duration,
}

impl SandboxClient {
    /// The demo client of `provider`: the credentials of the provider
    /// document's own examples, so that those examples work verbatim against
    /// the sandbox, with the document's token lifetime.
    pub fn demo(provider: Provider) -> Self {
        let (id, secret) = match provider {
            Provider::PyngBilling | Provider::PyngCheckout => ("s6BhdRkqt3", "gX1fBat3bV"),
            Provider::Autopay => (
                "kWmliLIrb79QfsF9r3vJE4xrKMcdcrrA",
                "7xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxg",
            ),
            // The document's `Basic am9obkBleGFtcGxlLmNvbTphYmMxMjM=`, decoded.
            Provider::Singapay => ("john@example.com", "abc123"),
        };
        let owned = |scopes: &[&str]| scopes.iter().map(|s| (*s).to_owned()).collect();
        let (granted_scopes, lifetime, partner): (Vec<String>, u64, Option<&str>) = match provider {
            // Every scope, from the enum generated from the spec: the spec is
            // the only place they are written.
            Provider::PyngBilling => (
                crate::pyng_billing::Scope::ALL
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
                900,
                None,
            ),
            Provider::PyngCheckout => (owned(&["pyng_defined_scope"]), 3600, None),
            Provider::Autopay => (owned(&["customer_club"]), 86_400, None),
            Provider::Singapay => (
                Vec::new(),
                3600,
                Some("b3ed7d4b-a96c-6c08-b3c7-12c3124242d9"),
            ),
        };
        Self {
            client_secret: SecretString::from(secret),
            client_id: id.to_owned(),
            partner_id: partner.map(str::to_owned),
            granted_scopes,
            lifetime: Duration::from_secs(lifetime),
        }
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
    /// `minted`, `injected fault`, or `refused: ` and why (`unknown client
    /// id`, `wrong client secret`, `wrong partner id`, ...).
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
#[derive(Clone, Copy)]
enum Outcome {
    Minted,
    Fault,
    Refused(&'static str),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Minted => f.write_str("minted"),
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
    faults: HashMap<Provider, VecDeque<Fault>>,
    on_request: Option<OnRequest>,
}

type AppState = Arc<Mutex<Shared>>;

/// A running sandbox; stops when dropped or on [`Sandbox::shutdown`].
pub struct Sandbox {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
}

impl Sandbox {
    /// Starts on an ephemeral 127.0.0.1 port with the demo client of every provider.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(0).await
    }

    /// Starts on `127.0.0.1:port` (0 for any free port) with the demo clients.
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let mut shared = Shared::default();
        for provider in Provider::ALL {
            shared
                .clients
                .insert(provider, vec![SandboxClient::demo(provider)]);
        }
        let state: AppState = Arc::new(Mutex::new(shared));
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(Arc::clone(&state));
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "sandbox server failed");
            }
        });
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
        })
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

    /// Queues `fault` for the next `times` requests to `provider`.
    pub fn inject(&self, provider: Provider, fault: Fault, times: usize) {
        let mut shared = self.lock();
        let queue = shared.faults.entry(provider).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Calls `callback` with a [`RequestRecord`] for every request to a
    /// token endpoint, once its answer is ready (before it is sent), faults
    /// included. Replaces the previous callback. The callback runs on the
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

fn router(state: AppState) -> Router {
    Router::new()
        .route("/pyng-billing/billing/oauth2/token", post(pyng_billing))
        .route("/pyng-checkout/checkout/oauth2/token", post(pyng_checkout))
        .route("/autopay/oauth/token", post(autopay))
        .route("/singapay/api/v1.0/access-token/b2b", post(singapay))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), log))
        .with_state(state)
}

/// Reports the answered request to the [`Sandbox::on_request`] callback.
async fn log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let provider = path.split('/').nth(1).and_then(|id| id.parse().ok());
    let response = next.run(request).await;
    let callback = lock(&state).on_request.clone();
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

/// An OAuth 2.0 error answer (Pyng and Autopay shape); `why` is for the
/// request log.
fn oauth_error(status: StatusCode, error: &str, description: &str, why: &'static str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sandbox\""),
        );
    }
    with_outcome(response, Outcome::Refused(why))
}

/// Singapay's error answer; `why` is for the request log.
fn singapay_error(status: StatusCode, message: &str, why: &'static str) -> Response {
    let code = status.as_u16();
    let response = (
        status,
        axum::Json(json!({"status": code, "success": false,
                          "error": {"code": code, "message": message}})),
    )
        .into_response();
    with_outcome(response, Outcome::Refused(why))
}

/// A success answer with `body`.
fn minted(body: Value) -> Response {
    with_outcome(axum::Json(body).into_response(), Outcome::Minted)
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

/// Records a mint and returns a new random token.
fn mint(state: &AppState, provider: Provider, client: &SandboxClient) -> String {
    let mut shared = lock(state);
    *shared
        .mints
        .entry((provider, client.client_id.clone()))
        .or_default() += 1;
    let random: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(40)
        .collect();
    format!("sbx_{random}")
}

async fn pyng_billing(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    pyng(state, Provider::PyngBilling, headers, body).await
}

async fn pyng_checkout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    pyng(state, Provider::PyngCheckout, headers, body).await
}

/// Both Pyng products: form body, HTTP Basic, scopes checked against the
/// client's grant (and, for B2B Receivables, against the four that exist).
async fn pyng(state: AppState, provider: Provider, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = fault(&state, provider).await {
        return response;
    }
    let unauthorized = |why| {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
            why,
        )
    };
    let bad_request =
        |error, description, why| oauth_error(StatusCode::BAD_REQUEST, error, description, why);
    let Some((id, secret)) = basic_credentials(&headers) else {
        return unauthorized("no client credentials");
    };
    let client = match find_client(&state, provider, &id, &secret) {
        Ok(client) => client,
        Err(why) => return unauthorized(why),
    };
    if media_type(&headers) != "application/x-www-form-urlencoded" {
        return bad_request(
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
            "wrong Content-Type",
        );
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return bad_request(
            "invalid_request",
            "The body is not a form",
            "body is not a form",
        );
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return bad_request(
                "unsupported_grant_type",
                "grant_type must be client_credentials",
                "unsupported grant_type",
            );
        }
        None => {
            return bad_request("invalid_request", "grant_type is required", "no grant_type");
        }
    }
    let requested: Vec<&str> = field("scope").unwrap_or("").split_whitespace().collect();
    if requested.is_empty() {
        return bad_request("invalid_request", "scope is required", "no scope");
    }
    let known = |scope: &&str| match provider {
        Provider::PyngBilling => scope.parse::<crate::pyng_billing::Scope>().is_ok(),
        _ => true,
    };
    let granted = |scope: &&str| client.granted_scopes.iter().any(|s| s == *scope);
    if !requested.iter().all(|s| known(s) && granted(s)) {
        return bad_request(
            "invalid_scope",
            "A requested scope is unknown or not granted to this client",
            "scope unknown or not granted",
        );
    }
    let token = mint(&state, provider, &client);
    minted(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": client.lifetime.as_secs(),
        "scope": requested.join(" "),
    }))
}

/// Autopay: JSON body carrying the credentials and two constants.
async fn autopay(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let provider = Provider::Autopay;
    if let Some(response) = fault(&state, provider).await {
        return response;
    }
    let bad_request =
        |error, description, why| oauth_error(StatusCode::BAD_REQUEST, error, description, why);
    let unauthorized = |why| {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "access_denied",
            "Unauthorized",
            why,
        )
    };
    if media_type(&headers) != "application/json" {
        return bad_request(
            "invalid_request",
            "Content-Type must be application/json",
            "wrong Content-Type",
        );
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request(
            "invalid_request",
            "The body must be a JSON object",
            "body is not a JSON object",
        );
    };
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    if text("grant_type") != Some("client_credentials") {
        return bad_request(
            "unsupported_grant_type",
            "grant_type must be client_credentials",
            "unsupported grant_type",
        );
    }
    if text("audience") != Some("https://api.autopay.io") {
        return bad_request(
            "invalid_request",
            "audience must be https://api.autopay.io",
            "wrong audience",
        );
    }
    let (Some(id), Some(secret)) = (text("client_id"), text("client_secret")) else {
        return unauthorized("no client credentials");
    };
    let client = match find_client(&state, provider, id, secret) {
        Ok(client) => client,
        Err(why) => return unauthorized(why),
    };
    let token = mint(&state, provider, &client);
    minted(json!({
        "access_token": token,
        "scope": client.granted_scopes.join(" "),
        "expires_in": client.lifetime.as_secs(),
        "token_type": "Bearer",
    }))
}

/// Singapay: HTTP Basic, `X-PARTNER-ID`, `{"grantType":"client_credentials"}`,
/// answers wrapped in `{status, success, data}` with `expires_in` a string.
async fn singapay(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let provider = Provider::Singapay;
    if let Some(response) = fault(&state, provider).await {
        return response;
    }
    let unauthorized = |message, why| singapay_error(StatusCode::UNAUTHORIZED, message, why);
    let client = basic_credentials(&headers)
        .ok_or("no client credentials")
        .and_then(|(id, secret)| find_client(&state, provider, &id, &secret));
    let client = match client {
        Ok(client) => client,
        Err(why) => return unauthorized("Invalid credentials", why),
    };
    let partner = headers.get("x-partner-id").and_then(|v| v.to_str().ok());
    if partner.is_none() || partner != client.partner_id.as_deref() {
        return unauthorized("Invalid X-PARTNER-ID", "wrong partner id");
    }
    if media_type(&headers) != "application/json" {
        return singapay_error(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/json",
            "wrong Content-Type",
        );
    }
    let grant = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("grantType")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    if grant.as_deref() != Some("client_credentials") {
        return singapay_error(
            StatusCode::BAD_REQUEST,
            "grantType must be client_credentials",
            "unsupported grantType",
        );
    }
    let token = mint(&state, provider, &client);
    minted(json!({
        "status": 200,
        "success": true,
        "data": {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": client.lifetime.as_secs().to_string(),
        }
    }))
}
