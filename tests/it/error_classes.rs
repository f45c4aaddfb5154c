//! Every [`TokenError`] class produced by a real HTTP exchange with wiremock
//! on 127.0.0.1, for all four providers, and never a canary secret or token
//! in the Debug or Display of what comes back.

use crate::common;

use std::time::{Duration, SystemTime};

use common::*;
use paytokens::TokenSource as _;
use paytokens::{
    Auth, Credentials, Expect, Expiry, Field, HttpOptions, Provider, TimeFormat, TokenError,
    TransientCause,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Serves `template` for every POST and returns the server.
async fn serve(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// One fetch of `provider` against a server answering `template`.
async fn fetch(
    provider: Provider,
    template: ResponseTemplate,
    http: HttpOptions,
) -> (Result<paytokens::AccessToken, TokenError>, usize) {
    let server = serve(template).await;
    let result = source(provider, &server.uri(), http).fetch().await;
    assert_result_leaks_nothing(&result);
    let requests = server.received_requests().await.unwrap().len();
    (result, requests)
}

/// The object holding the token (the body, or a wrapper's member such as
/// Singapay's `data`), found by the path of the spec's token role.
fn token_fields(provider: Provider, body: &mut Value) -> &mut serde_json::Map<String, Value> {
    let path = provider.spec().answer.token.path;
    let mut at = body;
    for name in &path[..path.len() - 1] {
        at = at
            .get_mut(*name)
            .expect("the success body has the token's parents");
    }
    at.as_object_mut().expect("the token's parent is an object")
}

/// Sets (or, with `None`, removes) the member of a field role.
fn edit_field(body: &mut Value, field: &Field, value: Option<Value>) {
    match value {
        Some(value) => field.set(body, value),
        None => remove_member(body, field.path),
    }
}

fn invalid_problem(
    provider: Provider,
    result: Result<paytokens::AccessToken, TokenError>,
) -> String {
    match result {
        Err(TokenError::InvalidResponse {
            provider: p,
            problem,
            ..
        }) => {
            assert_eq!(p, provider);
            problem
        }
        other => panic!("{provider}: expected InvalidResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn refusal_with_a_non_json_body_is_still_rejected_with_its_status() {
    for provider in Provider::all() {
        for status in [400, 401, 403] {
            let page = ResponseTemplate::new(status)
                .set_body_raw("<html><body>Forbidden</body></html>", "text/html");
            let (result, requests) = fetch(provider, page, quick(3)).await;
            assert_eq!(
                result.unwrap_err(),
                TokenError::Rejected {
                    provider,
                    status,
                    code: None,
                    message: None
                }
            );
            assert_eq!(requests, 1, "a refusal is not retried");
        }
    }
}

#[tokio::test]
async fn server_errors_are_transient_and_retried_up_to_the_attempt_limit() {
    for provider in Provider::all() {
        for status in [500, 502, 503] {
            let page = ResponseTemplate::new(status).set_body_raw("<h1>down</h1>", "text/html");
            let (result, requests) = fetch(provider, page, quick(3)).await;
            let err = result.unwrap_err();
            assert!(err.is_retryable(), "{err}");
            assert!(
                matches!(err, TokenError::Transient { status: Some(s), .. } if s == status),
                "{err:?}"
            );
            assert_eq!(requests, 3, "{provider} {status}");
        }
    }
}

#[tokio::test]
async fn a_transient_failure_followed_by_success_yields_the_token() {
    for provider in Provider::all() {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(any())
            .respond_with(minted(provider, good(provider)))
            .mount(&server)
            .await;
        let token = source(provider, &server.uri(), quick(3))
            .fetch()
            .await
            .unwrap();
        assert_eq!(token.provider(), provider);
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn too_many_requests_carries_retry_after_in_seconds() {
    for provider in Provider::all() {
        let template = ResponseTemplate::new(429).insert_header("retry-after", "120");
        let (result, _) = fetch(provider, template, quick(1)).await;
        let err = result.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(
            err.retry_after(),
            Some(Duration::from_secs(120)),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn too_many_requests_carries_retry_after_as_an_http_date() {
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
    for provider in Provider::all() {
        let template = ResponseTemplate::new(429).insert_header("retry-after", date.as_str());
        let (result, _) = fetch(provider, template, quick(1)).await;
        let wait = result
            .unwrap_err()
            .retry_after()
            .expect("retry_after is set");
        assert!(
            wait > Duration::from_secs(590) && wait <= Duration::from_secs(600),
            "{wait:?}"
        );
    }
}

#[tokio::test]
async fn retry_after_above_the_cap_ends_the_fetch_without_waiting() {
    for provider in Provider::all() {
        // Default cap: 30 s; the provider asks for 120 s.
        let template = ResponseTemplate::new(429).insert_header("retry-after", "120");
        let (result, requests) = fetch(provider, template, quick(3)).await;
        assert_eq!(
            result.unwrap_err().retry_after(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(requests, 1, "{provider}");
    }
}

#[tokio::test]
async fn retry_after_within_the_cap_is_honoured_by_retrying() {
    for provider in Provider::all() {
        let template = ResponseTemplate::new(429).insert_header("retry-after", "0");
        let (result, requests) = fetch(provider, template, quick(2)).await;
        assert!(result.unwrap_err().is_retryable());
        assert_eq!(requests, 2, "{provider}");
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient_naming_the_endpoint_and_timeout() {
    for provider in Provider::all() {
        let slow = minted(provider, good(provider)).set_delay(Duration::from_secs(5));
        let server = serve(slow).await;
        let base = format!("{}/api", server.uri());
        let err = source(provider, &base, quick(1)).fetch().await.unwrap_err();
        assert_no_canary(&format!("{err:?} {err}"));
        match &err {
            TokenError::Transient {
                reason,
                status: None,
                ..
            } => assert_eq!(
                *reason,
                format!("request to {} timed out after 500 ms", server.uri())
            ),
            other => panic!("{provider}: {other:?}"),
        }
        assert_eq!(err.advice(), "try again later");
    }
}

/// A port on 127.0.0.1 that was bound and closed again: connecting to it is
/// refused.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_refused_connection_names_host_and_port_and_advises_checking_them() {
    let port = closed_port();
    for provider in Provider::all() {
        let base = format!("http://127.0.0.1:{port}/api");
        let err = source(provider, &base, quick(2)).fetch().await.unwrap_err();
        assert_no_canary(&format!("{err:?} {err}"));
        assert!(
            matches!(
                err,
                TokenError::Transient {
                    status: None,
                    cause: TransientCause::ConnectionRefused,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            format!("{provider} is unavailable: connection refused by http://127.0.0.1:{port}")
        );
        assert_eq!(err.advice(), "check the base URL (host and port)");
    }
}

/// A plain-TCP server on 127.0.0.1 that answers a TLS ClientHello with an
/// HTTP error page, so the client's TLS handshake fails. Returns its port.
async fn plain_tcp_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
                // Read to the client's close, so ours is not a reset.
                while socket.read(&mut buf).await.unwrap_or(0) > 0 {}
            });
        }
    });
    port
}

#[tokio::test]
async fn a_failed_tls_handshake_names_the_endpoint_and_the_tls_error() {
    let port = plain_tcp_server().await;
    for provider in Provider::all() {
        let base = format!("https://127.0.0.1:{port}/api");
        let err = source(provider, &base, quick(1)).fetch().await.unwrap_err();
        assert_no_canary(&format!("{err:?} {err}"));
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            matches!(
                err,
                TokenError::Transient {
                    cause: TransientCause::Tls,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        let expected = format!(
            "{provider} is unavailable: TLS handshake failed with https://127.0.0.1:{port}: "
        );
        assert!(text.starts_with(&expected), "{text}");
        assert!(text.contains("corrupt message"), "{text}");
        assert_eq!(
            err.advice(),
            "check the base URL and the server's certificate"
        );
    }
}

/// A server on 127.0.0.1 that reads the request head and resets the
/// connection. Returns its base URL.
async fn resetting_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            // Linger zero makes the close a TCP reset; it never blocks.
            #[allow(deprecated)]
            let _ = socket.set_linger(Some(Duration::ZERO));
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_reset_connection_says_so_and_advises_trying_again() {
    let base = resetting_server().await;
    for provider in Provider::all() {
        let err = source(provider, &base, quick(1)).fetch().await.unwrap_err();
        assert_no_canary(&format!("{err:?} {err}"));
        assert_eq!(
            err.to_string(),
            format!("{provider} is unavailable: connection to {base} was reset")
        );
        assert!(
            matches!(
                err,
                TokenError::Transient {
                    cause: TransientCause::ConnectionReset,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.advice(), "try again later");
    }
}

#[tokio::test]
async fn every_error_class_advises_what_to_do() {
    let provider = provider("pyng-checkout");
    let (refused, _) = fetch(provider, ResponseTemplate::new(401), quick(1)).await;
    assert_eq!(
        refused.unwrap_err().advice(),
        "check the client id, secret, scopes and partner id"
    );
    let (unavailable, _) = fetch(provider, ResponseTemplate::new(503), quick(1)).await;
    assert_eq!(unavailable.unwrap_err().advice(), "try again later");
    let busy = ResponseTemplate::new(429).insert_header("retry-after", "60");
    let (busy, _) = fetch(provider, busy, quick(1)).await;
    assert_eq!(busy.unwrap_err().advice(), "try again later");
    let html = ResponseTemplate::new(200).set_body_raw("<html></html>", "text/html");
    let (invalid, _) = fetch(provider, html, quick(1)).await;
    assert_eq!(
        invalid.unwrap_err().advice(),
        "check the base URL; if it is right, report this to the provider"
    );
    let (_, config) = build(
        provider,
        "ftp://127.0.0.1/",
        Credentials::new(CLIENT_ID, CANARY_SECRET),
        HttpOptions::default(),
    );
    assert_eq!(
        config.err().unwrap().advice(),
        "fix the configuration and run again"
    );
}

#[tokio::test]
async fn a_refusal_code_that_only_repeats_the_status_is_not_shown() {
    let singapay = provider("singapay");
    let (body, code, _) = refusal(singapay);
    assert_eq!(code, "401", "singapay's example code repeats the status");
    let template = ResponseTemplate::new(401).set_body_json(body);
    let (result, _) = fetch(singapay, template, quick(1)).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "singapay rejected the token request with HTTP 401: Invalid credentials"
    );

    let coded = json!({"status": 401, "success": false,
                       "error": {"code": 4011, "message": "Invalid credentials"}});
    let template = ResponseTemplate::new(401).set_body_json(coded);
    let (result, _) = fetch(singapay, template, quick(1)).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "singapay rejected the token request with HTTP 401: 4011: Invalid credentials"
    );

    let pyng_billing = provider("pyng-billing");
    let (body, _, _) = refusal(pyng_billing);
    let template = ResponseTemplate::new(401).set_body_json(body);
    let (result, _) = fetch(pyng_billing, template, quick(1)).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "pyng-billing rejected the token request with HTTP 401: invalid_client: Client \
         authentication failed"
    );
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let elsewhere = serve(ResponseTemplate::new(200)).await;
    for provider in Provider::all() {
        for status in [301, 302, 307] {
            let redirect = ResponseTemplate::new(status)
                .insert_header("location", format!("{}/steal", elsewhere.uri()).as_str());
            let (result, requests) = fetch(provider, redirect, quick(3)).await;
            let problem = invalid_problem(provider, result);
            assert!(problem.contains("redirect"), "{problem}");
            assert_eq!(requests, 1);
        }
    }
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn unusable_success_bodies_are_invalid_responses_naming_the_problem() {
    for provider in Provider::all() {
        let status = ok(provider);
        let raw = |body: &str| {
            ResponseTemplate::new(status).set_body_raw(body.to_owned(), "application/json")
        };
        let cases = [
            (raw(""), "body is empty"),
            (
                raw("{\"access_token\": \"CANARY-TOKEN-c0ffee42d00d\", \"tok"),
                "truncated",
            ),
            (raw("<html>maintenance</html>"), "HTML"),
            (raw("access_token=CANARY-TOKEN-c0ffee42d00d"), "not JSON"),
            (raw("[]"), "schema"),
            (raw("null"), "schema"),
            (raw("42"), "schema"),
            (raw("\"CANARY-TOKEN-c0ffee42d00d\""), "schema"),
        ];
        for (template, expected) in cases {
            let (result, requests) = fetch(provider, template, quick(3)).await;
            let problem = invalid_problem(provider, result);
            assert!(problem.contains(expected), "{provider}: {problem}");
            assert_eq!(requests, 1, "invalid responses are not retried");
        }
    }
}

/// A field's own member name, which every problem with it names.
fn leaf(field: &Field) -> String {
    field.path.last().copied().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn bad_token_fields_are_invalid_responses_naming_the_field() {
    for provider in Provider::all() {
        let answer = &provider.spec().answer;
        let token = answer.token.name;
        // (case, field, new value or None to remove, what the problem says)
        let mut cases: Vec<(&str, &Field, Option<Value>, String)> = vec![
            // A member the schema requires is missed by the schema (naming
            // it), an optional one by the role: either names the member.
            ("missing token", &answer.token, None, leaf(&answer.token)),
            (
                "empty token",
                &answer.token,
                Some(json!("")),
                format!("{token} is empty"),
            ),
            (
                "null token",
                &answer.token,
                Some(Value::Null),
                leaf(&answer.token),
            ),
            (
                "number token",
                &answer.token,
                Some(json!(7)),
                leaf(&answer.token),
            ),
        ];
        if let Some(field) = &answer.token_type {
            let name = field.name;
            cases.extend([
                (
                    "mac type",
                    field,
                    Some(json!("mac")),
                    "`mac`, not Bearer".to_owned(),
                ),
                (
                    "empty type",
                    field,
                    Some(json!("")),
                    format!("{name} is empty, not Bearer"),
                ),
                (
                    "token as type",
                    field,
                    Some(json!(CANARY_TOKEN)),
                    format!("{name} is not Bearer"),
                ),
            ]);
        }
        match &answer.expiry {
            Expiry::In(field) => {
                let name = field.name;
                cases.extend([
                    (
                        "zero lifetime",
                        field,
                        Some(json!(0)),
                        format!("{name} is 0"),
                    ),
                    (
                        "negative lifetime",
                        field,
                        Some(json!(-1)),
                        format!("{name} is -1"),
                    ),
                    (
                        "fractional lifetime",
                        field,
                        Some(json!(1.5)),
                        name.to_owned(),
                    ),
                    ("absurd lifetime", field, Some(json!(1e20)), name.to_owned()),
                    (
                        "huge integer",
                        field,
                        Some(json!(99_999_999_999i64)),
                        name.to_owned(),
                    ),
                    ("missing lifetime", field, None, leaf(field)),
                ]);
            }
            Expiry::At(field, format) => {
                let name = field.name;
                let past = match format {
                    TimeFormat::DateTime => json!("2001-01-01T00:00:00Z"),
                    TimeFormat::UnixSeconds => json!(978_307_200),
                };
                cases.extend([
                    (
                        "lifetime in the past",
                        field,
                        Some(past),
                        format!("{name} is not after the time the request was sent"),
                    ),
                    ("not a time", field, Some(json!(true)), leaf(field)),
                    ("missing lifetime", field, None, leaf(field)),
                ]);
            }
        }
        for (case, field, value, expected) in cases {
            let mut body = good(provider);
            edit_field(&mut body, field, value);
            let (result, _) = fetch(provider, minted(provider, body), quick(1)).await;
            let problem = invalid_problem(provider, result);
            assert!(problem.contains(&expected), "{provider} {case}: {problem}");
        }
    }
}

#[tokio::test]
async fn non_numeric_lifetimes_are_invalid_responses() {
    for provider in Provider::all() {
        let answer = &provider.spec().answer;
        let (field, texts): (&Field, &[&str]) = match &answer.expiry {
            Expiry::In(field) => (field, &["abc", "3600s", "1.5", "-1", ""]),
            Expiry::At(field, TimeFormat::DateTime) => (
                field,
                &["abc", "2026-13-01T00:00:00Z", "tomorrow", "1767225600", ""],
            ),
            Expiry::At(field, TimeFormat::UnixSeconds) => (field, &["abc", ""]),
        };
        for text in texts {
            let mut body = good(provider);
            field.set(&mut body, json!(text));
            let (result, _) = fetch(provider, minted(provider, body), quick(1)).await;
            let problem = invalid_problem(provider, result);
            assert!(
                problem.contains(field.name),
                "{provider} {text:?}: {problem}"
            );
        }
    }
}

/// A success body whose envelope's conditions (`x-paytokens-expect`) fail
/// is an invalid response naming the member: Singapay's `success: false`,
/// or a `status` that disagrees with HTTP.
#[tokio::test]
async fn an_envelope_condition_not_met_is_an_invalid_response_naming_it() {
    let mut checked = 0;
    for provider in Provider::all() {
        for (field, expect) in provider.spec().answer.expect {
            let wrong = match expect {
                Expect::Value(text) => match serde_json::from_str::<Value>(text).unwrap() {
                    Value::Bool(b) => json!(!b),
                    _ => json!("something else"),
                },
                Expect::HttpStatus => json!(401),
            };
            for value in [Some(wrong), None] {
                let mut body = good(provider);
                edit_field(&mut body, field, value.clone());
                let (result, _) = fetch(provider, minted(provider, body), quick(1)).await;
                let problem = invalid_problem(provider, result);
                assert!(
                    problem.contains(&format!("`{}`", field.name)),
                    "{provider} {value:?}: {problem}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no provider's answer has an envelope condition to check"
    );
}

/// A token role nested in an envelope (Singapay's `data`): the envelope
/// without it is an invalid response naming the path.
#[tokio::test]
async fn an_envelope_without_its_token_member_is_an_invalid_response() {
    let mut checked = 0;
    for provider in Provider::all() {
        let token = &provider.spec().answer.token;
        let Some((_, parents)) = token.path.split_last().filter(|(_, p)| !p.is_empty()) else {
            continue;
        };
        let parent = Field {
            path: parents,
            name: "",
        };
        let mut body = good(provider);
        edit_field(&mut body, &parent, None);
        let (result, _) = fetch(provider, minted(provider, body), quick(1)).await;
        // Named by the mapping (`data.access_token` is missing), or by the
        // schema where the envelope requires it (`credential`).
        let problem = invalid_problem(provider, result);
        let removed = parents.last().unwrap();
        assert!(problem.contains(removed), "{provider}: {problem}");
        checked += 1;
    }
    assert!(checked > 0, "no provider nests its token");
}

#[tokio::test]
async fn a_body_declared_over_the_limit_is_refused_before_it_is_read() {
    for provider in Provider::all() {
        let huge = "x".repeat(1024 * 1024);
        let body = success(provider, &huge, "Bearer", json!(3600));
        let (result, _) = fetch(provider, minted(provider, body), quick(1)).await;
        let problem = invalid_problem(provider, result);
        assert!(
            problem.contains("exceeds the limit of 65536 bytes"),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn an_undocumented_success_status_is_an_invalid_response() {
    for provider in Provider::all() {
        let statuses = provider.spec().answer.statuses;
        let other = (200..=206).find(|s| !statuses.contains(s)).unwrap();
        let template = ResponseTemplate::new(other).set_body_json(good(provider));
        let (result, _) = fetch(provider, template, quick(1)).await;
        let problem = invalid_problem(provider, result);
        assert!(
            problem.contains(&format!("unexpected HTTP status {other}")),
            "{provider}: {problem}"
        );
    }
}

#[tokio::test]
async fn unknown_extra_fields_are_accepted() {
    for provider in Provider::all() {
        let mut body = good(provider);
        token_fields(provider, &mut body).insert("refresh_hint".into(), json!({"x": [1, 2]}));
        let (result, _) = fetch(provider, minted(provider, body), quick(1)).await;
        assert!(result.is_ok(), "{provider}: {result:?}");
    }
}

#[tokio::test]
async fn a_secret_echoed_in_a_refusal_message_is_masked() {
    for provider in Provider::all() {
        // The spec's refusal example with the secret in its message.
        let (mut body, _, message) = refusal(provider);
        let echoed = Value::from(format!("bad secret {CANARY_SECRET}"));
        let before = body.clone();
        let field = provider.spec().refusal.message.as_ref();
        let field = field.unwrap_or_else(|| panic!("{provider}: no error message role"));
        field.set(&mut body, echoed);
        assert_ne!(
            body, before,
            "{provider}: no message ({message}) to replace"
        );
        let (result, _) = fetch(
            provider,
            ResponseTemplate::new(401).set_body_json(body),
            quick(1),
        )
        .await;
        match result.unwrap_err() {
            TokenError::Rejected {
                message: Some(message),
                ..
            } => {
                assert_eq!(message, "bad secret [REDACTED]", "{provider}")
            }
            other => panic!("{provider}: {other:?}"),
        }
    }
}

/// The providers whose spec puts the credentials in HTTP Basic (`basic`)
/// or in the request body (`!basic`); never none of them.
fn by_auth(basic: bool) -> Vec<Provider> {
    let found: Vec<Provider> = Provider::all()
        .filter(|p| matches!(p.spec().auth, Auth::Basic) == basic)
        .collect();
    assert!(!found.is_empty(), "no provider with basic = {basic}");
    found
}

#[test]
fn invalid_configuration_is_refused_when_built() {
    let ok_id = || Credentials::new(CLIENT_ID, CANARY_SECRET);
    let mut cases: Vec<(Provider, &str, Credentials, &str)> = vec![
        (
            provider("autopay"),
            "ftp://127.0.0.1/",
            ok_id(),
            "scheme `ftp`",
        ),
        (provider("autopay"), "not a url", ok_id(), "is not a URL"),
        // Not a URL, so not shown: it may be a secret pasted in its place.
        (provider("singapay"), CANARY_SECRET, ok_id(), "is not a URL"),
        (
            provider("pyng-billing"),
            "http://pyng.invalid",
            ok_id(),
            "plain http to a non-loopback host",
        ),
        (
            provider("singapay"),
            "https://user:CANARY-SECRET-5f1e9a27@singapay.invalid",
            ok_id(),
            "username or password",
        ),
        (
            provider("pyng-checkout"),
            "https://pyng.invalid/?a=b",
            ok_id(),
            "query",
        ),
        (
            provider("pyng-checkout"),
            "https://pyng.invalid",
            Credentials::new("", CANARY_SECRET),
            "client id is empty",
        ),
        (
            provider("autopay"),
            "https://autopay.invalid",
            Credentials::new(CLIENT_ID, ""),
            "client secret is empty",
        ),
    ];
    // HTTP Basic cannot carry a `:` in the user name.
    for provider in by_auth(true) {
        cases.push((
            provider,
            "https://provider.invalid",
            Credentials::new("id:x", CANARY_SECRET),
            "`:`",
        ));
    }
    for (provider, url, credentials, expected) in cases {
        let (_, built) = build(provider, url, credentials, HttpOptions::default());
        let Err(err) = built else {
            panic!("{provider} {url}: accepted")
        };
        assert_no_canary(&format!("{err:?} {err}"));
        assert!(matches!(err, TokenError::Config { .. }), "{err:?}");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn a_refused_base_url_is_shown_without_userinfo_query_or_fragment() {
    let credentials = || Credentials::new(CLIENT_ID, CANARY_SECRET);
    for (url, expected) in [
        (
            "https://pyng.invalid/api?key=k#frag",
            "invalid pyng-checkout configuration: base URL `https://pyng.invalid/api` must not \
             have a query or fragment",
        ),
        (
            "http://me:pw@pyng.invalid/api?key=k",
            "invalid pyng-checkout configuration: base URL `http://pyng.invalid/api` must not \
             carry a username or password",
        ),
        (
            "https://me:pw@pyng .invalid/?key=k",
            "invalid pyng-checkout configuration: base URL is not a URL (invalid international \
             domain name); expected https://host[:port][/path]",
        ),
    ] {
        let (_, built) = build(
            provider("pyng-checkout"),
            url,
            credentials(),
            HttpOptions::default(),
        );
        assert_eq!(built.err().unwrap().to_string(), expected, "{url}");
    }
}

#[test]
fn a_colon_in_the_client_id_is_fine_where_it_travels_in_json() {
    for provider in by_auth(false) {
        let credentials = Credentials::new("id:with:colons", CANARY_SECRET);
        let (_, built) = build(
            provider,
            "https://provider.invalid",
            credentials,
            HttpOptions::default(),
        );
        assert!(built.is_ok(), "{provider}: {built:?}");
    }
}

/// Builds `provider`'s source from its test config (the spec's example
/// scopes and headers) changed by `edit`, and returns the Config error.
fn refused(provider: Provider, edit: impl FnOnce(&mut paytokens::Config)) -> TokenError {
    let credentials = Credentials::new(CLIENT_ID, CANARY_SECRET);
    let mut config = common::config(
        provider,
        "https://provider.invalid",
        credentials,
        HttpOptions::default(),
    );
    edit(&mut config);
    let err = provider.source(config).expect_err("accepted");
    assert_no_canary(&format!("{err:?} {err}"));
    assert!(
        matches!(&err, TokenError::Config { provider: p, .. } if *p == provider),
        "{err:?}"
    );
    err
}

#[test]
fn provider_specific_settings_are_checked_when_built() {
    let mut checked = (0, 0, 0);
    for provider in Provider::all() {
        let spec = provider.spec();
        if spec.default_base_url.is_none() {
            let err = refused(provider, |c| c.base_url = None);
            let environments: Vec<&str> = spec.environments().collect();
            let hint = if environments.is_empty() {
                String::new()
            } else {
                format!("choose an environment ({}) or ", environments.join(", "))
            };
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid {provider} configuration: {provider} has no default host: {hint}set \
                     the base URL"
                )
            );
        }
        if let Some(field) = &spec.scope {
            checked.0 += 1;
            if field.required {
                let no_scopes = refused(provider, |c| c.scopes.clear());
                assert!(
                    no_scopes.to_string().contains("at least one scope"),
                    "{no_scopes}"
                );
            }
            let spaced = refused(provider, |c| c.scopes = vec!["a b".to_owned()]);
            assert!(
                spaced.to_string().contains("not a valid scope token"),
                "{spaced}"
            );
            if let Some(declared) = field.declared {
                checked.1 += 1;
                let unknown = refused(provider, |c| c.scopes.push("not_declared".to_owned()));
                let n = example_scopes(provider).len() + 1;
                assert_eq!(
                    unknown.to_string(),
                    format!(
                        "invalid {provider} configuration: scope {n} of {n} is not one of the \
                         spec's: {}",
                        declared.join(", ")
                    )
                );
            }
        }
        for param in spec.headers {
            checked.2 += 1;
            if param.required {
                let missing = refused(provider, |c| c.headers.clear());
                assert!(
                    missing
                        .to_string()
                        .contains(&format!("{provider} needs the {} header", param.name)),
                    "{missing}"
                );
            }
            for value in ["", "has space", "new\nline"] {
                let err = refused(provider, |c| {
                    for (name, old) in &mut c.headers {
                        if name == param.name {
                            *old = value.to_owned();
                        }
                    }
                });
                assert!(err.to_string().contains(param.name), "{err}");
            }
        }
        // A header the spec does not declare is refused, whatever the provider.
        let unknown = refused(provider, |c| {
            c.headers
                .push(("X-Not-Declared".to_owned(), "v".to_owned()));
        });
        assert!(
            unknown
                .to_string()
                .contains("takes no `X-Not-Declared` header"),
            "{unknown}"
        );
    }
    // The specs exercise every check: scopes, declared scopes, headers.
    assert!(
        checked.0 > 0 && checked.1 > 0 && checked.2 > 0,
        "{checked:?}"
    );
    let zero = HttpOptions {
        request_timeout: Duration::ZERO,
        ..HttpOptions::default()
    };
    let url = "https://provider.invalid";
    let creds = || Credentials::new(CLIENT_ID, CANARY_SECRET);
    let (_, built) = build(provider("autopay"), url, creds(), zero);
    assert!(built.err().unwrap().to_string().contains("timeouts"));
}

#[test]
fn scopes_for_a_provider_without_scopes_and_a_header_given_twice_are_refused() {
    let credentials = || Credentials::new(CLIENT_ID, CANARY_SECRET);
    let refused = |provider: Provider, config: paytokens::Config| {
        let err = provider.source(config).unwrap_err();
        assert_no_canary(&format!("{err:?} {err}"));
        assert!(matches!(err, TokenError::Config { .. }), "{err:?}");
        err.to_string()
    };
    let mut without_scopes = 0;
    let mut with_headers = 0;
    for provider in Provider::all() {
        let spec = provider.spec();
        let config = common::config(provider, "https://pay.invalid", credentials(), quick(1));
        if spec.scope.is_none() {
            without_scopes += 1;
            let message = refused(provider, config.clone().scopes(["read"]));
            assert!(message.contains("carries no scopes"), "{message}");
        }
        for param in spec.headers {
            with_headers += 1;
            let twice = config
                .clone()
                .header(param.name.to_lowercase(), "other-value");
            let message = refused(provider, twice);
            assert!(message.contains("header is given twice"), "{message}");
        }
    }
    assert!(
        without_scopes > 0 && with_headers > 0,
        "the specs exercise neither check"
    );
}

/// An environment the spec names selects its server; one it does not name,
/// or an environment together with a base URL, is refused naming the
/// environments there are; a provider with environments and no default
/// host needs one of them or a base URL.
#[test]
fn environments_select_the_specs_servers() {
    let mut checked = 0;
    for provider in Provider::all() {
        let spec = provider.spec();
        let config = || {
            let mut config = common::config(
                provider,
                "https://unused.invalid",
                Credentials::new(CLIENT_ID, CANARY_SECRET),
                quick(1),
            );
            config.base_url = None;
            config
        };
        for server in spec.servers {
            let Some(name) = server.environment else {
                continue;
            };
            let source = provider.source(config().environment(name)).unwrap();
            assert_eq!(source.cache_key().base_url, server.url, "{provider} {name}");
            checked += 1;
        }
        let names: Vec<&str> = spec.environments().collect();
        let err = provider
            .source(config().environment("nowhere"))
            .unwrap_err()
            .to_string();
        let expected = if names.is_empty() {
            "its spec names: none".to_owned()
        } else {
            format!("its spec names: {}", names.join(", "))
        };
        assert!(
            err.contains("no `nowhere` environment") && err.contains(&expected),
            "{err}"
        );
        let both = config()
            .base_url("https://pay.invalid")
            .environment("sandbox");
        let err = provider.source(both).unwrap_err().to_string();
        assert!(err.contains("not both"), "{provider}: {err}");
    }
    assert!(checked > 0, "no spec names an environment");
}
