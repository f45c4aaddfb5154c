//! Smoke proof of the generated clients: each one makes one token call over
//! real HTTP to wiremock on 127.0.0.1 and decodes the provider document's own
//! example response. (The adapters and their full wire-format tests build on
//! these clients; this only shows the generated layer works on its own.)

use crate::common;

use common::{document_request, document_success, provider, refusal};
use serde_json::json;
use wiremock::matchers::{body_json, body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve(route: &str, body: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn pyng_billing_client_decodes_the_documented_token_response() {
    let server = serve(
        "/billing/oauth2/token",
        document_success(provider("pyng-billing")),
    )
    .await;
    let client = pyng_billing_client::Client::new(
        &server.uri(),
        pyng_billing_client::ResponseGuard::new(64 * 1024),
    );
    let scope = pyng_billing_client::Scope::ALL
        .map(|s| s.as_str())
        .join(" ");
    let body = pyng_billing_client::types::TokenRequest {
        grant_type: Default::default(),
        scope,
    };
    let token = client.request_token(&body).await.unwrap().into_inner();
    assert_eq!(token.access_token, "access_token_example");
    assert_eq!(token.expires_in, 900);
    let sent = &server.received_requests().await.unwrap()[0];
    assert_eq!(
        String::from_utf8_lossy(&sent.body),
        "grant_type=client_credentials&scope=billing%3Acustomers%3Ainvite+billing%3Acustomers%3Aread+billing%3Abatches%3Asubmit+billing%3Abatches%3Aread"
    );
}

#[tokio::test]
async fn pyng_checkout_client_decodes_the_documented_token_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/checkout/oauth2/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "grant_type=client_credentials&scope=pyng_defined_scope",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(document_success(provider("pyng-checkout"))),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = pyng_checkout_client::Client::new(
        &server.uri(),
        pyng_checkout_client::ResponseGuard::new(64 * 1024),
    );
    let body = pyng_checkout_client::types::TokenRequest {
        grant_type: Default::default(),
        scope: "pyng_defined_scope".to_owned(),
    };
    let token = client.request_token(&body).await.unwrap().into_inner();
    assert_eq!(token.scope, "pyng_granted_scope_1 pyng_granted_scope_2");
    assert_eq!(token.expires_in, 3600);
}

#[tokio::test]
async fn autopay_client_sends_constants_and_decodes_the_documented_response() {
    // The document's example request, verbatim: its client id and secret.
    let request = document_request(provider("autopay"));
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_json(&request))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(document_success(provider("autopay"))),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client =
        autopay_client::Client::new(&server.uri(), autopay_client::ResponseGuard::new(64 * 1024));
    let body = autopay_client::types::TokenRequest {
        client_id: request["client_id"].as_str().unwrap().to_owned(),
        client_secret: autopay_client::Password::new(request["client_secret"].as_str().unwrap()),
        audience: Default::default(),
        grant_type: Default::default(),
    };
    let token = client.request_token(&body).await.unwrap().into_inner();
    assert_eq!(token.expires_in, 86400);
    assert_eq!(token.scope.as_deref(), Some("customer_club"));
}

#[tokio::test]
async fn singapay_client_decodes_expires_in_sent_as_a_string() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1.0/access-token/b2b"))
        .and(header(
            "x-partner-id",
            "b3ed7d4b-a96c-6c08-b3c7-12c3124242d9",
        ))
        .and(body_json(json!({"grantType": "client_credentials"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(document_success(provider("singapay"))),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = singapay_client::Client::new(
        &server.uri(),
        singapay_client::ResponseGuard::new(64 * 1024),
    );
    let token = client
        .request_token(
            singapay_client::types::RequestTokenAccept::ApplicationJson,
            "b3ed7d4b-a96c-6c08-b3c7-12c3124242d9",
            &grant_type(),
        )
        .await
        .unwrap()
        .into_inner();
    let data = token.data.expect("data is present on success");
    assert!(token.success);
    assert!(matches!(
        data.expires_in,
        singapay_client::types::ExpiresIn::String(ref s) if s == "3600"
    ));
}

#[tokio::test]
async fn singapay_client_types_the_documented_401_as_an_error_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(refusal(provider("singapay")).0))
        .mount(&server)
        .await;
    let client = singapay_client::Client::new(
        &server.uri(),
        singapay_client::ResponseGuard::new(64 * 1024),
    );
    let err = client
        .request_token(
            singapay_client::types::RequestTokenAccept::ApplicationJson,
            "partner",
            &grant_type(),
        )
        .await
        .unwrap_err();
    let singapay_client::Error::ErrorResponse(response) = err else {
        panic!("expected a typed error response, got {err:?}");
    };
    assert_eq!(response.status(), 401);
    let body = response.into_inner();
    assert_eq!(
        body.error.unwrap().message.as_deref(),
        Some("Invalid credentials")
    );
}

fn grant_type() -> singapay_client::types::TokenRequest {
    singapay_client::types::TokenRequest {
        grant_type: singapay_client::types::TokenRequestGrantType::ClientCredentials,
    }
}

#[test]
fn a_password_field_is_redacted_in_debug_and_display_but_sent_unchanged() {
    let request = autopay_client::types::TokenRequest {
        client_id: "id".to_owned(),
        client_secret: autopay_client::Password::new("CANARY-SECRET-in-generated-type"),
        audience: autopay_client::types::TokenRequestAudience::HttpsApiAutopayIo,
        grant_type: autopay_client::types::TokenRequestGrantType::ClientCredentials,
    };
    let shown = format!("{request:?} {}", request.client_secret);
    assert!(!shown.contains("CANARY"), "{shown}");
    assert!(shown.contains("[REDACTED]"));
    let wire = serde_json::to_value(&request).unwrap();
    assert_eq!(wire["client_secret"], "CANARY-SECRET-in-generated-type");
}
