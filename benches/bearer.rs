//! One API request through `Bearer` (warm cache), against the same request
//! with the header set by hand, to the same wiremock server on 127.0.0.1,
//! interleaved within each iteration (see benches/fetch.rs for why):
//!
//! - the reqwest-middleware `Middleware` (`ClientWithMiddleware`) against a
//!   plain `reqwest::Client` (the same one, sharing its pool) with the
//!   `Authorization` header inserted by hand. Target: ratio <= 1.03.
//!   Also: reqwest-middleware's `ClientWithMiddleware` with no middleware
//!   and the header by hand, to show what the wrapper alone costs.
//! - the tower layer over a `hyper_util` legacy client against the same
//!   client called directly with the header inserted by hand.
//!
//! The paired ratios are printed at the end.
//!
//! `cargo bench --bench bearer`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use paytokens::autopay::Autopay;
use paytokens::{Bearer, Config, Credentials, Source, TokenCache};
use serde_json::json;
use tower::{Layer, Service};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (tokens, api) = runtime.block_on(async {
        let tokens = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "exxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxQ",
                "expires_in": 86400,
                "token_type": "Bearer"
            })))
            .mount(&tokens)
            .await;
        // Recording off: wiremock slows down over hundreds of thousands of
        // requests.
        let api = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(method("GET"))
            .and(path("/payments"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"payments\":[]}"))
            .mount(&api)
            .await;
        (tokens, api)
    });
    let config =
        Config::new(Credentials::new("bench-client", "bench-secret")).base_url(tokens.uri());
    let cache = TokenCache::new(Source::<Autopay>::new(config).unwrap());
    let bearer = Bearer::new(cache.clone(), [api.uri()]).unwrap();
    // Warm: the token by hand is the one the middleware attaches.
    let header = runtime
        .block_on(cache.token())
        .unwrap()
        .authorization_header();
    let url = format!("{}/payments", api.uri());

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let middleware = reqwest_middleware::ClientBuilder::new(http.clone())
        .with(bearer.clone())
        .build();
    let bare = reqwest_middleware::ClientBuilder::new(http.clone()).build();
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layered = bearer.layer().layer(hyper.clone());
    let request = |with_header: bool| {
        let mut request = http::Request::get(&url);
        if with_header {
            request = request.header(AUTHORIZATION, header.clone());
        }
        request.body(Full::new(Bytes::new())).unwrap()
    };

    // Each iteration runs all five, in rotating order (whichever runs first
    // after the hyper pair pays a little more, as does the first of that
    // pair): criterion times the middleware, the paired totals give the
    // ratios.
    let totals = std::cell::Cell::new([Duration::ZERO; 5]);
    let mut group = c.benchmark_group("bearer");
    group.bench_function("middleware_interleaved", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut spent = totals.get();
                let mut measured = Duration::ZERO;
                for i in 0..iters {
                    let timed = async |which: usize| {
                        let start = Instant::now();
                        match which {
                            0 => {
                                let response = middleware.get(&url).send().await.unwrap();
                                assert!(response.status().is_success());
                                black_box(response.bytes().await.unwrap());
                            }
                            1 => {
                                let response = http
                                    .get(&url)
                                    .header(AUTHORIZATION, header.clone())
                                    .send()
                                    .await
                                    .unwrap();
                                assert!(response.status().is_success());
                                black_box(response.bytes().await.unwrap());
                            }
                            2 => {
                                let mut service = layered.clone();
                                std::future::poll_fn(|cx| service.poll_ready(cx))
                                    .await
                                    .unwrap();
                                let response = service.call(request(false)).await.unwrap();
                                assert!(response.status().is_success());
                                black_box(response.into_body().collect().await.unwrap());
                            }
                            4 => {
                                let response = bare
                                    .get(&url)
                                    .header(AUTHORIZATION, header.clone())
                                    .send()
                                    .await
                                    .unwrap();
                                assert!(response.status().is_success());
                                black_box(response.bytes().await.unwrap());
                            }
                            _ => {
                                let response = hyper.request(request(true)).await.unwrap();
                                assert!(response.status().is_success());
                                black_box(response.into_body().collect().await.unwrap());
                            }
                        }
                        start.elapsed()
                    };
                    // Each reqwest variant first as often as the others.
                    let order = match i % 6 {
                        0 => [0, 1, 4, 2, 3],
                        1 => [1, 4, 0, 3, 2],
                        2 => [4, 0, 1, 2, 3],
                        3 => [0, 4, 1, 3, 2],
                        4 => [4, 1, 0, 2, 3],
                        _ => [1, 0, 4, 3, 2],
                    };
                    for which in order {
                        let elapsed = timed(which).await;
                        spent[which] += elapsed;
                        if which == 0 {
                            measured += elapsed;
                        }
                    }
                }
                totals.set(spent);
                measured
            })
        })
    });
    group.finish();
    let [
        middleware_total,
        reqwest_total,
        layer_total,
        hyper_total,
        bare_total,
    ] = totals.get();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "bearer paired ratios: middleware / reqwest with the header by hand {:.3} (target <= \
         1.03), of which reqwest-middleware's own client (no middleware) {:.3}; layer / hyper \
         client with the header by hand {:.3}",
        ratio(middleware_total, reqwest_total),
        ratio(bare_total, reqwest_total),
        ratio(layer_total, hyper_total)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
