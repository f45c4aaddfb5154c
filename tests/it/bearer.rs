//! `Bearer`, the policy that attaches a cache's token to API calls, through
//! both integrations: the reqwest-middleware `Middleware` (over a
//! `reqwest_middleware::ClientWithMiddleware`) and the tower layer (over a
//! `hyper_util` legacy client). One table of behaviours, each its own test
//! for each integration (`middleware::<behaviour>`, `layer::<behaviour>`),
//! each run for every registered provider, all over real HTTP on
//! 127.0.0.1: a wiremock token endpoint minting numbered canary tokens, and
//! small axum APIs that record every `Authorization` they receive and answer
//! 401 to the tokens a test revokes. A last test runs the whole table again
//! with everything traced at TRACE captured, and finds no canary in it.

use crate::common;
use crate::trace::{assert_nothing_leaked, install as capture};

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use common::*;
use http::StatusCode;
use http::header::{AUTHORIZATION, LOCATION};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use paytokens::{
    AnySource, Bearer, BearerError, BearerService, CachePolicy, ManualClock, Provider, TokenCache,
    TokenError,
};
use serde_json::json;
use tokio::sync::oneshot;
use tower::{Layer, Service};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

/// The `n`th token the token endpoint mints (from 1), as the API receives it.
fn bearer(n: usize) -> String {
    format!("Bearer {CANARY_TOKEN}-{n}")
}

// ---------------------------------------------------------------------------
// The token endpoint: wiremock, minting `CANARY_TOKEN-1`, `-2`, ...

struct Minter {
    provider: Provider,
    minted: Arc<AtomicUsize>,
}

impl Respond for Minter {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("{CANARY_TOKEN}-{n}");
        minted(
            self.provider,
            success(self.provider, &token, "Bearer", json!(3600)),
        )
    }
}

/// Whether the token endpoint mints, or refuses every request (the spec's
/// refusal example, 401).
#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Minting,
    Refusing,
}

async fn token_endpoint(provider: Provider, endpoint: Endpoint) -> (MockServer, Arc<AtomicUsize>) {
    let server = MockServer::start().await;
    let minted = Arc::new(AtomicUsize::new(0));
    let mock = Mock::given(method(provider.spec().method)).and(path(route(provider)));
    match endpoint {
        Endpoint::Minting => {
            mock.respond_with(Minter {
                provider,
                minted: Arc::clone(&minted),
            })
            .mount(&server)
            .await
        }
        Endpoint::Refusing => {
            mock.respond_with(ResponseTemplate::new(401).set_body_json(refusal(provider).0))
                .mount(&server)
                .await
        }
    }
    (server, minted)
}

// ---------------------------------------------------------------------------
// The API: axum on 127.0.0.1, recording what it receives.

/// One request the API received.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    authorization: Option<String>,
    id: Option<String>,
}

#[derive(Default)]
struct ApiState {
    /// `Authorization` values answered 401.
    revoked: Mutex<HashSet<String>>,
    /// Answer 401 to every request (a 401 storm: permissions).
    refuse_all: Mutex<bool>,
    /// Where `/moved` redirects (302).
    redirect_to: Mutex<Option<String>>,
    /// Hold the answer to this `Authorization` until released.
    gate: Mutex<Option<Gate>>,
    seen: Mutex<Vec<Seen>>,
}

struct Gate {
    authorization: String,
    arrived: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

struct Api {
    url: String,
    state: Arc<ApiState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(api): State<Arc<ApiState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let _ = axum::body::to_bytes(body, 1 << 20).await;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let authorization = header("authorization");
    api.seen.lock().unwrap().push(Seen {
        path: parts.uri.path().to_owned(),
        authorization: authorization.clone(),
        id: header("x-request-id"),
    });
    if parts.uri.path() == "/moved"
        && let Some(to) = api.redirect_to.lock().unwrap().clone()
    {
        return (StatusCode::FOUND, [(LOCATION, to)]).into_response();
    }
    let gate = {
        let mut gate = api.gate.lock().unwrap();
        match &*gate {
            Some(g) if Some(&g.authorization) == authorization.as_ref() => gate.take(),
            _ => None,
        }
    };
    if let Some(gate) = gate {
        let _ = gate.arrived.send(());
        let _ = gate.release.await;
    }
    let refused = *api.refuse_all.lock().unwrap()
        || authorization
            .as_ref()
            .is_some_and(|a| api.revoked.lock().unwrap().contains(a));
    if refused {
        (StatusCode::UNAUTHORIZED, "unauthorized").into_response()
    } else {
        (StatusCode::OK, "ok").into_response()
    }
}

impl Api {
    async fn start() -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(ApiState::default());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Api { url, state, server }
    }

    fn revoke(&self, authorization: String) {
        self.state.revoked.lock().unwrap().insert(authorization);
    }

    fn refuse_all(&self) {
        *self.state.refuse_all.lock().unwrap() = true;
    }

    /// Holds the answer to `authorization` until the returned sender fires;
    /// the receiver fires once it arrived.
    fn gate(&self, authorization: String) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (arrived, arrival) = oneshot::channel();
        let (release, released) = oneshot::channel();
        *self.state.gate.lock().unwrap() = Some(Gate {
            authorization,
            arrived,
            release: released,
        });
        (arrival, release)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The `Authorization` values received, in order.
    fn authorizations(&self) -> Vec<Option<String>> {
        self.seen().into_iter().map(|s| s.authorization).collect()
    }
}

// ---------------------------------------------------------------------------
// The two integrations behind one `send`.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stack {
    Middleware,
    Layer,
}

/// What a request carries.
#[derive(Clone, Copy)]
enum Body {
    /// A GET without a body.
    None,
    /// A POST with a buffered (clonable) body.
    Buffered,
    /// A POST with a streaming body, which cannot be cloned.
    Streaming,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    location: Option<String>,
}

#[derive(Debug)]
enum Failure {
    Token(TokenError),
    #[allow(dead_code)] // read through Debug, in failure messages
    Other(String),
}

type LayerBody = Either<Full<Bytes>, BoxBody<Bytes, Infallible>>;
type LayerService = BearerService<HyperClient<HttpConnector, LayerBody>, AnySource, ManualClock>;

#[derive(Clone)]
enum Client {
    Middleware(reqwest_middleware::ClientWithMiddleware),
    Layer(Box<LayerService>),
}

const PAYLOAD: &str = "{\"amount\":100}";

impl Client {
    fn new(stack: Stack, bearer: &Bearer<AnySource, ManualClock>) -> Client {
        match stack {
            Stack::Middleware => {
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                Client::Middleware(
                    reqwest_middleware::ClientBuilder::new(http)
                        .with(bearer.clone())
                        .build(),
                )
            }
            Stack::Layer => {
                let http = HyperClient::builder(TokioExecutor::new()).build_http();
                Client::Layer(Box::new(bearer.layer().layer(http)))
            }
        }
    }

    async fn send(
        &self,
        url: &str,
        authorization: Option<&str>,
        body: Body,
        id: Option<usize>,
    ) -> Result<Answer, Failure> {
        match self {
            Client::Middleware(client) => {
                let mut request =
                    match body {
                        Body::None => client.get(url),
                        Body::Buffered => client.post(url).body(PAYLOAD),
                        Body::Streaming => client.post(url).body(reqwest::Body::wrap(Full::new(
                            Bytes::from_static(PAYLOAD.as_bytes()),
                        ))),
                    };
                if let Some(value) = authorization {
                    request = request.header(AUTHORIZATION, value);
                }
                if let Some(id) = id {
                    request = request.header("x-request-id", id.to_string());
                }
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let location = location(response.headers());
                        let _ = response.bytes().await;
                        Ok(Answer { status, location })
                    }
                    Err(reqwest_middleware::Error::Middleware(err)) => {
                        match err.downcast_ref::<TokenError>() {
                            Some(token_error) => Err(Failure::Token(token_error.clone())),
                            None => Err(Failure::Other(err.to_string())),
                        }
                    }
                    Err(err) => Err(Failure::Other(err.to_string())),
                }
            }
            Client::Layer(service) => {
                let (method, body): (_, LayerBody) = match body {
                    Body::None => ("GET", Either::Left(Full::new(Bytes::new()))),
                    Body::Buffered => (
                        "POST",
                        Either::Left(Full::new(Bytes::from_static(PAYLOAD.as_bytes()))),
                    ),
                    Body::Streaming => (
                        "POST",
                        Either::Right(Full::new(Bytes::from_static(PAYLOAD.as_bytes())).boxed()),
                    ),
                };
                let mut request = http::Request::builder().method(method).uri(url);
                if let Some(value) = authorization {
                    request = request.header(AUTHORIZATION, value);
                }
                if let Some(id) = id {
                    request = request.header("x-request-id", id.to_string());
                }
                let request = request.body(body).unwrap();
                let mut service = LayerService::clone(service);
                let result = async {
                    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                    service.call(request).await
                }
                .await;
                match result {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let location = location(response.headers());
                        let _ = response.into_body().collect().await;
                        Ok(Answer { status, location })
                    }
                    Err(BearerError::Token(err)) => Err(Failure::Token(err)),
                    Err(BearerError::Inner(err)) => Err(Failure::Other(err.to_string())),
                }
            }
        }
    }
}

fn location(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(LOCATION)
        .map(|value| value.to_str().unwrap().to_owned())
}

// ---------------------------------------------------------------------------
// One harness per behaviour, stack and provider.

struct Harness {
    provider: Provider,
    _tokens: MockServer,
    minted: Arc<AtomicUsize>,
    clock: ManualClock,
    cache: TokenCache<AnySource, ManualClock>,
    bearer: Bearer<AnySource, ManualClock>,
    client: Client,
    /// The configured origin.
    api: Api,
    /// Another origin on 127.0.0.1 (another port), not configured.
    other: Api,
}

impl Harness {
    /// Drops the harness (and its wiremock servers) with a fresh coop
    /// budget (see `common::stop`).
    async fn stop(self) {
        tokio::task::yield_now().await;
        drop(self);
    }

    async fn start(stack: Stack, provider: Provider, endpoint: Endpoint) -> Harness {
        Self::with_interval(stack, provider, endpoint, Duration::ZERO).await
    }

    async fn with_interval(
        stack: Stack,
        provider: Provider,
        endpoint: Endpoint,
        interval: Duration,
    ) -> Harness {
        let (tokens, minted) = token_endpoint(provider, endpoint).await;
        let (api, other) = (Api::start().await, Api::start().await);
        let clock = ManualClock::new();
        let source = source(provider, &tokens.uri(), quick(1));
        let cache = TokenCache::with_clock(source, CachePolicy::default(), clock.clone());
        let bearer = Bearer::with_clock(cache.clone(), [&api.url], clock.clone())
            .unwrap()
            .invalidation_interval(interval);
        assert_no_canary(&format!("{bearer:?}"));
        let client = Client::new(stack, &bearer);
        Harness {
            provider,
            _tokens: tokens,
            minted,
            clock,
            cache,
            bearer,
            client,
            api,
            other,
        }
    }

    fn minted(&self) -> usize {
        self.minted.load(Ordering::SeqCst)
    }

    /// Fills the cache: token 1.
    async fn warm(&self) {
        self.cache.token().await.unwrap();
        assert_eq!(self.minted(), 1, "{}", self.provider);
    }

    async fn get(&self, url: &str) -> Answer {
        self.client.send(url, None, Body::None, None).await.unwrap()
    }

    fn api_url(&self, path: &str) -> String {
        format!("{}{path}", self.api.url)
    }
}

// ---------------------------------------------------------------------------
// The behaviours.

async fn attaches_the_bearer_only_to_configured_origins(stack: Stack, provider: Provider) {
    let h = Harness::start(stack, provider, Endpoint::Minting).await;
    let url = h.api_url("/payments");
    assert!(h.bearer.covers(&url.parse().unwrap()));
    assert!(!h.bearer.covers(&h.other.url.parse().unwrap()));
    assert_eq!(h.get(&url).await.status, 200);
    assert_eq!(
        h.get(&format!("{}/payments", h.other.url)).await.status,
        200
    );
    // The same host under another name is another origin too.
    let by_name = h.api_url("/payments").replace("127.0.0.1", "localhost");
    assert_eq!(h.get(&by_name).await.status, 200);
    assert_eq!(
        h.api.authorizations(),
        [Some(bearer(1)), None],
        "{provider}"
    );
    assert_eq!(h.other.authorizations(), [None], "{provider}");
}

async fn keeps_an_existing_authorization_header(stack: Stack, provider: Provider) {
    let h = Harness::start(stack, provider, Endpoint::Minting).await;
    let answer = h
        .client
        .send(
            &h.api_url("/payments"),
            Some("Basic dXNlcjpwdw=="),
            Body::Buffered,
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        h.api.authorizations(),
        [Some("Basic dXNlcjpwdw==".to_owned())]
    );
    assert_eq!(h.minted(), 0, "{provider}: a token was fetched for nothing");
}

async fn no_token_means_the_token_error_and_nothing_sent(stack: Stack, provider: Provider) {
    let h = Harness::start(stack, provider, Endpoint::Refusing).await;
    let failure = h
        .client
        .send(&h.api_url("/payments"), None, Body::Buffered, Some(1))
        .await
        .unwrap_err();
    match &failure {
        Failure::Token(TokenError::Rejected {
            provider: p,
            status: 401,
            ..
        }) => {
            assert_eq!(*p, provider)
        }
        other => panic!("{provider}: {other:?}"),
    }
    assert_no_canary(&format!("{failure:?}"));
    assert!(
        h.api.seen().is_empty(),
        "{provider}: sent {:?}",
        h.api.seen()
    );
}

async fn a_401_invalidates_the_sent_token_and_retries_once(stack: Stack, provider: Provider) {
    let h = Harness::start(stack, provider, Endpoint::Minting).await;
    h.warm().await;
    h.api.revoke(bearer(1));
    let answer = h
        .client
        .send(&h.api_url("/payments"), None, Body::Buffered, Some(7))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{provider}");
    assert_eq!(h.api.authorizations(), [Some(bearer(1)), Some(bearer(2))]);
    assert_eq!(h.minted(), 2, "{provider}");
    // The cache now holds the fresh token: the next request uses it.
    assert_eq!(h.get(&h.api_url("/payments")).await.status, 200);
    assert_eq!(h.api.authorizations()[2], Some(bearer(2)));
    assert_eq!(h.minted(), 2);
}

async fn a_second_401_is_returned_as_is(stack: Stack, provider: Provider) {
    let h = Harness::start(stack, provider, Endpoint::Minting).await;
    h.warm().await;
    h.api.refuse_all();
    let answer = h
        .client
        .send(&h.api_url("/payments"), None, Body::Buffered, Some(1))
        .await
        .unwrap();
    assert_eq!(answer.status, 401, "{provider}");
    assert_eq!(h.api.authorizations(), [Some(bearer(1)), Some(bearer(2))]);
    assert_eq!(h.minted(), 2, "{provider}");
}

async fn an_unclonable_body_is_not_retried(stack: Stack, provider: Provider) {
    let h = Harness::start(stack, provider, Endpoint::Minting).await;
    h.warm().await;
    h.api.revoke(bearer(1));
    let answer = h
        .client
        .send(&h.api_url("/upload"), None, Body::Streaming, Some(1))
        .await
        .unwrap();
    assert_eq!(answer.status, 401, "{provider}");
    assert_eq!(
        h.api.authorizations(),
        [Some(bearer(1))],
        "{provider}: retried"
    );
    // The token refused was still dropped: the next request gets a fresh one.
    let next = h
        .client
        .send(&h.api_url("/upload"), None, Body::Streaming, Some(2))
        .await
        .unwrap();
    assert_eq!(next.status, 200, "{provider}");
    assert_eq!(h.api.authorizations(), [Some(bearer(1)), Some(bearer(2))]);
    assert_eq!(h.minted(), 2);
}

async fn a_401_storm_mints_at_most_once_per_interval(stack: Stack, provider: Provider) {
    let interval = Duration::from_secs(60);
    let h = Harness::with_interval(stack, provider, Endpoint::Minting, interval).await;
    h.warm().await;
    h.api.refuse_all();
    let burst = |first: usize| {
        let client = h.client.clone();
        let url = h.api_url("/payments");
        async move {
            let requests = (first..first + 50).map(|id| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    client
                        .send(&url, None, Body::Buffered, Some(id))
                        .await
                        .unwrap()
                        .status
                })
            });
            for status in futures_util::future::join_all(requests).await {
                assert_eq!(status.unwrap(), 401);
            }
        }
    };
    // The first storm invalidates token 1 once; every request is retried
    // once (with token 2, or waiting for it) and refused again.
    burst(0).await;
    assert_eq!(h.minted(), 2, "{provider}");
    // Within the interval, token 2 is refused too: not invalidated, not retried.
    burst(100).await;
    burst(200).await;
    assert_eq!(h.minted(), 2, "{provider}");
    let later: Vec<_> = h
        .api
        .seen()
        .into_iter()
        .filter(|s| s.id.as_deref().is_some_and(|id| id.len() == 3))
        .collect();
    assert_eq!(later.len(), 100, "{provider}: retried within the interval");
    // One interval later, one more invalidation and one more mint.
    h.clock.advance(interval);
    burst(300).await;
    assert_eq!(h.minted(), 3, "{provider}");
}

async fn a_401_after_another_refresh_retries_with_the_newer_token_and_mints_nothing(
    stack: Stack,
    provider: Provider,
) {
    let h = Harness::start(stack, provider, Endpoint::Minting).await;
    h.warm().await;
    let first = h.cache.token().await.unwrap().clone();
    h.api.revoke(bearer(1));
    let (arrived, release) = h.api.gate(bearer(1));
    let request = {
        let (client, url) = (h.client.clone(), h.api_url("/payments"));
        tokio::spawn(async move { client.send(&url, None, Body::Buffered, Some(1)).await })
    };
    // While the API holds its 401, another task refreshes the token.
    arrived.await.unwrap();
    h.cache.invalidate(&first);
    h.cache.token().await.unwrap();
    assert_eq!(h.minted(), 2);
    release.send(()).unwrap();
    let answer = request.await.unwrap().unwrap();
    assert_eq!(answer.status, 200, "{provider}");
    assert_eq!(h.api.authorizations(), [Some(bearer(1)), Some(bearer(2))]);
    assert_eq!(h.minted(), 2, "{provider}: the 401 minted again");
}

async fn a_redirect_to_another_origin_never_carries_the_bearer(stack: Stack, provider: Provider) {
    let h = Harness::start(stack, provider, Endpoint::Minting).await;
    *h.api.state.redirect_to.lock().unwrap() = Some(format!("{}/landing", h.other.url));
    let follow = async || {
        let answer = h.get(&h.api_url("/moved")).await;
        match stack {
            // reqwest follows the redirect itself, below the middleware.
            Stack::Middleware => answer,
            // A hyper client does not: follow it through the same service.
            Stack::Layer => {
                assert_eq!(answer.status, 302);
                h.get(&answer.location.unwrap()).await
            }
        }
    };
    assert_eq!(follow().await.status, 200, "{provider}");
    assert_eq!(h.api.authorizations(), [Some(bearer(1))]);
    assert_eq!(
        h.other.authorizations(),
        [None],
        "{provider}: the bearer went elsewhere"
    );
    assert_eq!(h.other.seen()[0].path, "/landing");
    // The other origin answers 401: not about the token, which it never
    // received: returned as is, no invalidation, no retry.
    *h.other.state.refuse_all.lock().unwrap() = true;
    assert_eq!(follow().await.status, 401, "{provider}");
    assert_eq!(h.api.authorizations(), [Some(bearer(1)), Some(bearer(1))]);
    assert_eq!(h.other.authorizations(), [None, None]);
    assert_eq!(h.minted(), 1, "{provider}");
}

async fn a_thousand_concurrent_requests_rejected_once_mint_once_and_all_succeed(
    stack: Stack,
    provider: Provider,
) {
    const REQUESTS: usize = 1000;
    let h = Harness::start(stack, provider, Endpoint::Minting).await;
    h.warm().await;
    h.api.revoke(bearer(1));
    let requests = (0..REQUESTS).map(|id| {
        let (client, url) = (h.client.clone(), h.api_url("/payments"));
        tokio::spawn(async move { client.send(&url, None, Body::Buffered, Some(id)).await })
    });
    for answer in futures_util::future::join_all(requests).await {
        assert_eq!(answer.unwrap().unwrap().status, 200, "{provider}");
    }
    assert_eq!(h.minted(), 2, "{provider}: one mint after the rejection");
    let mut per_request = vec![Vec::new(); REQUESTS];
    for seen in h.api.seen() {
        let id: usize = seen.id.unwrap().parse().unwrap();
        per_request[id].push(seen.authorization.unwrap());
    }
    for (id, sent) in per_request.iter().enumerate() {
        let ok = sent.as_slice() == [bearer(2)] || sent.as_slice() == [bearer(1), bearer(2)];
        assert!(ok, "{provider}: request {id} sent {}", sent.len());
    }
    h.stop().await;
}

/// The table: each behaviour is a test for each integration, and all of
/// them run once more under a TRACE capture.
macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        mod middleware {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::capture();
                    for provider in paytokens::Provider::all() {
                        super::$name(super::Stack::Middleware, provider).await;
                    }
                    super::assert_nothing_leaked();
                }
            )*
        }

        mod layer {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::capture();
                    for provider in paytokens::Provider::all() {
                        super::$name(super::Stack::Layer, provider).await;
                    }
                    super::assert_nothing_leaked();
                }
            )*
        }

        async fn every_behaviour(stack: Stack, provider: Provider) {
            $( $name(stack, provider).await; )*
        }
    };
}

behaviours!(
    attaches_the_bearer_only_to_configured_origins,
    keeps_an_existing_authorization_header,
    no_token_means_the_token_error_and_nothing_sent,
    a_401_invalidates_the_sent_token_and_retries_once,
    a_second_401_is_returned_as_is,
    an_unclonable_body_is_not_retried,
    a_401_storm_mints_at_most_once_per_interval,
    a_401_after_another_refresh_retries_with_the_newer_token_and_mints_nothing,
    a_redirect_to_another_origin_never_carries_the_bearer,
    a_thousand_concurrent_requests_rejected_once_mint_once_and_all_succeed,
);

/// The capture works: every behaviour, both integrations, one provider,
/// and each decision of the policy is in the TRACE output, with no canary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_traces_its_decisions_and_never_a_token_or_secret() {
    capture();
    let provider = Provider::all().next().unwrap();
    for stack in [Stack::Middleware, Stack::Layer] {
        every_behaviour(stack, provider).await;
    }
    let decisions = crate::trace::decisions();
    for decision in [
        "invalidated",
        "retry_with_newer",
        "storm",
        "unclonable_body",
        "second_401",
        "other_origin",
    ] {
        assert!(
            decisions.contains(decision),
            "no {decision} decision traced: {decisions:?}"
        );
    }
    assert_nothing_leaked();
}
