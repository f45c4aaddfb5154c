//! Hostile responses, replayed over real HTTP on 127.0.0.1 through the
//! public API (a `TokenCache` over the provider's source): every case under
//! `tests/fixtures/responses/common/` for every registered provider, and the
//! cases under `tests/fixtures/responses/<provider>/` (only that provider's
//! real quirks) for it. The tables below pin the expected outcome of every
//! case; for each one, the canary secret and token must be absent from the
//! result's Debug and Display and from everything traced at TRACE.
//!
//! A case file is `status: N`, `header: name: value` lines, optional `mode:`
//! and `shape:` lines, a blank line, then the body bytes. Modes: `huge N` (a
//! body of N bytes), `token N` (an access token of N bytes), `drip` (the body
//! one byte every 100 ms), `reset` (half the body, then a TCP reset). Shapes
//! make one case fit every provider's answer, from its spec's examples:
//! `token` (the body is an RFC 6749 token object, put where the provider's
//! success example has its token object: Singapay's `data`) and `refusal`
//! (the provider's error example, with the status numbers it holds set to the
//! case's status).

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use paytokens::{Expiry, Field, Provider, TimeFormat, TokenCache, TokenError};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Minted,
    Rejected,
    Transient,
    Invalid,
}
use Outcome::*;

/// The outcome of every case in `common/`, for every provider.
const COMMON: &[(&str, Outcome)] = &[
    ("ok-documented-shape", Minted),
    ("ok-bearer-lowercase", Minted),
    ("ok-bearer-uppercase", Minted),
    ("ok-unknown-extra-fields", Minted),
    ("ok-content-type-with-charset", Minted),
    ("ok-bogus-content-encoding-on-plain-json", Minted),
    ("ok-no-content-type", Minted),
    ("empty-body-200", Invalid),
    ("html-200", Invalid),
    ("html-401", Rejected),
    ("html-403", Rejected),
    ("html-404", Rejected),
    ("html-500", Transient),
    ("html-502", Transient),
    ("html-503", Transient),
    ("timeout-408", Transient),
    ("documented-refusal-401", Rejected),
    ("refusal-400", Rejected),
    ("empty-body-401", Rejected),
    ("truncated-json", Invalid),
    ("json-array", Invalid),
    ("json-null", Invalid),
    ("json-number", Invalid),
    ("json-string", Invalid),
    ("missing-access-token", Invalid),
    ("missing-token-type", Invalid),
    ("missing-expires-in", Invalid),
    ("access-token-number", Invalid),
    ("access-token-null", Invalid),
    ("access-token-empty", Invalid),
    ("access-token-with-space", Invalid),
    ("token-type-number", Invalid),
    ("token-type-mac", Invalid),
    ("token-type-empty", Invalid),
    ("expires-in-zero", Invalid),
    ("expires-in-negative", Invalid),
    ("expires-in-fractional", Invalid),
    ("expires-in-abc", Invalid),
    ("expires-in-3600s", Invalid),
    ("expires-in-1e20", Invalid),
    ("expires-in-true", Invalid),
    ("expires-in-over-a-year", Invalid),
    ("duplicate-keys", Invalid),
    ("invalid-utf8", Invalid),
    ("gzip-body-not-requested", Invalid),
    ("redirect-301", Invalid),
    ("redirect-302", Invalid),
    ("redirect-307", Invalid),
    ("too-many-requests-retry-after-seconds", Transient),
    ("too-many-requests-retry-after-date", Transient),
    ("body-20mb", Invalid),
    ("body-1mb-access-token", Invalid),
    ("drips-slowly", Transient),
    ("reset-mid-body", Transient),
    ("undocumented-201", Invalid),
];

/// Cases only some providers have, by provider id.
const SPECIFIC: &[(&str, &str, Outcome)] = &[
    ("pyng-billing", "missing-scope", Invalid),
    ("pyng-billing", "scope-number", Invalid),
    ("pyng-checkout", "missing-scope", Invalid),
    ("pyng-checkout", "scope-number", Invalid),
    ("autopay", "ok-missing-scope", Minted),
    ("autopay", "scope-number", Invalid),
    ("singapay", "ok-expires-in-string", Minted),
    ("singapay", "success-false-in-200", Invalid),
    ("singapay", "success-true-without-data", Invalid),
    ("singapay", "data-null", Invalid),
    ("singapay", "status-field-disagrees", Invalid),
    ("singapay", "missing-success", Invalid),
    ("singapay", "refusal-without-error-object", Rejected),
];

fn expected(provider: Provider, case: &str) -> Option<Outcome> {
    // A provider whose answer has no token type (its spec gives the
    // documented one) ignores a `token_type` member, or its absence (the
    // bad bytes of `invalid-utf8` are in that member).
    if provider.spec().answer.token_type.is_none()
        && (case == "missing-token-type"
            || case == "invalid-utf8"
            || case.starts_with("token-type-"))
    {
        return Some(Minted);
    }
    let common = COMMON.iter().find(|(c, _)| *c == case).map(|(_, o)| *o);
    let specific = SPECIFIC
        .iter()
        .find(|(p, c, _)| *p == provider.id() && *c == case)
        .map(|(_, _, o)| *o);
    common.or(specific)
}

struct Case {
    status: u16,
    headers: Vec<(String, String)>,
    mode: Option<String>,
    shape: Option<String>,
    body: Vec<u8>,
}

fn parse(path: &Path) -> Case {
    let bytes = std::fs::read(path).unwrap();
    let split = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("blank line after the head");
    let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
    let mut case = Case {
        status: 0,
        headers: Vec::new(),
        mode: None,
        shape: None,
        body: bytes[split + 2..].to_vec(),
    };
    for line in head.lines() {
        let (key, value) = line.split_once(": ").unwrap();
        match key {
            "status" => case.status = value.parse().unwrap(),
            "header" => {
                let (name, value) = value.split_once(": ").unwrap();
                case.headers.push((name.to_owned(), value.to_owned()));
            }
            "mode" => case.mode = Some(value.to_owned()),
            "shape" => case.shape = Some(value.to_owned()),
            other => panic!("{}: unknown head line {other}", path.display()),
        }
    }
    case
}

/// The case files in `tests/fixtures/responses/<dir>/`, by name; none when
/// the folder does not exist (a provider with no quirks).
fn files_in(dir: &str) -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/responses")
        .join(dir);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    files.sort();
    files
}

/// Every case replayed for `provider`: the common ones and its quirks.
fn cases(provider: Provider) -> Vec<(String, PathBuf)> {
    let mut cases = files_in("common");
    cases.extend(files_in(provider.id()));
    cases
}

/// The case's body in `provider`'s shape.
fn shaped(provider: Provider, shape: Option<&str>, status: u16, body: Vec<u8>) -> Vec<u8> {
    match shape {
        None => body,
        Some("refusal") => {
            let (mut refusal, _, _) = refusal(provider);
            replace_numbers(&mut refusal, status);
            refusal.to_string().into_bytes()
        }
        Some("token") => token_shaped(provider, body),
        Some(other) => panic!("unknown shape {other}"),
    }
}

/// The corpus writes token objects in RFC 6749's names; these are the
/// roles they stand for.
const RFC_TOKEN: &str = "access_token";
const RFC_TYPE: &str = "token_type";
const RFC_LIFETIME: &str = "expires_in";
const RFC_SCOPE: &str = "scope";

/// A case's RFC 6749 token object in `provider`'s answer: each member put
/// at the path of its role (a lifetime in seconds becomes the absolute time
/// that far ahead where the spec's answer gives one), others beside the
/// token, inside the provider's success example. A body that is not one
/// JSON object with each member once (truncated, not UTF-8, a duplicate
/// key) keeps its bytes: its keys are renamed to the roles' members and it
/// is put where the example has the token's object.
fn token_shaped(provider: Provider, body: Vec<u8>) -> Vec<u8> {
    let answer = &provider.spec().answer;
    let expiry = match &answer.expiry {
        Expiry::In(field) | Expiry::At(field, _) => field,
    };
    let parents = &answer.token.path[..answer.token.path.len() - 1];
    let text = String::from_utf8_lossy(&body);
    let once = [RFC_TOKEN, RFC_TYPE, RFC_LIFETIME, RFC_SCOPE]
        .iter()
        .all(|key| text.matches(&format!("\"{key}\"")).count() <= 1);
    let parsed = serde_json::from_slice::<serde_json::Value>(&body);
    let mut example = document_success(provider);
    // Whether the provider's granted scopes are a list (the example's).
    let scope_list = answer
        .scopes
        .as_ref()
        .and_then(|f| f.get(&example))
        .is_some_and(serde_json::Value::is_array);
    // The example without its own role members.
    for field in [
        Some(&answer.token),
        answer.token_type.as_ref(),
        Some(expiry),
        answer.scopes.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        remove_member(&mut example, field.path);
    }
    if let (true, Ok(serde_json::Value::Object(members))) = (once, parsed) {
        for (key, value) in members {
            let field = match key.as_str() {
                RFC_TOKEN => Some(&answer.token),
                RFC_TYPE => answer.token_type.as_ref(),
                RFC_LIFETIME => Some(expiry),
                RFC_SCOPE => answer.scopes.as_ref(),
                _ => None,
            };
            let value = match (key.as_str(), &value) {
                (RFC_SCOPE, serde_json::Value::String(text)) if scope_list => {
                    json!(text.split_whitespace().collect::<Vec<_>>())
                }
                _ => value,
            };
            let value = match (key.as_str(), &answer.expiry, value.as_i64()) {
                (RFC_LIFETIME, Expiry::At(_, format), Some(seconds)) => {
                    seconds_from_now(*format, seconds)
                }
                _ => value,
            };
            match field {
                Some(field) => field.set(&mut example, value),
                None => {
                    // Beside the token: in the object holding it.
                    let mut at = &mut example;
                    for name in parents {
                        at = at
                            .get_mut(*name)
                            .expect("the example holds the token's parents");
                    }
                    at[key.as_str()] = value;
                }
            }
        }
        return example.to_string().into_bytes();
    }
    let mut renamed = body;
    if let Expiry::At(_, format) = &answer.expiry {
        renamed = absolute_lifetime(&renamed, *format);
    }
    for (key, field) in [
        (RFC_TOKEN, Some(&answer.token)),
        (RFC_TYPE, answer.token_type.as_ref()),
        (RFC_LIFETIME, Some(expiry)),
        (RFC_SCOPE, answer.scopes.as_ref()),
    ] {
        if let Some(leaf) = field.and_then(|f| f.path.last()) {
            renamed = replace_bytes(
                &renamed,
                format!("\"{key}\"").as_bytes(),
                format!("\"{leaf}\"").as_bytes(),
            );
        }
    }
    // The example's other members of the token's object (GoCardless's
    // `refresh`), first in the raw object.
    let mut siblings = &example;
    for name in parents {
        siblings = &siblings[*name];
    }
    if let (Some(members), Some(open)) = (
        siblings.as_object(),
        renamed.iter().position(|b| *b == b'{'),
    ) {
        let extra: String = members
            .iter()
            .map(|(k, v)| format!("{}: {v}, ", json!(k)))
            .collect();
        renamed = [&renamed[..=open], extra.as_bytes(), &renamed[open + 1..]].concat();
    }
    if parents.is_empty() {
        return renamed;
    }
    // Put where the example has the token's object, by a marker.
    const MARKER: &str = "@@TOKEN-OBJECT@@";
    Field {
        path: parents,
        name: "",
    }
    .set(&mut example, json!(MARKER));
    let text = example.to_string();
    let quoted = format!("\"{MARKER}\"");
    let at = text.find(&quoted).expect("the marker is in the example");
    [
        &text.as_bytes()[..at],
        &renamed,
        &text.as_bytes()[at + quoted.len()..],
    ]
    .concat()
}

/// `bytes` with an `"expires_in": N` (whole seconds) written as the
/// absolute time N seconds from now, for a provider that gives one.
fn absolute_lifetime(bytes: &[u8], format: TimeFormat) -> Vec<u8> {
    let key = format!("\"{RFC_LIFETIME}\"");
    let Some(start) = bytes.windows(key.len()).position(|w| w == key.as_bytes()) else {
        return bytes.to_vec();
    };
    let mut end = start + key.len();
    while end < bytes.len() && matches!(bytes[end], b' ' | b':') {
        end += 1;
    }
    let digits = bytes[end..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let Ok(seconds) = std::str::from_utf8(&bytes[end..end + digits])
        .unwrap_or("")
        .parse::<i64>()
    else {
        return bytes.to_vec();
    };
    let value = seconds_from_now(format, seconds);
    let member = format!("{key}: {value}");
    [&bytes[..start], member.as_bytes(), &bytes[end + digits..]].concat()
}

/// `bytes` with every `from` replaced by `to`.
fn replace_bytes(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Sets every number member that is an HTTP status (100 to 599), anywhere,
/// to `to`: the status numbers an error example holds (Singapay's `status`
/// and `error.code`).
fn replace_numbers(value: &mut serde_json::Value, to: u16) {
    match value {
        serde_json::Value::Object(members) => {
            members.values_mut().for_each(|m| replace_numbers(m, to));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| replace_numbers(i, to)),
        serde_json::Value::Number(n) if n.as_u64().is_some_and(|n| (100..600).contains(&n)) => {
            *value = json!(to);
        }
        _ => {}
    }
}

/// A case's status for `provider`: 200 stands for the status the spec
/// gives a token, any other 2xx for one it does not document.
fn status_for(provider: Provider, status: u16) -> u16 {
    let statuses = provider.spec().answer.statuses;
    match status {
        200 => statuses[0],
        201..=299 => (200..=206).find(|s| !statuses.contains(s)).unwrap(),
        other => other,
    }
}

/// A raw HTTP/1.1 server for what wiremock cannot do: a body that drips, or
/// a connection reset in the middle of the body. Serves one connection.
async fn raw_server(body: Vec<u8>, reset: bool, status: u16) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let declared = if reset { body.len() + 100 } else { body.len() };
        let head = format!(
            "HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
        );
        let _ = socket.write_all(head.as_bytes()).await;
        if reset {
            let _ = socket.write_all(&body[..body.len() / 2]).await;
            // Linger zero makes the close a TCP reset; it never blocks.
            #[allow(deprecated)]
            let _ = socket.set_linger(Some(Duration::ZERO));
            drop(socket);
        } else {
            for byte in body {
                if socket.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    format!("http://{addr}")
}

/// Serves `case` and returns the base URL to fetch from.
async fn serve(provider: Provider, case: Case, elsewhere: &str) -> (String, Option<MockServer>) {
    let status = status_for(provider, case.status);
    let mut body = shaped(provider, case.shape.as_deref(), status, case.body);
    match case.mode.as_deref() {
        Some("drip") => return (raw_server(body, false, status).await, None),
        Some("reset") => return (raw_server(body, true, status).await, None),
        Some(mode) if mode.starts_with("huge ") => {
            let size: usize = mode[5..].parse().unwrap();
            body = format!("{{\"access_token\":\"{}\"}}", "x".repeat(size)).into_bytes();
        }
        Some(mode) if mode.starts_with("token ") => {
            let size: usize = mode[6..].parse().unwrap();
            body = success(provider, &"t".repeat(size), "Bearer", json!(3600))
                .to_string()
                .into_bytes();
        }
        Some(other) => panic!("unknown mode {other}"),
        None => {}
    }
    let mut template = ResponseTemplate::new(status).set_body_bytes(body);
    for (name, value) in case.headers {
        template = template.insert_header(
            name.as_str(),
            value.replace("{elsewhere}", elsewhere).as_str(),
        );
    }
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(template)
        .mount(&server)
        .await;
    (server.uri(), Some(server))
}

#[tokio::test]
async fn every_case_has_its_pinned_outcome_and_leaks_nothing() {
    let captured = crate::trace::thread_capture();
    let elsewhere = MockServer::start().await;
    let mut counts = Vec::new();
    for provider in Provider::all() {
        let cases = cases(provider);
        assert!(cases.len() >= 40, "{provider}: only {} cases", cases.len());
        for (name, path) in &cases {
            let expected = expected(provider, name)
                .unwrap_or_else(|| panic!("{provider}/{name} has no pinned outcome"));
            let (base_url, _server) = serve(provider, parse(path), &elsewhere.uri()).await;
            let cache = TokenCache::new(source(provider, &base_url, quick(1)));
            let result = cache.token().await;
            let outcome = match &result {
                Result::Ok(_) => Minted,
                Err(TokenError::Rejected { .. }) => Rejected,
                Err(TokenError::Transient { .. }) => Transient,
                Err(TokenError::InvalidResponse { .. }) => Invalid,
                Err(other) => panic!("{provider}/{name}: {other:?}"),
            };
            assert_eq!(outcome, expected, "{provider}/{name}: {result:?}");
            match &result {
                Result::Ok(token) => assert_no_canary(&format!("{token:?} {token}")),
                Err(err) => assert_no_canary(&format!("{err:?} {err}")),
            }
            let traced = captured.take();
            assert!(
                traced.contains("token_fetch"),
                "{provider}/{name}: nothing traced"
            );
            assert_no_canary(&traced);
        }
        counts.push((provider, cases.len()));
    }
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "a redirect was followed"
    );
    // Every pinned case has its file.
    // A provider's folder holds only its quirks: nothing that is common.
    let common: Vec<String> = files_in("common").into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        common.len(),
        COMMON.len(),
        "common/ and the COMMON table differ"
    );
    for provider in Provider::all() {
        for (name, _) in files_in(provider.id()) {
            assert!(
                !common.contains(&name),
                "{provider}/{name} is also in common/"
            );
        }
    }
    for (case, _) in COMMON {
        for provider in Provider::all() {
            assert!(
                cases(provider).iter().any(|(n, _)| n == case),
                "{provider}/{case} missing"
            );
        }
    }
    for (id, case, _) in SPECIFIC {
        // `provider` panics on an id that is not a registered provider.
        assert!(
            cases(provider(id)).iter().any(|(n, _)| n == case),
            "{id}/{case} missing"
        );
    }
    eprintln!("response corpus: {counts:?}");
}
