//! Singapay: `POST /api/v1.0/access-token/b2b`, JSON body
//! `{"grantType":"client_credentials"}`, HTTP Basic plus `X-PARTNER-ID`. The
//! answer is wrapped in `{status, success, data}`, and `expires_in` arrives as
//! a string (`"3600"`) although documented as a number: both are accepted.
//!
//! ```no_run
//! use paytokens::singapay::Singapay;
//! use paytokens::{Config, Credentials, Source, TokenSource};
//!
//! # async fn run() -> Result<(), paytokens::TokenError> {
//! let config = Config::new(Credentials::new("client-id", "client-secret"))
//!     .base_url("https://your-singapay-host")
//!     .header("X-PARTNER-ID", "b3ed7d4b-a96c-6c08-b3c7-12c3124242d9");
//! let token = Source::<Singapay>::new(config)?.fetch().await?;
//! println!("{token}");
//! # Ok(()) }
//! ```

use paytokens_runtime::{ErrorResponse, Grant, Lifetime, Refusal, TokenResponse};
use singapay_client::types::{ErrorResponse as Body, ExpiresIn, TokenResponse as Wrapper};

/// Singapay: its own answer and error shapes, mapped here.
pub struct Singapay;

impl crate::Adapter for Singapay {
    type Client = singapay_client::Client;
    type Success = Answer;
    type Refusal = Error;
}

/// A 200 answer: a token only when `success` is true, `status` agrees with
/// HTTP and `data` is present.
pub struct Answer(Wrapper);

impl From<Wrapper> for Answer {
    fn from(wrapper: Wrapper) -> Self {
        Self(wrapper)
    }
}

impl TokenResponse for Answer {
    fn into_grant(self) -> Result<Grant, String> {
        let Wrapper {
            success,
            status,
            data,
        } = self.0;
        if !success {
            return Err("success is false in an HTTP 200 response".into());
        }
        if status != 200 {
            return Err(format!("status field is {status}, HTTP status is 200"));
        }
        let data = data.ok_or("success is true but `data` is missing")?;
        Ok(Grant {
            access_token: data.access_token,
            token_type: data.token_type,
            expires_in: match data.expires_in {
                ExpiresIn::Int64(seconds) => Lifetime::Seconds(seconds),
                ExpiresIn::String(text) => Lifetime::Text(text),
            },
            scope: None,
        })
    }
}

/// An error answer: `error.code` and `error.message`, when present.
pub struct Error(Body);

impl From<Body> for Error {
    fn from(body: Body) -> Self {
        Self(body)
    }
}

impl ErrorResponse for Error {
    fn into_refusal(self) -> Refusal {
        let detail = self.0.error;
        Refusal {
            code: detail.as_ref().and_then(|d| d.code).map(|c| c.to_string()),
            message: detail.and_then(|d| d.message),
        }
    }
}
