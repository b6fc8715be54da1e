//! A host's TLS certificate chain and private key, parsed once when the snapshot is built, so
//! the handshake only looks it up.

use pingora::tls::pkey::{PKey, Private};
use pingora::tls::x509::X509;

/// Why a certificate and key were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateError {
    /// The certificate PEM does not parse (OpenSSL's reason).
    CertificatePem(String),
    NoCertificate,
    /// The private key PEM does not parse (its reason is not repeated: it may quote the key).
    KeyPem,
    /// The leaf's public key cannot be read (OpenSSL's reason).
    LeafKey(String),
    KeyMismatch,
}

impl std::fmt::Display for CertificateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateError::CertificatePem(e) => write!(f, "certificate PEM: {e}"),
            CertificateError::NoCertificate => f.write_str("the certificate PEM holds no certificate"),
            CertificateError::KeyPem => f.write_str("private key PEM does not parse"),
            CertificateError::LeafKey(e) => write!(f, "certificate key: {e}"),
            CertificateError::KeyMismatch => f.write_str("the private key does not belong to the certificate"),
        }
    }
}

impl std::error::Error for CertificateError {}

/// A parsed certificate chain (leaf first) and its private key.
pub struct CertifiedKey {
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

impl CertifiedKey {
    /// Parse PEM text; the key must belong to the leaf certificate.
    pub fn parse(cert_pem: &str, key_pem: &str) -> Result<Self, CertificateError> {
        let chain =
            X509::stack_from_pem(cert_pem.as_bytes()).map_err(|e| CertificateError::CertificatePem(e.to_string()))?;
        let leaf = chain.first().ok_or(CertificateError::NoCertificate)?;
        let key = PKey::private_key_from_pem(key_pem.as_bytes()).map_err(|_| CertificateError::KeyPem)?;
        let public = leaf.public_key().map_err(|e| CertificateError::LeafKey(e.to_string()))?;
        if !public.public_eq(&key) {
            return Err(CertificateError::KeyMismatch);
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
