//! The edge: Pingora's `ProxyHttp` for xAPI traffic. A thin dispatcher over the phases; the
//! deciding work lives in `admit` (and below it in `policy`, `auth`, `xapi`).
//!
//! Phases: `request_filter` judges everything (a refusal is answered here and never opens an
//! upstream connection); `upstream_peer` picks the tenant's LRS node; `upstream_request_filter`
//! swaps the token for the LRS credential and sets path and query; `request_body_filter` sends
//! exactly the judged bytes; `logging` counts and logs, never awaiting anything slow.

pub mod admit;
pub mod context;
pub mod fetch;
pub mod respond;
pub mod tls;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use log::{debug, info, log_enabled, Level};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, Session};
use pingora::proxy::{FailToProxy, ProxyHttp};
use pingora::{Error, ErrorSource, ErrorType, Result};

use self::admit::{admit, Admission, EdgeState};
use self::context::ConnectionGuard;
pub use self::context::EdgeCtx;
use crate::admission::reads::judge_statement_read;
use crate::audit::{AuditEvent, EventKind, Service};
use crate::clock::unix_now;
use crate::denial::{write_denial, Denial};
use crate::http_io::{has_body, json_header, write_json, REQUEST_ID};
use crate::metrics;
use crate::operations::Operations;
use crate::session::store::SessionStore;
use crate::tenant::TenantStore;
use crate::upstream;
use crate::upstream::forward::{fetch_judged, forward_buffered, upstream_request, Forwarded, ReadTarget};

/// The edge proxy.
pub struct Edge {
    store: TenantStore,
    sessions: Arc<dyn SessionStore>,
    ops: Arc<Operations>,
    /// Pooled connections for bodies forwarded directly (over the replay buffer's size).
    connector: Connector,
    /// Total time a client may take to send a body lrsgate reads before deciding.
    body_read_timeout: std::time::Duration,
}

impl Edge {
    pub fn new(
        store: TenantStore,
        sessions: Arc<dyn SessionStore>,
        ops: Arc<Operations>,
        body_read_timeout: std::time::Duration,
    ) -> Self {
        Edge { store, sessions, ops, connector: Connector::new(None), body_read_timeout }
    }

    /// The audit trail's record of a refusal (every one, fetch URLs' included).
    fn audit_refusal(&self, ctx: &EdgeCtx, denial: &Denial) {
        if !self.ops.audit.enabled() {
            return;
        }
        let (status, code) = denial.status_and_code();
        let kind = if matches!(denial, Denial::Fetch(_)) { EventKind::FetchRefused } else { EventKind::RequestRefused };
        let mut event = AuditEvent::new(kind, Service::Edge).reason(code).request(ctx.start.id);
        event.status = Some(status);
        event.resource = ctx.resource.map(|r| r.label().to_owned());
        if let Some(tenant) = &ctx.tenant {
            event = event.tenant(&tenant.id);
            if let Some(verified) = &ctx.verified {
                event = event.learner(self.ops.learner_hash(&tenant.id, &verified.grant.actor));
                event.session_id = Some(verified.claims.session_id.clone());
            }
        }
        self.ops.audit.record(event);
    }

    async fn refuse(&self, session: &mut Session, ctx: &mut EdgeCtx, denial: Denial) -> Result<bool> {
        // A body framed in a way lrsgate refused cannot be drained reliably either: close.
        let body_unread = (has_body(session) && !session.is_body_done()) || matches!(denial, Denial::Header(_));
        ctx.refused = Some(denial.status_and_code());
        self.audit_refusal(ctx, &denial);
        if let Denial::RateLimited(limit) = denial {
            let tenant = ctx.tenant.as_ref().map_or("", |t| self.ops.tenant_label(&t.id));
            metrics::RATE_LIMITED.with_label_values(&["edge", limit.label(), tenant]).inc();
        }
        let fetch = matches!(denial, Denial::Fetch(_));
        let retry = denial.retry_after();
        write_denial(session, &denial, &ctx.start.id, body_unread, &|h| {
            respond::apply_cors(&ctx.cors, h);
            if fetch {
                let _ = h.insert_header(http::header::CACHE_CONTROL, "no-store");
            }
            if let Some(seconds) = retry {
                let _ = h.insert_header(http::header::RETRY_AFTER, seconds);
            }
        })
        .await?;
        Ok(true)
    }

    /// A cmi5 fetch URL: the auth-token once, otherwise cmi5's error body, always 200.
    async fn serve_fetch(&self, session: &mut Session, ctx: &mut EdgeCtx, code: &str) -> Result<bool> {
        let Some(tenant) = ctx.tenant.clone() else { return self.refuse(session, ctx, Denial::Internal).await };
        match fetch::redeem(code, &tenant, self.sessions.as_ref(), unix_now()).await {
            Ok((token, session_id)) => {
                metrics::FETCHES.with_label_values(&["redeemed"]).inc();
                self.ops.audit.record(
                    AuditEvent::new(EventKind::FetchRedeemed, Service::Edge)
                        .tenant(&tenant.id)
                        .session(&session_id)
                        .request(ctx.start.id),
                );
                let body_unread = has_body(session) && !session.is_body_done();
                write_json(session, 200, fetch::token_body(&token), &ctx.start.id, body_unread, &|h| {
                    respond::apply_cors(&ctx.cors, h);
                    let _ = h.insert_header(http::header::CACHE_CONTROL, "no-store");
                })
                .await?;
                Ok(true)
            }
            Err(denial) => self.refuse(session, ctx, denial).await,
        }
    }
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = EdgeCtx;

    fn new_ctx(&self) -> EdgeCtx {
        EdgeCtx::default()
    }

    async fn early_request_filter(&self, _session: &mut Session, ctx: &mut EdgeCtx) -> Result<()> {
        // A connection's first request opens its guard; later ones got it in `on_connection_reuse`.
        if ctx.connection.is_none() {
            ctx.connection = Some(ConnectionGuard::open());
        }
        Ok(())
    }

    fn persist_connection_context(&self, _session: &Session, ctx: &EdgeCtx) -> Option<Box<dyn Any + Send + Sync>> {
        ctx.connection.clone().map(|guard| Box::new(guard) as Box<dyn Any + Send + Sync>)
    }

    fn on_connection_reuse(&self, _session: &mut Session, ctx: &mut EdgeCtx, prev: Box<dyn Any + Send + Sync>) {
        if let Ok(guard) = prev.downcast::<Arc<ConnectionGuard>>() {
            ctx.connection = Some(*guard);
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut EdgeCtx) -> Result<bool> {
        let state = EdgeState {
            tenants: &self.store,
            sessions: self.sessions.as_ref(),
            body_timeout: self.body_read_timeout,
            limiter: &self.ops.limiter,
        };
        match admit(session, ctx, &state).await {
            Ok(Admission::Proxy) => Ok(false),
            Ok(Admission::Fetch(code)) => self.serve_fetch(session, ctx, &code).await,
            Ok(Admission::Preflight(allowed)) => {
                let mut header = pingora::http::ResponseHeader::build(204, Some(allowed.len() + 2))?;
                for (name, value) in allowed {
                    header.insert_header(name, value)?;
                }
                header.insert_header(http::header::CONTENT_LENGTH, "0")?;
                header.insert_header(REQUEST_ID, ctx.start.id.as_str())?;
                if ctx.cors.vary {
                    header.insert_header(http::header::VARY, "Origin")?;
                }
                session.write_response_header(Box::new(header), true).await?;
                Ok(true)
            }
            Ok(Admission::Answered(status, body)) => {
                let body = Bytes::from_static(body);
                session.write_response_header(json_header(status, body.len(), &ctx.start.id), false).await?;
                session.write_response_body(Some(body), true).await?;
                Ok(true)
            }
            Ok(Admission::ForwardDirect(body)) => {
                // `admit` set both for every admitted request; their absence is a bug: refuse.
                let (Some(tenant), Some(admitted)) = (ctx.tenant.clone(), ctx.admitted.take()) else {
                    return self.refuse(session, ctx, Denial::Internal).await;
                };
                let forwarded =
                    forward_buffered(&self.connector, session, &tenant.upstream, &admitted.forward, body, &|h| {
                        ctx.finish_relayed(h)
                    })
                    .await;
                match forwarded {
                    Ok(Forwarded::Relayed(status)) => ctx.forwarded_status = Some(status),
                    Ok(Forwarded::Aborted(status)) => {
                        session.set_keepalive(None);
                        ctx.forwarded_status = Some(status);
                    }
                    Err(denial) => return self.refuse(session, ctx, denial).await,
                }
                Ok(true)
            }
            Ok(Admission::FetchJudged) => {
                let (Some(tenant), Some(admitted)) = (ctx.tenant.clone(), ctx.admitted.take()) else {
                    return self.refuse(session, ctx, Denial::Internal).await;
                };
                let Some(read) = admitted.read else { return self.refuse(session, ctx, Denial::Internal).await };
                let (grant, kind) = (read.grant, read.kind);
                let jti = ctx.verified.as_ref().map(|v| v.claims.jti.clone()).unwrap_or_default();
                let judged = fetch_judged(
                    &self.connector,
                    session,
                    &tenant.upstream,
                    admitted.forward,
                    read.more.as_deref().map_or(ReadTarget::Query, ReadTarget::More),
                    tenant.max_body_bytes,
                    &|h| ctx.finish_relayed(h),
                    |resp, body| {
                        let content_type =
                            resp.headers.get(http::header::CONTENT_TYPE).map_or(&b""[..], |v| v.as_bytes());
                        judge_statement_read(&grant, kind, content_type, body, &|more| {
                            tenant.keys.cursor.seal(&jti, more)
                        })
                    },
                )
                .await;
                match judged {
                    Ok(status) => ctx.forwarded_status = Some(status),
                    Err(denial) => return self.refuse(session, ctx, denial).await,
                }
                Ok(true)
            }
            Err(denial) => self.refuse(session, ctx, denial).await,
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut EdgeCtx) -> Result<Box<HttpPeer>> {
        let tenant =
            ctx.tenant.as_ref().ok_or_else(|| Error::explain(ErrorType::InternalError, "no tenant in context"))?;
        let pool = &tenant.upstream;
        let started = *ctx.upstream_started.get_or_insert_with(std::time::Instant::now);
        if ctx.tried.count() == 0 {
            pool.retry_budget().request();
        }
        // The total deadline holds across retries: each attempt gets what is left of it.
        let Some(left) = pool.timeouts().total.checked_sub(started.elapsed()).filter(|d| !d.is_zero()) else {
            return upstream::total_timeout();
        };
        let selected = pool
            .select(ctx.tried)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no healthy LRS node left to try"))?;
        ctx.tried.add(selected.slot);
        ctx.slot = Some(selected.slot);
        ctx.node = Some(selected.node.clone());
        let mut peer = selected.peer;
        let o = &mut peer.options;
        for timeout in
            [&mut o.connection_timeout, &mut o.total_connection_timeout, &mut o.read_timeout, &mut o.write_timeout]
        {
            *timeout = timeout.map(|t| t.min(left));
        }
        Ok(peer)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut EdgeCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing was sent: another node may take it, each node tried at most once. Not out of
        // the retry budget: the LRS saw nothing, and the node count bounds it.
        metrics::upstream_error(&e);
        let retry = match (&ctx.tenant, ctx.slot) {
            (Some(tenant), Some(slot)) => {
                tenant.upstream.observe(slot, false);
                tenant.upstream.has_untried(ctx.tried)
            }
            _ => false,
        };
        if retry {
            metrics::UPSTREAM_RETRIES.with_label_values(&["connect", "retried"]).inc();
        }
        e.set_retry(retry);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut EdgeCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let from_lrs = e.esource() == &ErrorSource::Upstream;
        let (Some(tenant), Some(slot)) = (&ctx.tenant, ctx.slot) else {
            e.set_retry(false);
            return e;
        };
        let pool = &tenant.upstream;
        let stale = upstream::is_stale(&e, client_reused);
        // Bytes were sent: only a read may go again (a write may have been stored), once,
        // before anything was relayed (`UpstreamPool::read_failed` has the rest of the rule).
        let read = matches!(session.req_header().method, http::Method::GET | http::Method::HEAD);
        let retry = if read && from_lrs && !ctx.read_retried && session.response_written().is_none() {
            pool.read_failed(&mut ctx.tried, slot, stale)
        } else {
            if from_lrs && !stale {
                pool.observe(slot, false);
            }
            false
        };
        ctx.read_retried |= retry;
        e.set_retry(retry);
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut EdgeCtx,
    ) -> Result<()> {
        let (Some(tenant), Some(admitted), Some(node)) = (&ctx.tenant, &ctx.admitted, &ctx.node) else {
            return Error::e_explain(ErrorType::InternalError, "request not admitted");
        };
        // Built anew from what was judged: none of the client's header block goes upstream.
        let body_len = admitted.body.as_ref().map(Bytes::len);
        *upstream = upstream_request(&admitted.forward, node, &tenant.upstream.authorization, body_len)?;
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut EdgeCtx,
    ) -> Result<()> {
        // Send exactly the judged bytes (a cheap reference-counted clone; a retry replays it).
        if let Some(validated) = ctx.admitted.as_ref().and_then(|a| a.body.as_ref()) {
            if end_of_stream {
                *body = Some(validated.clone());
            } else {
                // Cannot happen for a fully pre-read body; refuse rather than send unjudged bytes.
                return Error::e_explain(ErrorType::InternalError, "unexpected streamed body after validation");
            }
        } else if body.as_ref().is_some_and(|b| !b.is_empty()) {
            return Error::e_explain(ErrorType::InternalError, "body on a request admitted without one");
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut EdgeCtx,
    ) -> Result<Option<std::time::Duration>> {
        // Each read has its timeout; the whole answer has the tenant's total one.
        if let (false, Some(started), Some(tenant)) = (end_of_stream, ctx.upstream_started, &ctx.tenant) {
            if started.elapsed() > tenant.upstream.timeouts().total {
                return upstream::total_timeout();
            }
        }
        Ok(None)
    }

    // Bodies over the replay buffer are relayed by `upstream::forward`, not through this phase:
    // response-header work added here must be applied there too.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut EdgeCtx,
    ) -> Result<()> {
        let status = upstream.status.as_u16();
        metrics::upstream_response(status);
        if let (Some(tenant), Some(slot)) = (&ctx.tenant, ctx.slot) {
            tenant.upstream.observe(slot, !crate::upstream::health::is_node_failure(status));
        }
        if let (Some(started), Some(resource)) = (ctx.upstream_started, ctx.resource) {
            metrics::upstream_duration(resource.label(), started.elapsed().as_secs_f64());
        }
        ctx.forwarded_status = Some(status);
        ctx.finish_relayed(upstream);
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut EdgeCtx) -> FailToProxy {
        let client_gone = e.esource() == &ErrorSource::Downstream
            && matches!(e.etype(), ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed);
        // Connect failures were counted one by one in `fail_to_connect`; no healthy node never
        // reaches it.
        if e.etype() == &ErrorType::ConnectNoRoute
            || (e.esource() == &ErrorSource::Upstream && !metrics::is_connect_error(e.etype()))
        {
            metrics::upstream_error(e);
        }
        let denial = match e.esource() {
            ErrorSource::Upstream => Denial::from_upstream_error(e),
            _ if matches!(
                e.etype(),
                ErrorType::ConnectNoRoute | ErrorType::ConnectTimedout | ErrorType::ConnectRefused
            ) =>
            {
                Denial::from_upstream_error(e)
            }
            _ => Denial::Internal,
        };
        let (status, code) = denial.status_and_code();
        if client_gone {
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        }
        ctx.refused = Some((status, code));
        self.audit_refusal(ctx, &denial);
        if session.response_written().is_none() {
            let _ = write_denial(session, &denial, &ctx.start.id, true, &|h| respond::apply_cors(&ctx.cors, h)).await;
        }
        FailToProxy { error_code: status, can_reuse_downstream: false }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &EdgeCtx, error: &Error) -> bool {
        // A client that hangs up mid-request is routine at an edge; it is counted (outcome
        // `failed`), not logged as an error.
        error.esource() == &ErrorSource::Downstream
            && matches!(error.etype(), ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut EdgeCtx) {
        // cmi5 progress counts once the LRS stored the statements; otherwise it is given back
        // (the reservation's drop) so the AU can send them again.
        if let Some(reservation) = ctx.reservation.take() {
            if ctx.forwarded_status.is_some_and(|s| (200..300).contains(&s)) && reservation.commit(unix_now()) {
                metrics::SESSIONS_ENDED.with_label_values(&["terminated"]).inc();
                if let (Some(tenant), Some(verified)) = (&ctx.tenant, &ctx.verified) {
                    self.ops.audit.record(
                        AuditEvent::new(EventKind::SessionEnded, Service::Edge)
                            .tenant(&tenant.id)
                            .reason("terminated")
                            .session(&verified.claims.session_id)
                            .learner(self.ops.learner_hash(&tenant.id, &verified.grant.actor))
                            .request(ctx.start.id),
                    );
                }
            }
        }
        let resource = ctx.resource.map_or("none", |r| r.label());
        let tenant = ctx.tenant.as_ref().map_or("-", |t| t.id.as_str());
        let learner =
            || ctx.verified.as_ref().map_or_else(|| "-".to_owned(), |v| self.ops.learner_hash(tenant, &v.grant.actor));
        let request_id = ctx.start.id.as_str();
        let outcome = match ctx.refused {
            Some((status, code)) => {
                metrics::DENIALS.with_label_values(&["edge", code]).inc();
                info!(
                    request_id, tenant, resource, learner = learner().as_str(), status, reason = code;
                    "edge refused"
                );
                "denied"
            }
            None => {
                let status =
                    ctx.forwarded_status.or_else(|| session.response_written().map(|r| r.status.as_u16())).unwrap_or(0);
                let outcome = if e.is_some() { "failed" } else { "forwarded" };
                if log_enabled!(Level::Debug) {
                    debug!(request_id, tenant, resource, learner = learner().as_str(), status; "edge {outcome}");
                }
                outcome
            }
        };
        let tenant_label = ctx.tenant.as_ref().map_or("", |t| self.ops.tenant_label(&t.id));
        metrics::edge_request(resource, outcome, tenant_label, ctx.start.at.elapsed().as_secs_f64());
    }

    fn request_summary(&self, session: &Session, ctx: &EdgeCtx) -> String {
        // Pingora's own error lines name the request too.
        format!("{} request_id={}", session.as_ref().request_summary(), ctx.start.id)
    }
}
