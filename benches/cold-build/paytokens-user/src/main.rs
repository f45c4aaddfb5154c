//! One client-credentials token from Autopay, cached: what a service on
//! paytokens with default features compiles.
use paytokens::autopay::Autopay;
use paytokens::{Config, Credentials, Source, TokenCache};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let id = std::env::var("CLIENT_ID").unwrap_or_default();
    let secret = std::env::var("CLIENT_SECRET").unwrap_or_default();
    let source = Source::<Autopay>::new(Config::new(Credentials::new(id, secret)));
    match source {
        Ok(source) => match TokenCache::new(source).token().await {
            Ok(token) => println!("{}", token.token_type()),
            Err(err) => eprintln!("{err}"),
        },
        Err(err) => eprintln!("{err}"),
    }
}
