//! The sandbox behaves like the providers' documents say, through the real
//! adapters over HTTP on 127.0.0.1, and its fault injection produces each
//! error class.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{CANARY_SECRET, assert_no_canary, assert_result_leaks_nothing, quick};
use paytokens::TokenSource as _;
use paytokens::sandbox::{Fault, RequestRecord, Sandbox, SandboxClient};
use paytokens::{Credentials, ExposeSecret, HttpOptions, Provider, TokenCache, TokenError};

/// A source for `provider` against the sandbox with `credentials`.
fn source(
    sandbox: &Sandbox,
    provider: Provider,
    credentials: Credentials,
    http: HttpOptions,
) -> common::AnySource {
    let (_, built) = common::build(provider, &sandbox.base_url(provider), credentials, http);
    built.unwrap()
}

fn demo_source(sandbox: &Sandbox, provider: Provider) -> common::AnySource {
    source(sandbox, provider, sandbox.credentials(provider), quick(1))
}

#[tokio::test]
async fn every_provider_mints_a_token_for_its_demo_client() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::ALL {
        let token = demo_source(&sandbox, provider).fetch().await.unwrap();
        assert_eq!(token.provider(), provider);
        assert!(token.secret().expose_secret().starts_with("sbx_"));
        assert_eq!(token.lifetime(), SandboxClient::demo(provider).lifetime);
        assert_eq!(sandbox.mints(provider), 1);
    }
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_in_each_providers_shape() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::ALL {
        let client = sandbox.client(provider);
        let wrong = Credentials::new(client.client_id, CANARY_SECRET);
        let err = source(&sandbox, provider, wrong, quick(1))
            .fetch()
            .await
            .unwrap_err();
        let expected = match provider {
            Provider::Autopay => ("access_denied", "Unauthorized"),
            Provider::Singapay => ("401", "Invalid credentials"),
            _ => ("invalid_client", "Client authentication failed"),
        };
        assert_eq!(
            err,
            TokenError::Rejected {
                provider,
                status: 401,
                code: Some(expected.0.into()),
                message: Some(expected.1.into())
            }
        );
        assert_eq!(sandbox.mints(provider), 0);
    }
}

#[tokio::test]
async fn pyng_billing_refuses_a_scope_the_client_was_not_granted() {
    use paytokens::pyng_billing::{PyngBilling, PyngBillingConfig, Scope};
    let sandbox = Sandbox::start().await.unwrap();
    let mut reader = SandboxClient::demo(Provider::PyngBilling);
    reader.client_id = "reader".into();
    reader.granted_scopes = vec!["billing:customers:read".into()];
    sandbox.add_client(Provider::PyngBilling, reader.clone());
    let credentials = Credentials::new("reader", reader.client_secret.clone());
    let config = |scopes: Vec<Scope>| {
        let mut config = PyngBillingConfig::new(
            sandbox.base_url(Provider::PyngBilling),
            credentials.clone(),
            scopes,
        );
        config.http = quick(1);
        PyngBilling::new(config).unwrap()
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
    assert_eq!(sandbox.mints_for(Provider::PyngBilling, "reader"), 1);
}

#[tokio::test]
async fn singapay_refuses_a_wrong_partner_id() {
    use paytokens::singapay::{Singapay, SingapayConfig};
    let sandbox = Sandbox::start().await.unwrap();
    let mut config = SingapayConfig::new(
        sandbox.base_url(Provider::Singapay),
        sandbox.credentials(Provider::Singapay),
        "not-the-partner",
    );
    config.http = quick(1);
    let err = Singapay::new(config).unwrap().fetch().await.unwrap_err();
    assert!(
        matches!(err, TokenError::Rejected { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn injected_faults_produce_each_error_class() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::ALL {
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
    sandbox.inject(Provider::Autopay, Fault::Status(502), 2);
    let token = source(
        &sandbox,
        Provider::Autopay,
        sandbox.credentials(Provider::Autopay),
        quick(3),
    )
    .fetch()
    .await
    .unwrap();
    assert_eq!(token.provider(), Provider::Autopay);
    assert_eq!(sandbox.mints(Provider::Autopay), 1);
}

#[tokio::test]
async fn a_second_round_through_the_cache_mints_nothing() {
    use paytokens::autopay::{Autopay, AutopayConfig};
    let sandbox = Sandbox::start().await.unwrap();
    let mut config = AutopayConfig::new(sandbox.credentials(Provider::Autopay));
    config.base_url = sandbox.base_url(Provider::Autopay);
    let cache = TokenCache::new(Autopay::new(config).unwrap());
    for _ in 0..100 {
        cache.token().await.unwrap();
    }
    assert_eq!(sandbox.mints(Provider::Autopay), 1);
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

    let token = demo_source(&sandbox, Provider::PyngBilling)
        .fetch()
        .await
        .unwrap();
    let autopay_id = sandbox.client(Provider::Autopay).client_id;
    let wrong_secret = Credentials::new(autopay_id, CANARY_SECRET);
    let unknown_id = Credentials::new("nobody", CANARY_SECRET);
    for (provider, credentials) in [
        (Provider::Autopay, wrong_secret),
        (Provider::PyngCheckout, unknown_id),
    ] {
        let result = source(&sandbox, provider, credentials, quick(1))
            .fetch()
            .await;
        assert!(
            matches!(result, Err(TokenError::Rejected { .. })),
            "{result:?}"
        );
    }
    sandbox.inject(Provider::Singapay, Fault::Status(503), 1);
    let faulted = demo_source(&sandbox, Provider::Singapay).fetch().await;
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
    let first = record_requests(&sandbox);
    demo_source(&sandbox, Provider::Autopay)
        .fetch()
        .await
        .unwrap();
    let second = record_requests(&sandbox);
    demo_source(&sandbox, Provider::Autopay)
        .fetch()
        .await
        .unwrap();
    assert_eq!(first.lock().unwrap().len(), 1);
    assert_eq!(second.lock().unwrap().len(), 1);
}
