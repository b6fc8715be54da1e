//! Before any credential: health, tenant, CORS, the cmi5 fetch URL, route, preflight, `/about`.

use std::sync::Arc;

use http::header::{HeaderName, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{HeaderMap, Method};

use super::decide::Admitted;
use crate::config::tenants::TenantStatus;
use crate::denial::Denial;
use crate::policy::cors::{CorsRefusal, CorsReply, FETCH_METHODS, XAPI_METHODS};
use crate::request_id::RequestId;
use crate::session::store::FetchRefusal;
use crate::tenant::{Tenant, TenantTable};
use crate::upstream::forward::ForwardRequest;
use crate::xapi::headers::{self, ForwardHeaders, Framing};
use crate::xapi::query;
use crate::xapi::route::{self, Resource, RouteError};

/// The edge path cmi5 fetch URLs live under.
pub const FETCH_PREFIX: &str = "/cmi5/fetch/";

/// The request as the edge read it, once: plain data.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The `Host` header, or the request target's authority.
    pub host: Option<&'a str>,
    /// The server name a TLS client asked for (over TLS only).
    pub sni: Option<&'a str>,
    /// A graceful stop has begun (`/readyz` answers 503).
    pub stopping: bool,
    pub request_id: RequestId,
}

/// What the request is, before any credential.
#[derive(Debug)]
pub enum Front {
    /// A health answer: `/healthz` (alive) or `/readyz` (503 once a stop began).
    Answer(u16, &'static [u8]),
    /// A CORS preflight, answered 204 with these headers.
    Preflight(Vec<(HeaderName, String)>),
    /// A POST on a cmi5 fetch URL with this code.
    Fetch(String),
    /// `GET /about`: no credential needed, forwarded as judged.
    About(Box<Admitted>),
    /// An xAPI request: its token is verified next, then [`super::decide`] judges it.
    Xapi { resource: Resource, framing: Framing, alternate: bool },
}

/// The outcome, and what was learnt on the way: a refusal after the tenant was resolved is
/// still audited as that tenant's, and carries its CORS headers.
pub struct FrontFacts {
    pub tenant: Option<Arc<Tenant>>,
    pub cors: CorsReply,
    pub resource: Option<Resource>,
    pub outcome: Result<Front, Denial>,
}

/// Judge everything that needs no credential.
pub fn front(view: &RequestView<'_>, table: &TenantTable) -> FrontFacts {
    let mut facts =
        FrontFacts { tenant: None, cors: CorsReply::default(), resource: None, outcome: Err(Denial::Internal) };
    facts.outcome = front_inner(view, table, &mut facts);
    facts
}

fn front_inner(view: &RequestView<'_>, table: &TenantTable, facts: &mut FrontFacts) -> Result<Front, Denial> {
    match view.path {
        "/healthz" => return Ok(Front::Answer(200, br#"{"status":"ok"}"#)),
        // Ready: a tenant snapshot is loaded (always, once serving) and no stop has begun.
        "/readyz" if view.stopping => return Ok(Front::Answer(503, br#"{"status":"stopping"}"#)),
        "/readyz" => return Ok(Front::Answer(200, br#"{"status":"ready"}"#)),
        _ => {}
    }
    // Before anything else, and before any upstream connection can exist: a body framed two
    // ways is read one way by lrsgate and another by the LRS.
    let framing = headers::framing(view.headers).map_err(Denial::Header)?;
    let tenant = match view.sni {
        // Over TLS the tenant is the SNI's; a Host naming another one is misdirected.
        Some(name) => {
            let tenant = table.resolve(name).ok_or(Denial::UnknownTenant)?;
            if view.host.is_some_and(|h| table.resolve(h).is_none_or(|t| t.id != tenant.id)) {
                return Err(Denial::MisdirectedRequest);
            }
            tenant
        }
        None => table.resolve(view.host.unwrap_or("")).ok_or(Denial::UnknownTenant)?,
    };
    if tenant.status == TenantStatus::Suspended {
        return Err(Denial::TenantSuspended);
    }
    let tenant = facts.tenant.insert(tenant.clone());
    let fetch_code = view.path.strip_prefix(FETCH_PREFIX);
    let origin = view.headers.get(ORIGIN).map(|v| v.as_bytes());
    facts.cors = match tenant.cors.judge(origin, tenant.public_origin.as_deref()) {
        Ok(reply) => reply,
        // A fetch URL answers in cmi5's shape even here: a security error.
        Err(_) if fetch_code.is_some() => return Err(Denial::Fetch(FetchRefusal::Invalid)),
        Err(_) => return Err(Denial::CorsOriginRefused),
    };
    if let Some(code) = fetch_code {
        return match *view.method {
            Method::POST => Ok(Front::Fetch(code.to_owned())),
            Method::OPTIONS => preflight(view, tenant, &facts.cors, FETCH_METHODS),
            // cmi5 §8.2.1 (POST only) and best practice #3 (other methods get a 4xx).
            _ => Err(Denial::MethodNotAllowed),
        };
    }
    let resource = route::resolve(view.path).map_err(|e| match e {
        RouteError::BadPath => Denial::BadPath,
        RouteError::Unknown => Denial::UnknownRoute,
    })?;
    facts.resource = Some(resource);
    if view.method == Method::OPTIONS {
        return preflight(view, tenant, &facts.cors, XAPI_METHODS);
    }
    if resource == Resource::About {
        if view.method != Method::GET && view.method != Method::HEAD {
            return Err(Denial::MethodNotAllowed);
        }
        query::parse(view.query, &[]).map_err(Denial::Query)?;
        if framing.has_body() {
            return Err(Denial::UnexpectedBody);
        }
        let headers = ForwardHeaders::read(header_fields(view.headers)).map_err(Denial::Header)?;
        let forward = ForwardRequest {
            method: view.method.clone(),
            resource,
            query: None,
            headers,
            content_type: None,
            request_id: view.request_id,
        };
        return Ok(Front::About(Box::new(Admitted { forward, body: None, read: None, progress: None })));
    }
    let alternate = view.method == Method::POST && query::mentions(view.query, "method");
    if alternate && !tenant.rules.alternate_syntax {
        return Err(Denial::AlternateSyntaxRefused);
    }
    Ok(Front::Xapi { resource, framing, alternate })
}

/// The request's header fields as `(name, value)` pairs.
pub fn header_fields(headers: &HeaderMap) -> impl Iterator<Item = (&str, &[u8])> {
    headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()))
}

/// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) on a route that exists.
/// Preflights carry no credential, so none is asked for. A plain `OPTIONS` is not allowed.
fn preflight(view: &RequestView<'_>, tenant: &Tenant, cors: &CorsReply, methods: &[&str]) -> Result<Front, Denial> {
    let headers = view.headers;
    let (Some(_), Some(method)) = (headers.get(ORIGIN), headers.get(ACCESS_CONTROL_REQUEST_METHOD)) else {
        return Err(Denial::MethodNotAllowed);
    };
    let asked = headers.get(ACCESS_CONTROL_REQUEST_HEADERS).map(|v| v.as_bytes());
    match tenant.cors.preflight(cors, method.as_bytes(), asked, methods) {
        Ok(allowed) => Ok(Front::Preflight(allowed)),
        Err(CorsRefusal::Origin | CorsRefusal::Preflight) => Err(Denial::CorsPreflightRefused),
    }
}
