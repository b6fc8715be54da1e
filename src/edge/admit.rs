//! `request_filter`'s sequence: read the request into a view, ask `admission::front`, verify
//! the token, check its session and rate limits, ask `admission::decide` (reading the body when
//! it asks for it), reserve cmi5 progress. The judging itself is pure and lives in
//! `crate::admission`; what is here is the I/O between its questions.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use pingora::protocols::http::ServerSession;

use super::context::EdgeCtx;
use super::tls::Sni;
use crate::admission::{decide, forward_headers, front, Front, Judged, RequestView, Step, REPLAY_BUFFER_BYTES};
use crate::auth::verify::{token_from_authorization, Verified};
use crate::clock::unix_now;
use crate::denial::Denial;
use crate::http_io::read_bounded;
use crate::policy;
use crate::rate_limit::RateLimiter;
use crate::session::store::{learner_key, AdvanceError, EndReason, SessionStore};
use crate::tenant::{Tenant, TenantStore};
use crate::xapi::alternate::{self, AlternateRequest};
use crate::xapi::media_type::{self, ContentTypeError};

/// What to do with an admitted request (`ctx.admitted` holds what the LRS receives).
pub enum Admission {
    /// Proxy it through Pingora's normal path (no body, or a body the replay buffer holds).
    Proxy,
    /// Forward it directly with this validated body (too large for the replay buffer).
    ForwardDirect(Bytes),
    /// Fetch statements directly and relay only what is in scope.
    FetchJudged,
    /// A health answer: `/healthz` (alive) or `/readyz` (503 once a stop began).
    Answered(u16, &'static [u8]),
    /// A CORS preflight, answered 204 with these headers.
    Preflight(Vec<(http::header::HeaderName, String)>),
    /// A POST on a cmi5 fetch URL with this code.
    Fetch(String),
}

/// Where the edge keeps what it needs beyond the tenant snapshot.
pub struct EdgeState<'a> {
    pub tenants: &'a TenantStore,
    pub sessions: &'a dyn SessionStore,
    /// Total time allowed for reading the client's body.
    pub body_timeout: Duration,
    pub limiter: &'a RateLimiter,
}

/// The request as plain data (`session` is only read).
fn view_of<'a>(session: &'a ServerSession, ctx: &EdgeCtx) -> RequestView<'a> {
    let req = session.req_header();
    RequestView {
        method: &req.method,
        path: req.uri.path(),
        query: req.uri.query(),
        headers: &req.headers,
        host: req.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri.host()),
        sni: session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|s| s.extension.get::<Sni>())
            .map(|s| s.0.as_str()),
        stopping: crate::lifecycle::stopping(),
        request_id: ctx.start.id,
    }
}

/// Judge the request. On `Ok`, `ctx` holds the tenant, the resource and, for a request that
/// goes to the LRS, what it receives (`ctx.admitted`).
pub async fn admit(session: &mut ServerSession, ctx: &mut EdgeCtx, state: &EdgeState<'_>) -> Result<Admission, Denial> {
    let facts = {
        let table = state.tenants.load();
        front(&view_of(session, ctx), &table)
    };
    ctx.tenant = facts.tenant;
    ctx.cors = facts.cors;
    ctx.resource = facts.resource;
    let (resource, framing, is_alternate) = match facts.outcome? {
        Front::Answer(status, body) => return Ok(Admission::Answered(status, body)),
        Front::Preflight(headers) => return Ok(Admission::Preflight(headers)),
        Front::Fetch(code) => return Ok(Admission::Fetch(code)),
        Front::About(admitted) => {
            ctx.admitted = Some(*admitted);
            return Ok(Admission::Proxy);
        }
        Front::Xapi { resource, framing, alternate } => (resource, framing, alternate),
    };
    let Some(tenant) = ctx.tenant.clone() else { return Err(Denial::Internal) };
    let now = unix_now();
    let (verified, alternate) = authenticate(session, &tenant, is_alternate, state.body_timeout, now).await?;
    let (claims, grant) = (&verified.claims, &verified.grant);
    if let Some(record) = state.sessions.lookup(&tenant.id, &claims.session_id) {
        record.status(now, tenant.sessions.terminated_grace_seconds).map_err(Denial::SessionEnded)?;
    }
    if state.sessions.token_revoked(&tenant.id, &claims.jti, claims.iat, &|| learner_key(&grant.actor)) {
        return Err(Denial::SessionEnded(EndReason::Revoked));
    }
    ctx.verified = Some(verified.clone());
    // Only authenticated requests count, so a client without a token cannot spend a tenant's
    // budget; a token over its own limit does not spend the tenant's either.
    state.limiter.edge(&tenant.rate_limits, &tenant.id, &claims.jti).map_err(Denial::RateLimited)?;

    let headers = forward_headers(&view_of(session, ctx), alternate.as_ref())?;
    // The view borrows the session, which reading the body needs: it is taken again after.
    let judge = |session: &ServerSession, body: Option<&Bytes>| {
        let view = view_of(session, ctx);
        decide(&Judged::new(&view, resource, framing, alternate.as_ref(), &headers), body, &tenant, &verified)
    };
    let mut step = judge(session, None)?;
    if let Step::ReadBody { limit } = step {
        let body = read_body(session, alternate.as_ref(), limit, state.body_timeout).await?;
        step = judge(session, Some(&body))?;
    }
    let Step::Admit(mut admitted) = step else { return Err(Denial::Internal) };
    if let Some((mode, statements)) = admitted.progress.take() {
        ctx.reservation = Some(reserve_progress(state.sessions, &tenant, &verified, mode, &statements).await?);
    }
    let admission = match (&admitted.read, &admitted.body) {
        (Some(_), _) => Admission::FetchJudged,
        // Forwarded in normal form, never as the form: always by the direct forwarder.
        _ if alternate.is_some() => Admission::ForwardDirect(admitted.body.clone().unwrap_or_default()),
        // Pingora replays a pre-read body only from its retry buffer.
        (None, Some(body)) if body.len() > REPLAY_BUFFER_BYTES || session.get_retry_buffer().is_none() => {
            Admission::ForwardDirect(body.clone())
        }
        _ => Admission::Proxy,
    };
    ctx.admitted = Some(*admitted);
    Ok(admission)
}

/// The verified token, from the `Authorization` header or, for the Alternate Request Syntax,
/// its form (decoded here; the token is checked first where the header has it, so an
/// unauthenticated client cannot make lrsgate decode large forms).
async fn authenticate(
    session: &mut ServerSession,
    tenant: &Tenant,
    is_alternate: bool,
    body_timeout: Duration,
    now: u64,
) -> Result<(Arc<Verified>, Option<AlternateRequest>), Denial> {
    let header_verified = match session.req_header().headers.get(AUTHORIZATION) {
        Some(auth) => Some(verify(tenant, Some(auth.as_bytes()), now)?),
        None => None,
    };
    let alternate =
        if is_alternate { Some(read_alternate(session, tenant.max_body_bytes, body_timeout).await?) } else { None };
    let form_auth = alternate.as_ref().and_then(|a| a.header("Authorization")).map(str::as_bytes);
    let header_auth = session.req_header().headers.get(AUTHORIZATION).map(|v| v.as_bytes());
    if let (Some(header), Some(form)) = (header_auth, form_auth) {
        if header != form {
            return Err(Denial::AuthorizationConflict);
        }
    }
    let verified = match header_verified {
        Some(v) => v,
        None => verify(tenant, form_auth, now)?,
    };
    Ok((verified, alternate))
}

/// Verify the session token in an `Authorization` value against the tenant's keys.
fn verify(tenant: &Tenant, authorization: Option<&[u8]>, now: u64) -> Result<Arc<Verified>, Denial> {
    let token = token_from_authorization(authorization).map_err(Denial::Token)?;
    tenant.verified.verify(token, &tenant.id, &tenant.keys, &tenant.courses, now).map_err(Denial::Token)
}

/// The whole body `decide` asked for, bounded: read from the client, or the form's `content`.
async fn read_body(
    session: &mut ServerSession,
    alternate: Option<&AlternateRequest>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Denial> {
    if let Some(a) = alternate {
        return Ok(Bytes::copy_from_slice(&a.content));
    }
    // The replay buffer records only what is read after this call.
    session.enable_retry_buffering();
    read_bounded(session, limit, timeout).await.map_err(|e| Denial::from_body_read(e, limit))
}

/// Reserve the cmi5 progress a launch's statements make (one atomic step in the session store):
/// kept once the LRS stores them, given back otherwise.
async fn reserve_progress(
    sessions: &dyn SessionStore,
    tenant: &Tenant,
    verified: &Verified,
    mode: policy::LaunchMode,
    statements: &[crate::xapi::statement::Statement],
) -> Result<crate::session::store::Reservation, Denial> {
    let judge = |progress| policy::session::advance(progress, mode, statements);
    sessions.advance(&tenant.id, &verified.claims, &judge).await.map_err(|e| match e {
        AdvanceError::Refused(denial) => Denial::Write(denial),
        AdvanceError::Unavailable => Denial::StoreUnavailable,
    })
}

/// Read and decode an Alternate Request Syntax form (its token may be inside, so it is read
/// before authentication, bounded by the tenant's body limit).
async fn read_alternate(
    session: &mut ServerSession,
    limit: usize,
    body_timeout: Duration,
) -> Result<AlternateRequest, Denial> {
    let content_type = session.req_header().headers.get(CONTENT_TYPE).map(|v| v.as_bytes()).unwrap_or_default();
    let media = media_type::parse(content_type).map_err(|e| Denial::ContentType(ContentTypeError::Invalid(e)))?;
    if media.essence != "application/x-www-form-urlencoded" {
        return Err(Denial::ContentType(ContentTypeError::Unsupported));
    }
    if media.params.iter().any(|(n, v)| n != "charset" || !v.eq_ignore_ascii_case("utf-8")) {
        return Err(Denial::ContentType(ContentTypeError::Charset));
    }
    let form = read_bounded(session, limit, body_timeout).await.map_err(|e| Denial::from_body_read(e, limit))?;
    alternate::decode(session.req_header().uri.query(), &form).map_err(Denial::Alternate)
}
