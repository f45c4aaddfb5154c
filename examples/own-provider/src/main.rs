//! Fetches an Acme Pay token from the offline sandbox through a
//! `TokenCache`, and calls the sandbox's protected API with it through
//! `Bearer`.

use own_provider::{ACME, acme, api_client, sandbox, tokens};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sandbox = sandbox().await?;
    let config = sandbox
        .config(ACME)
        .scopes([acme::Scope::PaymentsRead, acme::Scope::PaymentsWrite]);
    let tokens = tokens(config)?;
    let token = tokens.token().await?;
    println!(
        "{ACME}: a {} token for {} s, scopes [{}]",
        token.token_type(),
        token.lifetime().as_secs(),
        token.scopes().join(" "),
    );
    let origin = format!("http://{}", sandbox.addr());
    let response = api_client(tokens, &origin)?
        .get(sandbox.api_url(ACME))
        .send()
        .await?;
    println!("GET {} -> {}", sandbox.api_url(ACME), response.status());
    println!("tokens minted: {}", sandbox.mints(ACME));
    Ok(())
}
