//! Each provider's exact wire format over real HTTP (wiremock on 127.0.0.1):
//! method, path, content type, `Authorization`, `X-PARTNER-ID`, body bytes or
//! JSON fields, and every example of the provider documents decoded verbatim.

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use paytokens::autopay::Autopay;
use paytokens::pyng_billing::{PyngBilling, Scope};
use paytokens::pyng_checkout::PyngCheckout;
use paytokens::singapay::Singapay;
use paytokens::{
    Auth, Config, Credentials, Expiry, ExposeSecret, Place, Provider, Source, TokenError,
    TokenSource, TokenType,
};
use serde_json::json;
use wiremock::matchers::{body_json, body_string, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Serves `body` with `status` once for any request, and returns the server.
async fn answer(status: u16, body: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

async fn only_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "expected exactly one request");
    requests.remove(0)
}

fn header_of<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn pyng_basic_auth_matches_the_document_example() {
    // The document: id s6BhdRkqt3, secret gX1fBat3bV.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/billing/oauth2/token"))
        .and(header(
            "authorization",
            "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(good(Provider::of::<PyngBilling>())))
        .expect(1)
        .mount(&server)
        .await;
    let config = Config::new(Credentials::new("s6BhdRkqt3", "gX1fBat3bV"))
        .base_url(server.uri())
        .scopes([Scope::BillingCustomersInvite]);
    Source::<PyngBilling>::new(config)
        .unwrap()
        .fetch()
        .await
        .unwrap();
}

#[tokio::test]
async fn pyng_billing_sends_the_documented_form_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/billing/oauth2/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "grant_type=client_credentials&scope=billing%3Acustomers%3Ainvite+billing%3Acustomers%3Aread+billing%3Abatches%3Asubmit+billing%3Abatches%3Aread",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(document_success(Provider::of::<PyngBilling>())))
        .expect(1)
        .mount(&server)
        .await;
    let config = Config::new(Credentials::new(CLIENT_ID, CANARY_SECRET))
        .base_url(server.uri())
        .scopes(Scope::ALL);
    let token = Source::<PyngBilling>::new(config)
        .unwrap()
        .fetch()
        .await
        .unwrap();
    assert_eq!(token.secret().expose_secret(), "access_token_example");
    assert_eq!(token.token_type(), TokenType::Bearer);
    assert_eq!(token.lifetime(), Duration::from_secs(900));
    assert_eq!(
        token.scopes(),
        [
            "billing:customers:invite",
            "billing:customers:read",
            "billing:batches:submit",
            "billing:batches:read"
        ]
    );
    assert_eq!(token.provider(), Provider::of::<PyngBilling>());
    assert_eq!(token.provider().id(), "pyng-billing");
    let request = only_request(&server).await;
    let pair = format!("{CLIENT_ID}:{CANARY_SECRET}");
    let expected = format!("Basic {}", STANDARD.encode(pair));
    assert_eq!(
        header_of(&request, "authorization"),
        Some(expected.as_str())
    );
}

#[tokio::test]
async fn pyng_checkout_sends_the_documented_form_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/checkout/oauth2/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(header(
            "authorization",
            "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW",
        ))
        .and(body_string(
            "grant_type=client_credentials&scope=pyng_defined_scope",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(document_success(Provider::of::<PyngCheckout>())),
        )
        .expect(1)
        .mount(&server)
        .await;
    let config = Config::new(Credentials::new("s6BhdRkqt3", "gX1fBat3bV"))
        .base_url(server.uri())
        .scopes(["pyng_defined_scope"]);
    let token = Source::<PyngCheckout>::new(config)
        .unwrap()
        .fetch()
        .await
        .unwrap();
    assert_eq!(
        token.scopes(),
        ["pyng_granted_scope_1", "pyng_granted_scope_2"]
    );
    assert_eq!(token.lifetime(), Duration::from_secs(3600));
}

#[tokio::test]
async fn autopay_sends_the_documented_json_request_without_authorization() {
    let autopay = Provider::of::<Autopay>();
    let request = document_request(autopay);
    // The document's example credentials, where the spec puts them.
    let Auth::Fields {
        client_id: Place::Body(client_id),
        client_secret: Place::Body(client_secret),
    } = autopay.spec().auth
    else {
        panic!("autopay: the spec does not put the credentials in the body")
    };
    let id = request[client_id].as_str().unwrap();
    let secret = request[client_secret].as_str().unwrap();
    assert_eq!(id, "kWmliLIrb79QfsF9r3vJE4xrKMcdcrrA");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "client_id": id,
            "client_secret": secret,
            "audience": "https://api.autopay.io",
            "grant_type": "client_credentials"
        })))
        .and(body_json(&request))
        .respond_with(ResponseTemplate::new(200).set_body_json(document_success(autopay)))
        .expect(1)
        .mount(&server)
        .await;
    let config = Config::new(Credentials::new(id, secret)).base_url(server.uri());
    let token = Source::<Autopay>::new(config)
        .unwrap()
        .fetch()
        .await
        .unwrap();
    assert_eq!(
        token.secret().expose_secret(),
        "exxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxQ"
    );
    assert_eq!(token.scopes(), ["customer_club"]);
    assert_eq!(token.lifetime(), Duration::from_secs(86400));
    let request = only_request(&server).await;
    assert_eq!(header_of(&request, "authorization"), None);
}

#[tokio::test]
async fn autopay_defaults_to_its_documented_host() {
    let config = Config::new(Credentials::new(CLIENT_ID, CANARY_SECRET));
    assert_eq!(config.base_url, None);
    let source = Source::<Autopay>::new(config).unwrap();
    assert_eq!(source.cache_key().base_url, "https://api-auth.autopay.io");
}

#[tokio::test]
async fn singapay_sends_basic_auth_partner_id_and_grant_type() {
    let singapay = Provider::of::<Singapay>();
    // The spec's example partner id.
    let partner_id = example_headers(singapay)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-partner-id"))
        .map(|(_, value)| value)
        .expect("singapay: the spec declares X-PARTNER-ID");
    assert_eq!(partner_id, "b3ed7d4b-a96c-6c08-b3c7-12c3124242d9");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1.0/access-token/b2b"))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(header("x-partner-id", partner_id.as_str()))
        .and(header(
            "authorization",
            "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW",
        ))
        .and(body_json(json!({"grantType": "client_credentials"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(document_success(singapay)))
        .expect(1)
        .mount(&server)
        .await;
    let config = Config::new(Credentials::new("s6BhdRkqt3", "gX1fBat3bV"))
        .base_url(server.uri())
        .header("X-PARTNER-ID", partner_id.as_str());
    let source = Source::<Singapay>::new(config).unwrap();
    let token = source.fetch().await.unwrap();
    assert_eq!(token.lifetime(), Duration::from_secs(3600));
    assert!(token.scopes().is_empty());
    assert_eq!(
        token.secret().expose_secret(),
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9{...}"
    );
}

#[tokio::test]
async fn singapay_expires_in_as_number_is_accepted() {
    let singapay = Provider::of::<Singapay>();
    let body = success(singapay, CANARY_TOKEN, "Bearer", json!(3600));
    let Expiry::In(field) = &singapay.spec().answer.expiry else {
        panic!("singapay: the spec gives no relative lifetime");
    };
    assert_eq!(field.get(&body), Some(&json!(3600)));
    let server = answer(200, body).await;
    let source = source(singapay, &server.uri(), quick(1));
    let token = source.fetch().await.unwrap();
    assert_eq!(token.lifetime(), Duration::from_secs(3600));
}

#[tokio::test]
async fn token_type_is_compared_case_insensitively() {
    for token_type in ["bearer", "BEARER", "Bearer"] {
        for provider in Provider::all() {
            let body = success(provider, CANARY_TOKEN, token_type, json!(60));
            let server = answer(ok(provider), body).await;
            let token = source(provider, &server.uri(), quick(1)).fetch().await;
            assert!(token.is_ok(), "{provider} {token_type}: {token:?}");
        }
    }
}

#[tokio::test]
async fn every_documented_error_example_is_rejected_with_code_and_message() {
    for provider in Provider::all() {
        let (body, code, message) = refusal(provider);
        let server = answer(401, body).await;
        let err = source(provider, &server.uri(), quick(3))
            .fetch()
            .await
            .unwrap_err();
        assert_eq!(
            err,
            TokenError::Rejected {
                provider,
                status: 401,
                code: Some(code.clone()),
                message: Some(message.clone()),
            }
        );
        assert!(!err.is_retryable());
        // Rejected is never retried.
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "{provider}"
        );
    }
}

#[tokio::test]
async fn expiry_is_measured_from_when_the_request_was_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(good(Provider::of::<Autopay>()))
                .set_delay(Duration::from_millis(150)),
        )
        .mount(&server)
        .await;
    let source = source(Provider::of::<Autopay>(), &server.uri(), quick(1));
    let before = tokio::time::Instant::now();
    let token = source.fetch().await.unwrap();
    let after = tokio::time::Instant::now();
    assert!(token.issued_at() >= before);
    // Issued when sent, so at least the server's delay before the answer came.
    assert!(after.duration_since(token.issued_at()) >= Duration::from_millis(150));
    assert_eq!(
        token.expires_at(),
        token.issued_at() + Duration::from_secs(3600)
    );
}

#[tokio::test]
async fn authorization_header_is_bearer_and_sensitive() {
    let server = answer(200, good(Provider::of::<PyngCheckout>())).await;
    let token = source(Provider::of::<PyngCheckout>(), &server.uri(), quick(1))
        .fetch()
        .await
        .unwrap();
    let value = token.authorization_header();
    assert!(value.is_sensitive());
    assert_eq!(value.to_str().unwrap(), format!("Bearer {CANARY_TOKEN}"));
    assert_no_canary(&format!("{value:?}"));
}
