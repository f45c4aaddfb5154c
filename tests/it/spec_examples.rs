//! Driven by the specs alone: for every registered provider, a server on
//! 127.0.0.1 answers with the spec's own `document` examples (with the
//! status the spec gives), and the request the library sends must be the
//! spec's request example: method, path, media type (or no body), header
//! and query parameters, credentials where the spec puts them, and the body;
//! and it must carry nothing else. A new provider is covered as soon as it
//! is registered. No test here names a provider or a field: every name comes
//! from the spec's roles.

use crate::common;

use std::collections::BTreeSet;

use base64::Engine as _;
use std::time::{Duration, SystemTime};

use common::{document_request, document_success, example_headers, example_scopes};
use paytokens::{
    Auth, Config, Credentials, Expiry, ExposeSecret, ParamValue, Place, Provider, TimeFormat,
    TokenError, TokenSource,
};
use serde_json::{Map, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The credentials the spec's examples use: the request example's body
/// fields where the spec puts them in the body, otherwise the sandbox client
/// the spec declares (the document's example credentials).
fn example_credentials(provider: Provider) -> Credentials {
    let spec = provider.spec();
    match spec.auth {
        Auth::Fields {
            client_id: Place::Body(client_id),
            client_secret: Place::Body(client_secret),
        } => {
            let request = document_request(provider);
            let field = |name: &str| request[name].as_str().unwrap().to_owned();
            Credentials::new(field(client_id), field(client_secret))
        }
        _ => {
            let client = &spec.sandbox_clients[0];
            Credentials::new(client.client_id, client.client_secret)
        }
    }
}

/// The status a token comes with: the first the spec gives.
fn success_status(provider: Provider) -> u16 {
    provider.spec().answer.statuses[0]
}

/// The spec's success example with an absolute expiry moved to the first
/// year in which it is still ahead (the document's time may have passed),
/// written as the example writes it: less than a year from now.
fn live_success(provider: Provider) -> Value {
    let mut example = document_success(provider);
    if let Expiry::At(field, format) = &provider.spec().answer.expiry {
        let soon = SystemTime::now() + Duration::from_secs(3600);
        let moved = match (format, field.get(&example)) {
            (TimeFormat::DateTime, Some(Value::String(text))) => {
                let this_year = 1970
                    + soon
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                        / 31_556_952;
                (this_year - 1..this_year + 2)
                    .map(|year| format!("{year}{}", &text[4..]))
                    .find(|text| paytokens_runtime::parse_time(text).is_some_and(|at| at > soon))
                    .map(Value::from)
                    .unwrap_or_else(|| panic!("{provider}: {text} cannot be moved ahead"))
            }
            (TimeFormat::UnixSeconds, Some(Value::Number(_))) => Value::from(
                soon.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    + 86_400,
            ),
            other => panic!("{provider}: expiry example {other:?}"),
        };
        field.set(&mut example, moved);
    }
    example
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
fn body_as_json(content_type: Option<&str>, body: &[u8]) -> Value {
    let Some(content_type) = content_type else {
        assert!(body.is_empty(), "a body where the spec has none");
        return Value::Null;
    };
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

/// The one request `provider`'s source sends for its spec's examples, as
/// a server answering with the success example received it.
async fn replayed(provider: Provider) -> wiremock::Request {
    let server = server(provider, success_status(provider), live_success(provider)).await;
    let source = provider
        .source(example_config(provider, &server.uri()))
        .unwrap();
    source.fetch().await.unwrap();
    let mut requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "{provider}: {} requests", requests.len());
    requests.remove(0)
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
        let request = &replayed(provider).await;
        assert_eq!(request.method.as_str(), spec.method, "{provider}");
        assert_eq!(request.url.path(), spec.path, "{provider}");
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let content_type = header("content-type");
        assert_eq!(
            content_type.as_deref().and_then(|c| c.split(';').next()),
            spec.content_type,
            "{provider}"
        );
        match spec.content_type {
            Some(_) => assert_eq!(
                body_as_json(spec.content_type, &request.body),
                document_request(provider),
                "{provider}: the body"
            ),
            None => assert!(request.body.is_empty(), "{provider}: a body"),
        }
        for (name, value) in example_headers(provider) {
            assert_eq!(header(&name), Some(value), "{provider}: {name}");
        }
        let credentials = example_credentials(provider);
        let secret = credentials.client_secret.expose_secret().to_owned();
        let query: Vec<(String, String)> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let query_value = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        for param in spec.params {
            let expected = match param.value {
                ParamValue::ClientId => credentials.client_id.clone(),
                ParamValue::ClientSecret => secret.clone(),
                ParamValue::Constant(value) => value.to_owned(),
                ParamValue::Scopes | ParamValue::User => continue,
            };
            let sent = if param.header {
                header(param.name)
            } else {
                query_value(param.name)
            };
            assert_eq!(sent, Some(expected), "{provider}: {}", param.name);
        }
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{secret}", credentials.client_id))
        );
        match spec.auth {
            Auth::Basic => assert_eq!(header("authorization"), Some(basic), "{provider}"),
            Auth::Fields { .. } => assert_eq!(header("authorization"), None, "{provider}"),
        }
    }
}

/// The headers HTTP itself carries, whatever the document: what the request
/// travels with (`host`, and `content-type` / `content-length` for a
/// body), the client's `user-agent` (RFC 9110, 10.1.5), and reqwest's
/// `accept: */*` (RFC 9110: the same as no Accept).
const TRANSPORT: &[&str] = &["host", "content-length", "content-type", "user-agent"];

#[tokio::test]
async fn a_request_carries_only_what_its_document_lists() {
    for provider in Provider::all() {
        let spec = provider.spec();
        let request = &replayed(provider).await;
        for (name, value) in request.headers.iter() {
            let name = name.as_str();
            let listed = spec
                .params
                .iter()
                .any(|p| p.header && p.name.eq_ignore_ascii_case(name));
            let transport = TRANSPORT.contains(&name)
                || (name == "accept" && value == "*/*")
                || (name == "authorization" && spec.auth == Auth::Basic);
            assert!(
                listed || transport,
                "{provider}: header `{name}` is not in its document"
            );
            if name == "content-type" || name == "content-length" {
                assert!(
                    spec.content_type.is_some(),
                    "{provider}: {name} without a body"
                );
            }
        }
        for (name, _) in request.url.query_pairs() {
            assert!(
                spec.params.iter().any(|p| !p.header && p.name == name),
                "{provider}: query parameter `{name}` is not in its document"
            );
        }
        if spec.content_type.is_some() {
            let body = body_as_json(spec.content_type, &request.body);
            let names: Vec<&str> = spec
                .constants
                .iter()
                .map(|(name, _)| *name)
                .chain(spec.scope.iter().map(|s| s.place.name()))
                .chain(match spec.auth {
                    Auth::Fields {
                        client_id,
                        client_secret,
                    } => vec![client_id, client_secret]
                        .into_iter()
                        .filter(|p| matches!(p, Place::Body(_)))
                        .map(Place::name)
                        .collect(),
                    Auth::Basic => Vec::new(),
                })
                .collect();
            for member in body.as_object().unwrap().keys() {
                assert!(
                    names.contains(&member.as_str()),
                    "{provider}: body field `{member}` is not in its document"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_specs_success_example_is_the_token() {
    for provider in Provider::all() {
        let answer = &provider.spec().answer;
        let example = live_success(provider);
        let server = server(provider, success_status(provider), example.clone()).await;
        let source = provider
            .source(example_config(provider, &server.uri()))
            .unwrap();
        let before = SystemTime::now();
        let token = source.fetch().await.unwrap();
        let after = SystemTime::now();
        let text = |value: &Value| value.as_str().unwrap().to_owned();
        assert_eq!(
            token.secret().expose_secret(),
            text(answer.token.get(&example).unwrap()),
            "{provider}"
        );
        match &answer.expiry {
            Expiry::In(field) => {
                let lifetime = match field.get(&example).unwrap() {
                    Value::String(text) => text.parse::<u64>().unwrap(),
                    number => number.as_u64().unwrap(),
                };
                assert_eq!(token.lifetime().as_secs(), lifetime, "{provider}");
            }
            Expiry::At(field, format) => {
                let at = match format {
                    TimeFormat::DateTime => {
                        paytokens_runtime::parse_time(&text(field.get(&example).unwrap())).unwrap()
                    }
                    TimeFormat::UnixSeconds => {
                        SystemTime::UNIX_EPOCH
                            + Duration::from_secs(field.get(&example).unwrap().as_u64().unwrap())
                    }
                };
                // Judged against when the request was sent: between the
                // clock before and after the fetch (whole seconds).
                let most = at.duration_since(before).unwrap().as_secs();
                let least = at
                    .duration_since(after)
                    .unwrap()
                    .as_secs()
                    .saturating_sub(1);
                let lifetime = token.lifetime().as_secs();
                assert!((least..=most).contains(&lifetime), "{provider}: {lifetime}");
            }
        }
        let scopes: Vec<String> = match answer.scopes.as_ref().and_then(|f| f.get(&example)) {
            Some(Value::String(text)) => text
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(Value::Array(items)) => items.iter().map(text).collect(),
            _ => Vec::new(),
        };
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
