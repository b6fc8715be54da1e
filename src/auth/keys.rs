//! A tenant's signing keys and the prebuilt validation rules for its tokens.

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
    /// exp/nbf with leeway, `aud` = tenant id, `iss`, required claims: built once.
    pub validation: Validation,
    pub issuer: String,
    /// Seals `more` cursors to the token that started a query.
    pub cursor: CursorKey,
}

impl TenantKeys {
    /// HS256 keys for `tenant_id`. The caller has checked the secret's length.
    pub fn hs256(tenant_id: &str, secret: &[u8], issuer: &str, clock_skew_seconds: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = clock_skew_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[tenant_id]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss"]);
        TenantKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            allowed_algorithms: vec!["HS256"],
            validation,
            issuer: issuer.to_owned(),
            cursor: CursorKey::derive(secret),
        }
    }
}

impl std::fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("TenantKeys").field("allowed_algorithms", &self.allowed_algorithms).finish_non_exhaustive()
    }
}
