//! Secrets at rest (Postgres mode): LRS passwords, signing secrets and TLS private keys are
//! stored sealed with AES-256-GCM under a master key that only lrsgate holds.
//!
//! Master keys come as text, one per line or comma-separated: `<key id>:<base64 of 32 bytes>`.
//! The first seals; every listed key opens, so a key is rotated by putting the new one first,
//! re-sealing (`lrsgate rotate-secrets`), then dropping the old one. A sealed value is
//! `nonce (12) || ciphertext || tag (16)`, stored with the id of the key that sealed it. The
//! additional data binds a value to where it belongs (`<table>/<tenant>`): a sealed secret copied
//! into another row or tenant does not open.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

const NONCE_BYTES: usize = 12;

/// Where each kind of secret belongs: bound into its ciphertext, so a value opens only in its
/// own row. Every seal and open names its place through these, so the spellings cannot drift.
pub mod place {
    /// The LRS password of `tenant` (`lrs_credentials`).
    pub fn lrs_password(tenant: &str) -> String {
        format!("lrs_credentials/{tenant}")
    }

    /// A signing secret of `tenant` (`signing_keys`).
    pub fn signing_secret(tenant: &str) -> String {
        format!("signing_keys/{tenant}")
    }

    /// The TLS private key of `host`, a host of `tenant` (`tls_certificates`).
    pub fn tls_key(tenant: &str, host: &str) -> String {
        format!("tls_certificates/{tenant}/{host}")
    }

    /// The on-disk copy of the tenant snapshot (`[database] snapshot_cache`).
    pub const SNAPSHOT_CACHE: &str = "snapshot_cache";
}

/// The master keys: the first seals, all open.
#[derive(Clone)]
pub struct MasterKeys {
    sealing_id: String,
    keys: HashMap<String, Aes256Gcm>,
}

/// Why a value could not be opened or the keys not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError(pub String);

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl MasterKeys {
    /// Parse `<id>:<base64 32 bytes>` entries, separated by newlines or commas; `#` starts a
    /// comment line.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let mut sealing_id = None;
        let mut keys = HashMap::new();
        let entries = text.lines().filter(|l| !l.trim_start().starts_with('#')).flat_map(|l| l.split(','));
        for entry in entries.map(str::trim).filter(|e| !e.is_empty()) {
            let (id, b64) = entry.split_once(':').ok_or_else(|| SecretError("a master key is <id>:<base64>".into()))?;
            let id = id.trim();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(SecretError(format!("master key id \"{id}\" must be letters, digits, - or _")));
            }
            let bytes =
                STANDARD.decode(b64.trim()).map_err(|_| SecretError(format!("master key \"{id}\" is not base64")))?;
            if bytes.len() != 32 {
                return Err(SecretError(format!("master key \"{id}\" is {} bytes; AES-256 needs 32", bytes.len())));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| SecretError(format!("master key \"{id}\" is not an AES-256 key")))?;
            if keys.insert(id.to_owned(), cipher).is_some() {
                return Err(SecretError(format!("master key \"{id}\" is listed twice")));
            }
            sealing_id.get_or_insert_with(|| id.to_owned());
        }
        let sealing_id = sealing_id.ok_or_else(|| SecretError("no master key given".into()))?;
        Ok(MasterKeys { sealing_id, keys })
    }

    /// A new random master key entry (`<id>:<base64>`), for `lrsgate master-key new`.
    pub fn generate_entry(id: &str) -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        format!("{id}:{}", STANDARD.encode(bytes))
    }

    /// The id of the key that seals.
    pub fn sealing_id(&self) -> &str {
        &self.sealing_id
    }

    /// Seal `plaintext` for `place` (`<table>/<tenant>`): the sealed bytes and the key id.
    #[allow(clippy::expect_used, reason = "AES-GCM fails only for inputs over ~64 GiB")]
    pub fn seal(&self, place: &str, plaintext: &[u8]) -> (Vec<u8>, String) {
        let cipher = &self.keys[&self.sealing_id];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encryption fails only for inputs over ~64 GiB.
        let ciphertext = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: place.as_bytes() })
            .expect("AES-GCM seals any secret of sane size");
        let mut out = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        (out, self.sealing_id.clone())
    }

    /// Open a value sealed for `place` with `key_id` and seal it again with the sealing key.
    pub fn reseal(&self, place: &str, key_id: &str, sealed: &[u8]) -> Result<(Vec<u8>, String), SecretError> {
        Ok(self.seal(place, &self.open(place, key_id, sealed)?))
    }

    /// Open a value sealed for `place` with the key `key_id`.
    pub fn open(&self, place: &str, key_id: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        let cipher = self.keys.get(key_id).ok_or_else(|| {
            SecretError(format!("{place} is sealed with master key \"{key_id}\", which is not loaded"))
        })?;
        if sealed.len() < NONCE_BYTES + 16 {
            return Err(SecretError(format!("{place}: sealed value is too short")));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SecretError(format!("{place}: bad nonce")))?;
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: place.as_bytes() })
            .map_err(|_| SecretError(format!("{place}: sealed value does not open (wrong key, or tampered)")))
    }
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("MasterKeys").field("sealing_id", &self.sealing_id).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_place() {
        let old = MasterKeys::generate_entry("k1");
        let new = MasterKeys::generate_entry("k2");
        let keys = MasterKeys::parse(&old).unwrap();
        let (sealed, kid) = keys.seal("lrs_credentials/acme", b"lrs-password");
        assert_eq!(kid, "k1");
        assert_eq!(keys.open("lrs_credentials/acme", "k1", &sealed).unwrap(), b"lrs-password");
        assert!(keys.open("lrs_credentials/other", "k1", &sealed).is_err(), "bound to its place");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(keys.open("lrs_credentials/acme", "k1", &tampered).is_err());
        assert!(keys.open("lrs_credentials/acme", "k2", &sealed).is_err(), "unknown key id");

        // Rotation: the new key first seals; the old still opens what it sealed.
        let rotated = MasterKeys::parse(&format!("{new}\n{old}")).unwrap();
        assert_eq!(rotated.sealing_id(), "k2");
        assert_eq!(rotated.open("lrs_credentials/acme", "k1", &sealed).unwrap(), b"lrs-password");
        let (resealed, kid) = rotated.seal("lrs_credentials/acme", b"lrs-password");
        assert_eq!(kid, "k2");
        assert_ne!(resealed, sealed);
    }

    #[test]
    fn places_keep_their_spelling_and_reseal_moves_to_the_sealing_key() {
        // Secrets already stored were sealed for these exact places: a new spelling would make
        // every one of them unopenable.
        assert_eq!(place::lrs_password("acme"), "lrs_credentials/acme");
        assert_eq!(place::signing_secret("acme"), "signing_keys/acme");
        assert_eq!(place::tls_key("acme", "lrs.acme.example"), "tls_certificates/acme/lrs.acme.example");
        let old = MasterKeys::generate_entry("k1");
        let (sealed, _) = MasterKeys::parse(&old).unwrap().seal(&place::lrs_password("acme"), b"pw");
        let rotated = MasterKeys::parse(&format!("{},{old}", MasterKeys::generate_entry("k2"))).unwrap();
        let (resealed, kid) = rotated.reseal(&place::lrs_password("acme"), "k1", &sealed).unwrap();
        assert_eq!(kid, "k2");
        assert_eq!(rotated.open(&place::lrs_password("acme"), "k2", &resealed).unwrap(), b"pw");
        assert!(rotated.reseal(&place::lrs_password("other"), "k1", &sealed).is_err(), "wrong place");
    }

    #[test]
    fn master_key_text_is_checked() {
        assert!(MasterKeys::parse("").is_err());
        assert!(MasterKeys::parse("k1").is_err());
        assert!(MasterKeys::parse("k1:notbase64!").is_err());
        assert!(MasterKeys::parse(&format!("k1:{}", STANDARD.encode([0u8; 16]))).is_err(), "AES-128 size");
        let one = MasterKeys::generate_entry("k1");
        assert!(MasterKeys::parse(&format!("{one},{one}")).is_err(), "twice");
        assert!(MasterKeys::parse(&format!("# rotated 2026-11\n{one}\n")).is_ok());
        assert!(format!("{:?}", MasterKeys::parse(&one).unwrap()).contains("k1"));
    }
}
