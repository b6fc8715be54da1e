//! HTTP plumbing shared by the edge and the token service: bounded body reads and our own JSON
//! responses. Decides nothing and knows no denial: `crate::denial` sits above it and writes its
//! refusals with `write_json`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT, TRANSFER_ENCODING};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

use crate::request_id::RequestId;
use crate::xapi::XAPI_VERSION;

/// The response header that names the request (its id is in every log line and error body).
pub const REQUEST_ID: &str = "x-request-id";

/// Reading a request body failed.
#[derive(Debug)]
pub enum BodyReadError {
    TooLarge,
    /// The whole body did not arrive within the deadline.
    TimedOut,
    /// The client went away or sent a broken body.
    Downstream(Box<pingora::Error>),
}

/// Whether the request announces a body (a non-zero `Content-Length`, or chunked).
pub fn has_body(session: &ServerSession) -> bool {
    let headers = &session.req_header().headers;
    headers.contains_key(TRANSFER_ENCODING) || declared_length(session).is_some_and(|n| n > 0)
}

/// The `Content-Length` the client declared, if any and well-formed.
pub fn declared_length(session: &ServerSession) -> Option<usize> {
    session.req_header().headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Read the whole request body within `deadline`, refusing it as soon as it is known to exceed
/// `limit` (from the declared length, before reading a byte, or while reading a chunked body).
/// Answers `Expect: 100-continue`, which Pingora does not do when no upstream exists yet.
pub async fn read_bounded(
    session: &mut ServerSession,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyReadError> {
    tokio::time::timeout(deadline, read_bounded_inner(session, limit)).await.unwrap_or(Err(BodyReadError::TimedOut))
}

async fn read_bounded_inner(session: &mut ServerSession, limit: usize) -> Result<Bytes, BodyReadError> {
    if declared_length(session).is_some_and(|n| n > limit) {
        return Err(BodyReadError::TooLarge);
    }
    let expects_continue =
        session.req_header().headers.get(EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session.write_continue_response().await.map_err(BodyReadError::Downstream)?;
    }
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    while let Some(chunk) = session.read_request_body().await.map_err(BodyReadError::Downstream)? {
        // Once `rest` exists it already holds `first`'s bytes.
        let so_far = rest.as_ref().map_or_else(|| first.as_ref().map_or(0, Bytes::len), BytesMut::len);
        if so_far + chunk.len() > limit {
            return Err(BodyReadError::TooLarge);
        }
        // One chunk (the common case for a statement) is kept without a copy.
        match (&first, &mut rest) {
            (None, _) => first = Some(chunk),
            (Some(f), None) => {
                // Sized by what arrived, not by what the client declared: a head declaring 4 MB
                // and then stalling must not cost 4 MB. It grows as bytes arrive (the limit held).
                let arrived = f.len() + chunk.len();
                let declared = declared_length(session).unwrap_or(arrived);
                let mut buf = BytesMut::with_capacity(declared.min(arrived.saturating_mul(2)).max(arrived));
                buf.extend_from_slice(f);
                buf.extend_from_slice(&chunk);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&chunk),
        }
    }
    Ok(match rest {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// The credential of an `Authorization: Bearer <credential>` header (scheme case-insensitive).
pub fn bearer_credential(session: &ServerSession) -> Option<&str> {
    session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credential)| credential.trim())
}

/// A whole JSON answer of a `ServeHttp` app (token service, admin API): never cached.
#[allow(clippy::expect_used, reason = "constant header names and values, a hex id and a number")]
pub fn json_response(status: u16, body: Vec<u8>, request_id: &RequestId) -> http::Response<Vec<u8>> {
    // The builder fails only on invalid header values; these are constants, hex and a number.
    http::Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(REQUEST_ID, request_id.as_str())
        .body(body)
        .expect("static response parts are valid")
}

/// A complete JSON response header for one of our own answers.
#[allow(clippy::expect_used, reason = "our statuses are constants from Denial or 200/204")]
pub fn json_header(status: u16, body_len: usize, request_id: &RequestId) -> Box<ResponseHeader> {
    // `build` fails only for an invalid status code; ours are constants from `Denial` or 200/204.
    let mut h = ResponseHeader::build(status, Some(5)).expect("valid status code");
    let _ = h.insert_header(CONTENT_TYPE, "application/json");
    let _ = h.insert_header(CONTENT_LENGTH, body_len.to_string());
    let _ = h.insert_header("X-Experience-API-Version", XAPI_VERSION);
    let _ = h.insert_header(REQUEST_ID, request_id.as_str());
    Box::new(h)
}

/// Write one of our own JSON answers. `body_unread`: close the connection afterwards.
pub async fn write_json(
    session: &mut ServerSession,
    status: u16,
    body: Vec<u8>,
    request_id: &RequestId,
    body_unread: bool,
    finish_header: &(dyn Fn(&mut ResponseHeader) + Sync),
) -> pingora::Result<()> {
    if body_unread {
        session.set_keepalive(None);
    }
    let mut header = json_header(status, body.len(), request_id);
    finish_header(&mut header);
    session.write_response_header(header).await?;
    session.write_response_body(Bytes::from(body), true).await
}
