//! Test harness shared by the integration tests: one description per
//! provider (route, success and refusal bodies, how to build its source
//! against a server on 127.0.0.1), canary credentials, and leak checks.
#![allow(dead_code)] // each test file uses part of it

use std::time::Duration;

use paytokens::autopay::{Autopay, AutopayConfig};
use paytokens::pyng_billing::{PyngBilling, PyngBillingConfig, Scope};
use paytokens::pyng_checkout::{PyngCheckout, PyngCheckoutConfig};
use paytokens::singapay::{Singapay, SingapayConfig};
use paytokens::{
    AccessToken, CacheKey, Credentials, HttpOptions, Provider, TokenError, TokenSource,
};
use serde_json::{Value, json};

/// A client secret that must never appear in any output.
pub const CANARY_SECRET: &str = "CANARY-SECRET-5f1e9a27";
/// An access token that must never appear in any output.
pub const CANARY_TOKEN: &str = "CANARY-TOKEN-c0ffee42d00d";
pub const CLIENT_ID: &str = "client-4711";
pub const PARTNER_ID: &str = "b3ed7d4b-a96c-6c08-b3c7-12c3124242d9";
pub const CHECKOUT_SCOPE: &str = "pyng_defined_scope";

/// The token endpoint path of each provider.
pub fn route(provider: Provider) -> &'static str {
    match provider {
        Provider::PyngBilling => "/billing/oauth2/token",
        Provider::PyngCheckout => "/checkout/oauth2/token",
        Provider::Autopay => "/oauth/token",
        Provider::Singapay => "/api/v1.0/access-token/b2b",
    }
}

/// A success body in the provider's own shape.
pub fn success(provider: Provider, token: &str, token_type: &str, expires_in: Value) -> Value {
    match provider {
        Provider::PyngBilling | Provider::PyngCheckout => json!({
            "access_token": token, "token_type": token_type,
            "expires_in": expires_in, "scope": "granted_a granted_b"
        }),
        Provider::Autopay => json!({
            "access_token": token, "token_type": token_type,
            "expires_in": expires_in, "scope": "customer_club"
        }),
        Provider::Singapay => json!({
            "status": 200, "success": true,
            "data": {"access_token": token, "token_type": token_type, "expires_in": expires_in}
        }),
    }
}

/// The provider document's own example success response, verbatim.
pub fn document_success(provider: Provider) -> Value {
    match provider {
        Provider::PyngBilling => json!({
            "access_token": "access_token_example",
            "token_type": "Bearer",
            "expires_in": 900,
            "scope": "billing:customers:invite billing:customers:read billing:batches:submit billing:batches:read"
        }),
        Provider::PyngCheckout => json!({
            "access_token": "access_token_example",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "pyng_granted_scope_1 pyng_granted_scope_2"
        }),
        Provider::Autopay => json!({
            "access_token": "exxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxQ",
            "scope": "customer_club",
            "expires_in": 86400,
            "token_type": "Bearer"
        }),
        Provider::Singapay => json!({
            "status": 200,
            "success": true,
            "data": {
                "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9{...}",
                "token_type": "Bearer",
                "expires_in": "3600"
            }
        }),
    }
}

/// The Autopay document's example request: its client id and secret.
pub const AUTOPAY_DOCUMENT_CLIENT: (&str, &str) = (
    "kWmliLIrb79QfsF9r3vJE4xrKMcdcrrA",
    "7xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxg",
);

/// The Autopay document's example request body, verbatim.
pub fn autopay_document_request() -> Value {
    json!({
        "client_id": AUTOPAY_DOCUMENT_CLIENT.0,
        "client_secret": AUTOPAY_DOCUMENT_CLIENT.1,
        "audience": "https://api.autopay.io",
        "grant_type": "client_credentials"
    })
}

/// A well-formed success body with the canary token.
pub fn good(provider: Provider) -> Value {
    success(provider, CANARY_TOKEN, "Bearer", json!(3600))
}

/// The provider's documented refusal (its example 401 body), and the code and
/// message a [`TokenError::Rejected`] should carry.
pub fn refusal(provider: Provider) -> (Value, &'static str, &'static str) {
    match provider {
        Provider::PyngBilling | Provider::PyngCheckout => (
            json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
            "invalid_client",
            "Client authentication failed",
        ),
        Provider::Autopay => (
            json!({"error": "access_denied", "error_description": "Unauthorized"}),
            "access_denied",
            "Unauthorized",
        ),
        Provider::Singapay => (
            json!({"status": 401, "success": false,
                   "error": {"code": 401, "message": "Invalid credentials"}}),
            "401",
            "Invalid credentials",
        ),
    }
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

/// Any provider's source, so a test can run over all four.
pub enum AnySource {
    PyngBilling(PyngBilling),
    PyngCheckout(PyngCheckout),
    Autopay(Autopay),
    Singapay(Singapay),
}

impl TokenSource for AnySource {
    fn provider(&self) -> Provider {
        self.cache_key().provider
    }

    fn cache_key(&self) -> &CacheKey {
        match self {
            AnySource::PyngBilling(s) => s.cache_key(),
            AnySource::PyngCheckout(s) => s.cache_key(),
            AnySource::Autopay(s) => s.cache_key(),
            AnySource::Singapay(s) => s.cache_key(),
        }
    }

    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        match self {
            AnySource::PyngBilling(s) => s.fetch().await,
            AnySource::PyngCheckout(s) => s.fetch().await,
            AnySource::Autopay(s) => s.fetch().await,
            AnySource::Singapay(s) => s.fetch().await,
        }
    }
}

/// The config of `provider` pointing at `base_url`, as its Debug text and
/// the built source.
pub fn build(
    provider: Provider,
    base_url: &str,
    credentials: Credentials,
    http: HttpOptions,
) -> (String, Result<AnySource, TokenError>) {
    match provider {
        Provider::PyngBilling => {
            let mut config = PyngBillingConfig::new(
                base_url,
                credentials,
                [Scope::BillingCustomersRead, Scope::BillingBatchesSubmit],
            );
            config.http = http;
            (
                format!("{config:?}"),
                PyngBilling::new(config).map(AnySource::PyngBilling),
            )
        }
        Provider::PyngCheckout => {
            let mut config = PyngCheckoutConfig::new(base_url, credentials, [CHECKOUT_SCOPE]);
            config.http = http;
            (
                format!("{config:?}"),
                PyngCheckout::new(config).map(AnySource::PyngCheckout),
            )
        }
        Provider::Autopay => {
            let mut config = AutopayConfig::new(credentials);
            config.base_url = base_url.to_owned();
            config.http = http;
            (
                format!("{config:?}"),
                Autopay::new(config).map(AnySource::Autopay),
            )
        }
        Provider::Singapay => {
            let mut config = SingapayConfig::new(base_url, credentials, PARTNER_ID);
            config.http = http;
            (
                format!("{config:?}"),
                Singapay::new(config).map(AnySource::Singapay),
            )
        }
    }
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
pub fn assert_result_leaks_nothing(result: &Result<AccessToken, TokenError>) {
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
