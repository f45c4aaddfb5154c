//! One full token fetch through the Autopay adapter and its generated client,
//! against a hand-written reqwest + serde_json request of the same endpoint,
//! each against its own wiremock server on 127.0.0.1 in the same run, plus
//! the generated client alone (no adapter) to show where time goes.
//! Target: adapter / hand-written at most 1.10.
//!
//! `cargo bench --bench fetch`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use paytokens::autopay::Autopay;
use paytokens::{Config, Credentials, Source, TokenSource};
use serde::Deserialize;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What the hand-written baseline decodes and checks, like the adapter does.
#[derive(Deserialize)]
struct Token {
    access_token: String,
    token_type: String,
    expires_in: i64,
    #[allow(dead_code)]
    scope: Option<String>,
}

async fn hand_written(http: &reqwest::Client, url: &str) -> Duration {
    let body = json!({
        "client_id": "bench-client",
        "client_secret": "bench-secret",
        "audience": "https://api.autopay.io",
        "grant_type": "client_credentials",
    });
    let response = http.post(url).json(&body).send().await.unwrap();
    assert!(response.status().is_success());
    let token: Token = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(!token.access_token.is_empty() && token.token_type.eq_ignore_ascii_case("bearer"));
    Duration::from_secs(token.expires_in as u64)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // One server per variant, recording off: wiremock slows down over
    // hundreds of thousands of requests, which would tax whichever variant
    // runs last.
    let serve = || {
        runtime.block_on(async {
            let server = MockServer::builder()
                .disable_request_recording()
                .start()
                .await;
            Mock::given(method("POST"))
                .and(path("/oauth/token"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": "exxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxQ",
                    "scope": "customer_club",
                    "expires_in": 86400,
                    "token_type": "Bearer"
                })))
                .mount(&server)
                .await;
            server
        })
    };
    let (server, baseline_server, generated_server) = (serve(), serve(), serve());
    let config =
        Config::new(Credentials::new("bench-client", "bench-secret")).base_url(server.uri());
    let adapter = Source::<Autopay>::new(config).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("{}/oauth/token", baseline_server.uri());
    let generated = |http: reqwest::Client| {
        let base = generated_server.uri();
        async move {
            let client = autopay_client::Client::new_with_client(
                &base,
                http,
                autopay_client::ResponseGuard::new(65536),
            );
            let body = autopay_client::types::TokenRequest {
                client_id: "bench-client".into(),
                client_secret: autopay_client::Password::new("bench-secret"),
                audience: Default::default(),
                grant_type: Default::default(),
            };
            client.request_token(&body).await.unwrap().into_inner()
        }
    };

    // Interleaved: every iteration runs all three, so that drift over the
    // run (seen here: later groups ran 40 % slower whatever they measured)
    // hits each the same. Criterion times the adapter; the paired totals
    // give the ratios, printed at the end.
    let totals = std::cell::Cell::new([Duration::ZERO; 3]);
    let mut group = c.benchmark_group("autopay_fetch");
    group.bench_function("adapter_interleaved", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut spent = totals.get();
                let mut adapter_time = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    black_box(adapter.fetch().await.unwrap());
                    let elapsed = start.elapsed();
                    adapter_time += elapsed;
                    spent[0] += elapsed;
                    let start = Instant::now();
                    black_box(generated(http.clone()).await);
                    spent[1] += start.elapsed();
                    let start = Instant::now();
                    black_box(hand_written(&http, &url).await);
                    spent[2] += start.elapsed();
                }
                totals.set(spent);
                adapter_time
            })
        })
    });
    group.finish();
    let [adapter_total, generated_total, baseline_total] = totals.get();
    let ratio = |t: Duration| t.as_secs_f64() / baseline_total.as_secs_f64();
    println!(
        "autopay_fetch paired ratios against hand-written reqwest: adapter {:.3}, \
         generated client alone {:.3}",
        ratio(adapter_total),
        ratio(generated_total)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
