//! The token cache against real HTTP (wiremock on 127.0.0.1), with upstream
//! requests counted by the server. Time crosses token lifetimes through a
//! `ManualClock`; no test sleeps through a lifetime.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use paytokens::autopay::Autopay;
use paytokens::pyng_billing::{PyngBilling, Scope};
use paytokens::{
    CachePolicy, Config, Credentials, ExposeSecret, ManualClock, Provider, Source, TokenCache,
    TokenError, TokenSource,
};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers every request with a new token `token-N` valid for `lifetime` s.
struct Minter {
    minted: AtomicUsize,
    lifetime: u64,
    delay: Duration,
}

impl Respond for Minter {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
        let body = success(
            Provider::of::<Autopay>(),
            &format!("token-{n}"),
            "Bearer",
            json!(self.lifetime),
        );
        ResponseTemplate::new(200)
            .set_body_json(body)
            .set_delay(self.delay)
    }
}

async fn minting_server(lifetime: u64, delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    let minter = Minter {
        minted: AtomicUsize::new(0),
        lifetime,
        delay,
    };
    Mock::given(method("POST"))
        .respond_with(minter)
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

/// A policy without jitter, so refresh times are exact.
fn exact() -> CachePolicy {
    CachePolicy {
        jitter: 0.0,
        ..CachePolicy::default()
    }
}

fn cache_for(
    server: &MockServer,
    policy: CachePolicy,
    clock: &ManualClock,
) -> TokenCache<Source<Autopay>, ManualClock> {
    let config = Config::new(Credentials::new(CLIENT_ID, CANARY_SECRET))
        .base_url(server.uri())
        .http(quick(1));
    let source = Source::<Autopay>::new(config).unwrap();
    TokenCache::with_clock(source, policy, clock.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_callers_on_a_cold_cache_cause_one_request() {
    let server = minting_server(3600, Duration::from_millis(100)).await;
    let cache = cache_for(&server, exact(), &ManualClock::new());
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap().unwrap());
    }
    assert_eq!(requests(&server).await, 1);
    assert!(tokens.iter().all(|t| std::ptr::eq(&**t, &*tokens[0])));
    assert_eq!(tokens[0].secret().expose_secret(), "token-1");
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_load_refreshes_exactly_once_per_lifetime() {
    let server = minting_server(900, Duration::ZERO).await;
    let clock = ManualClock::new();
    let cache = cache_for(&server, exact(), &clock);
    // Three lifetimes of 900 s in 10 s steps, 20 concurrent callers per step.
    for _ in 0..270 {
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.token().await.unwrap() })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        clock.advance(Duration::from_secs(10));
    }
    // 2 700 s of load over 900 s tokens refreshed 90 s early (at 810 s):
    // the first mint plus one refresh each at 810, 1620 and 2430 s.
    assert_eq!(requests(&server).await, 4);
    stop(server).await;
}

#[tokio::test]
async fn refresh_failing_with_503_serves_the_valid_token_then_errors_then_recovers() {
    let server = MockServer::start().await;
    let clock = ManualClock::new();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(good(Provider::of::<Autopay>())))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let cache = cache_for(&server, exact(), &clock);
    let first = cache.token().await.unwrap();

    // Into the refresh window (3600 s token, 300 s margin): every refresh
    // fails, every caller still gets the valid token.
    clock.advance(Duration::from_secs(3400));
    for _ in 0..50 {
        let token = cache.token().await.unwrap();
        assert!(std::ptr::eq(&*token, &*first));
        clock.advance(Duration::from_secs(2));
    }
    let failed = requests(&server).await - 1;
    assert!(failed >= 1, "a refresh was attempted");
    assert!(failed <= 10, "failed refreshes back off: {failed} in 100 s");

    // Past expiry: callers get the transient error.
    clock.advance(Duration::from_secs(200));
    let err = cache.token().await.unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::Transient {
                status: Some(503),
                ..
            }
        ),
        "{err:?}"
    );
    assert_result_leaks_nothing(&Err::<paytokens::AccessToken, _>(err));

    // Recovery: the next attempt after the backoff mints exactly once.
    server.reset().await;
    let ok = minting_server_on(&server, 3600).await;
    clock.advance(Duration::from_secs(60));
    let mut recovered = Vec::new();
    for _ in 0..20 {
        recovered.push(cache.token().await.unwrap());
    }
    assert_eq!(ok.load(Ordering::SeqCst), 1);
    assert!(recovered.iter().all(|t| std::ptr::eq(&**t, &*recovered[0])));
}

/// Mounts a `Minter` on an existing server; returns its mint counter.
async fn minting_server_on(server: &MockServer, lifetime: u64) -> Arc<AtomicUsize> {
    struct Counted(Arc<AtomicUsize>, u64);
    impl Respond for Counted {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            let body = success(
                Provider::of::<Autopay>(),
                &format!("fresh-{n}"),
                "Bearer",
                json!(self.1),
            );
            ResponseTemplate::new(200).set_body_json(body)
        }
    }
    let count = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .respond_with(Counted(Arc::clone(&count), lifetime))
        .mount(server)
        .await;
    count
}

#[tokio::test]
async fn invalid_client_on_refresh_is_returned_at_once_without_a_retry_storm() {
    let server = MockServer::start().await;
    let clock = ManualClock::new();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(good(Provider::of::<Autopay>())))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let (refusal_body, _, _) = refusal(Provider::of::<Autopay>());
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(refusal_body))
        .mount(&server)
        .await;
    let cache = cache_for(&server, exact(), &clock);
    cache.token().await.unwrap();
    clock.advance(Duration::from_secs(3400));
    let err = cache.token().await.unwrap_err();
    assert!(
        matches!(err, TokenError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    // 500 more calls over the 50 s that follow: none reaches the provider.
    for _ in 0..500 {
        let _ = cache.token().await;
        clock.advance(Duration::from_millis(100));
    }
    assert_eq!(requests(&server).await, 2);
    // Past expiry (3 650 s) the rejection is what callers get.
    clock.advance(Duration::from_secs(200));
    let after_expiry = cache.token().await.unwrap_err();
    assert!(matches!(after_expiry, TokenError::Rejected { .. }));
    // 1 mint + 1 refused refresh; the 60 s cooldown allowed at most one more.
    assert!(
        requests(&server).await <= 3,
        "{} requests",
        requests(&server).await
    );
    stop(server).await;
}

#[tokio::test]
async fn past_the_mint_budget_no_request_is_sent() {
    let server = minting_server(3600, Duration::ZERO).await;
    let clock = ManualClock::new();
    let policy = CachePolicy {
        max_mints: 2,
        ..exact()
    };
    let cache = cache_for(&server, policy, &clock);
    let first = cache.token().await.unwrap();
    cache.invalidate(&first);
    let second = cache.token().await.unwrap();
    cache.invalidate(&second);
    let err = cache.token().await.unwrap_err();
    match &err {
        TokenError::MintBudgetExhausted {
            max_mints: 2,
            retry_after,
            ..
        } => {
            assert!(*retry_after <= Duration::from_secs(3600));
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(requests(&server).await, 2);
    // After the window the budget frees up again.
    clock.advance(Duration::from_secs(3601));
    cache.token().await.unwrap();
    assert_eq!(requests(&server).await, 3);
}

#[tokio::test]
async fn caches_of_one_credential_share_its_budget() {
    let server = minting_server(3600, Duration::ZERO).await;
    let clock = ManualClock::new();
    let policy = CachePolicy {
        max_mints: 1,
        ..exact()
    };
    let a = cache_for(&server, policy.clone(), &clock);
    let b = cache_for(&server, policy, &clock);
    a.token().await.unwrap();
    let err = b.token().await.unwrap_err();
    assert!(
        matches!(err, TokenError::MintBudgetExhausted { .. }),
        "{err:?}"
    );
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn different_scopes_get_different_tokens() {
    let server = minting_server(3600, Duration::ZERO).await;
    let source = |scopes: Vec<Scope>| {
        let config = Config::new(Credentials::new(CLIENT_ID, CANARY_SECRET))
            .base_url(server.uri())
            .scopes(scopes)
            .http(quick(1));
        Source::<PyngBilling>::new(config).unwrap()
    };
    let read = source(vec![Scope::BillingCustomersRead]);
    let submit = source(vec![Scope::BillingBatchesSubmit]);
    let both = source(vec![
        Scope::BillingBatchesSubmit,
        Scope::BillingCustomersRead,
    ]);
    let reordered = source(vec![
        Scope::BillingCustomersRead,
        Scope::BillingBatchesSubmit,
    ]);
    assert_ne!(read.cache_key(), submit.cache_key());
    assert_ne!(read.cache_key(), both.cache_key());
    assert_eq!(both.cache_key(), reordered.cache_key());
    let read = TokenCache::new(read);
    let submit = TokenCache::new(submit);
    let a = read.token().await.unwrap();
    let b = submit.token().await.unwrap();
    assert_ne!(a.secret().expose_secret(), b.secret().expose_secret());
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_invalidations_of_one_token_cause_one_refresh() {
    let server = minting_server(3600, Duration::from_millis(20)).await;
    let cache = cache_for(&server, exact(), &ManualClock::new());
    let stale = Arc::new(cache.token().await.unwrap());
    let callers: Vec<_> = (0..200)
        .map(|_| {
            let cache = cache.clone();
            let stale = Arc::clone(&stale);
            tokio::spawn(async move {
                cache.invalidate(stale.as_ref());
                cache.token().await.unwrap()
            })
        })
        .collect();
    for caller in callers {
        let token = caller.await.unwrap();
        assert_eq!(token.secret().expose_secret(), "token-2");
    }
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn background_refresh_mints_before_callers_need_it() {
    let server = minting_server(3600, Duration::ZERO).await;
    let clock = ManualClock::new();
    let policy = CachePolicy {
        background_refresh: true,
        ..exact()
    };
    let cache = cache_for(&server, policy, &clock);
    assert_eq!(
        cache.token().await.unwrap().secret().expose_secret(),
        "token-1"
    );
    // Reach the refresh time (3300 s) without calling the cache.
    clock.advance(Duration::from_secs(3301));
    tokio::time::timeout(Duration::from_secs(10), async {
        while requests(&server).await < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the background task refreshed");
    // The refreshed token is served as a hit, with no further request.
    let mut token = cache.token().await.unwrap();
    for _ in 0..100 {
        if token.secret().expose_secret() == "token-2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        token = cache.token().await.unwrap();
    }
    assert_eq!(token.secret().expose_secret(), "token-2");
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_cancel_the_shared_fetch() {
    let server = minting_server(3600, Duration::from_millis(200)).await;
    let cache = cache_for(&server, exact(), &ManualClock::new());
    let impatient = tokio::time::timeout(Duration::from_millis(20), cache.token()).await;
    assert!(impatient.is_err(), "gave up before the answer");
    let token = cache.token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "token-1");
    assert_eq!(requests(&server).await, 1);
}

#[test]
fn different_header_values_get_different_cache_keys() {
    let mut checked = 0;
    for provider in paytokens::Provider::all() {
        for param in provider.spec().headers {
            let source = |name: &str, value: &str| {
                let mut config = config(
                    provider,
                    "http://127.0.0.1:9",
                    Credentials::new(CLIENT_ID, CANARY_SECRET),
                    quick(1),
                );
                for (n, v) in &mut config.headers {
                    if n == param.name {
                        (*n, *v) = (name.to_owned(), value.to_owned());
                    }
                }
                provider.source(config).unwrap()
            };
            let a = source(param.name, "partner-a");
            let b = source(param.name, "partner-b");
            // Header names are case-insensitive: the key holds the spec's.
            let a_lower = source(&param.name.to_ascii_lowercase(), "partner-a");
            assert_ne!(a.cache_key(), b.cache_key(), "{provider} {}", param.name);
            assert_eq!(a.cache_key(), a_lower.cache_key(), "{provider}");
            assert!(
                a.cache_key()
                    .headers
                    .contains(&(param.name.to_owned(), "partner-a".to_owned())),
                "{provider}: {:?}",
                a.cache_key()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no spec declares a header parameter");
}
