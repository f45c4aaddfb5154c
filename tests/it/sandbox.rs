//! The sandbox behaves like the providers' documents say, through the real
//! adapters over HTTP on 127.0.0.1, and its fault injection produces each
//! error class.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{CANARY_SECRET, assert_no_canary, assert_result_leaks_nothing, quick};
use paytokens::TokenSource as _;
use paytokens::sandbox::{Fault, RequestRecord, Sandbox, SandboxClient};
use paytokens::{
    AnySource, Auth, Config, Credentials, ExposeSecret, HttpOptions, ParamValue, Place, Provider,
    Source, TokenCache, TokenError,
};

/// A source for `provider` against the sandbox with `credentials`.
fn source(
    sandbox: &Sandbox,
    provider: Provider,
    credentials: Credentials,
    http: HttpOptions,
) -> AnySource {
    let (_, built) = common::build(provider, &sandbox.base_url(provider), credentials, http);
    built.unwrap()
}

/// A source for `provider`'s demo client: the sandbox's whole config for it.
fn demo_source(sandbox: &Sandbox, provider: Provider) -> AnySource {
    provider
        .source(sandbox.config(provider).http(quick(1)))
        .unwrap()
}

#[tokio::test]
async fn every_provider_mints_a_token_for_its_demo_client() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let token = demo_source(&sandbox, provider).fetch().await.unwrap();
        assert_eq!(token.provider(), provider);
        assert!(token.secret().expose_secret().starts_with("sbx_"));
        let lifetime = SandboxClient::demo(provider).lifetime;
        match provider.spec().answer.expiry {
            paytokens::Expiry::In(_) => assert_eq!(token.lifetime(), lifetime),
            // An absolute time, counted from when the request left: at least
            // the lifetime (a whole-second time is rounded up), within a second.
            paytokens::Expiry::At(..) => {
                let secs = token.lifetime().as_secs();
                assert!(
                    (lifetime.as_secs()..=lifetime.as_secs() + 1).contains(&secs),
                    "{provider}: {secs}"
                );
            }
        }
        assert_eq!(sandbox.mints(provider), 1);
    }
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_in_each_providers_shape() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let client = sandbox.client(provider);
        let wrong = Credentials::new(client.client_id, CANARY_SECRET);
        let err = source(&sandbox, provider, wrong, quick(1))
            .fetch()
            .await
            .unwrap_err();
        // The provider's shape: the code and message of its spec's refusal
        // example, which for the four documents are these.
        let (_, code, message) = common::refusal(provider);
        let documented = match provider.id() {
            "autopay" => Some(("access_denied", "Unauthorized")),
            "singapay" => Some(("401", "Invalid credentials")),
            "pyng-billing" | "pyng-checkout" => {
                Some(("invalid_client", "Client authentication failed"))
            }
            _ => None,
        };
        if let Some(documented) = documented {
            assert_eq!((code.as_str(), message.as_str()), documented, "{provider}");
        }
        assert_eq!(
            err,
            TokenError::Rejected {
                provider,
                status: 401,
                code: Some(code),
                message: Some(message)
            }
        );
        assert_eq!(sandbox.mints(provider), 0);
    }
}

#[tokio::test]
async fn pyng_billing_refuses_a_scope_the_client_was_not_granted() {
    use paytokens::pyng_billing::{PyngBilling, Scope};
    let sandbox = Sandbox::start().await.unwrap();
    let billing = Provider::of::<PyngBilling>();
    let mut reader = SandboxClient::demo(billing);
    reader.client_id = "reader".into();
    reader.granted_scopes = vec!["billing:customers:read".into()];
    sandbox.add_client(billing, reader.clone());
    let credentials = Credentials::new("reader", reader.client_secret.clone());
    let config = |scopes: Vec<Scope>| {
        let config = Config::new(credentials.clone())
            .base_url(sandbox.base_url(billing))
            .scopes(scopes)
            .http(quick(1));
        Source::<PyngBilling>::new(config).unwrap()
    };

    let granted = config(vec![Scope::BillingCustomersRead])
        .fetch()
        .await
        .unwrap();
    assert_eq!(granted.scopes(), ["billing:customers:read"]);
    let err = config(vec![Scope::BillingBatchesSubmit])
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(err, TokenError::Rejected { status: 400, code: Some(ref c), .. } if c == "invalid_scope"),
        "{err:?}"
    );
    assert_eq!(sandbox.mints_for(billing, "reader"), 1);
}

#[tokio::test]
async fn singapay_refuses_a_wrong_partner_id() {
    use paytokens::singapay::Singapay;
    let sandbox = Sandbox::start().await.unwrap();
    let singapay = Provider::of::<Singapay>();
    let config = Config::new(sandbox.credentials(singapay))
        .base_url(sandbox.base_url(singapay))
        .header("X-PARTNER-ID", "not-the-partner")
        .http(quick(1));
    let err = Source::<Singapay>::new(config)
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(err, TokenError::Rejected { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn injected_faults_produce_each_error_class() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        type Expect = fn(&TokenError) -> bool;
        let cases: [(Fault, Expect); 5] = [
            (Fault::Status(503), |e| {
                matches!(
                    e,
                    TokenError::Transient {
                        status: Some(503),
                        ..
                    }
                )
            }),
            (Fault::TooManyRequests { retry_after: 7 }, |e| {
                e.retry_after() == Some(Duration::from_secs(7))
            }),
            (Fault::MalformedBody, |e| {
                matches!(e, TokenError::InvalidResponse { .. })
            }),
            (Fault::DropConnection, |e| {
                matches!(e, TokenError::Transient { .. })
            }),
            (Fault::Latency(Duration::from_secs(3)), |e| {
                matches!(e, TokenError::Transient { reason, .. }
                    if reason.starts_with("request to http://127.0.0.1:")
                        && reason.ends_with(" timed out after 500 ms"))
            }),
        ];
        for (fault, expected) in cases {
            sandbox.inject(provider, fault.clone(), 1);
            let result = demo_source(&sandbox, provider).fetch().await;
            assert_result_leaks_nothing(&result);
            let err = result.unwrap_err();
            assert!(expected(&err), "{provider} {fault:?}: {err:?}");
        }
        sandbox.clear_faults();
    }
}

#[tokio::test]
async fn a_transient_fault_is_retried_to_success() {
    let sandbox = Sandbox::start().await.unwrap();
    let autopay = common::provider("autopay");
    sandbox.inject(autopay, Fault::Status(502), 2);
    let token = source(&sandbox, autopay, sandbox.credentials(autopay), quick(3))
        .fetch()
        .await
        .unwrap();
    assert_eq!(token.provider(), autopay);
    assert_eq!(sandbox.mints(autopay), 1);
}

#[tokio::test]
async fn a_second_round_through_the_cache_mints_nothing() {
    use paytokens::autopay::Autopay;
    let sandbox = Sandbox::start().await.unwrap();
    let autopay = Provider::of::<Autopay>();
    let config = Config::new(sandbox.credentials(autopay)).base_url(sandbox.base_url(autopay));
    let cache = TokenCache::new(Source::<Autopay>::new(config).unwrap());
    for _ in 0..100 {
        cache.token().await.unwrap();
    }
    assert_eq!(sandbox.mints(autopay), 1);
}

/// Collects what the sandbox reports through [`Sandbox::on_request`].
fn record_requests(sandbox: &Sandbox) -> Arc<Mutex<Vec<RequestRecord>>> {
    let records = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&records);
    sandbox.on_request(move |record| sink.lock().unwrap().push(record.clone()));
    records
}

#[tokio::test]
async fn the_request_log_has_one_line_per_answer_and_never_a_secret_or_token() {
    let sandbox = Sandbox::start().await.unwrap();
    let records = record_requests(&sandbox);
    let by_id = common::provider;

    let token = demo_source(&sandbox, by_id("pyng-billing"))
        .fetch()
        .await
        .unwrap();
    let autopay_id = sandbox.client(by_id("autopay")).client_id;
    let wrong_secret = Credentials::new(autopay_id, CANARY_SECRET);
    let unknown_id = Credentials::new("nobody", CANARY_SECRET);
    for (provider, credentials) in [
        (by_id("autopay"), wrong_secret),
        (by_id("pyng-checkout"), unknown_id),
    ] {
        let result = source(&sandbox, provider, credentials, quick(1))
            .fetch()
            .await;
        assert!(
            matches!(result, Err(TokenError::Rejected { .. })),
            "{result:?}"
        );
    }
    sandbox.inject(by_id("singapay"), Fault::Status(503), 1);
    let faulted = demo_source(&sandbox, by_id("singapay")).fetch().await;
    assert!(faulted.is_err());

    let records = records.lock().unwrap().clone();
    let lines: Vec<String> = records.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "pyng-billing POST /pyng-billing/billing/oauth2/token -> 200 minted",
            "autopay POST /autopay/oauth/token -> 401 refused: wrong client secret",
            "pyng-checkout POST /pyng-checkout/checkout/oauth2/token -> 401 refused: unknown \
             client id",
            "singapay POST /singapay/api/v1.0/access-token/b2b -> 503 injected fault",
        ]
    );
    for record in &records {
        for text in [format!("{record:?}"), record.to_string()] {
            assert_no_canary(&text);
            assert!(!text.contains(token.secret().expose_secret()), "{text}");
            let demo = SandboxClient::demo(record.provider);
            assert!(!text.contains(demo.client_secret.expose_secret()), "{text}");
        }
    }
}

#[tokio::test]
async fn a_new_request_callback_replaces_the_previous_one() {
    let sandbox = Sandbox::start().await.unwrap();
    let autopay = common::provider("autopay");
    let first = record_requests(&sandbox);
    demo_source(&sandbox, autopay).fetch().await.unwrap();
    let second = record_requests(&sandbox);
    demo_source(&sandbox, autopay).fetch().await.unwrap();
    assert_eq!(first.lock().unwrap().len(), 1);
    assert_eq!(second.lock().unwrap().len(), 1);
}

/// A token request as places and values, to edit before sending.
struct Parts {
    body: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl Parts {
    fn remove(&mut self, place: Place) {
        match place {
            Place::Body(name) => {
                self.body.remove(name);
            }
            Place::Header(name) => self.headers.retain(|(n, _)| n != name),
            Place::Query(name) => self.query.retain(|(n, _)| n != name),
        }
    }

    fn set(&mut self, place: Place, value: &str) {
        self.remove(place);
        match place {
            Place::Body(name) => {
                self.body.insert(name.to_owned(), value.into());
            }
            Place::Header(name) => self.headers.push((name.to_owned(), value.to_owned())),
            Place::Query(name) => self.query.push((name.to_owned(), value.to_owned())),
        }
    }
}

/// The places of the spec's constants: body properties and parameters.
fn constant_places(provider: Provider) -> Vec<(Place, &'static str)> {
    let spec = provider.spec();
    spec.constants
        .iter()
        .map(|(name, value)| (Place::Body(name), *value))
        .chain(spec.params.iter().filter_map(|p| match p.value {
            ParamValue::Constant(value) if p.header => Some((Place::Header(p.name), value)),
            ParamValue::Constant(value) => Some((Place::Query(p.name), value)),
            _ => None,
        }))
        .collect()
}

/// Sends `provider`'s request example to the sandbox as its demo client
/// would (every part where the spec puts it), with `edit` applied first;
/// returns the status and the answer as JSON.
async fn raw_request(
    sandbox: &Sandbox,
    provider: Provider,
    edit: impl FnOnce(&mut Parts),
) -> (u16, serde_json::Value) {
    let spec = provider.spec();
    let client = SandboxClient::demo(provider);
    let body = match spec.content_type {
        Some(_) => match common::document_request(provider) {
            serde_json::Value::Object(body) => body,
            _ => panic!("{provider}: the request example is not an object"),
        },
        None => serde_json::Map::new(),
    };
    let mut parts = Parts {
        body,
        headers: client.headers.clone(),
        query: Vec::new(),
    };
    for (place, value) in constant_places(provider) {
        if !matches!(place, Place::Body(_)) {
            parts.set(place, value);
        }
    }
    if let Auth::Fields {
        client_id,
        client_secret,
    } = spec.auth
    {
        parts.set(client_id, &client.client_id);
        parts.set(client_secret, client.client_secret.expose_secret());
    }
    edit(&mut parts);
    let url = format!("{}{}", sandbox.base_url(provider), spec.path);
    let method = reqwest::Method::from_bytes(spec.method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new()
        .request(method, url)
        .query(&parts.query);
    if let Some(content_type) = spec.content_type {
        request = request.header("content-type", content_type);
        request = if content_type == "application/x-www-form-urlencoded" {
            let pairs: Vec<(String, String)> = parts
                .body
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect();
            request.body(serde_urlencoded::to_string(pairs).unwrap())
        } else {
            request.body(serde_json::Value::Object(parts.body).to_string())
        };
    }
    if spec.auth == Auth::Basic {
        request = request.basic_auth(
            &client.client_id,
            Some(client.client_secret.expose_secret()),
        );
    }
    for (name, value) in &parts.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The refusal's error code, where the spec gives the error code a place
/// and the provider's code is a string (RFC 6749's).
fn error_code(provider: Provider, body: &serde_json::Value) -> Option<String> {
    let refusal = provider.spec().refusal.refusal(body);
    refusal
        .code
        .filter(|code| !code.bytes().all(|b| b.is_ascii_digit()))
}

#[tokio::test]
async fn refusals_carry_the_rfc_6749_codes() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let spec = provider.spec();
        let success = spec.answer.statuses[0];
        // The example as it is: minted.
        let (status, _) = raw_request(&sandbox, provider, |_| {}).await;
        assert_eq!(status, success, "{provider}: the request example");
        let constants = constant_places(provider);
        let grant = constants
            .iter()
            .find(|(place, _)| {
                place
                    .name()
                    .replace('_', "")
                    .eq_ignore_ascii_case("granttype")
            })
            .map(|(place, _)| *place);
        if let Some(grant) = grant {
            let name = grant.name();
            // A missing grant type is an invalid request, a wrong one unsupported.
            let (status, body) = raw_request(&sandbox, provider, |parts| parts.remove(grant)).await;
            assert_eq!(status, 400, "{provider}: no {name}");
            if let Some(code) = error_code(provider, &body) {
                assert_eq!(code, "invalid_request", "{provider}: no {name}");
            }
            let (status, body) = raw_request(&sandbox, provider, |parts| {
                parts.set(grant, "password");
                // Another constant wrong too: the grant type is reported.
                for (place, _) in constants.iter().filter(|(p, _)| *p != grant) {
                    parts.set(*place, "wrong");
                }
            })
            .await;
            assert_eq!(status, 400, "{provider}: wrong {name}");
            if let Some(code) = error_code(provider, &body) {
                assert_eq!(code, "unsupported_grant_type", "{provider}: wrong {name}");
            }
        }
        // Every constant wrong alone: refused.
        for (place, _) in &constants {
            let (status, _) =
                raw_request(&sandbox, provider, |parts| parts.set(*place, "wrong")).await;
            assert_eq!(status, 400, "{provider}: wrong {}", place.name());
        }
        // Credentials the spec puts in the request, missing: unauthorized.
        if let Auth::Fields {
            client_id,
            client_secret,
        } = spec.auth
        {
            let (status, _) = raw_request(&sandbox, provider, |parts| {
                parts.remove(client_id);
                parts.remove(client_secret);
            })
            .await;
            assert_eq!(status, 401, "{provider}: no credentials");
            let (status, _) = raw_request(&sandbox, provider, |parts| {
                parts.set(client_secret, "not-the-secret");
            })
            .await;
            assert_eq!(status, 401, "{provider}: a wrong secret");
        }
    }
}
