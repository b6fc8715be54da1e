//! The operator API (Postgres mode), on its own listener (default `127.0.0.1:8082`). Every
//! request needs an admin key (`Authorization: Bearer lrsa_…`, stored hashed in `admin_keys`;
//! make one with `lrsgate admin-key new`). The work itself is `ops`, shared with the CLI.
//!
//! ```text
//! GET    /tenants                               list
//! POST   /tenants                               create {id, hosts?, upstreams?, lrs_username, lrs_password, public_origin?}
//! GET    /tenants/{id}                          show
//! PATCH  /tenants/{id}                          limits and switches {max_body_bytes?, …}; null = default
//! DELETE /tenants/{id}                          delete
//! POST   /tenants/{id}/suspend | /resume        status
//! PUT    /tenants/{id}/public-origin            {public_origin: "…" | null}
//! PUT    /tenants/{id}/lrs-credential           {username, password}
//! POST   /tenants/{id}/hosts                    {host}
//! DELETE /tenants/{id}/hosts/{host}
//! POST   /tenants/{id}/upstreams                {url, weight?}          → {id}
//! DELETE /tenants/{id}/upstreams/{node id}
//! POST   /tenants/{id}/api-keys                 {description?, expires_in_days?} → {id, key} (shown once)
//! POST   /tenants/{id}/api-keys/{key id}/revoke
//! POST   /tenants/{id}/cors-origins             {origin}
//! DELETE /tenants/{id}/cors-origins/{origin}    (percent-encoded)
//! PUT    /tenants/{id}/certificates/{host}      {cert_pem, key_pem}
//! POST   /tenants/{id}/revocations              {session_id | jti | learner, reason?}
//! GET    /audit?tenant=&from=&to=&session=&learner=&reason=&kind=&limit=   audit events, oldest first
//! ```
//!
//! Every change is in the audit trail as `admin_change`, with the admin key's id as its actor.

pub mod ops;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use http::{Method, Response};
use log::info;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use self::ops::{NewTenant, NewUpstream, OpsError};
use crate::audit::query::AuditQuery;
use crate::audit::{Audit, AuditEvent, EventKind, Service};
use crate::denial::Denial;
use crate::http_io::{bearer_credential, json_response, read_bounded};
use crate::metrics;
use crate::request_id::RequestId;
use crate::secrets::MasterKeys;
use crate::token_service::request::EndRequest;

/// Largest admin request body (certificates included).
const MAX_BODY: usize = 256 * 1024;

/// The admin application.
pub struct AdminService {
    pub pool: Pool,
    pub master: MasterKeys,
    pub body_read_timeout: std::time::Duration,
    pub audit: Audit,
}

#[async_trait]
impl ServeHttp for AdminService {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let _in_flight = crate::lifecycle::InFlight::enter();
        let id = RequestId::next();
        let mut actor = None;
        let (status, body) = match self.handle(session, id, &mut actor).await {
            Ok((status, body)) => (status, body.to_string().into_bytes()),
            Err(denial) => {
                let (status, code) = denial.status_and_code();
                metrics::DENIALS.with_label_values(&["admin", code]).inc();
                let mut event = AuditEvent::new(EventKind::RequestRefused, Service::Admin).reason(code).request(id);
                event.status = Some(status);
                event.actor = actor;
                event.detail = Some(format!("{} {}", session.req_header().method, session.req_header().uri.path()));
                self.audit.record(event);
                session.set_keepalive(None);
                (status, denial.body(&id))
            }
        };
        json_response(status, body, &id)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostBody {
    host: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginBody {
    origin: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicOriginBody {
    public_origin: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialBody {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyBody {
    #[serde(default)]
    description: String,
    expires_in_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateBody {
    cert_pem: String,
    key_pem: String,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Denial> {
    serde_json::from_slice(body).map_err(|e| Denial::Admin(OpsError::Invalid(format!("request body: {e}"))))
}

/// A path segment, percent-decoded (hosts and origins may be encoded).
fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

impl AdminService {
    async fn handle(
        &self,
        session: &mut ServerSession,
        id: RequestId,
        actor: &mut Option<String>,
    ) -> Result<(u16, Value), Denial> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        if path == "/healthz" && method == Method::GET {
            return Ok((200, json!({"status": "ok"})));
        }
        let key = bearer_credential(session).ok_or(Denial::AdminKeyMissing)?.to_owned();
        let body = read_bounded(session, MAX_BODY, self.body_read_timeout)
            .await
            .map_err(|e| Denial::from_body_read(e, MAX_BODY))?;
        let mut client = self.pool.get().await.map_err(|e| {
            log::error!("admin: database pool: {e}");
            Denial::StoreUnavailable
        })?;
        let client: &mut tokio_postgres::Client = &mut client;
        let key_id = ops::admin_key_id(client, &key).await.map_err(Denial::Admin)?.ok_or(Denial::AdminKeyInvalid)?;
        *actor = Some(format!("admin_key:{key_id}"));
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if method == Method::GET && segments == ["audit"] {
            let query = session.req_header().uri.query().unwrap_or_default();
            return audit_query(client, query).await;
        }
        let result = self.route(client, &method, &segments, &body).await;
        if result.is_ok() && method != Method::GET {
            info!(request_id = id.as_str(), admin_key = key_id; "admin: {method} {path}");
            let mut event =
                AuditEvent::new(EventKind::AdminChange, Service::Admin).request(id).detail(format!("{method} {path}"));
            event.actor = actor.clone();
            if let ["tenants", tenant, ..] = segments[..] {
                event.tenant = Some(tenant.to_owned());
            }
            self.audit.record(event);
        }
        result
    }

    async fn route(
        &self,
        client: &mut tokio_postgres::Client,
        method: &Method,
        segments: &[&str],
        body: &[u8],
    ) -> Result<(u16, Value), Denial> {
        let m = &self.master;
        let ok = |v: Value| Ok((200, v));
        let done = || Ok((200, json!({"ok": true})));
        let e = Denial::Admin;
        match (method, segments) {
            (&Method::GET, ["tenants"]) => ok(json!(ops::list_tenants(client).await.map_err(e)?)),
            (&Method::POST, ["tenants"]) => {
                let new: NewTenant = parse(body)?;
                Ok((201, json!(ops::create_tenant(client, m, &new).await.map_err(e)?)))
            }
            (&Method::GET, ["tenants", id]) => ok(json!(ops::show_tenant(client, id).await.map_err(e)?)),
            (&Method::PATCH, ["tenants", id]) => {
                let settings: ops::TenantSettings = parse(body)?;
                ok(json!(ops::update_settings(client, m, id, &settings).await.map_err(e)?))
            }
            (&Method::DELETE, ["tenants", id]) => {
                ops::delete_tenant(client, id).await.map_err(e)?;
                done()
            }
            (&Method::POST, ["tenants", id, "suspend"]) => {
                ops::set_status(client, id, "suspended").await.map_err(e)?;
                done()
            }
            (&Method::POST, ["tenants", id, "resume"]) => {
                ops::set_status(client, id, "active").await.map_err(e)?;
                done()
            }
            (&Method::PUT, ["tenants", id, "public-origin"]) => {
                let b: PublicOriginBody = parse(body)?;
                ops::set_public_origin(client, id, b.public_origin.as_deref()).await.map_err(e)?;
                done()
            }
            (&Method::PUT, ["tenants", id, "lrs-credential"]) => {
                let b: CredentialBody = parse(body)?;
                ops::set_lrs_credential(client, m, id, &b.username, &b.password).await.map_err(e)?;
                done()
            }
            (&Method::POST, ["tenants", id, "hosts"]) => {
                let b: HostBody = parse(body)?;
                ok(json!({"host": ops::add_host(client, id, &b.host).await.map_err(e)?}))
            }
            (&Method::DELETE, ["tenants", id, "hosts", host]) => {
                ops::remove_host(client, id, &decode(host)).await.map_err(e)?;
                done()
            }
            (&Method::POST, ["tenants", id, "upstreams"]) => {
                let b: NewUpstream = parse(body)?;
                ok(json!({"id": ops::add_upstream(client, id, &b.url, b.weight).await.map_err(e)?}))
            }
            (&Method::DELETE, ["tenants", id, "upstreams", node]) => {
                let node = node.parse().map_err(|_| e(OpsError::Invalid("upstream id is a number".into())))?;
                ops::remove_upstream(client, id, node).await.map_err(e)?;
                done()
            }
            (&Method::POST, ["tenants", id, "api-keys"]) => {
                let b: ApiKeyBody = parse(body)?;
                let (key_id, key) =
                    ops::create_api_key(client, id, &b.description, b.expires_in_days).await.map_err(e)?;
                Ok((201, json!({"id": key_id, "key": key, "note": "shown once: only its hash is stored"})))
            }
            (&Method::POST, ["tenants", id, "api-keys", key_id, "revoke"]) => {
                let key_id = key_id.parse().map_err(|_| e(OpsError::Invalid("API key id is a number".into())))?;
                ops::revoke_api_key(client, id, key_id).await.map_err(e)?;
                done()
            }
            (&Method::POST, ["tenants", id, "cors-origins"]) => {
                let b: OriginBody = parse(body)?;
                ok(json!({"origin": ops::add_cors_origin(client, id, &b.origin).await.map_err(e)?}))
            }
            (&Method::DELETE, ["tenants", id, "cors-origins", origin]) => {
                ops::remove_cors_origin(client, id, &decode(origin)).await.map_err(e)?;
                done()
            }
            (&Method::PUT, ["tenants", id, "certificates", host]) => {
                let b: CertificateBody = parse(body)?;
                ops::put_certificate(client, m, id, &decode(host), &b.cert_pem, &b.key_pem).await.map_err(e)?;
                done()
            }
            (&Method::POST, ["tenants", id, "revocations"]) => {
                // The body of the LMS's `POST /auth/sessions/end`: session_id, jti or learner.
                let request = EndRequest::parse(body).map_err(Denial::TokenRequest)?;
                ok(ops::revoke(client, id, &request, crate::clock::unix_now()).await.map_err(e)?)
            }
            (_, ["tenants", ..]) => Err(Denial::MethodNotAllowed),
            _ => Err(Denial::UnknownRoute),
        }
    }
}

/// `GET /audit?…`: the filter's events, oldest first.
async fn audit_query(client: &tokio_postgres::Client, query: &str) -> Result<(u16, Value), Denial> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let filter = AuditQuery::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .map_err(|e| Denial::Admin(OpsError::Invalid(e)))?;
    let events = filter.run(client).await.map_err(|e| Denial::Admin(OpsError::Database(e.to_string())))?;
    Ok((200, json!({ "events": events })))
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(decode("https%3A%2F%2Fc.example"), "https://c.example");
        assert_eq!(decode("lrs.example"), "lrs.example");
        assert_eq!(decode("bad%zz"), "bad%zz");
        assert_eq!(decode("end%2"), "end%2");
        assert_eq!(decode("é%41"), "éA");
    }
}
