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
use paytokens::{Provider, TokenCache, TokenError};
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
            replace_numbers(&mut refusal, &["status", "code"], status);
            refusal.to_string().into_bytes()
        }
        Some("token") => {
            // The success example with its token object replaced by a
            // marker, then the marker by the case's bytes (which need not be
            // valid JSON, or UTF-8).
            const MARKER: &str = "\"@@TOKEN-OBJECT@@\"";
            let mut envelope = document_success(provider);
            if envelope.get("access_token").is_some() {
                return body;
            }
            replace_token_object(&mut envelope);
            let text = envelope.to_string();
            let at = text.find(MARKER).expect("the example holds a token object");
            [
                &text.as_bytes()[..at],
                &body,
                &text.as_bytes()[at + MARKER.len()..],
            ]
            .concat()
        }
        Some(other) => panic!("unknown shape {other}"),
    }
}

/// Replaces the object holding `access_token` with the marker string.
fn replace_token_object(value: &mut serde_json::Value) -> bool {
    let Some(members) = value.as_object_mut() else {
        return false;
    };
    for member in members.values_mut() {
        if member.get("access_token").is_some() {
            *member = json!("@@TOKEN-OBJECT@@");
            return true;
        }
        if replace_token_object(member) {
            return true;
        }
    }
    false
}

/// Sets every number member named in `names`, anywhere, to `to`.
fn replace_numbers(value: &mut serde_json::Value, names: &[&str], to: u16) {
    match value {
        serde_json::Value::Object(members) => {
            for (key, member) in members.iter_mut() {
                if member.is_number() && names.contains(&key.as_str()) {
                    *member = json!(to);
                } else {
                    replace_numbers(member, names, to);
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|i| replace_numbers(i, names, to));
        }
        _ => {}
    }
}

/// A raw HTTP/1.1 server for what wiremock cannot do: a body that drips, or
/// a connection reset in the middle of the body. Serves one connection.
async fn raw_server(body: Vec<u8>, reset: bool) -> String {
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
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
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
    let mut body = shaped(provider, case.shape.as_deref(), case.status, case.body);
    match case.mode.as_deref() {
        Some("drip") => return (raw_server(body, false).await, None),
        Some("reset") => return (raw_server(body, true).await, None),
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
    let mut template = ResponseTemplate::new(case.status).set_body_bytes(body);
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
