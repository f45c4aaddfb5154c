//! The sandbox behaves like the providers' documents say, through the real
//! adapters over HTTP on 127.0.0.1, and its fault injection produces each
//! error class.

mod common;

use std::time::Duration;

use common::{CANARY_SECRET, assert_result_leaks_nothing, quick};
use paytokens::TokenSource as _;
use paytokens::sandbox::{Fault, Sandbox, SandboxClient};
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
            (
                Fault::Latency(Duration::from_secs(3)),
                |e| matches!(e, TokenError::Transient { reason, .. } if reason == "timed out"),
            ),
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
