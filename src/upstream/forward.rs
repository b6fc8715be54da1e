//! Requests towards the LRS: the one header rewrite every forwarded request gets, and the direct
//! forwarder for validated bodies larger than Pingora's 64 KiB replay buffer.
//!
//! Pingora 0.9 replays a body read in `request_filter` only from its fixed 64 KiB retry buffer;
//! a larger pre-read body would be silently dropped. Such a body is judged whole first, then
//! sent here through Pingora's pooled HTTP connector, so a refused request still never opens an
//! upstream connection and an accepted one of any size up to the limit arrives intact.

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, EXPECT, HOST, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use log::warn;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;

use super::{UpstreamNode, UpstreamPool};
use crate::denial::Denial;
use crate::metrics;

/// Hop-by-hop headers without a constant in `http` (RFC 9110 §7.6.1), and proxy credentials.
const DROPPED_REQUEST_HEADERS: [&str; 3] = ["keep-alive", "proxy-connection", "proxy-authorization"];

/// Rewrite a client request header for the LRS: path (base path + the judged resource + the
/// judged query), `Host`, the LRS credential in place of the client's token, framing for a
/// pre-read body. Everything else, `X-Experience-API-Version` included, passes unchanged.
pub fn rewrite_request(
    req: &mut RequestHeader,
    node: &UpstreamNode,
    lrs_authorization: &str,
    resource_suffix: &str,
    query: Option<&str>,
    body_len: Option<usize>,
) -> pingora::Result<()> {
    let mut uri = String::with_capacity(node.base_path.len() + resource_suffix.len() + 2 + query.map_or(0, str::len));
    uri.push_str(&node.base_path);
    uri.push('/');
    uri.push_str(resource_suffix);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(q);
    }
    req.set_uri(
        uri.parse().map_err(|e| pingora::Error::because(pingora::ErrorType::InternalError, "upstream uri", e))?,
    );
    // Headers the client named in `Connection` are hop-by-hop too.
    let named: Vec<String> = req
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty() && !matches!(name.as_str(), "authorization" | "host" | "content-length"))
        .collect();
    for name in &named {
        req.remove_header(name.as_str());
    }
    for name in [CONNECTION, TE, TRAILER, UPGRADE, EXPECT, COOKIE] {
        req.remove_header(&name);
    }
    for name in DROPPED_REQUEST_HEADERS {
        req.remove_header(name);
    }
    req.insert_header(AUTHORIZATION, lrs_authorization)?;
    req.insert_header(HOST, node.host_header.as_str())?;
    if let Some(len) = body_len {
        // An explicit length, never chunked: avoids h2→h1 framing bugs (pingora #935) and lets
        // the LRS see exactly the validated body.
        req.remove_header(&TRANSFER_ENCODING);
        req.insert_header(CONTENT_LENGTH, len.to_string())?;
    }
    Ok(())
}

/// The normal form of an Alternate Request Syntax request: its real method and the header
/// fields decoded from the form (they replace the outer request's).
#[derive(Debug, Clone)]
pub struct NormalForm {
    pub method: http::Method,
    pub headers: Vec<(&'static str, String)>,
}

/// How a direct forward ended.
pub enum Forwarded {
    /// The LRS answered; its status was relayed.
    Relayed(u16),
    /// The LRS answer broke off after its header was relayed; the client connection is closed.
    Aborted(u16),
}

/// Send a validated request with `body` to one of `pool`'s nodes (`target`: the judged
/// resource suffix and query) and relay the answer, its header finished by `finish_header`
/// (CORS). Only connection failures (nothing sent yet) move on to another node.
pub async fn forward_buffered(
    connector: &Connector,
    session: &mut ServerSession,
    pool: &UpstreamPool,
    (resource_suffix, query): (&str, Option<&str>),
    body: Bytes,
    normal_form: Option<&NormalForm>,
    finish_header: &(dyn Fn(&mut ResponseHeader) + Sync),
) -> Result<Forwarded, Denial> {
    metrics::LARGE_BODY_FORWARDS.inc();
    let (mut http, peer, node) = connect(connector, pool).await?;
    let mut req = session.req_header().clone();
    if let Some(form) = normal_form {
        req.set_method(form.method.clone());
        req.remove_header(&CONTENT_TYPE);
        for (name, value) in &form.headers {
            // Credential and framing are set by `rewrite_request`, never taken from the form.
            if !matches!(*name, "Authorization" | "Content-Length") {
                req.insert_header(*name, value.as_str()).map_err(|_| Denial::Internal)?;
            }
        }
    }
    rewrite_request(&mut req, node, &pool.authorization, resource_suffix, query, Some(body.len()))
        .map_err(|_| Denial::Internal)?;
    let sent = async {
        http.write_request_header(Box::new(req)).await?;
        http.write_request_body(body.clone(), true).await?;
        http.finish_request_body().await?;
        http.read_response_header().await
    }
    .await;
    if let Err(e) = sent {
        // Something may have reached the LRS: never resend a non-idempotent write.
        return Err(Denial::from_upstream_error(&e));
    }
    let Some(resp) = http.response_header() else { return Err(Denial::UpstreamUnavailable) };
    let mut resp = resp.clone();
    let status = resp.status.as_u16();
    metrics::UPSTREAM_RESPONSES.with_label_values(&[metrics::status_class(status)]).inc();
    resp.remove_header(&CONNECTION);
    resp.remove_header("keep-alive");
    finish_header(&mut resp);
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return Ok(Forwarded::Aborted(status));
    }
    loop {
        match http.read_response_body().await {
            Ok(Some(chunk)) => {
                if session.write_response_body(chunk, false).await.is_err() {
                    return Ok(Forwarded::Aborted(status));
                }
            }
            Ok(None) => break,
            Err(e) => {
                warn!("LRS response broke off: {e}");
                session.set_keepalive(None);
                return Ok(Forwarded::Aborted(status));
            }
        }
    }
    if session.finish_body().await.is_err() {
        return Ok(Forwarded::Aborted(status));
    }
    connector.release_http_session(http, &*peer, Some(pool.idle_timeout())).await;
    Ok(Forwarded::Relayed(status))
}

/// A connection to one of the pool's nodes. Only connection failures (nothing sent yet) move
/// on to another node, each tried at most once.
async fn connect<'p>(
    connector: &Connector,
    pool: &'p UpstreamPool,
) -> Result<
    (pingora::protocols::http::client::HttpSession, Box<pingora::prelude::HttpPeer>, &'p std::sync::Arc<UpstreamNode>),
    Denial,
> {
    let mut last_error = Denial::UpstreamUnavailable;
    for _ in 0..pool.node_count().max(1) {
        let Some((peer, node)) = pool.select() else { break };
        match connector.get_http_session(&*peer).await {
            Ok((http, _reused)) => return Ok((http, peer, node)),
            Err(e) => {
                warn!("LRS node {} unreachable, trying another: {e}", node.host_header);
                last_error = Denial::from_upstream_error(&e);
            }
        }
    }
    Err(last_error)
}

/// What a judged statement read fetches from the LRS.
#[derive(Debug, Clone, Copy)]
pub enum ReadTarget<'a> {
    /// `statements` with this (judged, forced) query.
    Query(&'a str),
    /// The LRS's own `more` path and query.
    More(&'a str),
}

/// Fetch statements for the client (always a GET upstream, also for a client's HEAD), read
/// the whole answer (at most `limit` bytes), and pass a 200's body through `judge`, which
/// returns what the client may see or a refusal. Any other status is relayed as the LRS sent it.
/// The relayed header is finished by `finish_header` (CORS).
#[allow(clippy::too_many_arguments)]
pub async fn fetch_judged(
    connector: &Connector,
    session: &mut ServerSession,
    pool: &UpstreamPool,
    target: ReadTarget<'_>,
    limit: usize,
    normal_form: Option<&NormalForm>,
    finish_header: &(dyn Fn(&mut ResponseHeader) + Sync),
    judge: impl Fn(&ResponseHeader, Vec<u8>) -> Result<Vec<u8>, Denial>,
) -> Result<u16, Denial> {
    let (mut http, peer, node) = connect(connector, pool).await?;
    let mut req = session.req_header().clone();
    req.set_method(http::Method::GET);
    for name in [CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING] {
        req.remove_header(&name);
    }
    if let Some(form) = normal_form {
        for (name, value) in &form.headers {
            if matches!(*name, "X-Experience-API-Version" | "If-Match" | "If-None-Match") {
                req.insert_header(*name, value.as_str()).map_err(|_| Denial::Internal)?;
            }
        }
    }
    let query = match target {
        ReadTarget::Query(query) => query,
        ReadTarget::More(_) => "",
    };
    rewrite_request(&mut req, node, &pool.authorization, "statements", Some(query), None)
        .map_err(|_| Denial::Internal)?;
    if let ReadTarget::More(path) = target {
        // A `more` continuation: the LRS's own path, as it gave it (opened from a sealed cursor).
        req.set_uri(path.parse().map_err(|_| Denial::Internal)?);
    }
    let answered = async {
        http.write_request_header(Box::new(req)).await?;
        http.finish_request_body().await?;
        http.read_response_header().await?;
        let mut body = Vec::new();
        while let Some(chunk) = http.read_response_body().await? {
            if body.len() + chunk.len() > limit {
                // Too large to judge: refused, not relayed unjudged.
                return Ok(None);
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<_, Box<pingora::Error>>(Some(body))
    }
    .await;
    let body = answered.map_err(|e| Denial::from_upstream_error(&e))?.ok_or(Denial::UpstreamInvalid)?;
    let Some(resp) = http.response_header() else { return Err(Denial::UpstreamUnavailable) };
    let mut resp = resp.clone();
    connector.release_http_session(http, &*peer, Some(pool.idle_timeout())).await;
    let status = resp.status.as_u16();
    metrics::UPSTREAM_RESPONSES.with_label_values(&[metrics::status_class(status)]).inc();
    let body = if status == 200 { judge(&resp, body)? } else { body };
    for name in [CONNECTION, TRANSFER_ENCODING] {
        resp.remove_header(&name);
    }
    resp.remove_header("keep-alive");
    resp.insert_header(CONTENT_LENGTH, body.len().to_string()).map_err(|_| Denial::Internal)?;
    finish_header(&mut resp);
    let head = session.req_header().method == http::Method::HEAD;
    if session.write_response_header(Box::new(resp)).await.is_ok() && !head {
        let _ = session.write_response_body(Bytes::from(body), true).await;
    }
    let _ = session.finish_body().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> UpstreamNode {
        UpstreamNode { tls: false, sni: "lrs".into(), host_header: "lrs:8080".into(), base_path: "/base/xapi".into() }
    }

    #[test]
    fn rewrite_sets_path_credential_host_and_framing() {
        let mut req = RequestHeader::build("POST", b"/xapi//statements?evil=1", None).unwrap();
        for (k, v) in [
            ("Authorization", "Bearer client-token"),
            ("Host", "edge.example"),
            ("X-Experience-API-Version", "1.0.3"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("X-Secret-Hop", "1"),
            ("Cookie", "lms_session=1"),
            ("Expect", "100-continue"),
        ] {
            req.append_header(k, v).unwrap();
        }
        rewrite_request(&mut req, &node(), "Basic bHJzOnB3", "statements", Some("a=1"), Some(42)).unwrap();
        assert_eq!(req.uri.to_string(), "/base/xapi/statements?a=1");
        let h = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h("authorization").as_deref(), Some("Basic bHJzOnB3"));
        assert_eq!(h("host").as_deref(), Some("lrs:8080"));
        assert_eq!(h("content-length").as_deref(), Some("42"));
        assert_eq!(h("x-experience-api-version").as_deref(), Some("1.0.3"));
        for gone in ["transfer-encoding", "connection", "x-secret-hop", "cookie", "expect"] {
            assert_eq!(h(gone), None, "{gone}");
        }
        assert_eq!(req.headers.get_all("authorization").iter().count(), 1);
    }
}
