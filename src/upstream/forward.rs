//! Requests towards the LRS: the one header rewrite every forwarded request gets, and the direct
//! forwarder for validated bodies larger than Pingora's 64 KiB replay buffer.
//!
//! Pingora 0.9 replays a body read in `request_filter` only from its fixed 64 KiB retry buffer;
//! a larger pre-read body would be silently dropped. Such a body is judged whole first, then
//! sent here through Pingora's pooled HTTP connector, so a refused request still never opens an
//! upstream connection and an accepted one of any size up to the limit arrives intact.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::Method;
use log::warn;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;

use super::health::Tried;
use super::{is_stale, total_timeout, UpstreamNode, UpstreamPool};
use crate::denial::Denial;
use crate::metrics;
use crate::request_id::RequestId;
use crate::xapi::headers::ForwardHeaders;
use crate::xapi::route::Resource;

/// Everything lrsgate sends the LRS for an admitted request, each part judged or written by
/// lrsgate itself: the method (the normal form's for the Alternate Request Syntax), the
/// resource, the re-encoded query, the allow-listed client headers and lrsgate's own
/// Content-Type. Nothing else of the client's request goes upstream but the judged body.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    pub method: Method,
    /// The resource (its path below the node's base path is `Resource::upstream_suffix`).
    pub resource: Resource,
    /// The judged query, canonically encoded (`None`: no query).
    pub query: Option<String>,
    pub headers: ForwardHeaders,
    /// The Content-Type lrsgate writes for a body (`None`: no body, or none declared).
    pub content_type: Option<String>,
    /// Sent as `X-Request-Id`, so the LRS's logs name the same request as lrsgate's.
    pub request_id: RequestId,
}

/// The request header the LRS receives, built from nothing but `fwd`: its path (the node's base
/// path, the judged resource and query), `Host`, the LRS credential, the allow-listed headers,
/// and for a body lrsgate's Content-Type and an exact `Content-Length` (never chunked: avoids
/// h2→h1 framing bugs, pingora #935, and the LRS sees exactly the judged body).
pub fn upstream_request(
    fwd: &ForwardRequest,
    node: &UpstreamNode,
    lrs_authorization: &str,
    body_len: Option<usize>,
) -> pingora::Result<RequestHeader> {
    let query = fwd.query.as_deref().filter(|q| !q.is_empty());
    let suffix = fwd.resource.upstream_suffix();
    let mut uri = String::with_capacity(node.base_path.len() + suffix.len() + 2 + query.map_or(0, str::len));
    uri.push_str(&node.base_path);
    uri.push('/');
    uri.push_str(suffix);
    if let Some(q) = query {
        uri.push('?');
        uri.push_str(q);
    }
    let mut req = RequestHeader::build(fwd.method.clone(), uri.as_bytes(), Some(9))?;
    req.insert_header(HOST, node.host_header.as_str())?;
    req.insert_header(AUTHORIZATION, lrs_authorization)?;
    req.insert_header(crate::http_io::REQUEST_ID, fwd.request_id.as_str())?;
    for (name, value) in fwd.headers.pairs() {
        req.insert_header(name, value)?;
    }
    if let Some(len) = body_len {
        if let Some(content_type) = &fwd.content_type {
            req.insert_header(CONTENT_TYPE, content_type.as_str())?;
        }
        req.insert_header(CONTENT_LENGTH, len.to_string())?;
    }
    Ok(req)
}

/// How a direct forward ended.
pub enum Forwarded {
    /// The LRS answered; its status was relayed.
    Relayed(u16),
    /// The LRS answer broke off after its header was relayed; the client connection is closed.
    Aborted(u16),
}

/// Send a validated request with `body` to one of `pool`'s nodes and relay the answer, its
/// header finished by `finish_header` (CORS). Only connection failures (nothing sent yet) move
/// on to another node: a write is never sent twice.
pub async fn forward_buffered(
    connector: &Connector,
    session: &mut ServerSession,
    pool: &UpstreamPool,
    fwd: &ForwardRequest,
    body: Bytes,
    finish_header: &(dyn Fn(&mut ResponseHeader) + Sync),
) -> Result<Forwarded, Denial> {
    metrics::LARGE_BODY_FORWARDS.inc();
    pool.retry_budget().request();
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::from_std(started + pool.timeouts().total);
    let mut tried = Tried::default();
    let mut attempt = connect(connector, pool, &mut tried, fwd.request_id, deadline).await?;
    let req =
        upstream_request(fwd, attempt.node, &pool.authorization, Some(body.len())).map_err(|_| Denial::Internal)?;
    let http = &mut attempt.http;
    let sent = tokio::time::timeout_at(deadline, async {
        http.write_request_header(Box::new(req)).await?;
        http.write_request_body(body.clone(), true).await?;
        http.finish_request_body().await?;
        http.read_response_header().await
    })
    .await
    .unwrap_or_else(|_| total_timeout());
    if let Err(e) = sent {
        // Something may have reached the LRS: never resend a non-idempotent write.
        metrics::upstream_error(&e);
        if !is_stale(&e, attempt.reused) {
            pool.observe(attempt.slot, false);
        }
        return Err(Denial::from_upstream_error(&e));
    }
    metrics::upstream_duration(fwd.resource.label(), started.elapsed().as_secs_f64());
    let Some(resp) = attempt.http.response_header() else { return Err(Denial::UpstreamUnavailable) };
    let mut resp = resp.clone();
    let status = resp.status.as_u16();
    metrics::upstream_response(status);
    pool.observe(attempt.slot, !super::health::is_node_failure(status));
    resp.remove_header(&CONNECTION);
    resp.remove_header("keep-alive");
    finish_header(&mut resp);
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return Ok(Forwarded::Aborted(status));
    }
    loop {
        let chunk = tokio::time::timeout_at(deadline, attempt.http.read_response_body())
            .await
            .unwrap_or_else(|_| total_timeout());
        match chunk {
            Ok(Some(chunk)) => {
                if session.write_response_body(chunk, false).await.is_err() {
                    return Ok(Forwarded::Aborted(status));
                }
            }
            Ok(None) => break,
            Err(e) => {
                warn!(request_id = fwd.request_id.as_str(); "LRS response broke off: {e}");
                session.set_keepalive(None);
                return Ok(Forwarded::Aborted(status));
            }
        }
    }
    if session.finish_body().await.is_err() {
        return Ok(Forwarded::Aborted(status));
    }
    connector.release_http_session(attempt.http, &*attempt.peer, Some(pool.idle_timeout())).await;
    Ok(Forwarded::Relayed(status))
}

/// One attempt's connection to one node.
struct Attempt<'p> {
    http: pingora::protocols::http::client::HttpSession,
    peer: Box<pingora::prelude::HttpPeer>,
    node: &'p std::sync::Arc<UpstreamNode>,
    slot: usize,
    /// A pooled connection (it may have been closed by the LRS meanwhile).
    reused: bool,
}

/// A connection to a node not in `tried` (added to it). Only connection failures (nothing sent
/// yet) move on to another node, each tried at most once, by `deadline`.
async fn connect<'p>(
    connector: &Connector,
    pool: &'p UpstreamPool,
    tried: &mut Tried,
    request_id: RequestId,
    deadline: tokio::time::Instant,
) -> Result<Attempt<'p>, Denial> {
    let mut last_error = Denial::UpstreamUnavailable;
    for _ in 0..pool.slot_count() {
        let Some(selected) = pool.select(*tried) else { break };
        tried.add(selected.slot);
        let connected = tokio::time::timeout_at(deadline, connector.get_http_session(&*selected.peer))
            .await
            .unwrap_or_else(|_| total_timeout());
        match connected {
            Ok((mut http, reused)) => {
                // The connector's sessions have no timeouts of their own: the peer's apply.
                http.set_read_timeout(selected.peer.options.read_timeout);
                http.set_write_timeout(selected.peer.options.write_timeout);
                return Ok(Attempt { http, peer: selected.peer, node: selected.node, slot: selected.slot, reused });
            }
            Err(e) => {
                warn!(request_id = request_id.as_str(), node = selected.node.host_header.as_str(); "LRS node unreachable: {e}");
                metrics::upstream_error(&e);
                pool.observe(selected.slot, false);
                last_error = Denial::from_upstream_error(&e);
                if tokio::time::Instant::now() >= deadline || !pool.has_untried(*tried) {
                    break;
                }
                metrics::UPSTREAM_RETRIES.with_label_values(&["connect", "retried"]).inc();
            }
        }
    }
    Err(last_error)
}

/// What a judged statement read fetches from the LRS.
#[derive(Debug, Clone, Copy)]
pub enum ReadTarget<'a> {
    /// `statements` with the request's judged query.
    Query,
    /// The LRS's own `more` path and query.
    More(&'a str),
}

/// Fetch statements for the client (always a GET upstream, also for a client's HEAD), read
/// the whole answer (at most `limit` bytes), and pass every 2xx body through `judge`, which
/// returns what the client may see or a refusal. A redirect is not relayed (it would point the
/// client at the LRS): 502. Errors (4xx, 5xx) are relayed as the LRS sent them. The relayed
/// header is finished by `finish_header` (CORS).
#[allow(clippy::too_many_arguments)]
pub async fn fetch_judged(
    connector: &Connector,
    session: &mut ServerSession,
    pool: &UpstreamPool,
    fwd: ForwardRequest,
    target: ReadTarget<'_>,
    limit: usize,
    finish_header: &(dyn Fn(&mut ResponseHeader) + Sync),
    judge: impl Fn(&ResponseHeader, Vec<u8>) -> Result<Vec<u8>, Denial>,
) -> Result<u16, Denial> {
    pool.retry_budget().request();
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::from_std(started + pool.timeouts().total);
    let resource = fwd.resource;
    let get = ForwardRequest { method: Method::GET, content_type: None, ..fwd };
    let mut tried = Tried::default();
    let mut retried = false;
    // A read: the whole answer is read before anything is relayed, so a failed attempt may go
    // once more, to another node (a stale pooled connection: the same one), within the budget.
    let (attempt, body) = loop {
        let mut attempt = connect(connector, pool, &mut tried, get.request_id, deadline).await?;
        let mut req = upstream_request(&get, attempt.node, &pool.authorization, None).map_err(|_| Denial::Internal)?;
        if let ReadTarget::More(path) = target {
            // A `more` continuation: the LRS's own path, as it gave it (opened from a sealed cursor).
            req.set_uri(path.parse().map_err(|_| Denial::Internal)?);
        }
        let http = &mut attempt.http;
        let answered = tokio::time::timeout_at(deadline, async {
            http.write_request_header(Box::new(req)).await?;
            http.finish_request_body().await?;
            http.read_response_header().await?;
            metrics::upstream_duration(resource.label(), started.elapsed().as_secs_f64());
            let mut body = Vec::new();
            while let Some(chunk) = http.read_response_body().await? {
                if body.len() + chunk.len() > limit {
                    // Too large to judge: refused, not relayed unjudged.
                    return Ok(None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, Box<pingora::Error>>(Some(body))
        })
        .await
        .unwrap_or_else(|_| total_timeout());
        match answered {
            Ok(body) => break (attempt, body.ok_or(Denial::UpstreamInvalid)?),
            Err(e) => {
                metrics::upstream_error(&e);
                let stale = is_stale(&e, attempt.reused);
                let may_retry = !retried && tokio::time::Instant::now() < deadline;
                if !may_retry {
                    if !stale {
                        pool.observe(attempt.slot, false);
                    }
                    return Err(Denial::from_upstream_error(&e));
                }
                if !pool.read_failed(&mut tried, attempt.slot, stale) {
                    return Err(Denial::from_upstream_error(&e));
                }
                retried = true;
            }
        }
    };
    let Some(resp) = attempt.http.response_header() else { return Err(Denial::UpstreamUnavailable) };
    let mut resp = resp.clone();
    connector.release_http_session(attempt.http, &*attempt.peer, Some(pool.idle_timeout())).await;
    let status = resp.status.as_u16();
    metrics::upstream_response(status);
    pool.observe(attempt.slot, !super::health::is_node_failure(status));
    let body = match status {
        200..=299 => judge(&resp, body)?,
        300..=399 => return Err(Denial::UpstreamInvalid),
        _ => body,
    };
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
    fn the_upstream_request_holds_only_what_lrsgate_wrote() {
        let headers = ForwardHeaders { version: Some("1.0.3"), if_match: Some("\"e\"".into()), ..Default::default() };
        let fwd = ForwardRequest {
            method: Method::PUT,
            resource: Resource::ActivitiesState,
            query: Some("stateId=a%20b".into()),
            headers,
            content_type: Some("application/json".into()),
            request_id: RequestId::next(),
        };
        let req = upstream_request(&fwd, &node(), "Basic bHJzOnB3", Some(42)).unwrap();
        assert_eq!(req.method, Method::PUT);
        assert_eq!(req.uri.to_string(), "/base/xapi/activities/state?stateId=a%20b");
        let mut names: Vec<String> = req.headers.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "authorization",
                "content-length",
                "content-type",
                "host",
                "if-match",
                "x-experience-api-version",
                "x-request-id"
            ]
        );
        let h = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h("authorization").as_deref(), Some("Basic bHJzOnB3"));
        assert_eq!(h("host").as_deref(), Some("lrs:8080"));
        assert_eq!(h("content-length").as_deref(), Some("42"));
        assert_eq!(h("if-match").as_deref(), Some("\"e\""));
    }

    #[test]
    fn a_bodyless_request_has_no_framing_or_content_type() {
        let fwd = ForwardRequest {
            method: Method::GET,
            resource: Resource::About,
            query: None,
            headers: ForwardHeaders::default(),
            content_type: Some("application/json".into()),
            request_id: RequestId::next(),
        };
        let req = upstream_request(&fwd, &node(), "Basic x", None).unwrap();
        assert_eq!(req.uri.to_string(), "/base/xapi/about");
        assert_eq!(req.headers.len(), 3, "Host, Authorization and X-Request-Id only");
        assert_eq!(req.headers.get("x-request-id").unwrap().to_str().unwrap(), fwd.request_id.as_str());
    }
}
