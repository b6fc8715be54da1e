//! The cmi5 fetch URL (cmi5 §8.2): the AU POSTs it once and gets its auth-token.
//!
//! The URL is `<public origin>/cmi5/fetch/<code>`, the code 256 random bits that the session
//! store keeps (hashed) until it is redeemed or expires. Every answer is HTTP 200 JSON: the
//! first redemption `{"auth-token": …}`, anything else the cmi5 error body (`Denial::Fetch`).
//! The auth-token is the session token itself, exactly what the edge accepts after `Basic `.

use crate::auth::issue;
use crate::denial::Denial;
use crate::session::store::{learner_key, FetchCode, FetchRefusal, SessionStore};
use crate::tenant::Tenant;

pub use crate::admission::front::FETCH_PREFIX;

/// The fetch URL of `code` on the tenant's public origin.
pub fn fetch_url(public_origin: &str, code: &FetchCode) -> String {
    format!("{public_origin}{FETCH_PREFIX}{}", code.as_str())
}

/// Redeem `code` for `tenant` at `now` (Unix seconds): the signed session token, once, and its
/// session id.
pub async fn redeem(
    code: &str,
    tenant: &Tenant,
    sessions: &dyn SessionStore,
    now: u64,
) -> Result<(String, String), Denial> {
    let claims = sessions.redeem_fetch(code, &tenant.id, now).await.map_err(Denial::Fetch)?;
    // The LMS may have ended the session before the AU fetched its token.
    if let Some(record) = sessions.lookup(&tenant.id, &claims.session_id) {
        if record.status(now, tenant.sessions.terminated_grace_seconds).is_err() {
            return Err(Denial::Fetch(FetchRefusal::UsedOrExpired));
        }
    }
    // Or revoked (this token, or its learner) before it was fetched.
    let learner = || claims.grant(&tenant.courses).map(|g| learner_key(&g.actor)).unwrap_or_default();
    if sessions.token_revoked(&tenant.id, &claims.jti, claims.iat, &learner) {
        return Err(Denial::Fetch(FetchRefusal::UsedOrExpired));
    }
    let token = issue::sign(&claims, &tenant.keys).map_err(|e| {
        log::error!(tenant = tenant.id.as_str(); "signing a fetched token failed: {e}");
        Denial::Fetch(FetchRefusal::Internal)
    })?;
    Ok((token, claims.session_id))
}

/// The success body: `{"auth-token": "<token>"}`.
pub fn token_body(token: &str) -> Vec<u8> {
    serde_json::json!({ "auth-token": token }).to_string().into_bytes()
}
