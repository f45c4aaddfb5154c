//! [`BearerLayer`]: [`Bearer`] as a tower `Layer` for services of
//! `http::Request` (a hyper client, a tonic-style stack).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode, Uri};
use tower::{Layer, Service};

use super::{Bearer, Origin};
use crate::clock::Clock;
use crate::{TokenError, TokenSource};

impl<S: TokenSource + 'static, C: Clock> Bearer<S, C> {
    /// A tower `Layer` attaching the token, with the same policy as the
    /// middleware (see [`Bearer`]).
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub fn layer(&self) -> BearerLayer<S, C> {
        BearerLayer {
            bearer: self.clone(),
        }
    }

    /// The configured origin of a request's URI; none without an authority.
    fn origin_of_uri(&self, uri: &Uri) -> Option<&Origin> {
        let scheme = uri.scheme_str()?;
        let authority = uri.authority()?;
        self.find(scheme, authority.host(), authority.port_u16())
    }
}

/// A tower `Layer` that attaches a [`Bearer`]'s token: made by
/// [`Bearer::layer`]. Its services are [`BearerService`]s.
///
/// Over a hyper-util client (the README's example):
///
#[doc = concat!("```no_run\n", include_str!("example_tower.rs"), "```")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub struct BearerLayer<S, C = crate::SystemClock> {
    bearer: Bearer<S, C>,
}

impl<S, C> Clone for BearerLayer<S, C> {
    fn clone(&self) -> Self {
        Self {
            bearer: self.bearer.clone(),
        }
    }
}

impl<S: TokenSource + 'static, C: Clock> fmt::Debug for BearerLayer<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BearerLayer").field(&self.bearer).finish()
    }
}

impl<Svc, S: TokenSource + 'static, C: Clock> Layer<Svc> for BearerLayer<S, C> {
    type Service = BearerService<Svc, S, C>;

    fn layer(&self, inner: Svc) -> Self::Service {
        BearerService {
            inner,
            bearer: self.bearer.clone(),
        }
    }
}

/// A service that attaches a [`Bearer`]'s token to the requests it passes
/// to `Svc`, for the configured origins (see [`Bearer`] for the policy).
///
/// The origin is read from the request's absolute URI (`scheme://host:port
/// /path`, as clients take them); a request without a scheme and authority
/// never gets the token. A 401 is retried only when the request body can be
/// cloned ([`RetryBody`]); the retry goes through a clone of `Svc`, polled
/// ready first. Errors are [`BearerError`]: `Token` when no token could be
/// had (and nothing was sent), `Inner` for `Svc`'s own.
///
/// Redirects: put it *inside* any layer that follows them (such as
/// tower-http's `FollowRedirect`), so that every hop passes through it and
/// is checked against the origins.
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub struct BearerService<Svc, S, C = crate::SystemClock> {
    inner: Svc,
    bearer: Bearer<S, C>,
}

impl<Svc: Clone, S, C> Clone for BearerService<Svc, S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            bearer: self.bearer.clone(),
        }
    }
}

impl<Svc: fmt::Debug, S: TokenSource + 'static, C: Clock> fmt::Debug for BearerService<Svc, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerService")
            .field("inner", &self.inner)
            .field("bearer", &self.bearer)
            .finish()
    }
}

impl<Svc, S, C, B, RB> Service<Request<B>> for BearerService<Svc, S, C>
where
    Svc: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    Svc::Future: Send,
    Svc::Error: Send,
    B: RetryBody + Send + 'static,
    RB: Send + 'static,
    S: TokenSource + 'static,
    C: Clock,
{
    type Response = Response<RB>;
    type Error = BearerError<Svc::Error>;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<RB>, BearerError<Svc::Error>>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BearerError::Inner)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The service polled ready goes with this request; its clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let covered = !request.headers().contains_key(AUTHORIZATION)
            && self.bearer.origin_of_uri(request.uri()).is_some();
        if !covered {
            let future = inner.call(request);
            return Box::pin(async move { future.await.map_err(BearerError::Inner) });
        }
        let bearer = self.bearer.clone();
        Box::pin(async move {
            let sent = bearer.token().await.map_err(BearerError::Token)?;
            request
                .headers_mut()
                .insert(AUTHORIZATION, sent.authorization_header());
            let retry = try_clone(&request);
            let response = inner.call(request).await.map_err(BearerError::Inner)?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let Some(mut retry) = retry else {
                bearer.refused_unclonable(&sent);
                return Ok(response);
            };
            let Some(fresh) = bearer.retry_token(&sent).await else {
                return Ok(response);
            };
            drop(response);
            retry
                .headers_mut()
                .insert(AUTHORIZATION, fresh.authorization_header());
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(BearerError::Inner)?;
            let second = inner.call(retry).await.map_err(BearerError::Inner)?;
            if second.status() == StatusCode::UNAUTHORIZED {
                bearer.second_unauthorized();
            }
            Ok(second)
        })
    }
}

/// The request with its head and a clone of its body, if the body can be
/// cloned.
fn try_clone<B: RetryBody>(request: &Request<B>) -> Option<Request<B>> {
    let body = request.body().try_clone()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

/// A request body that [`BearerService`] may clone to retry a request after
/// a 401. `None` means it cannot be cloned (a stream): such a request is
/// sent once and its 401 returned.
///
/// Implemented for the usual buffered bodies (`String`, `Vec<u8>`,
/// `&'static str`, `&'static [u8]`, `Bytes`, `()`, `http_body_util::Full`
/// and `Empty`), for `http_body_util::Either` of two of them, and, returning
/// `None`, for the boxed bodies `BoxBody` and `UnsyncBoxBody`. For another
/// body type, implement it on a newtype around it.
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub trait RetryBody: Sized {
    /// A copy of the body to send again, or `None` when it cannot be had.
    fn try_clone(&self) -> Option<Self>;
}

macro_rules! clonable_bodies {
    ($($ty:ty),* $(,)?) => {$(
        impl RetryBody for $ty {
            fn try_clone(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

clonable_bodies!(String, Vec<u8>, &'static str, &'static [u8], Bytes, ());

impl<D: Clone> RetryBody for http_body_util::Full<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> RetryBody for http_body_util::Empty<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(*self)
    }
}

impl<L: RetryBody, R: RetryBody> RetryBody for http_body_util::Either<L, R> {
    fn try_clone(&self) -> Option<Self> {
        match self {
            http_body_util::Either::Left(left) => {
                left.try_clone().map(http_body_util::Either::Left)
            }
            http_body_util::Either::Right(right) => {
                right.try_clone().map(http_body_util::Either::Right)
            }
        }
    }
}

impl<D, E> RetryBody for http_body_util::combinators::BoxBody<D, E> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}

impl<D, E> RetryBody for http_body_util::combinators::UnsyncBoxBody<D, E> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}

/// The error of a [`BearerService`]: no token could be had (nothing was
/// sent), or the inner service failed.
///
/// Both variants are transparent: `Display` and `source` are those of the
/// error inside. Boxed (tower's `BoxError`), downcast to `BearerError<E>`
/// and match, or call [`token_error`](BearerError::token_error).
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
#[derive(Debug)]
pub enum BearerError<E> {
    /// The cache could not give a token; the request was not sent.
    Token(TokenError),
    /// The inner service's error.
    Inner(E),
}

impl<E> BearerError<E> {
    /// The [`TokenError`], when that is what happened.
    pub fn token_error(&self) -> Option<&TokenError> {
        match self {
            BearerError::Token(err) => Some(err),
            BearerError::Inner(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for BearerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BearerError::Token(err) => fmt::Display::fmt(err, f),
            BearerError::Inner(err) => fmt::Display::fmt(err, f),
        }
    }
}

impl<E: StdError + 'static> StdError for BearerError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BearerError::Token(err) => err.source(),
            BearerError::Inner(err) => err.source(),
        }
    }
}
