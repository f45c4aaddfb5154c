//! One client-credentials token from Autopay's endpoint with oauth2 and
//! reqwest: the baseline of the cold-build comparison.
use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, ClientSecret, HttpRequest, HttpResponse, TokenResponse, TokenUrl};

async fn send(http: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut out = HttpResponse::new(response.bytes().await?.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let id = std::env::var("CLIENT_ID").unwrap_or_default();
    let secret = std::env::var("CLIENT_SECRET").unwrap_or_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let client = BasicClient::new(ClientId::new(id))
        .set_client_secret(ClientSecret::new(secret))
        .set_auth_uri(AuthUrl::new("https://api-auth.autopay.io/authorize".into()).expect("url"))
        .set_token_uri(TokenUrl::new("https://api-auth.autopay.io/oauth/token".into()).expect("url"));
    let result = client
        .exchange_client_credentials()
        .request_async(&|request| send(&http, request))
        .await;
    match result {
        Ok(token) => println!("{:?}", token.token_type()),
        Err(err) => eprintln!("{err}"),
    }
}
