//! `request_filter`'s work: tenant, route, token, query, body, policy. Everything that decides
//! whether a request may reach the LRS happens here, before any upstream connection exists.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderName, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_TYPE, HOST,
    ORIGIN,
};
use http::Method;
use pingora::protocols::http::ServerSession;

use super::context::EdgeCtx;
use super::cors::{CorsRefusal, FETCH_METHODS, XAPI_METHODS};
use super::fetch::FETCH_PREFIX;
use super::reads::ReadKind;
use super::tls::Sni;
use crate::auth::claims::SessionClaims;
use crate::auth::cursor::CursorError;
use crate::auth::sessions::{learner_key, AdvanceError, EndReason, FetchRefusal, SessionStore};
use crate::auth::verify::{token_from_authorization, Verified};
use crate::clock::unix_now;
use crate::config::tenants::TenantStatus;
use crate::denial::Denial;
use crate::http_io::read_bounded;
use crate::policy::documents::{
    self, Access, ACTIVITIES_PARAMS, ACTIVITY_PROFILE_PARAMS, AGENTS_PARAMS, AGENT_PROFILE_PARAMS, STATE_PARAMS,
};
use crate::policy::{self, Grant, PolicyDenial};
use crate::rate_limit::RateLimiter;
use crate::tenant::{Tenant, TenantStore};
use crate::upstream::forward::ForwardRequest;
use crate::xapi::alternate::{self, AlternateMethod, AlternateRequest};
use crate::xapi::headers::{self, ForwardHeaders, Framing};
use crate::xapi::media_type::{self, ContentTypeError, StatementBody};
use crate::xapi::multipart;
use crate::xapi::query::{self, STATEMENT_GET_PARAMS};
use crate::xapi::route::{self, Resource, RouteError};
use crate::xapi::statement::parse_body;

/// What to do with an admitted request.
pub enum Admission {
    /// Proxy it through Pingora's normal path (no body, or a body the replay buffer holds).
    Proxy,
    /// Forward it directly with this validated body (too large for the replay buffer).
    ForwardDirect(Bytes),
    /// Fetch a single statement directly and relay it only if it is in scope.
    FetchJudged,
    /// Already answered (health check).
    /// A health answer: `/healthz` (alive) or `/readyz` (503 once a stop began).
    Answered(u16, &'static [u8]),
    /// A CORS preflight, answered 204 with these headers.
    Preflight(Vec<(HeaderName, String)>),
    /// A POST on a cmi5 fetch URL with this code.
    Fetch(String),
}

/// Pingora's request-body replay buffer (`BODY_BUF_LIMIT` in pingora-core 0.9, not configurable).
pub const REPLAY_BUFFER_BYTES: usize = 64 * 1024;

/// Where the edge keeps what it needs beyond the tenant snapshot.
pub struct EdgeState<'a> {
    pub tenants: &'a TenantStore,
    pub sessions: &'a dyn SessionStore,
    /// Total time allowed for reading the client's body.
    pub body_timeout: Duration,
    pub limiter: &'a RateLimiter,
}

/// Judge the request. On `Ok`, `ctx` holds the tenant, the resource, what is forwarded
/// (`ctx.forward`) and the body.
pub async fn admit(session: &mut ServerSession, ctx: &mut EdgeCtx, state: &EdgeState<'_>) -> Result<Admission, Denial> {
    let req = session.req_header();
    let path = req.uri.path();
    match path {
        "/healthz" => return Ok(Admission::Answered(200, br#"{"status":"ok"}"#)),
        // Ready: a tenant snapshot is loaded (always, once serving) and no stop has begun.
        "/readyz" if crate::lifecycle::stopping() => return Ok(Admission::Answered(503, br#"{"status":"stopping"}"#)),
        "/readyz" => return Ok(Admission::Answered(200, br#"{"status":"ready"}"#)),
        _ => {}
    }
    // Before anything else, and before any upstream connection can exist: a body framed two
    // ways is read one way by lrsgate and another by the LRS.
    let framing = headers::framing(&req.headers).map_err(Denial::Header)?;
    let host = req.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri.host());
    let sni = session.digest().and_then(|d| d.ssl_digest.as_ref()).and_then(|s| s.extension.get::<Sni>());
    let table = state.tenants.load();
    let tenant = match (sni, host) {
        // Over TLS the tenant is the SNI's; a Host naming another one is misdirected.
        (Some(Sni(name)), host) => {
            let tenant = table.resolve(name).ok_or(Denial::UnknownTenant)?;
            if host.is_some_and(|h| table.resolve(h).is_none_or(|t| t.id != tenant.id)) {
                return Err(Denial::MisdirectedRequest);
            }
            tenant.clone()
        }
        (None, host) => table.resolve(host.unwrap_or("")).ok_or(Denial::UnknownTenant)?.clone(),
    };
    drop(table);
    if tenant.status == TenantStatus::Suspended {
        return Err(Denial::TenantSuspended);
    }
    ctx.tenant = Some(tenant.clone());
    let fetch_code = path.strip_prefix(FETCH_PREFIX);
    let origin = req.headers.get(ORIGIN).map(|v| v.as_bytes());
    ctx.cors = match tenant.cors.judge(origin, tenant.public_origin.as_deref()) {
        Ok(reply) => reply,
        // A fetch URL answers in cmi5's shape even here: a security error.
        Err(_) if fetch_code.is_some() => return Err(Denial::Fetch(FetchRefusal::Invalid)),
        Err(_) => return Err(Denial::CorsOriginRefused),
    };
    let method = req.method.clone();
    if let Some(code) = fetch_code {
        return match method {
            Method::POST => Ok(Admission::Fetch(code.to_owned())),
            Method::OPTIONS => preflight(session, ctx, &tenant, FETCH_METHODS),
            // cmi5 §8.2.1 (POST only) and best practice #3 (other methods get a 4xx).
            _ => Err(Denial::MethodNotAllowed),
        };
    }
    let resource = route::resolve(path).map_err(|e| match e {
        RouteError::BadPath => Denial::BadPath,
        RouteError::Unknown => Denial::UnknownRoute,
    })?;
    ctx.resource = Some(resource);
    if method == Method::OPTIONS {
        return preflight(session, ctx, &tenant, XAPI_METHODS);
    }
    let raw_query = req.uri.query();

    if resource == Resource::About {
        if method != Method::GET && method != Method::HEAD {
            return Err(Denial::MethodNotAllowed);
        }
        query::parse(raw_query, &[]).map_err(Denial::Query)?;
        if framing.has_body() {
            return Err(Denial::UnexpectedBody);
        }
        let headers = ForwardHeaders::read(header_fields(&req.headers)).map_err(Denial::Header)?;
        ctx.forward = Some(ForwardRequest {
            method,
            resource,
            query: None,
            headers,
            content_type: None,
            request_id: ctx.start.id,
        });
        return Ok(Admission::Proxy);
    }

    let body_timeout = state.body_timeout;
    let now = unix_now();
    let is_alternate = method == Method::POST && query::mentions(raw_query, "method");
    if is_alternate && !tenant.rules.alternate_syntax {
        return Err(Denial::AlternateSyntaxRefused);
    }
    // The token is checked before the form is read and decoded where it can be (it is in the
    // header), so an unauthenticated client cannot make lrsgate decode large forms.
    let header_verified = match req.headers.get(AUTHORIZATION) {
        Some(auth) => Some(verify(&tenant, Some(auth.as_bytes()), now)?),
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
        None => verify(&tenant, form_auth, now)?,
    };
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

    let req = session.req_header();
    let form_fields = alternate.iter().flat_map(|a| a.headers.iter().map(|(n, v)| (*n, v.as_bytes())));
    let forwarded = ForwardHeaders::read(header_fields(&req.headers).chain(form_fields)).map_err(Denial::Header)?;
    let judged =
        Judged { method: alternate.as_ref().map_or(method, |a| to_method(a.method)), alternate, framing, body_timeout };
    let token = TokenFacts { claims, sessions: state.sessions };
    let judgement = judge(session, ctx, (grant, &token), resource, &judged, &tenant).await?;
    ctx.forward = Some(ForwardRequest {
        method: judged.method.clone(),
        resource,
        query: judgement.query,
        headers: forwarded,
        content_type: judgement.content_type,
        request_id: ctx.start.id,
    });
    if judged.alternate.is_some() {
        if let Admission::Proxy | Admission::ForwardDirect(_) = judgement.admission {
            // Forwarded in normal form, never as the form: always by the direct forwarder.
            return Ok(Admission::ForwardDirect(ctx.validated_body.clone().unwrap_or_default()));
        }
    }
    Ok(judgement.admission)
}

/// The request's header fields as `(name, value)` pairs.
fn header_fields(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, &[u8])> {
    headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()))
}

/// Verify the session token in an `Authorization` value against the tenant's keys.
fn verify(tenant: &Tenant, authorization: Option<&[u8]>, now: u64) -> Result<Arc<Verified>, Denial> {
    let token = token_from_authorization(authorization).map_err(Denial::Token)?;
    tenant.verified.verify(token, &tenant.id, &tenant.keys, &tenant.courses, now).map_err(Denial::Token)
}

/// The request as it is judged: the client's own, or the normal form of an Alternate Request
/// Syntax request (its method, query, headers and `content` decoded from the form).
struct Judged {
    method: Method,
    alternate: Option<AlternateRequest>,
    /// How the client framed its body (already judged well-formed).
    framing: Framing,
    /// Total time allowed for reading the client's body.
    body_timeout: Duration,
}

/// What judging decided beyond the admission: the query and Content-Type the LRS receives.
struct Judgement {
    admission: Admission,
    query: Option<String>,
    content_type: Option<String>,
}

impl Judgement {
    fn new(admission: Admission, query: Option<String>) -> Self {
        Judgement { admission, query, content_type: None }
    }
}

impl Judged {
    fn query<'a>(&'a self, session: &'a ServerSession) -> Option<&'a str> {
        match &self.alternate {
            Some(a) => Some(a.query.as_str()),
            None => session.req_header().uri.query(),
        }
    }

    /// The Content-Type of the judged request, if any.
    fn content_type<'a>(&'a self, session: &'a ServerSession) -> Option<&'a [u8]> {
        match &self.alternate {
            Some(a) => a.header("Content-Type").map(str::as_bytes),
            None => session.req_header().headers.get(CONTENT_TYPE).map(|v| v.as_bytes()),
        }
    }

    fn refuse_body(&self) -> Result<(), Denial> {
        let has = match &self.alternate {
            Some(a) => !a.content.is_empty(),
            None => self.framing.has_body(),
        };
        if has {
            return Err(Denial::UnexpectedBody);
        }
        Ok(())
    }

    /// The whole body, bounded: read from the client, or the decoded `content`.
    async fn body(&self, session: &mut ServerSession, limit: usize) -> Result<Bytes, Denial> {
        if let Some(a) = &self.alternate {
            return Ok(Bytes::copy_from_slice(&a.content));
        }
        // The replay buffer records only what is read after this call.
        session.enable_retry_buffering();
        read_bounded(session, limit, self.body_timeout).await.map_err(|e| Denial::from_body_read(e, limit))
    }
}

/// The verified token's facts that judging needs beyond its grant.
struct TokenFacts<'a> {
    claims: &'a SessionClaims,
    sessions: &'a dyn SessionStore,
}

/// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) on a route that exists.
/// Preflights carry no credential, so none is asked for. A plain `OPTIONS` is not allowed.
fn preflight(session: &ServerSession, ctx: &EdgeCtx, tenant: &Tenant, methods: &[&str]) -> Result<Admission, Denial> {
    let headers = &session.req_header().headers;
    let (Some(_), Some(method)) = (headers.get(ORIGIN), headers.get(ACCESS_CONTROL_REQUEST_METHOD)) else {
        return Err(Denial::MethodNotAllowed);
    };
    let asked = headers.get(ACCESS_CONTROL_REQUEST_HEADERS).map(|v| v.as_bytes());
    match tenant.cors.preflight(&ctx.cors, method.as_bytes(), asked, methods) {
        Ok(allowed) => Ok(Admission::Preflight(allowed)),
        Err(CorsRefusal::Origin | CorsRefusal::Preflight) => Err(Denial::CorsPreflightRefused),
    }
}

fn to_method(m: AlternateMethod) -> Method {
    match m {
        AlternateMethod::Get => Method::GET,
        AlternateMethod::Put => Method::PUT,
        AlternateMethod::Post => Method::POST,
        AlternateMethod::Delete => Method::DELETE,
    }
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

/// The token is valid: judge the request against its grant.
async fn judge(
    session: &mut ServerSession,
    ctx: &mut EdgeCtx,
    (grant, token): (&Grant, &TokenFacts<'_>),
    resource: Resource,
    judged: &Judged,
    tenant: &Tenant,
) -> Result<Judgement, Denial> {
    let (rules, max_body_bytes) = (&tenant.rules, tenant.max_body_bytes);
    let raw_query = judged.query(session);
    match (resource, judged.method.clone()) {
        (Resource::Statements, Method::GET | Method::HEAD) => {
            let params = query::parse(raw_query, STATEMENT_GET_PARAMS).map_err(Denial::Query)?;
            let (kind, query) = if params.iter().any(|p| p.name == "statementId" || p.name == "voidedStatementId") {
                (ReadKind::Single, policy::statements::check_single_read(grant, &params).map_err(Denial::Policy)?)
            } else {
                (ReadKind::List, policy::statements::check_read(grant, &params).map_err(Denial::Policy)?)
            };
            judged.refuse_body()?;
            // What the LRS returns is judged too: the forced filters are not enough (a
            // statement targeting the learner's statements matches them, whoever wrote it).
            ctx.statement_read = Some((grant.clone(), kind));
            Ok(Judgement::new(Admission::FetchJudged, Some(query)))
        }
        (Resource::Statements, Method::POST) => {
            query::parse(raw_query, &[]).map_err(Denial::Query)?;
            let (body, format) = read_statements(session, ctx, (grant, token, tenant), judged, None).await?;
            let admission = admission_for(session, body);
            Ok(Judgement { admission, query: None, content_type: Some(format.content_type()) })
        }
        (Resource::Statements, Method::PUT) => {
            let params = query::parse(raw_query, &["statementId"]).map_err(Denial::Query)?;
            let id = params.first().ok_or(Denial::Policy(PolicyDenial::MissingParameter("statementId")))?;
            let statement_id = id.value.clone().into_owned();
            let mut query = query::QueryBuilder::new();
            query.push_all(&params);
            let (body, format) =
                read_statements(session, ctx, (grant, token, tenant), judged, Some(&statement_id)).await?;
            let admission = admission_for(session, body);
            Ok(Judgement { admission, query: Some(query.finish()), content_type: Some(format.content_type()) })
        }
        (Resource::Statements, _) => Err(Denial::MethodNotAllowed),
        (Resource::ActivitiesState | Resource::AgentsProfile, method) => {
            let access = access_of(&method)?;
            let query = if resource == Resource::ActivitiesState {
                let params = query::parse(raw_query, STATE_PARAMS).map_err(Denial::Query)?;
                documents::check_state(grant, access, &params)
            } else {
                let params = query::parse(raw_query, AGENT_PROFILE_PARAMS).map_err(Denial::Query)?;
                documents::check_agent_profile(grant, rules, access, &params)
            };
            let query = Some(query.map_err(Denial::Policy)?);
            if access != Access::Write {
                judged.refuse_body()?;
                return Ok(Judgement::new(Admission::Proxy, query));
            }
            // Documents are of any type (Comm §2.2): the client's Content-Type is parsed and
            // written again, never forwarded as sent; JSON only in UTF-8.
            let content_type =
                media_type::document_content_type(judged.content_type(session)).map_err(Denial::ContentType)?;
            let body = judged.body(session, max_body_bytes).await?;
            ctx.validated_body = Some(body.clone());
            Ok(Judgement { admission: admission_for(session, body), query, content_type })
        }
        (Resource::ActivitiesProfile, method) => {
            let access = access_of(&method)?;
            let params = query::parse(raw_query, ACTIVITY_PROFILE_PARAMS).map_err(Denial::Query)?;
            let query = documents::check_activity_profile(grant, rules, access, &params).map_err(Denial::Policy)?;
            judged.refuse_body()?;
            Ok(Judgement::new(Admission::Proxy, Some(query)))
        }
        (Resource::Activities | Resource::Agents, Method::GET | Method::HEAD) => {
            let query = if resource == Resource::Activities {
                documents::check_activities(grant, &query::parse(raw_query, ACTIVITIES_PARAMS).map_err(Denial::Query)?)
            } else {
                documents::check_agents(grant, &query::parse(raw_query, AGENTS_PARAMS).map_err(Denial::Query)?)
            };
            let query = Some(query.map_err(Denial::Policy)?);
            judged.refuse_body()?;
            Ok(Judgement::new(Admission::Proxy, query))
        }
        (Resource::Activities | Resource::Agents, _) => Err(Denial::MethodNotAllowed),
        (Resource::StatementsMore, Method::GET | Method::HEAD) => {
            query::parse(raw_query, &[]).map_err(Denial::Query)?;
            let path = session.req_header().uri.path();
            let sealed = path.split_once("statements/more/").map_or("", |(_, c)| c);
            let jti = ctx.verified.as_ref().map_or("", |v| v.claims.jti.as_str());
            let more = tenant.keys.cursor.open_for(sealed, jti).map_err(|e| match e {
                CursorError::Invalid => Denial::MoreInvalid,
                CursorError::OtherToken => Denial::MoreOtherToken,
            })?;
            grant.usable_scope(policy::Direction::Read).map_err(Denial::Policy)?;
            judged.refuse_body()?;
            ctx.upstream_more = Some(more);
            ctx.statement_read = Some((grant.clone(), ReadKind::List));
            Ok(Judgement::new(Admission::FetchJudged, None))
        }
        (Resource::StatementsMore, _) => Err(Denial::MethodNotAllowed),
        (Resource::About, _) => Err(Denial::MethodNotAllowed),
    }
}

fn access_of(method: &Method) -> Result<Access, Denial> {
    match *method {
        Method::GET | Method::HEAD => Ok(Access::Read),
        Method::PUT | Method::POST => Ok(Access::Write),
        Method::DELETE => Ok(Access::Delete),
        _ => Err(Denial::MethodNotAllowed),
    }
}

/// Small bodies go through Pingora's replay buffer; larger ones are forwarded directly.
fn admission_for(session: &ServerSession, body: Bytes) -> Admission {
    if body.len() <= REPLAY_BUFFER_BYTES && session.get_retry_buffer().is_some() {
        Admission::Proxy
    } else {
        Admission::ForwardDirect(body)
    }
}

/// Read, parse and judge a statement write body, and for a cmi5 launch reserve the session
/// progress it makes (`ctx.reservation`, kept once the LRS stores it). Returns the client's
/// bytes, unchanged, and their framing (from which lrsgate writes the Content-Type).
async fn read_statements(
    session: &mut ServerSession,
    ctx: &mut EdgeCtx,
    (grant, token, tenant): (&Grant, &TokenFacts<'_>, &Tenant),
    judged: &Judged,
    put_id: Option<&str>,
) -> Result<(Bytes, StatementBody), Denial> {
    let (rules, limit) = (&tenant.rules, tenant.max_body_bytes);
    let format =
        media_type::statement_body(judged.content_type(session).unwrap_or_default()).map_err(Denial::ContentType)?;
    let body = judged.body(session, limit).await?;
    // With attachments, the statements are the first part; the body is forwarded whole.
    let json = match &format {
        StatementBody::Multipart { boundary } => {
            multipart::statement_part(&body, boundary).map_err(Denial::Multipart)?
        }
        StatementBody::Json => &body[..],
    };
    let statements = parse_body(json).map_err(Denial::Body)?;
    if let Some(id) = put_id {
        let is_array = json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        policy::statements::check_put_id(id, &statements, is_array).map_err(Denial::Policy)?;
    }
    policy::statements::check_write(grant, rules, &statements).map_err(Denial::Write)?;
    if let (Some(mode), true) = (grant.launch_mode, rules.cmi5_session_rules) {
        let judge = |progress| policy::session::advance(progress, mode, &statements);
        let reservation = token.sessions.advance(&tenant.id, token.claims, &judge).await.map_err(|e| match e {
            AdvanceError::Refused(denial) => Denial::Write(denial),
            AdvanceError::Unavailable => Denial::StoreUnavailable,
        })?;
        ctx.reservation = Some(reservation);
    }
    ctx.validated_body = Some(body.clone());
    Ok((body, format))
}
