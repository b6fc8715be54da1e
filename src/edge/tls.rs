//! The edge's TLS listener: each tenant's certificate chosen by SNI from the current snapshot
//! during the handshake (a new tenant or certificate needs no restart), and the SNI kept on the
//! connection so `request_filter` can refuse a request whose Host names another tenant (421).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use log::debug;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::tls::ext;
use pingora::tls::ssl::NameType;

use crate::tenant::{normalize_host, TenantStore};

/// The server name a TLS client asked for (lower case, no port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sni(pub String);

/// Picks certificates from the tenant snapshot.
pub struct SniCertificates {
    pub store: TenantStore,
}

#[async_trait]
impl TlsAccept for SniCertificates {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let Some(name) = ssl.servername(NameType::HOST_NAME).map(|n| normalize_host(n).into_owned()) else {
            // No SNI: no tenant to pick, so no certificate; the handshake fails.
            return;
        };
        let table = self.store.load();
        let Some(cert) = table.resolve(&name).and_then(|t| t.certificates.get(&name)).cloned() else {
            debug!("TLS handshake for a host with no certificate");
            return;
        };
        let Some((leaf, chain)) = cert.chain.split_first() else { return };
        let installed = ext::ssl_use_certificate(ssl, leaf)
            .and_then(|()| chain.iter().try_for_each(|c| ext::ssl_add_chain_cert(ssl, c)))
            .and_then(|()| ext::ssl_use_private_key(ssl, &cert.key));
        if let Err(e) = installed {
            log::error!("installing a tenant certificate failed: {e}");
        }
    }

    async fn handshake_complete_callback(&self, ssl: &TlsRef) -> Option<Arc<dyn Any + Send + Sync>> {
        let name = ssl.servername(NameType::HOST_NAME)?;
        Some(Arc::new(Sni(normalize_host(name).into_owned())))
    }
}
