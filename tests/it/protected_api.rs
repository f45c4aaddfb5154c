//! The sandbox's protected API (`/<id>/api/protected`), over HTTP on
//! 127.0.0.1 for every registered provider: it accepts exactly the tokens
//! the sandbox minted for that provider and has not revoked, refuses the
//! rest as RFC 6750 says, checks scopes where tokens carry them, counts its
//! requests, and logs them without the token.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{CANARY_SECRET, assert_no_canary, quick};
use paytokens::sandbox::{RequestRecord, Sandbox, SandboxClient};
use paytokens::{AccessToken, ExposeSecret, Provider, TokenSource as _};
use reqwest::StatusCode;
use serde_json::Value;

/// A fresh token of `provider`'s demo client, straight from the source.
async fn fetch(sandbox: &Sandbox, provider: Provider) -> AccessToken {
    provider
        .source(sandbox.config(provider).http(quick(1)))
        .unwrap()
        .fetch()
        .await
        .unwrap_or_else(|e| panic!("{provider}: {e}"))
}

/// An answer of the protected API: status, `WWW-Authenticate`, JSON body.
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

/// Calls `url` with `Authorization: Bearer <token>` (none when `None`).
async fn call(url: &str, token: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap();
    Answer {
        status,
        challenge,
        body,
    }
}

fn secret(token: &AccessToken) -> &str {
    token.secret().expose_secret()
}

/// Asserts a `401 invalid_token`.
fn assert_invalid_token(answer: &Answer, why: &str, context: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{context}");
    let challenge = answer.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "{context}: {challenge}"
    );
    assert_eq!(answer.body["error"], "invalid_token", "{context}");
    assert_eq!(answer.body["error_description"], why, "{context}");
}

/// Collects every request record the sandbox reports.
fn record(sandbox: &Sandbox) -> Arc<Mutex<Vec<RequestRecord>>> {
    let records = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&records);
    sandbox.on_request(move |r| sink.lock().unwrap().push(r.clone()));
    records
}

#[tokio::test]
async fn an_issued_token_is_accepted_with_its_provider_and_scopes() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let token = fetch(&sandbox, provider).await;
        let answer = call(&sandbox.api_url(provider), Some(secret(&token))).await;
        assert_eq!(answer.status, StatusCode::OK, "{provider}: {}", answer.body);
        assert_eq!(answer.body["provider"], provider.id());
        assert_eq!(answer.body["scope"], token.scopes().join(" "), "{provider}");
        assert_eq!(answer.challenge, None);
        assert_eq!(sandbox.api_requests(provider), 1);
        assert_eq!(
            sandbox.api_url(provider),
            format!("{}/api/protected", sandbox.base_url(provider))
        );
    }
}

#[tokio::test]
async fn no_token_or_an_unknown_one_is_refused() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let url = sandbox.api_url(provider);
        // No credentials at all: a challenge without an error code (RFC 6750 3.1).
        let none = call(&url, None).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{provider}");
        let challenge = none.challenge.unwrap();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(!challenge.contains("error="), "{challenge}");
        // Basic credentials are not a bearer token either.
        let basic = reqwest::Client::new()
            .get(&url)
            .basic_auth("id", Some("secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED, "{provider}");
        // A token of the right shape that the sandbox never minted.
        let forged = format!("sbx_{}", "x".repeat(40));
        let unknown = call(&url, Some(&forged)).await;
        assert_invalid_token(&unknown, "unknown token", provider.id());
        assert_eq!(sandbox.api_requests(provider), 3);
        assert_eq!(
            sandbox.requests(provider),
            0,
            "the token endpoint was not called"
        );
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_a_new_one_accepted() {
    let sandbox = Sandbox::start().await.unwrap();
    for provider in Provider::all() {
        let url = sandbox.api_url(provider);
        let first = fetch(&sandbox, provider).await;
        let second = fetch(&sandbox, provider).await;
        assert_eq!(
            call(&url, Some(secret(&first))).await.status,
            StatusCode::OK
        );
        assert_eq!(
            sandbox.revoke(provider),
            2,
            "{provider}: both tokens so far"
        );
        assert_eq!(
            sandbox.revoke(provider),
            0,
            "{provider}: none left to revoke"
        );
        for token in [&first, &second] {
            let answer = call(&url, Some(secret(token))).await;
            assert_invalid_token(&answer, "revoked token", provider.id());
        }
        // Revocation covers the tokens minted so far, not later ones.
        let third = fetch(&sandbox, provider).await;
        assert_eq!(
            call(&url, Some(secret(&third))).await.status,
            StatusCode::OK
        );
        // One token at a time.
        assert!(sandbox.revoke_token(secret(&third)));
        assert!(!sandbox.revoke_token(secret(&third)), "already revoked");
        assert!(!sandbox.revoke_token("sbx_never-minted"));
        let answer = call(&url, Some(secret(&third))).await;
        assert_invalid_token(&answer, "revoked token", provider.id());
    }
}

#[tokio::test]
async fn revoking_one_provider_or_client_leaves_the_others_alone() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut tokens = Vec::new();
    for provider in Provider::all() {
        tokens.push((provider, fetch(&sandbox, provider).await));
    }
    let (revoked, _) = tokens[0];
    assert_eq!(sandbox.revoke(revoked), 1);
    for (provider, token) in &tokens {
        let answer = call(&sandbox.api_url(*provider), Some(secret(token))).await;
        if *provider == revoked {
            assert_invalid_token(&answer, "revoked token", provider.id());
        } else {
            assert_eq!(answer.status, StatusCode::OK, "{provider}");
        }
    }
    // By client: another client's tokens of the same provider stay valid.
    let provider = tokens[1].0;
    let mut other = SandboxClient::demo(provider);
    other.client_id = "other-client".into();
    other.client_secret = "other-secret".into();
    sandbox.add_client(provider, other.clone());
    let mut config = sandbox.config(provider).http(quick(1));
    config.credentials = paytokens::Credentials::new(other.client_id, other.client_secret);
    let others = provider.source(config).unwrap().fetch().await.unwrap();
    let demo_id = sandbox.client(provider).client_id;
    assert_eq!(sandbox.revoke_client(provider, &demo_id), 1);
    let url = sandbox.api_url(provider);
    assert_eq!(
        call(&url, Some(secret(&others))).await.status,
        StatusCode::OK
    );
    let answer = call(&url, Some(secret(&tokens[1].1))).await;
    assert_invalid_token(&answer, "revoked token", provider.id());
}

#[tokio::test]
async fn another_providers_token_is_refused() {
    let sandbox = Sandbox::start().await.unwrap();
    let providers: Vec<Provider> = Provider::all().collect();
    for (i, provider) in providers.iter().enumerate() {
        let token = fetch(&sandbox, *provider).await;
        let elsewhere = providers[(i + 1) % providers.len()];
        let answer = call(&sandbox.api_url(elsewhere), Some(secret(&token))).await;
        assert_invalid_token(&answer, "token of another provider", provider.id());
    }
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut tokens = Vec::new();
    for provider in Provider::all() {
        let mut client = SandboxClient::demo(provider);
        client.client_id = "short-lived".into();
        client.lifetime = Duration::from_secs(1);
        sandbox.add_client(provider, client.clone());
        let mut config = sandbox.config(provider).http(quick(1));
        config.credentials = paytokens::Credentials::new(client.client_id, client.client_secret);
        let token = provider.source(config).unwrap().fetch().await.unwrap();
        // Whole seconds: an absolute expiry leaves a fraction more.
        assert_eq!(token.lifetime().as_secs(), 1, "{provider}");
        tokens.push((provider, token));
    }
    // Past the one-second lifetime of every token (no assertion on time).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (provider, token) in &tokens {
        let answer = call(&sandbox.api_url(*provider), Some(secret(token))).await;
        assert_invalid_token(&answer, "expired token", provider.id());
    }
}

#[tokio::test]
async fn a_required_scope_is_checked_where_tokens_carry_scopes() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut checked = 0;
    for provider in Provider::all() {
        let url = sandbox.api_url(provider);
        let granted = sandbox.client(provider).granted_scopes;
        // Where the request carries scopes, ask for the first granted one
        // only: the token then lacks the others.
        let mut config = sandbox.config(provider).http(quick(1));
        if provider.spec().scope.is_some() {
            config.scopes = granted[..1].to_vec();
        }
        let token = provider.source(config).unwrap().fetch().await.unwrap();
        let with = |scope: &str| format!("{url}?scope={}", scope.replace(' ', "%20"));
        let missing = "not-granted:scope";
        if token.scopes().is_empty() && provider.spec().scope.is_none() {
            // No scopes at all (Singapay): the query is ignored.
            let answer = call(&with(missing), Some(secret(&token))).await;
            assert_eq!(answer.status, StatusCode::OK, "{provider}");
            continue;
        }
        checked += 1;
        let own = token.scopes()[0].clone();
        assert_eq!(
            call(&with(&own), Some(secret(&token))).await.status,
            StatusCode::OK,
            "{provider}: its own scope"
        );
        let mut lacking = vec![missing.to_owned()];
        // A scope granted to the client but not requested for this token.
        lacking.extend(
            granted
                .iter()
                .filter(|s| !token.scopes().contains(s))
                .cloned(),
        );
        for scope in lacking {
            let both = format!("{own} {scope}");
            for required in [&scope, &both] {
                let answer = call(&with(required), Some(secret(&token))).await;
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{provider}: {required}"
                );
                let challenge = answer.challenge.unwrap();
                assert!(
                    challenge.contains(r#"error="insufficient_scope""#)
                        && challenge.contains(&format!(r#"scope="{required}""#)),
                    "{provider}: {challenge}"
                );
                assert_eq!(answer.body["error"], "insufficient_scope");
            }
        }
    }
    assert!(
        checked >= 3,
        "pyng-billing, pyng-checkout and autopay carry scopes"
    );
}

#[tokio::test]
async fn api_calls_are_logged_without_the_token() {
    let sandbox = Sandbox::start().await.unwrap();
    let records = record(&sandbox);
    let mut secrets = Vec::new();
    for provider in Provider::all() {
        // A client whose secret is the canary, to prove it stays out too.
        let mut client = SandboxClient::demo(provider);
        client.client_id = "canary-client".into();
        client.client_secret = CANARY_SECRET.into();
        sandbox.add_client(provider, client.clone());
        let mut config = sandbox.config(provider).http(quick(1));
        config.credentials = paytokens::Credentials::new(client.client_id, client.client_secret);
        let token = provider.source(config).unwrap().fetch().await.unwrap();
        let url = sandbox.api_url(provider);
        assert_eq!(
            call(&url, Some(secret(&token))).await.status,
            StatusCode::OK
        );
        sandbox.revoke(provider);
        assert_eq!(
            call(&url, Some(secret(&token))).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(call(&url, None).await.status, StatusCode::UNAUTHORIZED);
        secrets.push(secret(&token).to_owned());
    }
    let lines: Vec<String> = records
        .lock()
        .unwrap()
        .iter()
        .map(|r| format!("{r} {r:?}"))
        .collect();
    for provider in Provider::all() {
        let path = format!("/{}/api/protected", provider.id());
        for expected in [
            format!("{provider} GET {path} -> 200 authorized"),
            format!("{provider} GET {path} -> 401 refused: revoked token"),
            format!("{provider} GET {path} -> 401 refused: no bearer token"),
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(&format!("{expected} "))),
                "{expected} not in {lines:#?}"
            );
        }
    }
    for line in &lines {
        assert_no_canary(line);
        for token in &secrets {
            assert!(!line.contains(token.as_str()), "token in {line}");
        }
        assert!(!line.contains("sbx_"), "token in {line}");
    }
}
