//! LMS API keys: generated once, stored only as SHA-256 hashes, compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const KEY_PREFIX: &str = "lrsk_";
const HASH_PREFIX: &str = "sha256:";

/// A stored API-key hash.
pub type KeyHash = [u8; 32];

/// A new random API key and the hash to store for it.
pub fn generate() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = format!("{HASH_PREFIX}{}", hex::encode(hash_of(&key)));
    (key, hash)
}

fn hash_of(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Parse a stored hash (`sha256:<64 hex>`).
pub fn parse_hash(text: &str) -> Option<KeyHash> {
    let hex_part = text.strip_prefix(HASH_PREFIX)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

/// An LMS API key as a tenant holds it: its hash and, optionally, when it stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKey {
    pub hash: KeyHash,
    /// Unix seconds from which the key is refused; `None`: no expiry.
    pub expires_at: Option<u64>,
}

/// The SHA-256 hash of a key, as stored.
pub fn hash_key(key: &str) -> KeyHash {
    hash_of(key)
}

/// Whether `presented` matches one of `keys` unexpired at `now`. Every hash is compared, in
/// constant time, so the time taken says nothing about which key or how much of it matched.
pub fn matches(presented: &str, keys: &[ApiKey], now: u64) -> bool {
    matching(presented, keys, now).is_some()
}

/// The hash of `presented` when it matches one of `keys` unexpired at `now` (compared as in
/// [`matches`]): what rate limits and the audit trail know the key by.
pub fn matching(presented: &str, keys: &[ApiKey], now: u64) -> Option<KeyHash> {
    let digest = hash_of(presented);
    let found: bool = keys
        .iter()
        .fold(subtle::Choice::from(0), |acc, k| {
            let live = subtle::Choice::from(u8::from(k.expires_at.is_none_or(|at| now < at)));
            acc | (k.hash.ct_eq(&digest) & live)
        })
        .into();
    found.then_some(digest)
}

/// A key as the audit trail names it: `lms_key:` and the first 8 hex digits of its hash (enough
/// to tell a tenant's keys apart, useless to present).
pub fn audit_name(hash: &KeyHash) -> String {
    format!("lms_key:{}", hex::encode(&hash[..4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_matches_its_hash_only() {
        let (key, hash) = generate();
        let (other, other_hash) = generate();
        let live = |hash: &str| ApiKey { hash: parse_hash(hash).unwrap(), expires_at: None };
        let hashes = [live(&hash)];
        assert!(matches(&key, &hashes, 0));
        assert!(!matches(&other, &hashes, 0));
        assert!(matches(&other, &[hashes[0], live(&other_hash)], 0));
        assert!(!matches(&key[..key.len() - 1], &hashes, 0));
        let expiring = [ApiKey { expires_at: Some(100), ..hashes[0] }];
        assert!(matches(&key, &expiring, 99));
        assert!(!matches(&key, &expiring, 100), "expired");
    }

    #[test]
    fn hash_format_is_checked() {
        assert!(parse_hash("sha256:00").is_none());
        assert!(parse_hash(&format!("md5:{}", "0".repeat(64))).is_none());
        assert!(parse_hash(&format!("sha256:{}", "g".repeat(64))).is_none());
        assert!(parse_hash(&format!("sha256:{}", "a".repeat(64))).is_some());
    }
}
