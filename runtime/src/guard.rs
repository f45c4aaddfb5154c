//! [`ResponseGuard`]: what one call saw of its raw response, and the byte cap
//! every response body is read through.
//!
//! progenitor reads a body whole (`Response::bytes`) before decoding it, and
//! when decoding fails (`Error::InvalidResponsePayload`) the status and
//! headers are gone: a 401 with an HTML body would look like a broken 200.
//! Generated clients therefore execute requests through [`exec`], which
//! records status and headers in the guard and reads the body itself, chunk
//! by chunk, stopping as soon as it passes the guard's limit. progenitor then
//! decodes the bytes already read.

use std::fmt;
use std::sync::OnceLock;

use reqwest::header::HeaderMap;
use reqwest::{Client, Request, Response, StatusCode};

/// What one call saw of the raw response before its body was decoded.
///
/// Give every call a new guard (through the generated client's
/// `new_with_client`) and read it afterwards: it keeps the status and headers
/// that `Error::InvalidResponsePayload` drops, and makes the call fail with
/// `Error::Custom` (the text of a [`BodyTooLarge`]) when the body is longer
/// than `max_body_bytes`, whether it declared its length or not.
#[derive(Clone, Debug)]
pub struct ResponseGuard {
    max_body_bytes: u64,
    status: OnceLock<StatusCode>,
    headers: OnceLock<HeaderMap>,
    too_large: OnceLock<BodyTooLarge>,
}

impl ResponseGuard {
    /// A guard that stops reading a body once it passes `max_body_bytes`.
    pub fn new(max_body_bytes: u64) -> Self {
        Self {
            max_body_bytes,
            status: OnceLock::new(),
            headers: OnceLock::new(),
            too_large: OnceLock::new(),
        }
    }

    /// The response's status, once a response arrived.
    pub fn status(&self) -> Option<StatusCode> {
        self.status.get().copied()
    }

    /// The response's headers, once a response arrived.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.headers.get()
    }

    /// Whether, and how, the body passed the limit.
    pub fn too_large(&self) -> Option<BodyTooLarge> {
        self.too_large.get().copied()
    }

    /// The limit this guard enforces.
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }
}

/// A response body longer than the guard allows. Reading stopped at once and
/// the connection was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyTooLarge {
    /// The guard's limit.
    pub limit: u64,
    /// The `Content-Length` the response declared, when it declared one over
    /// the limit (then nothing of the body was read).
    pub declared: Option<u64>,
    /// Bytes of body received when reading stopped.
    pub read: u64,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.declared {
            Some(length) => write!(
                f,
                "response body of {length} bytes exceeds the limit of {} bytes",
                self.limit
            ),
            None => write!(
                f,
                "response body exceeds the limit of {} bytes (stopped reading after {} bytes)",
                self.limit, self.read
            ),
        }
    }
}

impl std::error::Error for BodyTooLarge {}

/// Executes `request` and reads its whole body, at most
/// `guard.max_body_bytes()` of it, counting bytes as they arrive (a chunked
/// or undeclared body is bounded too; no decompression is enabled, so what
/// is counted is what came off the wire, less framing).
///
/// Past the limit it stops reading, drops the connection, records a
/// [`BodyTooLarge`] in the guard (which [`inspect_response`] turns into the
/// call's error) and returns the response with an empty body. A transport
/// error while reading (a reset, the request timeout) is returned as is.
pub async fn exec(
    client: &Client,
    request: Request,
    guard: &ResponseGuard,
) -> reqwest::Result<Response> {
    let mut response = client.execute(request).await?;
    let _ = guard.status.set(response.status());
    let _ = guard.headers.set(response.headers().clone());
    let limit = guard.max_body_bytes;
    let declared = response.content_length();
    if let Some(length) = declared.filter(|&length| length > limit) {
        let _ = guard.too_large.set(BodyTooLarge {
            limit,
            declared: Some(length),
            read: 0,
        });
        return Ok(with_body(&response, Vec::new()));
    }
    let capacity = usize::try_from(declared.unwrap_or(0).min(limit)).unwrap_or(0);
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await? {
        let read = body.len() as u64 + chunk.len() as u64;
        if read > limit {
            let _ = guard.too_large.set(BodyTooLarge {
                limit,
                declared: None,
                read,
            });
            // `response` is dropped with its body unread: hyper closes the
            // connection instead of returning it to the pool.
            return Ok(with_body(&response, Vec::new()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(with_body(&response, body))
}

/// The async post-hook of generated clients: fails the call when [`exec`]
/// found the body too large.
pub async fn inspect_response(
    guard: &ResponseGuard,
    _result: &reqwest::Result<Response>,
) -> Result<(), BodyTooLarge> {
    match guard.too_large() {
        Some(too_large) => Err(too_large),
        None => Ok(()),
    }
}

/// A response like `head` (status, version, headers) whose body is `body`.
fn with_body(head: &Response, body: Vec<u8>) -> Response {
    let mut response = http::Response::new(body);
    *response.status_mut() = head.status();
    *response.version_mut() = head.version();
    *response.headers_mut() = head.headers().clone();
    Response::from(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_limit_and_what_was_seen() {
        let declared = BodyTooLarge {
            limit: 65536,
            declared: Some(1 << 20),
            read: 0,
        };
        assert_eq!(
            declared.to_string(),
            "response body of 1048576 bytes exceeds the limit of 65536 bytes"
        );
        let streamed = BodyTooLarge {
            limit: 65536,
            declared: None,
            read: 70000,
        };
        assert_eq!(
            streamed.to_string(),
            "response body exceeds the limit of 65536 bytes (stopped reading after 70000 bytes)"
        );
    }
}
