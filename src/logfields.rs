//! Log fields that must not carry personal data.

use sha2::{Digest, Sha256};

use crate::xapi::agent::Ifi;

/// A learner as it appears in logs: 16 hex digits of SHA-256(salt | IFI). Stable for one salt,
/// meaningless without it.
pub fn learner_hash(salt: &str, actor: &Ifi) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(actor.stable_text().as_bytes());
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_salt_and_hides_the_email() {
        let a = Ifi::Mbox("mailto:ann@example.org".into());
        let h1 = learner_hash("s1", &a);
        assert_eq!(h1.len(), 16);
        assert_eq!(h1, learner_hash("s1", &a));
        assert_ne!(h1, learner_hash("s2", &a));
        assert!(!h1.contains("ann"));
    }
}
