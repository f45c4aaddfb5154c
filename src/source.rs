//! [`TokenSource`], the one trait every source of tokens implements;
//! [`Source`], the one implementation over any provider's generated client; and
//! [`AnySource`], a source of any provider behind one type.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use std::time::SystemTime;

use paytokens_runtime::{Auth, ParamValue, Place, ResponseGuard, TokenEndpoint};
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

/// Tokens from the provider whose generated client is `C` (each provider
/// module names it: `paytokens::autopay::Autopay`), configured by a
/// [`Config`] checked against its spec when built. Everything (the request,
/// credentials, parameters, scopes, checks, retries, the answer's mapping,
/// errors, the cache key) comes from the spec.
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
pub struct Source<C: TokenEndpoint> {
    exchange: Exchange,
    key: CacheKey,
    request: C::Request,
    /// The values of the spec's parameters, in its order; the client
    /// secret's place is `None`, filled from the exchange when sending.
    params: Vec<Option<String>>,
    client: PhantomData<fn() -> C>,
}

impl<C: TokenEndpoint> Source<C> {
    /// Checks `config` against the provider's spec and builds the source:
    /// the base URL (given, or the named environment's server, or the spec's
    /// default host), the credentials, the scopes (required, and declared,
    /// where the spec says so), the header parameters, and the request,
    /// built from the spec's constants, the scopes and the credentials, each
    /// at the place the spec gives it.
    pub fn new(config: Config) -> Result<Self, TokenError> {
        let provider = Provider::of::<C>();
        let spec = provider.spec();
        let check = Check(provider);
        let base_url = check.host(&config)?;
        let exchange = Exchange::new(provider, base_url, &config.credentials, &config.http)?;
        let scopes = check.scopes(spec.scope.as_ref(), &config.scopes)?;
        let headers = check.headers(spec.headers, &config.headers)?;
        let request = request_body(provider, &config, &scopes)?;
        let params = params(provider, &config, &scopes, &headers);
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
            params,
            client: PhantomData,
        })
    }

    /// One request and its answer, mapped by where the spec puts each role.
    async fn attempt(&self) -> Result<AccessToken, TokenError> {
        let x = &self.exchange;
        let spec = C::SPEC;
        let guard = ResponseGuard::new(x.max_body_bytes());
        let client = C::with_guard(x.base_url(), x.http()?, guard);
        let secret = x.secret().expose_secret();
        let params: Vec<&str> = self
            .params
            .iter()
            .map(|value| value.as_deref().unwrap_or(secret))
            .collect();
        let sent = Instant::now();
        let sent_at = SystemTime::now();
        match client.send(&self.request, &params).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = serde_json::to_value(response.into_inner())
                    .map_err(|_| x.invalid(status, "the answer cannot be read back as JSON"))?;
                let grant = spec
                    .answer
                    .grant(&body, status)
                    .map_err(|problem| x.invalid(status, &problem))?;
                x.token(sent, sent_at, grant)
            }
            Err(err) => {
                let guard = client.guard();
                Err(
                    x.error::<C::Success, _>(err, guard.status(), guard.headers(), |body| {
                        let body = serde_json::to_value(body).unwrap_or_default();
                        spec.refusal.refusal(&body)
                    }),
                )
            }
        }
    }
}

/// The values of the spec's parameters, in its order: the client id, the
/// scopes joined, constants and the user's header values; `None` for the
/// client secret, which is read from the exchange when sending.
fn params(
    provider: Provider,
    config: &Config,
    scopes: &[String],
    headers: &[String],
) -> Vec<Option<String>> {
    let spec = provider.spec();
    spec.params
        .iter()
        .map(|param| match param.value {
            ParamValue::ClientId => Some(config.credentials.client_id.clone()),
            ParamValue::ClientSecret => None,
            ParamValue::Scopes => Some(
                spec.scope
                    .as_ref()
                    .map(|field| field.join.to_text(scopes))
                    .unwrap_or_default(),
            ),
            ParamValue::Constant(value) => Some(value.to_owned()),
            ParamValue::User => {
                let position = spec
                    .headers
                    .iter()
                    .position(|header| header.name == param.name);
                Some(position.map(|i| headers[i].clone()).unwrap_or_default())
            }
        })
        .collect()
}

/// The request body from the spec: its constants, the scopes in the shape
/// the spec gives them, and the credentials where the spec puts them in the
/// body; decoded into the generated request type, which checks it once more.
/// A request without a body is `null` (the unit type).
fn request_body<R: DeserializeOwned>(
    provider: Provider,
    config: &Config,
    scopes: &[String],
) -> Result<R, TokenError> {
    let spec = provider.spec();
    if spec.content_type.is_none() {
        return serde_json::from_value(Value::Null).map_err(|_| TokenError::Config {
            provider,
            problem: "the spec has no request body, but its client takes one".to_owned(),
        });
    }
    let mut body = Map::new();
    for (name, value) in spec.constants {
        body.insert((*name).to_owned(), Value::from(*value));
    }
    if let Some(field) = &spec.scope
        && let Place::Body(name) = field.place
        && !scopes.is_empty()
    {
        body.insert(name.to_owned(), field.join.to_json(scopes));
    }
    if let Auth::Fields {
        client_id,
        client_secret,
    } = spec.auth
    {
        let credentials = &config.credentials;
        if let Place::Body(name) = client_id {
            let id = credentials.client_id.as_str();
            body.insert(name.to_owned(), Value::from(id));
        }
        if let Place::Body(name) = client_secret {
            let secret = credentials.client_secret.expose_secret();
            body.insert(name.to_owned(), Value::from(secret));
        }
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

impl<C: TokenEndpoint> TokenSource for Source<C> {
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

impl<C: TokenEndpoint> fmt::Debug for Source<C> {
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
