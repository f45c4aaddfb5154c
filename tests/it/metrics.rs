//! The cache's metrics (through the `metrics` facade) and the
//! `token_request` spans around each attempt, against the sandbox on
//! 127.0.0.1 for every registered provider: each event's metric with its
//! values and labels, nothing on a hit, and no client id, secret or token in
//! any key, label, value or traced line.
//!
//! Each test records into a `DebuggingRecorder` set as the thread's local
//! recorder, on a current-thread runtime (the `#[tokio::test]` default): the
//! cache's fetch tasks run on the same thread, and tests running in
//! parallel do not see each other's metrics. Tracing goes the same way:
//! the binary's one TRACE capture (`crate::trace`) writes each thread's
//! output to that thread's buffer.

use crate::common;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{CANARY_SECRET, assert_no_canary, quick};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use paytokens::sandbox::{Fault, Sandbox, SandboxClient};
use paytokens::{
    AnySource, CachePolicy, Credentials, ExposeSecret, HttpOptions, Provider, TokenCache,
    TokenError,
};

const MINTS: &str = "paytokens_mints_total";
const FAILURES: &str = "paytokens_refresh_failures_total";
const DURATION: &str = "paytokens_refresh_duration_seconds";
const BUDGET: &str = "paytokens_mint_budget_remaining";
const EXPIRES_IN: &str = "paytokens_token_expires_in_seconds";
const EXPIRY: &str = "paytokens_token_expiry_timestamp_seconds";
const INVALIDATIONS: &str = "paytokens_unauthorized_invalidations_total";
const STORE_FAILURES: &str = "paytokens_store_failures_total";

/// One snapshot: what changed since the previous one (the recorder resets
/// counters, gauges and histograms on each snapshot), by metric name and
/// labels.
struct Snapshot {
    values: BTreeMap<(String, Vec<(String, String)>), DebugValue>,
    /// Every key, label and value, as text, for the leak checks.
    rendered: String,
}

impl Snapshot {
    fn take(snapshotter: &Snapshotter) -> Self {
        let mut values = BTreeMap::new();
        let mut rendered = String::new();
        for (key, unit, description, value) in snapshotter.snapshot().into_vec() {
            rendered.push_str(&format!("{key:?} {unit:?} {description:?} {value:?}\n"));
            let key = key.key();
            let labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            values.insert((key.name().to_owned(), labels), value);
        }
        Self { values, rendered }
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.values.get(&(name.to_owned(), labels))
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.get(name, labels)? {
            DebugValue::Gauge(value) => Some(value.into_inner()),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.get(name, labels) {
            Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
            None => Vec::new(),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// Every counter increment, every gauge set and every histogram sample
    /// since the previous snapshot, as (name, labels): a gauge that was not
    /// set reads 0, as the recorder resets it.
    fn changes(&self) -> Vec<String> {
        self.values
            .iter()
            .filter(|(_, value)| match value {
                DebugValue::Counter(n) => *n != 0,
                DebugValue::Gauge(v) => v.into_inner() != 0.0,
                DebugValue::Histogram(samples) => !samples.is_empty(),
            })
            .map(|((name, labels), value)| format!("{name} {labels:?} {value:?}"))
            .collect()
    }

    /// Every label is `provider` (a registered id), `outcome` or `class`,
    /// and nothing rendered holds a canary, a client id or a token.
    fn assert_clean(&self, client_id: &str) {
        let ids: Vec<&str> = Provider::all().map(Provider::id).collect();
        let classes = [
            "minted",
            "rejected",
            "transient",
            "invalid_response",
            "config",
            "budget_exhausted",
        ];
        for (name, labels) in self.values.keys() {
            assert!(name.starts_with("paytokens_"), "{name}");
            for (key, value) in labels {
                match key.as_str() {
                    "provider" => assert!(ids.contains(&value.as_str()), "{name}: {value}"),
                    "outcome" | "class" => {
                        assert!(classes.contains(&value.as_str()), "{name}: {value}")
                    }
                    other => panic!("{name} has label {other}"),
                }
            }
        }
        assert_no_canary(&self.rendered);
        assert!(!self.rendered.contains(client_id), "{}", self.rendered);
        assert!(
            !self.rendered.contains("sbx_"),
            "a token: {}",
            self.rendered
        );
    }
}

/// A client of `provider` with a canary id and the canary secret, added to
/// the sandbox; its id is unique to the test so that mint budgets (per
/// credential, process-wide) are not shared.
fn canary_client(sandbox: &Sandbox, provider: Provider, name: &str) -> SandboxClient {
    let mut client = SandboxClient::demo(provider);
    client.client_id = format!("CANARY-{name}-{}", provider.id());
    client.client_secret = CANARY_SECRET.into();
    sandbox.add_client(provider, client.clone());
    client
}

/// A source for `client` against the sandbox, with `http`.
fn source(
    sandbox: &Sandbox,
    provider: Provider,
    credentials: Credentials,
    http: HttpOptions,
) -> AnySource {
    let mut config = sandbox.config(provider).http(http);
    config.credentials = credentials;
    provider.source(config).unwrap()
}

fn credentials(client: &SandboxClient) -> Credentials {
    Credentials::new(client.client_id.clone(), client.client_secret.clone())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn a_mint_a_hit_an_invalidation_and_an_exhausted_budget_are_each_recorded() {
    let captured = crate::trace::thread_capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let id = provider.id();
        let p = [("provider", id)];
        let client = canary_client(&sandbox, provider, "budget");
        let policy = CachePolicy {
            max_mints: 1,
            ..CachePolicy::default()
        };
        let cache = TokenCache::with_policy(
            source(&sandbox, provider, credentials(&client), quick(1)),
            policy,
        );

        // A mint.
        let before = unix_now();
        let token = cache.token().await.unwrap();
        let after = unix_now();
        let snap = Snapshot::take(&snapshotter);
        snap.assert_clean(&client.client_id);
        assert_eq!(
            snap.counter(MINTS, &[("provider", id), ("outcome", "minted")]),
            1
        );
        assert_eq!(snap.histogram(DURATION, &p).len(), 1, "{id}");
        assert!(snap.histogram(DURATION, &p)[0] > 0.0);
        assert_eq!(snap.gauge(BUDGET, &p), Some(0.0), "{id}: 1 of 1 taken");
        let lifetime = client.lifetime.as_secs_f64();
        // An absolute expiry counts from when the request left and, in whole
        // seconds, is rounded up by the sandbox: up to a second more.
        let slack = match provider.spec().answer.expiry {
            paytokens::Expiry::In(_) => 0.0,
            paytokens::Expiry::At(..) => 1.0,
        };
        let expires_in = snap.gauge(EXPIRES_IN, &p).unwrap();
        assert!(
            expires_in <= lifetime + slack && expires_in > lifetime - 5.0,
            "{id}: {expires_in}"
        );
        let expiry = snap.gauge(EXPIRY, &p).unwrap();
        assert!(
            expiry >= before + lifetime - 5.0 && expiry <= after + lifetime + 1.0,
            "{id}: {expiry}"
        );
        assert_eq!(
            snap.counter(FAILURES, &[("provider", id), ("class", "minted")]),
            0
        );
        // The budget gauge at 0 reads as unchanged (the recorder resets
        // gauges to 0): four changes.
        assert_eq!(snap.changes().len(), 4, "{id}: {:?}", snap.changes());

        // Hits change nothing: no metric is touched on the hit path.
        for _ in 0..100 {
            assert!(cache.cached().is_some());
            assert!(cache.token().await.unwrap().is_same(&token));
        }
        let snap = Snapshot::take(&snapshotter);
        assert_eq!(snap.changes(), Vec::<String>::new(), "{id}: hits recorded");

        // An invalidation of the current token counts; of a stale one, not.
        cache.invalidate(&token);
        cache.invalidate(&token);
        let snap = Snapshot::take(&snapshotter);
        assert_eq!(snap.counter(INVALIDATIONS, &p), 1, "{id}");
        assert_eq!(snap.changes().len(), 1, "{id}: {:?}", snap.changes());

        // The budget (1) is spent: the fetch is refused, nothing is sent.
        let requests = sandbox.requests(provider);
        let err = cache.token().await.unwrap_err();
        assert!(
            matches!(err, TokenError::MintBudgetExhausted { .. }),
            "{err}"
        );
        assert_eq!(sandbox.requests(provider), requests);
        let snap = Snapshot::take(&snapshotter);
        snap.assert_clean(&client.client_id);
        let refused = [("provider", id), ("outcome", "budget_exhausted")];
        assert_eq!(snap.counter(MINTS, &refused), 1, "{id}");
        let class = [("provider", id), ("class", "budget_exhausted")];
        assert_eq!(snap.counter(FAILURES, &class), 1, "{id}");
        assert_eq!(snap.gauge(BUDGET, &p), Some(0.0));
        assert_eq!(
            snap.histogram(DURATION, &p),
            Vec::<f64>::new(),
            "nothing fetched"
        );
        assert_eq!(snap.changes().len(), 2, "{id}: {:?}", snap.changes());
        drop(token);
    }
    assert_traced_nothing_secret(&captured.take());
}

#[tokio::test]
async fn failed_fetches_are_counted_by_class_once_per_fetch() {
    let captured = crate::trace::thread_capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let id = provider.id();
        let p = [("provider", id)];
        let client = canary_client(&sandbox, provider, "failures");
        let max_mints = CachePolicy::default().max_mints;

        // A rejection: the right id with a wrong secret.
        let wrong = Credentials::new(client.client_id.clone(), "wrong-secret");
        let rejected = TokenCache::new(source(&sandbox, provider, wrong, quick(1)));
        let err = rejected.token().await.unwrap_err();
        assert!(matches!(err, TokenError::Rejected { .. }), "{err}");
        let snap = Snapshot::take(&snapshotter);
        snap.assert_clean(&client.client_id);
        let outcome = [("provider", id), ("outcome", "rejected")];
        assert_eq!(snap.counter(MINTS, &outcome), 1, "{id}");
        assert_eq!(
            snap.counter(FAILURES, &[("provider", id), ("class", "rejected")]),
            1
        );
        assert_eq!(snap.histogram(DURATION, &p).len(), 1);
        assert_eq!(snap.gauge(BUDGET, &p), Some(f64::from(max_mints - 1)));
        assert_eq!(snap.gauge(EXPIRES_IN, &p), None, "no token, no expiry");

        // A transient failure: two 503s, one fetch of two attempts.
        let cache = TokenCache::new(source(&sandbox, provider, credentials(&client), quick(2)));
        let requests = sandbox.requests(provider);
        sandbox.inject(provider, Fault::Status(503), 2);
        let err = cache.token().await.unwrap_err();
        assert!(matches!(err, TokenError::Transient { .. }), "{err}");
        assert_eq!(sandbox.requests(provider), requests + 2, "two attempts");
        let snap = Snapshot::take(&snapshotter);
        let outcome = [("provider", id), ("outcome", "transient")];
        assert_eq!(snap.counter(MINTS, &outcome), 1, "{id}: one fetch");
        assert_eq!(
            snap.counter(FAILURES, &[("provider", id), ("class", "transient")]),
            1
        );
        assert_eq!(snap.histogram(DURATION, &p).len(), 1);
        assert_eq!(snap.gauge(BUDGET, &p), Some(f64::from(max_mints - 2)));

        // An unusable answer.
        let cache = TokenCache::new(source(&sandbox, provider, credentials(&client), quick(1)));
        sandbox.inject(provider, Fault::MalformedBody, 1);
        let err = cache.token().await.unwrap_err();
        assert!(matches!(err, TokenError::InvalidResponse { .. }), "{err}");
        let snap = Snapshot::take(&snapshotter);
        snap.assert_clean(&client.client_id);
        let outcome = [("provider", id), ("outcome", "invalid_response")];
        assert_eq!(snap.counter(MINTS, &outcome), 1, "{id}");
        let class = [("provider", id), ("class", "invalid_response")];
        assert_eq!(snap.counter(FAILURES, &class), 1);
        assert_eq!(snap.changes().len(), 4, "{id}: {:?}", snap.changes());
    }
    assert_traced_nothing_secret(&captured.take());
}

#[tokio::test]
async fn concurrent_callers_of_a_miss_record_one_mint() {
    let captured = crate::trace::thread_capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let sandbox = Sandbox::start().await.unwrap();
    let provider: Provider = "autopay".parse().unwrap();
    let client = canary_client(&sandbox, provider, "concurrent");
    let cache = TokenCache::new(source(&sandbox, provider, credentials(&client), quick(1)));
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await.map(|t| t.lifetime()) })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap().unwrap();
    }
    let snap = Snapshot::take(&snapshotter);
    let outcome = [("provider", "autopay"), ("outcome", "minted")];
    assert_eq!(snap.counter(MINTS, &outcome), 1);
    assert_eq!(sandbox.mints_for(provider, &client.client_id), 1);
    assert_traced_nothing_secret(&captured.take());
}

/// A store that cannot be used (nothing listens at its address): every
/// failed store call is counted, labelled by provider only; the cache says
/// why (`store_error`) and mints alone.
#[tokio::test]
async fn a_failing_store_is_counted_and_reported() {
    let captured = crate::trace::thread_capture();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let sandbox = Sandbox::start().await.unwrap();
    let provider: Provider = "autopay".parse().unwrap();
    let client = canary_client(&sandbox, provider, "store-down");
    let port = crate::redis_server::free_port();
    let store = paytokens::TokenStore::redis(&format!("redis://127.0.0.1:{port}")).unwrap();
    let source = source(&sandbox, provider, credentials(&client), quick(1));
    let cache = TokenCache::with_store(source, CachePolicy::default(), store).unwrap();
    assert_eq!(cache.store_error(), None);
    cache.token().await.unwrap();
    let err = cache.store_error().expect("the store failed");
    assert!(
        err.to_string().starts_with("token store unavailable"),
        "{err}"
    );
    let snap = Snapshot::take(&snapshotter);
    let failures = snap.counter(STORE_FAILURES, &[("provider", "autopay")]);
    assert!(failures >= 1, "{:?}", snap.changes());
    snap.assert_clean(&client.client_id);
    assert_eq!(sandbox.mints_for(provider, &client.client_id), 1);
    assert_traced_nothing_secret(&captured.take());
}

/// Fails when traced text holds a canary (the client ids and secret of
/// these tests) or a sandbox token.
fn assert_traced_nothing_secret(traced: &str) {
    assert!(traced.contains("token_fetch"), "nothing traced");
    assert_no_canary(traced);
    assert!(!traced.contains("sbx_"), "a token was traced");
}

/// The closed `token_request` spans in `traced`, one line each.
fn request_spans(traced: &str) -> Vec<&str> {
    traced
        .lines()
        .filter(|l| l.contains("token_request{") && l.contains(" close "))
        .collect()
}

#[tokio::test]
async fn each_attempt_is_a_token_request_span_with_provider_attempt_and_status() {
    let captured = crate::trace::thread_capture();
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let id = provider.id();
        let client = canary_client(&sandbox, provider, "spans");
        // A 503, then a token: two attempts, the first followed by a retry.
        sandbox.inject(provider, Fault::Status(503), 1);
        let cache = TokenCache::new(source(&sandbox, provider, credentials(&client), quick(2)));
        let token = cache.token().await.unwrap();
        let traced = captured.take();
        let spans = request_spans(&traced);
        assert_eq!(spans.len(), 2, "{id}: {traced}");
        let first = spans[0];
        for field in [
            format!("provider={id}"),
            "attempt=1".into(),
            "status=503".into(),
            "retry_in_ms=".into(),
        ] {
            assert!(first.contains(&field), "{id}: {field} not in {first}");
        }
        let second = spans[1];
        for field in [
            format!("provider={id}"),
            "attempt=2".into(),
            "status=200".into(),
        ] {
            assert!(second.contains(&field), "{id}: {field} not in {second}");
        }
        assert!(!second.contains("retry_in_ms"), "{second}");
        // The retry warning is inside the first attempt's span.
        assert!(
            traced
                .lines()
                .any(|l| l.contains("token_request{") && l.contains("retrying")),
            "{traced}"
        );
        assert_no_canary(&traced);
        assert!(!traced.contains(token.secret().expose_secret()), "{traced}");
        assert!(!traced.contains(&client.client_id));

        // A rejection: one attempt, its status, no retry.
        let wrong = Credentials::new(client.client_id.clone(), "wrong-secret");
        let rejected = TokenCache::new(source(&sandbox, provider, wrong, quick(3)));
        rejected.token().await.unwrap_err();
        let traced = captured.take();
        let spans = request_spans(&traced);
        assert_eq!(spans.len(), 1, "{id}: {traced}");
        assert!(
            spans[0].contains("attempt=1") && spans[0].contains("status=401"),
            "{}",
            spans[0]
        );
        assert!(!spans[0].contains("retry_in_ms"));
        assert_no_canary(&traced);
    }
    // A failure on the wire has no status.
    let provider: Provider = "autopay".parse().unwrap();
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = sandbox
        .config(provider)
        .base_url(format!("http://{dead}/autopay"))
        .http(quick(1));
    TokenCache::new(provider.source(config).unwrap())
        .token()
        .await
        .unwrap_err();
    let traced = captured.take();
    let spans = request_spans(&traced);
    assert_eq!(spans.len(), 1, "{traced}");
    assert!(!spans[0].contains("status="), "{}", spans[0]);
}
