//! Property tests of every provider's decode path, over real HTTP to a
//! wiremock server on 127.0.0.1 whose answer each case sets: arbitrary bytes,
//! arbitrary JSON values, and the documented shape with one field replaced by
//! an arbitrary JSON value. Whatever arrives, a fetch returns a token or a
//! typed error: no panic, no canary in its Debug or Display, and a token only
//! when it is usable.
//!
//! Cases per property: `PROPTEST_CASES` (default 1000, as in CI). A longer
//! run: `PROPTEST_CASES=50000 cargo test --test it properties::`.

use crate::common;

use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use paytokens::{AnySource, Expiry, Field, Provider, TokenSource as _};
use proptest::prelude::*;
use serde_json::Value;
use wiremock::matchers::any as any_request;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The answer the server gives next: status and body.
type Answer = Arc<Mutex<(u16, Vec<u8>)>>;

struct Scripted(Answer);

impl Respond for Scripted {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let (status, body) = self.0.lock().unwrap().clone();
        ResponseTemplate::new(status).set_body_bytes(body)
    }
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    answer: Answer,
    sources: Vec<(Provider, AnySource)>,
    _server: MockServer,
}

/// One runtime, server and set of sources for every case.
fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let answer: Answer = Arc::new(Mutex::new((200, Vec::new())));
        let server = runtime.block_on(async {
            let server = MockServer::builder()
                .disable_request_recording()
                .start()
                .await;
            Mock::given(any_request())
                .respond_with(Scripted(Arc::clone(&answer)))
                .mount(&server)
                .await;
            server
        });
        let sources = Provider::all()
            .map(|p| (p, source(p, &server.uri(), quick(1))))
            .collect();
        Harness {
            runtime,
            answer,
            sources,
            _server: server,
        }
    })
}

/// Fetches from `provider` with the server answering `status` and `body`,
/// and checks what any answer must satisfy.
fn check(provider: Provider, status: u16, body: Vec<u8>) {
    // The properties run on parallel test threads but share the server:
    // one case at a time, or a fetch could get another test's answer.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let harness = harness();
    *harness.answer.lock().unwrap() = (status, body);
    let source = &harness
        .sources
        .iter()
        .find(|(p, _)| *p == provider)
        .unwrap()
        .1;
    let result = harness.runtime.block_on(source.fetch());
    assert_result_leaks_nothing(&result);
    if let Ok(token) = &result {
        let statuses = provider.spec().answer.statuses;
        assert!(statuses.contains(&status), "a token from HTTP {status}");
        assert!(token.lifetime().as_secs() > 0);
        assert!(token.authorization_header().to_str().is_ok());
    }
}

/// Puts the canary token wherever an `access_token` key holds a string: the
/// canary stands for a token we were given, so it belongs only there (a
/// provider's own free text, an error message or a scope, is shown on
/// purpose and is not a token of ours).
fn plant_canary(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if token_names().contains(&key.as_str()) && inner.is_string() {
                    *inner = Value::String(CANARY_TOKEN.to_owned());
                } else {
                    plant_canary(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(plant_canary),
        _ => {}
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    arbitrary_json().prop_map(|mut value| {
        plant_canary(&mut value);
        value
    })
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::String),
        Just(Value::String("Bearer".to_owned())),
        Just(Value::String("3600".to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(member_names()).prop_map(str::to_owned),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every member a spec's answer roles name, at any depth (`access_token`,
/// `token`, `data`, `success`, ...): the keys arbitrary JSON is built from.
fn member_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Provider::all()
        .flat_map(|provider| {
            role_fields(provider)
                .into_iter()
                .flat_map(|f| f.path.iter().copied())
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The member names of the specs' token roles.
fn token_names() -> Vec<&'static str> {
    Provider::all()
        .filter_map(|provider| provider.spec().answer.token.path.last().copied())
        .collect()
}

/// The fields of a provider's answer roles, and of an envelope's
/// conditions.
fn role_fields(provider: Provider) -> Vec<&'static Field> {
    let answer = &provider.spec().answer;
    let expiry = match &answer.expiry {
        Expiry::In(field) | Expiry::At(field, _) => field,
    };
    std::iter::once(&answer.token)
        .chain(answer.token_type.as_ref())
        .chain(std::iter::once(expiry))
        .chain(answer.scopes.as_ref())
        .chain(answer.expect.iter().map(|(field, _)| field))
        .collect()
}

fn provider() -> impl Strategy<Value = Provider> {
    prop::sample::select(Provider::all().collect::<Vec<_>>())
}

fn status() -> impl Strategy<Value = u16> {
    prop::sample::select(vec![200u16, 200, 200, 201, 400, 401, 403, 429, 500, 503])
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(1000),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/properties.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_or_leak(
        provider in provider(),
        status in status(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        check(provider, status, body);
    }

    #[test]
    fn arbitrary_json_never_panics_or_leaks(
        provider in provider(),
        status in status(),
        value in json_value(),
    ) {
        check(provider, status, value.to_string().into_bytes());
    }

    #[test]
    fn the_documented_shape_with_one_field_replaced_never_panics_or_leaks(
        provider in provider(),
        pick in 0..64usize,
        parent in any::<bool>(),
        value in json_value(),
    ) {
        let mut body = good(provider);
        // One of the spec's answer roles (or, for a nested one, the object
        // holding it: a wrapper's `data`) replaced by arbitrary JSON.
        let fields = role_fields(provider);
        let field = fields[pick % fields.len()];
        let path = match field.path.split_last() {
            Some((_, parents)) if parent && !parents.is_empty() => parents,
            _ => field.path,
        };
        Field { path, name: field.name }.set(&mut body, value);
        check(provider, ok(provider), body.to_string().into_bytes());
    }
}
