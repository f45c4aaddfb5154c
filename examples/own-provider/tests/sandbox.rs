//! The provider of this crate against the offline sandbox, as paytokens'
//! own tests use it for the providers it ships.

use own_provider::{ACME, acme, api_client, sandbox, tokens};
use paytokens::{Config, Credentials, TokenError};

#[tokio::test]
async fn one_mint_serves_every_call_and_bearer_carries_it() {
    let sandbox = sandbox().await.unwrap();
    let tokens = tokens(sandbox.config(ACME)).unwrap();
    let first = tokens.token().await.unwrap();
    let second = tokens.token().await.unwrap();
    assert!(first.is_same(&second), "the second call is a cache hit");
    assert_eq!(first.provider(), ACME);
    assert_eq!(first.provider().id(), "acme");
    // The spec's lifetime and scopes, read from its `data` envelope.
    assert_eq!(first.lifetime().as_secs(), 3600);
    assert_eq!(first.scopes(), ["payments:read", "payments:write"]);
    assert_eq!(sandbox.mints(ACME), 1);

    let api = api_client(tokens, &format!("http://{}", sandbox.addr())).unwrap();
    let response = api.get(sandbox.api_url(ACME)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sandbox.mints(ACME), 1, "Bearer used the cached token");

    // Revoked: the API answers 401, Bearer gets a new token once.
    sandbox.revoke(ACME);
    let response = api.get(sandbox.api_url(ACME)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(sandbox.mints(ACME), 2);
}

#[tokio::test]
async fn the_scopes_enum_is_the_specs() {
    assert_eq!(
        acme::Scope::ALL.map(acme::Scope::as_str),
        ["payments:read", "payments:write"]
    );
    let sandbox = sandbox().await.unwrap();
    let config = sandbox.config(ACME).scopes([acme::Scope::PaymentsRead]);
    let token = tokens(config).unwrap().token().await.unwrap();
    assert_eq!(token.scopes(), ["payments:read"]);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_the_specs_error_shape() {
    let sandbox = sandbox().await.unwrap();
    let config = Config::new(Credentials::new(
        "acme-example-client",
        "canary-not-the-secret",
    ))
    .base_url(sandbox.base_url(ACME));
    let err = tokens(config).unwrap().token().await.unwrap_err();
    let TokenError::Rejected {
        provider, status, ..
    } = &err
    else {
        panic!("expected a rejection, got {err:?}");
    };
    assert_eq!((*provider, *status), (ACME, 401));
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("acme"), "{shown}");
    assert!(!shown.contains("canary-not-the-secret"), "{shown}");
}

#[tokio::test]
async fn a_config_the_spec_does_not_allow_is_refused_before_any_request() {
    let sandbox = sandbox().await.unwrap();
    // Acme's spec declares two scopes; a third is a configuration error.
    let config = sandbox.config(ACME).scopes(["refunds:write"]);
    let Err(err) = tokens(config) else {
        panic!("a scope the spec does not declare was accepted");
    };
    assert!(
        matches!(err, TokenError::Config { provider, .. } if provider == ACME),
        "{err:?}"
    );
    assert_eq!(sandbox.requests(ACME), 0);
}

#[tokio::test]
async fn caches_sharing_a_directory_store_mint_once() {
    use paytokens::{CachePolicy, Source, TokenCache, TokenStore};
    let sandbox = sandbox().await.unwrap();
    // A private directory (the store refuses one others can read).
    let dir = std::env::temp_dir().join(format!("own-provider-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    // Two caches, as two processes of a fleet would have.
    let cache = || {
        let source = Source::<acme::Client>::new(sandbox.config(ACME)).unwrap();
        TokenCache::with_store(
            source,
            CachePolicy::default(),
            TokenStore::file(&dir).unwrap(),
        )
        .unwrap()
    };
    let (first, second) = (cache(), cache());
    let a = first.token().await.unwrap();
    let b = second.token().await.unwrap();
    assert_eq!(
        paytokens::ExposeSecret::expose_secret(a.secret()),
        paytokens::ExposeSecret::expose_secret(b.secret()),
        "the second cache took the first one's token from the store"
    );
    assert_eq!(sandbox.mints(ACME), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
