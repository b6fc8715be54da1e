//! Issuing session tokens.

use jsonwebtoken::{Algorithm, Header};

use super::claims::SessionClaims;
use super::keys::TenantKeys;

/// Sign `claims` with the tenant's HS256 key.
pub fn sign(claims: &SessionClaims, keys: &TenantKeys) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &keys.encoding)
}
