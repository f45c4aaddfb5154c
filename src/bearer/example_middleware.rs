use std::time::Duration;

use paytokens::{Bearer, Config, Credentials, Provider, TokenCache, TokenError};
use reqwest_middleware::ClientBuilder;

async fn list_payments() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider: Provider = "autopay".parse()?;
    let cache = TokenCache::new(provider.source(Config::new(Credentials::new("id", "secret")))?);
    // The token goes to these origins only: scheme, host and port.
    let bearer = Bearer::new(cache, ["https://api.autopay.io"])?
        .invalidation_interval(Duration::from_secs(30)); // the default
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(bearer)
        .build();

    match client
        .get("https://api.autopay.io/v1/payments")
        .send()
        .await
    {
        Ok(response) => println!("{}", response.status()), // a 401 was retried once
        // No token could be had: nothing was sent.
        Err(reqwest_middleware::Error::Middleware(err)) if err.is::<TokenError>() => {
            let err = err.downcast_ref::<TokenError>().unwrap();
            eprintln!("{err}; {}", err.advice());
        }
        Err(err) => return Err(err.into()),
    }
    Ok(())
}
