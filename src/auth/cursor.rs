//! `more` cursors: the LRS's continuation, sealed to the token that started the query.
//!
//! The LRS's `more` value is its own path (Data §2.5), which replays the query lrsgate judged
//! and forced. The client sees `/xapi/statements/more/<cursor>` instead: the LRS path and the
//! token's `jti`, MACed with a key derived from the tenant's secret. A cursor replays only with
//! the same token (another token → 403), never reveals the key, and cannot be forged or
//! edited to point elsewhere.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Separates the cursor key from every other use of the tenant secret.
const KEY_LABEL: &[u8] = b"lrsgate more-cursor v1";

/// The tenant's cursor sealing key.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

/// Why a cursor does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    /// Not lrsgate's format, or a MAC that does not match (forged, edited, another tenant).
    Invalid,
    /// Sealed for another token.
    OtherToken,
}

/// An opened cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub jti: String,
    /// The LRS's `more` path and query.
    pub more: String,
}

impl CursorKey {
    /// Derive the cursor key from a tenant's signing secret.
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
        mac.update(KEY_LABEL);
        CursorKey(mac.finalize().into_bytes().into())
    }

    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }

    /// Seal the LRS's `more` for the token `jti`: `<payload>.<mac>`, base64url, path-safe.
    pub fn seal(&self, jti: &str, more: &str) -> String {
        let mut payload = Vec::with_capacity(1 + jti.len() + more.len());
        // A jti longer than 255 bytes is not one lrsgate issued; truncating the length byte
        // would still bind the cursor, but refuse such ids at open time instead.
        payload.push(u8::try_from(jti.len()).unwrap_or(u8::MAX));
        payload.extend_from_slice(jti.as_bytes());
        payload.extend_from_slice(more.as_bytes());
        let mut mac = self.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// Open a cursor for the token `jti`: the LRS's `more` path, if the cursor was sealed with
    /// this key for that token.
    pub fn open_for(&self, cursor: &str, jti: &str) -> Result<String, CursorError> {
        let opened = self.open(cursor)?;
        if opened.jti != jti {
            return Err(CursorError::OtherToken);
        }
        Ok(opened.more)
    }

    /// Open a cursor sealed with this key.
    pub fn open(&self, cursor: &str) -> Result<Cursor, CursorError> {
        let (payload, tag) = cursor.split_once('.').ok_or(CursorError::Invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| CursorError::Invalid)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| CursorError::Invalid)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).map_err(|_| CursorError::Invalid)?;
        let (&len, rest) = payload.split_first().ok_or(CursorError::Invalid)?;
        let len = usize::from(len);
        if rest.len() < len {
            return Err(CursorError::Invalid);
        }
        let (jti, more) = rest.split_at(len);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| CursorError::Invalid);
        Ok(Cursor { jti: text(jti)?, more: text(more)? })
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_cursors_open_only_with_their_key_and_unchanged() {
        let key = CursorKey::derive(b"tenant-secret-0123456789abcdef0123");
        let other = CursorKey::derive(b"other-secret-0123456789abcdef01234");
        let cursor = key.seal("jti-1", "/xapi/statements?more=abc&x=%2F");
        assert!(cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{cursor}");
        assert_eq!(
            key.open(&cursor),
            Ok(Cursor { jti: "jti-1".into(), more: "/xapi/statements?more=abc&x=%2F".into() })
        );
        assert_eq!(other.open(&cursor), Err(CursorError::Invalid), "another tenant's key");
        assert_eq!(key.open_for(&cursor, "jti-1").as_deref(), Ok("/xapi/statements?more=abc&x=%2F"));
        assert_eq!(key.open_for(&cursor, "jti-2"), Err(CursorError::OtherToken), "another token");
        let (payload, tag) = cursor.split_once('.').unwrap();
        let mut edited = URL_SAFE_NO_PAD.decode(payload).unwrap();
        *edited.last_mut().unwrap() ^= 1;
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(edited));
        assert_eq!(key.open(&forged), Err(CursorError::Invalid), "an edited payload");
        for junk in ["", ".", "abc", "abc.def", &format!("{payload}.")] {
            assert_eq!(key.open(junk), Err(CursorError::Invalid), "{junk:?}");
        }
    }
}
