//! Ids for requests and audit events: unique across a fleet and across restarts, without a
//! random draw or a lock per id. Each process draws one random 64-bit prefix at start; an id is
//! that prefix and a process-wide counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use rand::RngCore;

static PREFIX: LazyLock<u64> = LazyLock::new(|| rand::rngs::OsRng.next_u64());
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next_u128() -> u128 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (u128::from(*PREFIX) << 64) | u128::from(n)
}

/// A request's id: 32 lower-case hex digits, in every log line, error body and audit event of
/// the request, and sent to the LRS as `X-Request-Id`. lrsgate makes its own; a client's
/// `X-Request-Id` is never trusted or forwarded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId([u8; 32]);

impl RequestId {
    pub fn next() -> RequestId {
        let mut text = [0u8; 32];
        // Cannot fail: 16 bytes always encode into 32 hex digits.
        let _ = hex::encode_to_slice(next_u128().to_be_bytes(), &mut text);
        RequestId(text)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits only, so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::next()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new audit event id, as a UUID (its 128 bits; not a version-4 UUID).
pub fn event_id() -> uuid::Uuid {
    uuid::Uuid::from_u128(next_u128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_hex_with_one_prefix() {
        let a = RequestId::next();
        let b = RequestId::next();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(a.as_str()[..16], b.as_str()[..16]);
        assert_ne!(event_id(), event_id());
    }
}
