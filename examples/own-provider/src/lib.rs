//! A provider of your own, in your own crate: Acme Pay's spec (`acme.yaml`)
//! and `build.rs` give module [`acme`], generated the way `cargo xtask
//! regen` generates the providers paytokens ships; everything else is
//! paytokens as usual.

use paytokens::reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use paytokens::sandbox::Sandbox;
use paytokens::{Bearer, Config, InvalidOrigin, Provider, Source, TokenCache, TokenError};

// `pub mod acme`: `acme::Client` (the generated client), `acme::SPEC` (what
// codegen read from the spec) and `acme::Scope` (the scopes it declares).
paytokens::include_provider!("acme");

/// Acme Pay, as good as any provider paytokens ships: its sandbox, its
/// `Source`, its errors and metrics name it `acme`.
pub const ACME: Provider = Provider::of::<acme::Client>();

/// The offline sandbox with Acme Pay in it (and every provider paytokens
/// ships), on a free 127.0.0.1 port.
pub async fn sandbox() -> std::io::Result<Sandbox> {
    Sandbox::builder().provider(ACME).start().await
}

/// A token cache asking Acme Pay for a token once per token lifetime,
/// whatever the load.
pub fn tokens(config: Config) -> Result<TokenCache<Source<acme::Client>>, TokenError> {
    Ok(TokenCache::new(Source::<acme::Client>::new(config)?))
}

/// An HTTP client that attaches `tokens`' token to requests for `origin`
/// (and only there), and asks for a new one once when the API answers 401.
pub fn api_client(
    tokens: TokenCache<Source<acme::Client>>,
    origin: &str,
) -> Result<ClientWithMiddleware, InvalidOrigin> {
    let bearer = Bearer::new(tokens, [origin])?;
    Ok(ClientBuilder::new(paytokens::reqwest::Client::new())
        .with(bearer)
        .build())
}
