//! [`Bearer`] as a `reqwest_middleware::Middleware`.

use http::Extensions;
use reqwest::header::AUTHORIZATION;
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Error, Middleware, Next, Result};

use super::Bearer;
use crate::TokenSource;
use crate::clock::Clock;

/// Attaches the token to requests for the configured origins (see
/// [`Bearer`] for the whole policy).
///
/// When no token can be had the request is not sent, and the error is
/// `reqwest_middleware::Error::Middleware` holding the
/// [`TokenError`](crate::TokenError): `err.downcast_ref::<TokenError>()`
/// on the `anyhow::Error` inside gets it. A request is retried after a 401
/// only when `Request::try_clone` can clone it (not with a streaming body).
/// Redirects the client follows happen below the middleware: reqwest drops
/// `Authorization` when one leads to another origin, and a 401 from there
/// is returned as is.
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
#[async_trait::async_trait]
impl<S: TokenSource + 'static, C: Clock> Middleware for Bearer<S, C> {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        if request.headers().contains_key(AUTHORIZATION) {
            return next.run(request, extensions).await;
        }
        let Some(origin) = self.origin_of_url(request.url()) else {
            return next.run(request, extensions).await;
        };
        let sent = self
            .token()
            .await
            .map_err(|err| Error::Middleware(err.into()))?;
        request
            .headers_mut()
            .insert(AUTHORIZATION, sent.authorization_header());
        let retry = request.try_clone();
        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        if !origin.matches(response.url()) {
            self.other_origin();
            return Ok(response);
        }
        let Some(mut retry) = retry else {
            self.refused_unclonable(&sent);
            return Ok(response);
        };
        let Some(fresh) = self.retry_token(&sent).await else {
            return Ok(response);
        };
        drop(response);
        retry
            .headers_mut()
            .insert(AUTHORIZATION, fresh.authorization_header());
        let second = next.run(retry, extensions).await?;
        if second.status() == StatusCode::UNAUTHORIZED && origin.matches(second.url()) {
            self.second_unauthorized();
        }
        Ok(second)
    }
}
