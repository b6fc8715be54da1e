//! Finding and verifying the session token of an edge request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;

use super::claims::SessionClaims;
use super::keys::TenantKeys;
use crate::policy::{CourseCatalog, Grant};

/// Why a token was not accepted. Every variant is a 401 with its own reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    /// Another scheme than Bearer/Basic, or not three base64url segments.
    Malformed,
    AlgorithmRefused,
    InvalidSignature,
    Expired,
    NotYetValid,
    WrongTenant,
    WrongIssuer,
    /// Signed and current, but its claims are not a valid session.
    BadPayload,
}

/// The token from an `Authorization` header: `Bearer <jwt>`, or `Basic <jwt>` as cmi5 content
/// sends the fetched auth-token (§8.2). Scheme names are case-insensitive (RFC 7235).
pub fn token_from_authorization(header: Option<&[u8]>) -> Result<&str, TokenError> {
    let header = header.ok_or(TokenError::Missing)?;
    let text = std::str::from_utf8(header).map_err(|_| TokenError::Malformed)?;
    let (scheme, rest) = text.split_once(' ').ok_or(TokenError::Malformed)?;
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic")) {
        return Err(TokenError::Malformed);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    Ok(token)
}

#[derive(Deserialize)]
struct PeekHeader<'a> {
    #[serde(borrow)]
    alg: &'a str,
}

#[derive(Deserialize)]
struct PeekPayload {
    aud: Option<String>,
}

/// Verify `token` for the tenant `tenant_id` and return its claims and grant (the course
/// scope's activities looked up in the tenant's `courses`).
///
/// The header's algorithm is checked against the tenant's allow-list before anything else, so
/// `none` and algorithm-confusion tokens never reach a verifier. The audience is peeked before
/// the signature so that a token of another tenant is named as such.
pub fn verify(
    token: &str,
    tenant_id: &str,
    keys: &TenantKeys,
    courses: &CourseCatalog,
) -> Result<(SessionClaims, Grant), TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?;
    let header: PeekHeader<'_> = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    if !keys.allowed_algorithms.contains(&header.alg) {
        return Err(TokenError::AlgorithmRefused);
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
    let peek: PeekPayload = serde_json::from_slice(&payload).map_err(|_| TokenError::BadPayload)?;
    if peek.aud.as_deref().is_some_and(|aud| aud != tenant_id) {
        return Err(TokenError::WrongTenant);
    }
    let data =
        jsonwebtoken::decode::<SessionClaims>(token, &keys.decoding, &keys.validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::InvalidSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAudience => TokenError::WrongTenant,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                TokenError::AlgorithmRefused
            }
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => TokenError::Malformed,
            _ => TokenError::BadPayload,
        })?;
    let claims = data.claims;
    // The audience and the tenant id must both name this tenant (the shared validation rules
    // do not know the tenant).
    if claims.aud != tenant_id || claims.tenant_id != tenant_id {
        return Err(TokenError::WrongTenant);
    }
    let grant = claims.grant(courses).map_err(|_| TokenError::BadPayload)?;
    Ok((claims, grant))
}

/// A verified token: its claims and grant.
#[derive(Debug)]
pub struct Verified {
    pub claims: SessionClaims,
    pub grant: Grant,
}

/// The most tokens one tenant's cache holds before it starts over.
pub const VERIFY_CACHE_CAPACITY: usize = 65_536;

/// Tokens this tenant already verified, so a session's later requests skip the signature check
/// (HMAC + JSON decode) and only have their expiry checked. It belongs to one tenant snapshot:
/// a reload (a new key, a changed course) starts with an empty cache. Lock-free reads; created
/// on first use, so idle tenants cost nothing; bounded (cleared when full).
#[derive(Default)]
pub struct VerifyCache {
    tokens: std::sync::OnceLock<papaya::HashMap<Box<str>, std::sync::Arc<Verified>>>,
}

impl VerifyCache {
    /// `verify`, answered from the cache when this exact token was verified before and is
    /// still within `exp`/`nbf` (with the tenant's leeway) at `now`.
    pub fn verify(
        &self,
        token: &str,
        tenant_id: &str,
        keys: &TenantKeys,
        courses: &CourseCatalog,
        now: u64,
    ) -> Result<std::sync::Arc<Verified>, TokenError> {
        let tokens = self.tokens.get_or_init(papaya::HashMap::new);
        let leeway = keys.validation.leeway;
        if let Some(hit) = tokens.pin().get(token) {
            let c = &hit.claims;
            if now > c.exp.saturating_add(leeway) {
                return Err(TokenError::Expired);
            }
            if now.saturating_add(leeway) < c.nbf {
                return Err(TokenError::NotYetValid);
            }
            return Ok(hit.clone());
        }
        let (claims, grant) = verify(token, tenant_id, keys, courses)?;
        let verified = std::sync::Arc::new(Verified { claims, grant });
        let pinned = tokens.pin();
        if pinned.len() >= VERIFY_CACHE_CAPACITY {
            pinned.clear();
        }
        pinned.insert(token.into(), verified.clone());
        Ok(verified)
    }
}
