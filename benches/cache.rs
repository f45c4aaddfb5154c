//! Cost of a cache hit, against two baselines measured in the same run:
//! `Instant::now()` alone (the least a hit must do to know the token is
//! fresh) and a straightforward `Mutex<Option<Arc<AccessToken>>>` cache.
//! Targets: hit <= 2x `Instant::now()`; with 2 threads, at least 2x faster
//! than the mutex cache.
//!
//! And the hit with a metrics recorder installed (metrics-util's
//! `DebuggingRecorder`, the thread's local recorder) against the same hit
//! with none, interleaved in blocks of hits so that drift hits both alike;
//! the paired ratio is printed at the end. Target: <= 1.05 (the hit path
//! touches no metric).
//!
//! And the hit of a cache with a Redis store configured (a redis-server,
//! then a 3-primary, 3-replica Redis Cluster, that the bench starts on free
//! ports) against the plain cache's, interleaved the same way. Target: <= 1.05 (hits never touch the store).
//!
//! `cargo bench --bench cache`

use std::cell::Cell;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use metrics_util::debugging::DebuggingRecorder;
use paytokens::autopay::Autopay;
use paytokens::{
    AccessToken, CachePolicy, Config, Credentials, Source, TokenCache, TokenSource, TokenStore,
};

#[path = "../tests/common/redis_server.rs"]
mod redis_server;
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

    // A recorder installed vs none. First, proof that the recorder is the
    // one the cache reports to (an invalidation counts on the caller's
    // thread), then the cache is warm again.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || cache.invalidate(&cache.cached().unwrap()));
    assert_eq!(
        snapshotter.snapshot().into_vec().len(),
        1,
        "the recorder sees the cache"
    );
    runtime.block_on(cache.token()).unwrap();
    let ratio = interleaved(
        c,
        "hit_1_thread_metrics",
        "token_cache_recorder_installed_interleaved",
        |n| {
            metrics::with_local_recorder(&recorder, || {
                for _ in 0..n {
                    hit();
                }
            })
        },
        |n| {
            for _ in 0..n {
                hit();
            }
        },
    );
    println!("hit_1_thread paired ratio, recorder installed / none: {ratio:.3} (target <= 1.05)");
    assert!(
        snapshotter
            .snapshot()
            .into_vec()
            .iter()
            .all(|(_, _, _, value)| matches!(
                value,
                metrics_util::debugging::DebugValue::Counter(0)
            )),
        "hits recorded a metric"
    );

    // The hit with a Redis store configured vs the plain cache: the store
    // is read only on a miss, so the hit path is the same. One server, then
    // a Redis Cluster (3 primaries, 3 replicas).
    let redis = redis_server::RedisServer::start();
    let cluster = redis_server::RedisCluster::start();
    for (what, name, url) in [
        ("Redis store", "redis_store", redis.url()),
        ("Redis Cluster store", "redis_cluster_store", cluster.url()),
    ] {
        let stored = runtime.block_on(async {
            let config = Config::new(Credentials::new(format!("bench-{name}"), "bench-secret"))
                .base_url(server.uri());
            let store = TokenStore::redis(&url).unwrap();
            let cache = TokenCache::with_store(
                Source::<Autopay>::new(config).unwrap(),
                CachePolicy::default(),
                store,
            )
            .unwrap();
            cache.token().await.unwrap();
            cache
        });
        let stored_hit = || black_box(stored.cached().unwrap());
        let ratio = interleaved(
            c,
            &format!("hit_1_thread_{name}"),
            &format!("token_cache_{name}_interleaved"),
            |n| {
                for _ in 0..n {
                    stored_hit();
                }
            },
            |n| {
                for _ in 0..n {
                    hit();
                }
            },
        );
        println!(
            "hit_1_thread paired ratio, {what} configured / none: {ratio:.3} (target <= 1.05)"
        );
    }
}

/// Benchmarks `measured` (run `n` hits) as `group/name`, interleaved with
/// `baseline` in blocks of hits (alternating which runs first) so that
/// drift hits both alike; returns the paired ratio measured / baseline.
fn interleaved(
    c: &mut Criterion,
    group: &str,
    name: &str,
    measured: impl Fn(u64),
    baseline: impl Fn(u64),
) -> f64 {
    const BLOCK: u64 = 1000;
    let totals = Cell::new([Duration::ZERO; 2]);
    let time = |run: &dyn Fn(u64), n: u64| {
        let start = Instant::now();
        run(n);
        start.elapsed()
    };
    let mut benchmarks = c.benchmark_group(group);
    benchmarks.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let [mut with, mut without] = totals.get();
            let mut spent = Duration::ZERO;
            let mut left = iters;
            let mut block = 0u64;
            while left > 0 {
                let n = left.min(BLOCK);
                left -= n;
                block += 1;
                let (m, b) = if block.is_multiple_of(2) {
                    let m = time(&measured, n);
                    (m, time(&baseline, n))
                } else {
                    let b = time(&baseline, n);
                    (time(&measured, n), b)
                };
                spent += m;
                with += m;
                without += b;
            }
            totals.set([with, without]);
            spent
        })
    });
    benchmarks.finish();
    let [with, without] = totals.get();
    with.as_secs_f64() / without.as_secs_f64()
}

criterion_group!(benches, bench);
criterion_main!(benches);
