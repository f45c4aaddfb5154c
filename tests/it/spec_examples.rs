//! Driven by the specs alone: for every registered provider, a server on
//! 127.0.0.1 answers with the spec's own `document` examples, and the request
//! the library sends must be the spec's request example: method, path, media
//! type, header parameters, credentials where the spec puts them, and the
//! body. A new provider is covered as soon as it is registered.

use crate::common;

use std::collections::BTreeSet;

use base64::Engine as _;
use common::{document_request, document_success, example_headers, example_scopes, find_member};
use paytokens::{Auth, Config, Credentials, ExposeSecret, Provider, TokenError, TokenSource};
use serde_json::{Map, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The credentials the spec's examples use: the request example's body
/// fields where the spec puts them in the body, otherwise the sandbox client
/// the spec declares (the document's example credentials).
fn example_credentials(provider: Provider) -> Credentials {
    let spec = provider.spec();
    match spec.auth {
        Auth::Body {
            client_id,
            client_secret,
        } => {
            let request = document_request(provider);
            let field = |name: &str| request[name].as_str().unwrap().to_owned();
            Credentials::new(field(client_id), field(client_secret))
        }
        Auth::Basic => {
            let client = &spec.sandbox_clients[0];
            Credentials::new(client.client_id, client.client_secret)
        }
    }
}

/// A config that asks for exactly what the request example asks for.
fn example_config(provider: Provider, base_url: &str) -> Config {
    let mut config = Config::new(example_credentials(provider))
        .base_url(base_url)
        .scopes(example_scopes(provider))
        .http(common::quick(1));
    config.headers = example_headers(provider);
    config
}

/// A request body as JSON, decoded as its media type says.
fn body_as_json(content_type: &str, body: &[u8]) -> Value {
    if content_type == "application/x-www-form-urlencoded" {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap();
        let members: Map<String, Value> = pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Value::Object(members);
    }
    serde_json::from_slice(body).unwrap()
}

async fn server(provider: Provider, status: u16, body: Value) -> MockServer {
    let spec = provider.spec();
    let server = MockServer::start().await;
    Mock::given(method(spec.method))
        .and(path(spec.path))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

#[test]
fn every_spec_is_a_registered_provider() {
    let specs: BTreeSet<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/specs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let registered: BTreeSet<String> = Provider::all().map(|p| p.id().to_owned()).collect();
    assert_eq!(specs, registered);
    for provider in Provider::all() {
        assert_eq!(provider.spec().spec_file, format!("specs/{provider}.yaml"));
    }
}

#[tokio::test]
async fn the_request_sent_is_the_specs_request_example() {
    for provider in Provider::all() {
        let spec = provider.spec();
        let server = server(provider, 200, document_success(provider)).await;
        let source = provider
            .source(example_config(provider, &server.uri()))
            .unwrap();
        source.fetch().await.unwrap();
        let requests = server.received_requests().await.unwrap();
        let [request] = requests.as_slice() else {
            panic!("{provider}: {} requests", requests.len());
        };
        assert_eq!(request.method.as_str(), spec.method, "{provider}");
        assert_eq!(request.url.path(), spec.path, "{provider}");
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let content_type = header("content-type").unwrap();
        assert_eq!(content_type.split(';').next(), Some(spec.content_type));
        assert_eq!(
            body_as_json(spec.content_type, &request.body),
            document_request(provider),
            "{provider}: the body"
        );
        for (name, value) in example_headers(provider) {
            assert_eq!(header(&name), Some(value), "{provider}: {name}");
        }
        let credentials = example_credentials(provider);
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                credentials.client_id,
                credentials.client_secret.expose_secret()
            ))
        );
        match spec.auth {
            Auth::Basic => assert_eq!(header("authorization"), Some(basic), "{provider}"),
            Auth::Body { .. } => assert_eq!(header("authorization"), None, "{provider}"),
        }
    }
}

#[tokio::test]
async fn the_specs_success_example_is_the_token() {
    for provider in Provider::all() {
        let example = document_success(provider);
        let server = server(provider, 200, example.clone()).await;
        let source = provider
            .source(example_config(provider, &server.uri()))
            .unwrap();
        let token = source.fetch().await.unwrap();
        let member = |name: &str| find_member(&example, name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(
            token.secret().expose_secret(),
            member("access_token").as_str().unwrap(),
            "{provider}"
        );
        let lifetime = match member("expires_in") {
            Value::String(text) => text.parse::<u64>().unwrap(),
            number => number.as_u64().unwrap(),
        };
        assert_eq!(token.lifetime().as_secs(), lifetime, "{provider}");
        let scopes: Vec<&str> = find_member(&example, "scope")
            .and_then(Value::as_str)
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default();
        assert_eq!(token.scopes(), scopes, "{provider}");
        assert_eq!(token.provider(), provider);
    }
}

#[tokio::test]
async fn the_specs_refusal_example_is_a_rejection_with_its_code_and_message() {
    for provider in Provider::all() {
        let (body, code, message) = common::refusal(provider);
        let server = server(provider, 401, body).await;
        let source = provider
            .source(example_config(provider, &server.uri()))
            .unwrap();
        match source.fetch().await {
            Err(TokenError::Rejected {
                provider: p,
                status: 401,
                code: Some(c),
                message: Some(m),
            }) => {
                assert_eq!((p, c, m), (provider, code, message));
            }
            other => panic!("{provider}: {other:?}"),
        }
    }
}
