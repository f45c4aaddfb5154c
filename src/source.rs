//! [`TokenSource`], the one trait every source of tokens implements;
//! [`Source`], the one implementation over any provider's [`Adapter`]; and
//! [`AnySource`], a source of any provider behind one type.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use paytokens_runtime::{Auth, ErrorResponse, ResponseGuard, TokenEndpoint, TokenResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::config::Check;
use crate::exchange::Exchange;
use crate::{AccessToken, Config, Provider, TokenError};

/// Everything that changes which token a provider issues. Two sources with
/// different keys never share a cached token; the key holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    /// The provider.
    pub provider: Provider,
    /// The token endpoint's base URL.
    pub base_url: String,
    /// The client id.
    pub client_id: String,
    /// The requested scopes, sorted and without duplicates.
    pub scopes: Vec<String>,
    /// The header parameters sent (name as the spec writes it, value),
    /// e.g. Singapay's `X-PARTNER-ID`.
    pub headers: Vec<(String, String)>,
}

/// Something that can obtain a fresh access token: one provider endpoint with
/// one set of credentials and requested scopes.
///
/// Each [`fetch`](TokenSource::fetch) asks the provider for a new token
/// (retrying transient failures as its [`RetryPolicy`](crate::RetryPolicy)
/// says). Providers limit how often tokens may be minted, so callers that
/// need a token per request should wrap the source in a cache rather than
/// call `fetch` each time.
pub trait TokenSource: Send + Sync {
    /// The provider this source fetches from.
    fn provider(&self) -> Provider;

    /// What identifies the tokens this source fetches.
    fn cache_key(&self) -> &CacheKey;

    /// Requests a new token from the provider.
    fn fetch(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send;

    /// The client secret, from which a shared [`TokenStore`](crate::TokenStore)
    /// derives the names and keys of this source's entries (so that only
    /// holders of the secret can find or read them). `None`, the default,
    /// means the source cannot share its tokens through a store.
    fn store_secret(&self) -> Option<&SecretString> {
        None
    }
}

/// What a provider adds to its spec: the generated client, and how its
/// success and error bodies become a token and a refusal.
///
/// For the RFC 6749 shapes the generated types already implement
/// [`TokenResponse`] and [`ErrorResponse`], so an adapter names them and
/// maps nothing; a provider with its own shape names a type of its own that
/// converts from the generated one (Singapay's `{status, success, data}`).
/// Everything else (the request, credentials, header parameters, scopes,
/// checks, retries, errors, the cache key) comes from the spec through
/// [`Source`].
pub trait Adapter: Send + Sync + 'static {
    /// The client generated from the provider's spec.
    type Client: TokenEndpoint;
    /// The success body as a token: the generated type, or a wrapper.
    type Success: From<<Self::Client as TokenEndpoint>::Success> + TokenResponse;
    /// The error body as a refusal: the generated type, or a wrapper.
    type Refusal: From<<Self::Client as TokenEndpoint>::Refusal> + ErrorResponse;

    /// The provider.
    fn provider() -> Provider {
        Provider::new(<Self::Client as TokenEndpoint>::SPEC)
    }
}

/// Tokens from the provider of adapter `A`, configured by a [`Config`]
/// checked against its spec when built.
///
/// ```no_run
/// use paytokens::autopay::Autopay;
/// use paytokens::{Config, Credentials, Source, TokenSource};
///
/// # async fn run() -> Result<(), paytokens::TokenError> {
/// let source = Source::<Autopay>::new(Config::new(Credentials::new("id", "secret")))?;
/// let token = source.fetch().await?;
/// # let _ = token; Ok(()) }
/// ```
pub struct Source<A: Adapter> {
    exchange: Exchange,
    key: CacheKey,
    request: <A::Client as TokenEndpoint>::Request,
    headers: Vec<String>,
    adapter: PhantomData<fn() -> A>,
}

impl<A: Adapter> Source<A> {
    /// Checks `config` against the provider's spec and builds the source:
    /// the base URL (or the spec's default host), the credentials, the
    /// scopes (required, and declared, where the spec says so), the header
    /// parameters, and the request body, built from the spec's constants,
    /// the scopes and, where the credentials travel in the body, the client
    /// id and secret.
    pub fn new(config: Config) -> Result<Self, TokenError> {
        let provider = A::provider();
        let spec = provider.spec();
        let check = Check(provider);
        let base_url = config
            .base_url
            .as_deref()
            .or(spec.default_base_url)
            .ok_or_else(|| {
                check.fail(format!("{provider} has no default host: set the base URL"))
            })?;
        let exchange = Exchange::new(provider, base_url, &config.credentials, &config.http)?;
        let scopes = check.scopes(spec.scope.as_ref(), &config.scopes)?;
        let headers = check.headers(spec.headers, &config.headers)?;
        let request = request_body(provider, &config, &scopes)?;
        let mut sorted = scopes;
        sorted.sort();
        let key = CacheKey {
            provider,
            base_url: exchange.base_url().to_owned(),
            client_id: config.credentials.client_id.clone(),
            scopes: sorted,
            headers: spec
                .headers
                .iter()
                .zip(&headers)
                .map(|(param, value)| (param.name.to_owned(), value.clone()))
                .collect(),
        };
        Ok(Self {
            exchange,
            key,
            request,
            headers,
            adapter: PhantomData,
        })
    }

    /// One request and its answer, mapped through the adapter.
    async fn attempt(&self) -> Result<AccessToken, TokenError> {
        let x = &self.exchange;
        let guard = ResponseGuard::new(x.max_body_bytes());
        let client = A::Client::with_guard(x.base_url(), x.http()?, guard);
        let headers: Vec<&str> = self.headers.iter().map(String::as_str).collect();
        let sent = Instant::now();
        match client.send(&self.request, &headers).await {
            Ok(response) => {
                let grant = A::Success::from(response.into_inner())
                    .into_grant()
                    .map_err(|problem| x.invalid(200, &problem))?;
                x.token(sent, grant)
            }
            Err(err) => {
                let guard = client.guard();
                Err(x.error::<<A::Client as TokenEndpoint>::Success, _>(
                    err,
                    guard.status(),
                    guard.headers(),
                    |body| A::Refusal::from(body).into_refusal(),
                ))
            }
        }
    }
}

/// The request body from the spec: its constants, the scopes joined by
/// spaces, and the credentials where the spec puts them in the body; decoded
/// into the generated request type, which checks it once more.
fn request_body<R: DeserializeOwned>(
    provider: Provider,
    config: &Config,
    scopes: &[String],
) -> Result<R, TokenError> {
    let spec = provider.spec();
    let mut body = Map::new();
    for (name, value) in spec.constants {
        body.insert((*name).to_owned(), Value::from(*value));
    }
    if let Some(field) = &spec.scope
        && !scopes.is_empty()
    {
        body.insert(field.property.to_owned(), Value::from(scopes.join(" ")));
    }
    if let Auth::Body {
        client_id,
        client_secret,
    } = spec.auth
    {
        let credentials = &config.credentials;
        body.insert(
            client_id.to_owned(),
            Value::from(credentials.client_id.as_str()),
        );
        let secret = credentials.client_secret.expose_secret();
        body.insert(client_secret.to_owned(), Value::from(secret));
    }
    serde_json::from_value(Value::Object(body)).map_err(|err| TokenError::Config {
        provider,
        // serde's message names the field; values are never quoted.
        problem: format!(
            "the request cannot be built from the spec: {}",
            crate::exchange::without_values(&err.to_string())
        ),
    })
}

impl<A: Adapter> TokenSource for Source<A> {
    fn provider(&self) -> Provider {
        self.key.provider
    }

    fn cache_key(&self) -> &CacheKey {
        &self.key
    }

    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        self.exchange.with_retries(|| self.attempt()).await
    }

    fn store_secret(&self) -> Option<&SecretString> {
        Some(self.exchange.secret())
    }
}

impl<A: Adapter> fmt::Debug for Source<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A source of any provider behind one type: what [`Provider::source`]
/// returns, and what code that holds "some provider's source" (the CLI, a
/// [`TokenCache`](crate::TokenCache) chosen by configuration) uses. Cheap
/// to clone; clones share the source.
#[derive(Clone)]
pub struct AnySource(Arc<dyn DynSource>);

impl AnySource {
    /// Erases `source`'s type.
    pub fn new(source: impl TokenSource + 'static) -> Self {
        Self(Arc::new(source))
    }
}

impl TokenSource for AnySource {
    fn provider(&self) -> Provider {
        self.0.provider()
    }

    fn cache_key(&self) -> &CacheKey {
        self.0.cache_key()
    }

    fn fetch(&self) -> impl Future<Output = Result<AccessToken, TokenError>> + Send {
        self.0.fetch_boxed()
    }

    fn store_secret(&self) -> Option<&SecretString> {
        self.0.store_secret()
    }
}

impl fmt::Debug for AnySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnySource")
            .field(TokenSource::cache_key(self))
            .finish()
    }
}

/// [`TokenSource`] made dyn-compatible: its future boxed.
trait DynSource: Send + Sync {
    fn provider(&self) -> Provider;
    fn cache_key(&self) -> &CacheKey;
    fn fetch_boxed(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>>;
    fn store_secret(&self) -> Option<&SecretString>;
}

impl<T: TokenSource> DynSource for T {
    fn provider(&self) -> Provider {
        TokenSource::provider(self)
    }

    fn cache_key(&self) -> &CacheKey {
        TokenSource::cache_key(self)
    }

    fn fetch_boxed(&self) -> BoxFuture<'_, Result<AccessToken, TokenError>> {
        Box::pin(self.fetch())
    }

    fn store_secret(&self) -> Option<&SecretString> {
        TokenSource::store_secret(self)
    }
}
