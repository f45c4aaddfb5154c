//! [`TokenSource`]: the one trait every provider adapter implements.

use std::future::Future;

use crate::{AccessToken, Provider, TokenError};

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
    /// The requested audience (Autopay), if any.
    pub audience: Option<String>,
    /// The partner id (Singapay's `X-PARTNER-ID`), if any.
    pub partner_id: Option<String>,
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
}

/// Implements [`TokenSource`] for an adapter holding an `exchange`, a `key`
/// and an `attempt` method: fetching is `attempt` under the retry policy.
macro_rules! impl_token_source {
    ($adapter:ty) => {
        impl $crate::TokenSource for $adapter {
            fn provider(&self) -> $crate::Provider {
                self.exchange.provider()
            }

            fn cache_key(&self) -> &$crate::CacheKey {
                &self.key
            }

            async fn fetch(&self) -> Result<$crate::AccessToken, $crate::TokenError> {
                self.exchange.with_retries(|| self.attempt()).await
            }
        }
    };
}
pub(crate) use impl_token_source;
