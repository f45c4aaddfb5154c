//! Cost of a cache hit, against two baselines measured in the same run:
//! `Instant::now()` alone (the least a hit must do to know the token is
//! fresh) and a straightforward `Mutex<Option<Arc<AccessToken>>>` cache.
//! Targets: hit <= 2x `Instant::now()`; with 2 threads, at least 2x faster
//! than the mutex cache.
//!
//! `cargo bench --bench cache`

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use paytokens::autopay::Autopay;
use paytokens::{AccessToken, Config, Credentials, Source, TokenCache, TokenSource};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The straightforward alternative: a lock around the current token.
struct MutexCache(Mutex<Option<Arc<AccessToken>>>);

impl MutexCache {
    fn token(&self) -> Option<Arc<AccessToken>> {
        let guard = self.0.lock().unwrap();
        let now = tokio::time::Instant::now();
        guard.as_ref().filter(|t| !t.is_expired(now)).cloned()
    }
}

/// Runs `op` `iters` times on each of `threads` threads; wall time / iters.
fn on_threads(threads: usize, iters: u64, op: impl Fn() + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..iters {
                    op();
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, cache) = runtime.block_on(async {
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "bench-token", "token_type": "Bearer",
                "expires_in": 86400, "scope": "customer_club"
            })))
            .mount(&server)
            .await;
        let config =
            Config::new(Credentials::new("bench-client", "bench-secret")).base_url(server.uri());
        let cache = TokenCache::new(Source::<Autopay>::new(config).unwrap());
        cache.token().await.unwrap();
        (server, cache)
    });
    let hit = || black_box(cache.cached().unwrap());
    let hit_async = || black_box(cache.token().now_or_never().unwrap().unwrap());
    let owned = runtime.block_on(async {
        // The same token, owned, for the mutex baseline.
        let config =
            Config::new(Credentials::new("bench-baseline", "bench-secret")).base_url(server.uri());
        Source::<Autopay>::new(config)
            .unwrap()
            .fetch()
            .await
            .unwrap()
    });
    let mutex = MutexCache(Mutex::new(Some(Arc::new(owned))));
    let mutex_hit = || black_box(mutex.token().unwrap());
    let now = || black_box(Instant::now());

    let mut one = c.benchmark_group("hit_1_thread");
    one.bench_function("baseline_instant_now", |b| b.iter(now));
    one.bench_function("baseline_mutex_cache", |b| b.iter(mutex_hit));
    one.bench_function("token_cache", |b| b.iter(hit));
    one.bench_function("token_cache_async", |b| b.iter(hit_async));
    one.finish();

    let mut two = c.benchmark_group("hit_2_threads");
    two.bench_function("baseline_instant_now", |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, || {
                now();
            })
        })
    });
    two.bench_function("baseline_mutex_cache", |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, || {
                mutex_hit();
            })
        })
    });
    two.bench_function("token_cache", |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, || {
                hit();
            })
        })
    });
    two.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
