//! Test harness shared by the integration tests, derived from the specs:
//! each provider's route, success and refusal bodies come from its spec's
//! `document` examples, and its source is built from the spec's request
//! example (scopes) and header parameter examples, so a new provider is
//! covered by every test that runs over `Provider::all()`. Also: canary
//! credentials and leak checks.
#![allow(dead_code)] // each test file uses part of it

use std::time::Duration;

use paytokens::{AnySource, Config, Credentials, HttpOptions, Provider, TokenError};
use serde_json::Value;

/// A client secret that must never appear in any output.
pub const CANARY_SECRET: &str = "CANARY-SECRET-5f1e9a27";
/// An access token that must never appear in any output.
pub const CANARY_TOKEN: &str = "CANARY-TOKEN-c0ffee42d00d";
pub const CLIENT_ID: &str = "client-4711";

/// A provider by id.
pub fn provider(id: &str) -> Provider {
    id.parse().unwrap()
}

/// The token endpoint path of each provider.
pub fn route(provider: Provider) -> &'static str {
    provider.spec().path
}

/// A spec example, parsed.
fn example(text: Option<&str>, provider: Provider, what: &str) -> Value {
    let text = text.unwrap_or_else(|| panic!("{provider}: the spec has no {what} example"));
    serde_json::from_str(text).unwrap()
}

/// Replaces, anywhere in `value`, each member named in `with`.
pub fn replace_members(value: &mut Value, with: &[(&str, Value)]) {
    match value {
        Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                match with.iter().find(|(name, _)| name == key) {
                    Some((_, new)) => *member = new.clone(),
                    None => replace_members(member, with),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| replace_members(i, with)),
        _ => {}
    }
}

/// The first member named `name` anywhere in `value`.
pub fn find_member<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Object(members) => members
            .get(name)
            .or_else(|| members.values().find_map(|v| find_member(v, name))),
        Value::Array(items) => items.iter().find_map(|v| find_member(v, name)),
        _ => None,
    }
}

/// The provider's success body (its spec's example) with this token, type
/// and lifetime.
pub fn success(provider: Provider, token: &str, token_type: &str, expires_in: Value) -> Value {
    let mut body = document_success(provider);
    replace_members(
        &mut body,
        &[
            ("access_token", Value::from(token)),
            ("token_type", Value::from(token_type)),
            ("expires_in", expires_in),
        ],
    );
    body
}

/// The spec's example success response, verbatim.
pub fn document_success(provider: Provider) -> Value {
    example(provider.spec().examples.success, provider, "success")
}

/// The spec's example request body, verbatim.
pub fn document_request(provider: Provider) -> Value {
    example(provider.spec().examples.request, provider, "request")
}

/// A well-formed success body with the canary token.
pub fn good(provider: Provider) -> Value {
    success(provider, CANARY_TOKEN, "Bearer", Value::from(3600))
}

/// The spec's example refusal (its 4XX example body), and the code and
/// message a [`TokenError::Rejected`] should carry.
pub fn refusal(provider: Provider) -> (Value, String, String) {
    let body = example(provider.spec().examples.refusal, provider, "refusal");
    let text = |name: &str| match find_member(&body, name) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    let code = text("error").or_else(|| text("code")).unwrap();
    let message = text("error_description")
        .or_else(|| text("message"))
        .unwrap();
    (body, code, message)
}

/// The scopes of the spec's request example, where the request carries
/// scopes.
pub fn example_scopes(provider: Provider) -> Vec<String> {
    let Some(field) = &provider.spec().scope else {
        return Vec::new();
    };
    let request = document_request(provider);
    match request.get(field.property) {
        Some(Value::String(scopes)) => scopes.split_whitespace().map(str::to_owned).collect(),
        _ => panic!(
            "{provider}: the request example has no `{}`",
            field.property
        ),
    }
}

/// The spec's header parameter examples (Singapay's `X-PARTNER-ID`).
pub fn example_headers(provider: Provider) -> Vec<(String, String)> {
    provider
        .spec()
        .headers
        .iter()
        .map(|param| {
            let value = param
                .example
                .unwrap_or_else(|| panic!("{provider}: header {} has no example", param.name));
            (param.name.to_owned(), value.to_owned())
        })
        .collect()
}

/// HTTP options for tests: short timeout, no retries unless asked, tiny backoff.
pub fn quick(max_attempts: u32) -> HttpOptions {
    let mut http = HttpOptions {
        request_timeout: Duration::from_millis(500),
        ..HttpOptions::default()
    };
    http.retry.max_attempts = max_attempts;
    http.retry.initial_backoff = Duration::from_millis(1);
    http.retry.max_backoff = Duration::from_millis(5);
    http
}

/// The config of `provider` at `base_url`: the spec's example scopes and
/// header values.
pub fn config(
    provider: Provider,
    base_url: &str,
    credentials: Credentials,
    http: HttpOptions,
) -> Config {
    let mut config = Config::new(credentials)
        .base_url(base_url)
        .scopes(example_scopes(provider))
        .http(http);
    config.headers = example_headers(provider);
    config
}

/// The config of `provider` pointing at `base_url`, as its Debug text and
/// the built source.
pub fn build(
    provider: Provider,
    base_url: &str,
    credentials: Credentials,
    http: HttpOptions,
) -> (String, Result<AnySource, TokenError>) {
    let config = config(provider, base_url, credentials, http);
    (format!("{config:?}"), provider.source(config))
}

/// A source for `provider` at `base_url` with the canary secret.
pub fn source(provider: Provider, base_url: &str, http: HttpOptions) -> AnySource {
    let credentials = Credentials::new(CLIENT_ID, CANARY_SECRET);
    let (debug, built) = build(provider, base_url, credentials, http);
    assert_no_canary(&debug);
    built.unwrap_or_else(|e| panic!("{provider}: {e}"))
}

/// Fails when `text` holds a canary, or the canary secret in Basic form.
pub fn assert_no_canary(text: &str) {
    for canary in [CANARY_SECRET, CANARY_TOKEN, "CANARY"] {
        assert!(!text.contains(canary), "leaked {canary}: {text}");
    }
}

/// Checks Debug and Display of a fetch result for canaries.
pub fn assert_result_leaks_nothing<T: std::fmt::Debug + std::fmt::Display>(
    result: &Result<T, TokenError>,
) {
    match result {
        Ok(token) => {
            assert_no_canary(&format!("{token:?}"));
            assert_no_canary(&format!("{token}"));
        }
        Err(err) => {
            assert_no_canary(&format!("{err:?}"));
            assert_no_canary(&format!("{err}"));
        }
    }
}

/// Drops a wiremock server with a fresh tokio coop budget. Its `Drop` runs
/// an async verification on a plain executor; if the test's task has spent
/// its budget (awaiting hundreds of ready join handles does), tokio's
/// resources answer "pending" to that executor forever and the test spins.
/// Yielding first gives the task a new budget.
pub async fn stop(server: wiremock::MockServer) {
    tokio::task::yield_now().await;
    drop(server);
}
