//! A tenant's signing keys and the prebuilt validation rules for its tokens.

use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};

use super::cursor::CursorKey;

/// Minimum HS256 secret length: shorter secrets are refused when config is loaded.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Signing material of one tenant. Built once per config snapshot, off the hot path.
pub struct TenantKeys {
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// Algorithm names accepted in a token header (today only `HS256`).
    pub allowed_algorithms: Vec<&'static str>,
    /// exp/nbf with leeway, `iss`, required claims: one value shared by every tenant with the
    /// same issuer and leeway (it holds several hash sets: per tenant it would be most of a
    /// tenant's memory at 100,000 tenants). The audience is checked by `verify` itself.
    pub validation: Arc<Validation>,
    pub issuer: String,
    /// Seals `more` cursors to the token that started a query.
    pub cursor: CursorKey,
}

impl TenantKeys {
    /// HS256 keys for `tenant_id`. The caller has checked the secret's length.
    pub fn hs256(tenant_id: &str, secret: &[u8], issuer: &str, clock_skew_seconds: u64) -> Self {
        let _ = tenant_id; // the audience is checked in `verify`, against the tenant's id
        TenantKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            allowed_algorithms: vec!["HS256"],
            validation: shared_validation(issuer, clock_skew_seconds),
            issuer: issuer.to_owned(),
            cursor: CursorKey::derive(secret),
        }
    }
}

/// The HS256 validation rules for `issuer` with this leeway, built once and shared: they hold
/// nothing tenant-specific (`validate_aud` is off; `verify` compares `aud` with the tenant).
fn shared_validation(issuer: &str, leeway: u64) -> Arc<Validation> {
    static SHARED: Mutex<Option<(String, u64, Arc<Validation>)>> = Mutex::new(None);
    // Built while loading tenants, never on a request; a poisoned lock only means another
    // builder panicked, and the value inside is still a complete one.
    let mut shared = SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((i, l, v)) = shared.as_ref() {
        if i == issuer && *l == leeway {
            return v.clone();
        }
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = leeway;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss"]);
    let validation = Arc::new(validation);
    *shared = Some((issuer.to_owned(), leeway, validation.clone()));
    validation
}

impl std::fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("TenantKeys").field("allowed_algorithms", &self.allowed_algorithms).finish_non_exhaustive()
    }
}
