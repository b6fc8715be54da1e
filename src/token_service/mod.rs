//! The LMS-facing token service: `POST /auth/token` issues a session token for one learner,
//! activity and registration (in the reply, or through a one-time cmi5 fetch URL), and
//! `POST /auth/sessions/end` ends a session. Tenant by Host; the LMS authenticates with its API
//! key. Sends no CORS headers: browsers never call it.

pub mod request;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{Method, Response};
use log::{debug, error, info};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use self::request::{EndRequest, EndTarget, TokenRequest};
use crate::audit::{AuditEvent, EventKind, Service};
use crate::auth::{apikey, issue};
use crate::config::tenants::TenantStatus;
use crate::denial::Denial;
use crate::edge::fetch::fetch_url;
use crate::http_io::{bearer_credential, has_body, json_response, read_bounded};
use crate::metrics;
use crate::operations::Operations;
use crate::request_id::RequestId;
use crate::session::store::{learner_key, FetchCode, FetchTicket, Revocation, SessionStore};
use crate::tenant::{Tenant, TenantStore};

/// The token service application.
pub struct TokenService {
    pub store: TenantStore,
    pub sessions: Arc<dyn SessionStore>,
    /// Largest accepted token request body.
    pub max_request_bytes: usize,
    /// Total time allowed for reading a token request body.
    pub body_read_timeout: std::time::Duration,
    pub ops: Arc<Operations>,
}

/// One token service request as the audit trail and the logs know it.
struct Call {
    id: RequestId,
    /// The tenant once resolved.
    tenant: Option<String>,
    /// The API key once verified (`apikey::audit_name`).
    key: Option<String>,
}

/// What the LMS asks for.
#[derive(Clone, Copy)]
enum Route {
    IssueToken,
    EndSession,
}

/// The `endpoint` label of the token service's duration histogram.
fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/auth/token" => "token",
        "/auth/sessions/end" => "sessions_end",
        _ => "other",
    }
}

#[async_trait]
impl ServeHttp for TokenService {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let _in_flight = crate::lifecycle::InFlight::enter();
        let started = std::time::Instant::now();
        let endpoint = endpoint_label(session.req_header().uri.path());
        let mut call = Call { id: RequestId::next(), tenant: None, key: None };
        let (response, outcome) = match self.handle(session, &mut call).await {
            Ok(response) => (response, "ok"),
            Err(denial) => {
                let (status, code) = denial.status_and_code();
                metrics::DENIALS.with_label_values(&["token", code]).inc();
                if let Denial::RateLimited(limit) = denial {
                    let tenant = call.tenant.as_deref().map_or("", |t| self.ops.tenant_label(t));
                    metrics::RATE_LIMITED.with_label_values(&["token", limit.label(), tenant]).inc();
                }
                info!(
                    request_id = call.id.as_str(), tenant = call.tenant.as_deref().unwrap_or("-"), status, reason = code;
                    "token service refused"
                );
                let mut event =
                    AuditEvent::new(EventKind::RequestRefused, Service::Token).reason(code).request(call.id);
                event.status = Some(status);
                event.tenant = call.tenant.clone();
                event.actor = call.key.clone();
                event.resource = Some(endpoint.to_owned());
                self.ops.audit.record(event);
                if has_body(session) && !session.is_body_done() {
                    session.set_keepalive(None);
                }
                let mut response = json_response(status, denial.body(&call.id), &call.id);
                if let Some(seconds) = denial.retry_after() {
                    response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static(seconds));
                }
                (response, "denied")
            }
        };
        metrics::TOKEN_DURATION.with_label_values(&[endpoint, outcome]).observe(started.elapsed().as_secs_f64());
        response
    }
}

impl TokenService {
    async fn handle(&self, session: &mut ServerSession, call: &mut Call) -> Result<Response<Vec<u8>>, Denial> {
        let req = session.req_header();
        let route = match (req.uri.path(), &req.method) {
            ("/healthz", &Method::GET) => {
                return Ok(json_response(200, br#"{"status":"ok"}"#.to_vec(), &call.id));
            }
            ("/readyz", &Method::GET) if crate::lifecycle::stopping() => {
                return Ok(json_response(503, br#"{"status":"stopping"}"#.to_vec(), &call.id));
            }
            ("/readyz", &Method::GET) => {
                return Ok(json_response(200, br#"{"status":"ready"}"#.to_vec(), &call.id));
            }
            ("/auth/token", &Method::POST) => Route::IssueToken,
            ("/auth/sessions/end", &Method::POST) => Route::EndSession,
            ("/auth/token" | "/auth/sessions/end", _) => return Err(Denial::MethodNotAllowed),
            _ => return Err(Denial::UnknownRoute),
        };
        let host = req.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri.host()).unwrap_or("");
        let table = self.store.load();
        let tenant = table.resolve(host).ok_or(Denial::UnknownTenant)?.clone();
        call.tenant = Some(tenant.id.clone());
        if tenant.status == TenantStatus::Suspended {
            return Err(Denial::TenantSuspended);
        }
        let key = bearer_credential(session).ok_or(Denial::ApiKeyMissing)?;
        let now = crate::clock::unix_now();
        let key = apikey::matching(key, &tenant.api_keys, now).ok_or(Denial::ApiKeyInvalid)?;
        call.key = Some(apikey::audit_name(&key));
        self.ops.limiter.token_service(&tenant.rate_limits, &tenant.id, &key).map_err(Denial::RateLimited)?;
        let content_type = req.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()).unwrap_or_default();
        crate::xapi::media_type::json_body(content_type).map_err(Denial::ContentType)?;
        let body = read_bounded(session, self.max_request_bytes, self.body_read_timeout)
            .await
            .map_err(|e| Denial::from_body_read(e, self.max_request_bytes))?;
        match route {
            Route::IssueToken => self.issue(&tenant, &body, now, call).await,
            Route::EndSession => self.end_session(&tenant, &body, now, call).await,
        }
    }

    /// `POST /auth/token`: the token in the reply, or with `"delivery": "cmi5"` a fetch URL
    /// that hands it to the AU once. A cmi5-delivered token lives for the tenant's maximum
    /// session length; its session ends earlier by `terminated`, the LMS or a revocation.
    async fn issue(&self, tenant: &Tenant, body: &Bytes, now: u64, call: &Call) -> Result<Response<Vec<u8>>, Denial> {
        let request = TokenRequest::parse(body, &tenant.courses).map_err(Denial::TokenRequest)?;
        let (default_ttl, max_ttl) = if request.cmi5_delivery {
            (tenant.sessions.max_seconds, tenant.sessions.max_seconds)
        } else {
            (tenant.default_ttl_seconds, tenant.max_ttl_seconds)
        };
        let claims = request.claims(&tenant.id, &tenant.keys.issuer, now, default_ttl, max_ttl);
        let learner = self.ops.learner_hash(&tenant.id, &request.actor);
        let mut reply = json!({
            "expires_at": rfc3339(claims.exp),
            "expires_in": claims.exp - now,
            "session_id": claims.session_id,
            // What the LMS names to revoke this one token later.
            "jti": claims.jti,
        });
        if request.cmi5_delivery {
            let origin = tenant.public_origin.as_deref().ok_or(Denial::DeliveryUnavailable)?;
            let code = FetchCode::generate();
            let unused_until = now + tenant.sessions.fetch_ttl_seconds;
            reply["fetch_url"] = json!(fetch_url(origin, &code));
            reply["fetch_expires_at"] = json!(rfc3339(unused_until));
            let keep_until = claims.exp;
            let ticket = FetchTicket::new(tenant.id.clone(), claims, unused_until);
            self.sessions.put_fetch(&code, ticket, keep_until).await.map_err(|e| {
                error!(request_id = call.id.as_str(), tenant = tenant.id.as_str(); "storing a fetch code failed: {}", e.0);
                Denial::StoreUnavailable
            })?;
            metrics::FETCHES.with_label_values(&["issued"]).inc();
        } else {
            let token = issue::sign(&claims, &tenant.keys).map_err(|e| {
                error!(request_id = call.id.as_str(), tenant = tenant.id.as_str(); "signing failed: {e}");
                Denial::Internal
            })?;
            reply["token"] = json!(token);
        }
        metrics::TOKENS_ISSUED.inc();
        let session_id = reply["session_id"].as_str().unwrap_or_default();
        let delivery = if request.cmi5_delivery { "cmi5" } else { "reply" };
        // One line per token is debug: at a fleet's issuance rate, info would be a flood (the
        // audit trail and lrsgate_tokens_issued_total keep the record).
        debug!(
            request_id = call.id.as_str(), tenant = tenant.id.as_str(), learner = learner.as_str(), session = session_id,
            ttl = reply["expires_in"].as_u64().unwrap_or_default(), delivery;
            "token issued"
        );
        let mut event = AuditEvent::new(EventKind::TokenIssued, Service::Token)
            .tenant(&tenant.id)
            .session(session_id)
            .learner(learner)
            .request(call.id)
            .detail(format!("delivery={delivery}"));
        event.actor = call.key.clone();
        self.ops.audit.record(event);
        Ok(json_response(200, reply.to_string().into_bytes(), &call.id))
    }

    /// `POST /auth/sessions/end`: every token of the session (or the one token, or every token
    /// the learner was issued so far) is refused from now on (401 `session_ended`) on every
    /// instance, and an unused fetch URL no longer gives a token.
    async fn end_session(
        &self,
        tenant: &Tenant,
        body: &Bytes,
        now: u64,
        call: &Call,
    ) -> Result<Response<Vec<u8>>, Denial> {
        let request = EndRequest::parse(body).map_err(Denial::TokenRequest)?;
        // Kept as long as any token it names can still be presented.
        let keep_until = now + tenant.sessions.max_seconds.max(tenant.max_ttl_seconds);
        let (stored, reply) = match &request.target {
            EndTarget::Session(id) => (
                self.sessions.end(&tenant.id, id, request.reason, keep_until).await,
                json!({ "session_id": id, "ended": request.reason.as_str() }),
            ),
            EndTarget::Token(jti) => (
                self.sessions.revoke(&tenant.id, &Revocation::Token(jti.clone()), now, keep_until).await,
                json!({ "jti": jti, "ended": "revoked" }),
            ),
            EndTarget::Learner(actor) => {
                // The learner's key, never the identity, is what is stored and answered.
                let key = learner_key(actor);
                let stored = self.sessions.revoke(&tenant.id, &Revocation::Learner(key.clone()), now, keep_until).await;
                (stored, json!({ "learner_key": key, "ended": "revoked" }))
            }
        };
        stored.map_err(|e| {
            error!(request_id = call.id.as_str(), tenant = tenant.id.as_str(); "ending a session failed: {}", e.0);
            Denial::StoreUnavailable
        })?;
        metrics::SESSIONS_ENDED.with_label_values(&[request.reason.as_str()]).inc();
        let (kind, target) = match &request.target {
            EndTarget::Session(id) if request.reason != crate::session::store::EndReason::Revoked => {
                (EventKind::SessionEnded, format!("session={id}"))
            }
            EndTarget::Session(id) => (EventKind::Revoked, format!("session={id}")),
            EndTarget::Token(jti) => (EventKind::Revoked, format!("jti={jti}")),
            EndTarget::Learner(_) => (EventKind::Revoked, "learner".to_owned()),
        };
        info!(
            request_id = call.id.as_str(), tenant = tenant.id.as_str(), target = target.as_str(),
            reason = request.reason.as_str();
            "ended by the LMS"
        );
        let mut event =
            AuditEvent::new(kind, Service::Token).tenant(&tenant.id).reason(request.reason.as_str()).request(call.id);
        event.actor = call.key.clone();
        match &request.target {
            EndTarget::Session(id) => event.session_id = Some(id.clone()),
            EndTarget::Token(jti) => event.detail = Some(format!("jti={jti}")),
            EndTarget::Learner(actor) => event.learner = Some(self.ops.learner_hash(&tenant.id, actor)),
        }
        self.ops.audit.record(event);
        Ok(json_response(200, reply.to_string().into_bytes(), &call.id))
    }
}

/// `secs` since the Unix epoch as an RFC 3339 UTC timestamp (days-from-civil, Howard Hinnant).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }
}
