//! Test harness shared by the integration tests, derived from the specs:
//! each provider's route, success and refusal bodies come from its spec's
//! `document` examples, and its source is built from the spec's request
//! example (scopes) and header parameter examples, so a new provider is
//! covered by every test that runs over `Provider::all()`. Also: canary
//! credentials and leak checks.
#![allow(dead_code)] // each test file uses part of it

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use paytokens::{
    AnySource, Config, Credentials, Expiry, HttpOptions, Place, Provider, ScopeJoin, TimeFormat,
    TokenError,
};
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

/// The provider's success body (its spec's example, or the roles alone
/// when the document has none) with this token, type and lifetime, each at
/// the path of its role. `expires_in` is seconds (a number or a string);
/// a provider whose answer gives an absolute time gets the time that many
/// seconds from now.
pub fn success(provider: Provider, token: &str, token_type: &str, expires_in: Value) -> Value {
    let answer = &provider.spec().answer;
    let mut body = provider
        .spec()
        .examples
        .success
        .map(|text| serde_json::from_str(text).unwrap())
        .unwrap_or_else(|| Value::Object(Default::default()));
    answer.token.set(&mut body, Value::from(token));
    if let Some(field) = &answer.token_type {
        field.set(&mut body, Value::from(token_type));
    }
    match &answer.expiry {
        Expiry::In(field) => field.set(&mut body, expires_in),
        Expiry::At(field, format) => {
            let seconds = match &expires_in {
                Value::Number(n) => n.as_i64().unwrap(),
                Value::String(s) => s.parse().unwrap(),
                other => panic!("{provider}: lifetime {other} is not seconds"),
            };
            field.set(&mut body, seconds_from_now(*format, seconds));
        }
    }
    body
}

/// The absolute time `seconds` from now (negative: ago), written in
/// `format`: an RFC 3339 string or Unix seconds.
pub fn seconds_from_now(format: TimeFormat, seconds: i64) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = (now + seconds).max(0);
    match format {
        TimeFormat::DateTime => Value::from(paytokens_runtime::format_time(
            UNIX_EPOCH + Duration::from_secs(at as u64),
        )),
        TimeFormat::UnixSeconds => Value::from(at),
    }
}

/// Removes the member at `path` from `value`, if there is one.
pub fn remove_member(value: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = value;
    for name in parents {
        let Some(next) = at.get_mut(*name) else {
            return;
        };
        at = next;
    }
    if let Some(members) = at.as_object_mut() {
        members.remove(*last);
    }
}

/// The spec's example success response, verbatim.
pub fn document_success(provider: Provider) -> Value {
    example(provider.spec().examples.success, provider, "success")
}

/// The spec's example request body, verbatim.
pub fn document_request(provider: Provider) -> Value {
    example(provider.spec().examples.request, provider, "request")
}

/// The status a token comes with: the first success status the spec gives.
pub fn ok(provider: Provider) -> u16 {
    provider.spec().answer.statuses[0]
}

/// `body` answered with the provider's success status.
pub fn minted(provider: Provider, body: Value) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(ok(provider)).set_body_json(body)
}

/// A well-formed success body with the canary token.
pub fn good(provider: Provider) -> Value {
    success(provider, CANARY_TOKEN, "Bearer", Value::from(3600))
}

/// The spec's example refusal (its 4XX example body; where the document has
/// none, the smallest body its error schema allows with a code and message
/// at the error roles), and the code and message a [`TokenError::Rejected`]
/// should carry.
pub fn refusal(provider: Provider) -> (Value, String, String) {
    let spec = provider.spec();
    let body = match spec.examples.refusal {
        Some(text) => serde_json::from_str(text).unwrap(),
        None => {
            let mut body: Value = serde_json::from_str(spec.refusal.smallest).unwrap();
            if let Some(field) = &spec.refusal.code {
                field.set(&mut body, Value::from("invalid_client"));
            }
            if let Some(field) = &spec.refusal.message {
                field.set(&mut body, Value::from("Client authentication failed"));
            }
            body
        }
    };
    let refused = spec.refusal.refusal(&body);
    let code = refused
        .code
        .unwrap_or_else(|| panic!("{provider}: no error code role"));
    let message = refused
        .message
        .unwrap_or_else(|| panic!("{provider}: no error message role"));
    (body, code, message)
}

/// The scopes of the spec's request example, where the request carries
/// scopes in its body.
pub fn example_scopes(provider: Provider) -> Vec<String> {
    let Some(field) = &provider.spec().scope else {
        return Vec::new();
    };
    let Place::Body(name) = field.place else {
        panic!("{provider}: scopes outside the body have no request example");
    };
    let request = document_request(provider);
    match request.get(name) {
        Some(Value::String(scopes)) => {
            let separator = if field.join == ScopeJoin::Comma {
                ','
            } else {
                ' '
            };
            scopes
                .split(separator)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }
        Some(Value::Array(scopes)) => scopes
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect(),
        _ => panic!("{provider}: the request example has no `{name}`"),
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
