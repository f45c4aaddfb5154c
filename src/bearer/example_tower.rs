use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;
use paytokens::{Bearer, BearerError, Config, Credentials, Provider, TokenCache};
use tower::{Layer, Service};

// `client`: a hyper-util client with your TLS connector (e.g. hyper-rustls).
async fn list_orders<C>(
    client: Client<C, Full<Bytes>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let provider: Provider = "pyng-checkout".parse()?;
    let config = Config::new(Credentials::new("id", "secret"))
        .base_url("https://your-host.pyng.com.au")
        .scopes(["pyng_defined_scope"]);
    let cache = TokenCache::new(provider.source(config)?);
    let bearer = Bearer::new(cache, ["https://your-host.pyng.com.au"])?;
    let mut service = bearer.layer().layer(client);

    // `Full<Bytes>` can be cloned (`RetryBody`): a 401 is retried once.
    let request = http::Request::get("https://your-host.pyng.com.au/checkout/v1/orders")
        .body(Full::new(Bytes::new()))?;
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    match service.call(request).await {
        Ok(response) => println!("{}", response.status()),
        // No token could be had: nothing was sent.
        Err(BearerError::Token(err)) => eprintln!("{err}; {}", err.advice()),
        Err(BearerError::Inner(err)) => return Err(err.into()),
    }
    Ok(())
}
