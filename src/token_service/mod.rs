//! The LMS-facing token service: `POST /auth/token` issues a session token for one learner,
//! activity and registration. Tenant by Host; the LMS authenticates with its API key.

pub mod request;

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Method, Response};
use log::{error, info};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use self::request::TokenRequest;
use crate::auth::{apikey, issue};
use crate::denial::Denial;
use crate::http_io::{has_body, read_bounded};
use crate::metrics;
use crate::tenant::TenantStore;

/// The token service application.
pub struct TokenService {
    pub store: TenantStore,
    /// Largest accepted token request body.
    pub max_request_bytes: usize,
    /// Total time allowed for reading a token request body.
    pub body_read_timeout: std::time::Duration,
    pub learner_salt: String,
}

#[async_trait]
impl ServeHttp for TokenService {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match self.handle(session).await {
            Ok(response) => response,
            Err(denial) => {
                let (status, code) = denial.status_and_code();
                metrics::DENIALS.with_label_values(&["token", code]).inc();
                info!("token request refused: reason={code} status={status}");
                if has_body(session) && !session.is_body_done() {
                    session.set_keepalive(None);
                }
                json_response(status, denial.body())
            }
        }
    }
}

impl TokenService {
    async fn handle(&self, session: &mut ServerSession) -> Result<Response<Vec<u8>>, Denial> {
        let req = session.req_header();
        match (req.uri.path(), &req.method) {
            ("/healthz", &Method::GET) => return Ok(json_response(200, br#"{"status":"ok"}"#.to_vec())),
            ("/auth/token", &Method::POST) => {}
            ("/auth/token", _) => return Err(Denial::MethodNotAllowed),
            _ => return Err(Denial::UnknownRoute),
        }
        let host = req.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri.host()).unwrap_or("");
        let table = self.store.load();
        let tenant = table.resolve(host).ok_or(Denial::UnknownTenant)?.clone();
        let key = req
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .ok_or(Denial::ApiKeyMissing)?;
        if !apikey::matches(key, &tenant.api_keys) {
            return Err(Denial::ApiKeyInvalid);
        }
        let is_json =
            req.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(Denial::UnsupportedContentType);
        }
        let body = read_bounded(session, self.max_request_bytes, self.body_read_timeout)
            .await
            .map_err(|e| Denial::from_body_read(e, self.max_request_bytes))?;
        let request = TokenRequest::parse(&body, &tenant.courses).map_err(Denial::TokenRequest)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims =
            request.claims(&tenant.id, &tenant.keys.issuer, now, tenant.default_ttl_seconds, tenant.max_ttl_seconds);
        let token = issue::sign(&claims, &tenant.keys).map_err(|e| {
            error!("signing failed for tenant {}: {e}", tenant.id);
            Denial::Internal
        })?;
        metrics::TOKENS_ISSUED.inc();
        info!(
            "token issued: tenant={} learner={} session={} ttl={}",
            tenant.id,
            crate::logfields::learner_hash(&self.learner_salt, &request.actor),
            claims.session_id,
            claims.exp - claims.iat
        );
        let body = json!({
            "token": token,
            "expires_at": rfc3339(claims.exp),
            "expires_in": claims.exp - now,
            "session_id": claims.session_id,
        });
        Ok(json_response(200, body.to_string().into_bytes()))
    }
}

fn json_response(status: u16, body: Vec<u8>) -> Response<Vec<u8>> {
    // The builder fails only on invalid header values; these are constants and a number.
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .header("Cache-Control", "no-store")
        .body(body)
        .expect("static response parts are valid")
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
