//! A host's TLS certificate chain and private key, parsed once when the snapshot is built, so
//! the handshake only looks it up.

use pingora::tls::pkey::{PKey, Private};
use pingora::tls::x509::X509;

/// A parsed certificate chain (leaf first) and its private key.
pub struct CertifiedKey {
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

impl CertifiedKey {
    /// Parse PEM text; the key must belong to the leaf certificate.
    pub fn parse(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let chain = X509::stack_from_pem(cert_pem.as_bytes()).map_err(|e| format!("certificate PEM: {e}"))?;
        let leaf = chain.first().ok_or("the certificate PEM holds no certificate")?;
        let key = PKey::private_key_from_pem(key_pem.as_bytes()).map_err(|_| "private key PEM does not parse")?;
        let public = leaf.public_key().map_err(|e| format!("certificate key: {e}"))?;
        if !public.public_eq(&key) {
            return Err("the private key does not belong to the certificate".into());
        }
        Ok(CertifiedKey { chain, key })
    }
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("CertifiedKey").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}
