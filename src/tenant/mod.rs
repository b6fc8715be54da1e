//! Tenants and the immutable `TenantTable` snapshot that requests read lock-free.
//!
//! A source (the file today, Postgres later) builds a whole table off the hot path and publishes
//! it with `ArcSwap::store`; a request calls `load()` once and keeps its `Arc<Tenant>`.

pub mod file;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::lb::HealthRegistry;

use crate::auth::apikey::KeyHash;
use crate::auth::keys::TenantKeys;
use crate::auth::sessions::SessionLimits;
use crate::config::server::ServerConfig;
use crate::config::tenants::TenantSpec;
use crate::edge::cors::CorsPolicy;
use crate::policy::{CourseCatalog, TenantRules};
use crate::upstream::UpstreamPool;

/// One tenant, ready to serve.
pub struct Tenant {
    pub id: String,
    pub keys: TenantKeys,
    pub upstream: UpstreamPool,
    pub api_keys: Vec<KeyHash>,
    pub default_ttl_seconds: u64,
    pub max_ttl_seconds: u64,
    pub max_body_bytes: usize,
    pub rules: TenantRules,
    /// Registered course structures, by course id, for the course scope.
    pub courses: CourseCatalog,
    /// The edge's public origin, for fetch URLs; `None`: no cmi5 delivery.
    pub public_origin: Option<String>,
    pub sessions: SessionLimits,
    pub cors: CorsPolicy,
}

/// Host name → tenant, for one config generation.
#[derive(Default)]
pub struct TenantTable {
    by_host: HashMap<String, Arc<Tenant>>,
}

/// The shared holder every service reads from.
pub type TenantStore = Arc<ArcSwap<TenantTable>>;

impl TenantTable {
    /// The tenant serving `host` (a `Host` header or SNI value; port and case are ignored).
    pub fn resolve(&self, host: &str) -> Option<&Arc<Tenant>> {
        self.by_host.get(normalize_host(host).as_ref())
    }

    pub fn tenant_count(&self) -> usize {
        let mut ids: Vec<&str> = self.by_host.values().map(|t| t.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Build every tenant of a validated config. Resolves LRS node names.
    pub async fn build(
        specs: Vec<TenantSpec>,
        server: &ServerConfig,
        health: &Arc<HealthRegistry>,
    ) -> Result<Self, String> {
        let mut by_host = HashMap::new();
        for spec in specs {
            let upstream =
                UpstreamPool::build(&spec.nodes, &spec.lrs_username, &spec.lrs_password, server.upstream, health)
                    .await
                    .map_err(|e| format!("tenant {}: {e}", spec.id))?;
            let tenant = Arc::new(Tenant {
                keys: TenantKeys::hs256(&spec.id, &spec.secret, &server.issuer, server.clock_skew_seconds),
                upstream,
                api_keys: spec.api_key_hashes,
                default_ttl_seconds: spec.default_ttl_seconds,
                max_ttl_seconds: spec.max_ttl_seconds,
                max_body_bytes: spec.max_body_bytes.unwrap_or(server.max_body_bytes),
                rules: spec.rules,
                courses: spec.courses,
                public_origin: spec.public_origin,
                sessions: spec.sessions,
                cors: spec.cors,
                id: spec.id,
            });
            for host in spec.hosts {
                by_host.insert(host, tenant.clone());
            }
        }
        Ok(TenantTable { by_host })
    }
}

/// Lower-case host without port: `LRS.Example.com:8443` → `lrs.example.com`, `[::1]:80` → `[::1]`.
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let without_port = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    if without_port.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(without_port.to_ascii_lowercase())
    } else {
        Cow::Borrowed(without_port)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn host_normalization() {
        let table = [
            ("lrs.example.com", "lrs.example.com"),
            ("LRS.Example.com:8443", "lrs.example.com"),
            ("127.0.0.1:8080", "127.0.0.1"),
            ("[::1]:8080", "[::1]"),
            ("[::1]", "[::1]"),
            ("localhost", "localhost"),
        ];
        for (input, want) in table {
            assert_eq!(normalize_host(input), want, "{input}");
        }
    }
}
