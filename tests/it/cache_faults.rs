//! Faults during refresh, against the sandbox: 503 storms, timeouts and
//! connection resets while a valid token is cached. Callers keep getting it,
//! requests never exceed the mint budget, and after recovery exactly one
//! mint replaces it.

use crate::common;

use std::time::Duration;

use common::quick;
use paytokens::autopay::Autopay;
use paytokens::sandbox::{Fault, Sandbox};
use paytokens::{CachePolicy, Config, ManualClock, Provider, Source, TokenCache};

async fn fault_during_refresh(fault: Fault) {
    let sandbox = Sandbox::start().await.unwrap();
    let clock = ManualClock::new();
    let autopay = Provider::of::<Autopay>();
    let config = Config::new(sandbox.credentials(autopay))
        .base_url(sandbox.base_url(autopay))
        .http(quick(2));
    let policy = CachePolicy {
        jitter: 0.0,
        ..CachePolicy::default()
    };
    let budget = policy.max_mints as usize;
    let cache = TokenCache::with_clock(
        Source::<Autopay>::new(config).unwrap(),
        policy,
        clock.clone(),
    );
    let first = cache.token().await.unwrap();
    let first_secret = paytokens::ExposeSecret::expose_secret(first.secret()).to_owned();
    drop(first);

    // A 24 h token refreshes 5 min early; the provider fails from then on.
    sandbox.inject(autopay, fault.clone(), 10_000);
    clock.advance(Duration::from_secs(86_400 - 300));
    for _ in 0..500 {
        // Four minutes of callers, one every 0.5 s, all before expiry (the
        // test clock also runs with real time, which timeouts consume).
        let token = cache.token().await.unwrap();
        assert_eq!(
            paytokens::ExposeSecret::expose_secret(token.secret()),
            first_secret,
            "{fault:?}"
        );
        clock.advance(Duration::from_millis(490));
    }
    let during = sandbox.requests(autopay);
    assert!(during > 1, "{fault:?}: the refresh was attempted");
    // Each mint is one fetch of at most 2 attempts (quick(2)).
    assert!(
        during <= budget * 2,
        "{fault:?}: {during} requests exceed the budget"
    );
    assert_eq!(sandbox.mints(autopay), 1);

    // The provider recovers: the next attempt mints exactly once.
    sandbox.clear_faults();
    clock.advance(Duration::from_secs(31)); // past the longest backoff, before expiry
    for _ in 0..50 {
        cache.token().await.unwrap();
    }
    assert_eq!(sandbox.mints(autopay), 2, "{fault:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_storm_during_refresh_keeps_serving_the_valid_token() {
    fault_during_refresh(Fault::Status(503)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_during_refresh_keep_serving_the_valid_token() {
    fault_during_refresh(Fault::Latency(Duration::from_secs(2))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_during_refresh_keep_serving_the_valid_token() {
    fault_during_refresh(Fault::DropConnection).await;
}
