//! One full token fetch through the Autopay adapter and its generated client,
//! against a hand-written reqwest + serde_json request of the same endpoint,
//! both against the same wiremock server on 127.0.0.1 in the same run.
//! Target: adapter / hand-written at most 1.10.
//!
//! `cargo bench --bench fetch`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use paytokens::autopay::{Autopay, AutopayConfig};
use paytokens::{Credentials, TokenSource};
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
    let server = runtime.block_on(async {
        let server = MockServer::start().await;
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
    });
    let mut config = AutopayConfig::new(Credentials::new("bench-client", "bench-secret"));
    config.base_url = server.uri();
    let adapter = Autopay::new(config).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("{}/oauth/token", server.uri());

    let mut group = c.benchmark_group("autopay_fetch");
    group.bench_function("baseline_hand_written_reqwest", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(hand_written(&http, &url).await) })
    });
    group.bench_function("adapter", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(adapter.fetch().await.unwrap()) })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
