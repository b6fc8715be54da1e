//! Tenants and the immutable `TenantTable` snapshot that requests read lock-free.
//!
//! A source (the tenants file, or Postgres) builds tenants off the hot path and publishes a new
//! table with `ArcSwap::store`; a request calls `load()` once and keeps its `Arc<Tenant>`. The
//! table is a persistent map: replacing one tenant shares every other entry with the previous
//! table, so a one-tenant change at 100,000 tenants costs O(log n), not a copy of the table.

pub mod error;
pub mod file;
pub mod postgres;
pub mod snapshot_cache;
pub mod tls;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::upstream::Balancers;
use arc_swap::ArcSwap;

pub use self::error::LoadError;
use self::tls::CertifiedKey;
use crate::auth::apikey::ApiKey;
use crate::auth::keys::TenantKeys;
use crate::config::names::HostName;
use crate::config::server::ServerConfig;
use crate::config::tenants::{TenantSpec, TenantStatus};
use crate::policy::cors::CorsPolicy;
use crate::policy::{CourseCatalog, TenantRules};
use crate::session::store::SessionLimits;
use crate::upstream::UpstreamPool;

/// One tenant, ready to serve.
pub struct Tenant {
    pub id: String,
    pub status: TenantStatus,
    /// Lower-case host names without port.
    pub hosts: Vec<String>,
    pub keys: TenantKeys,
    pub upstream: UpstreamPool,
    pub api_keys: Vec<ApiKey>,
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
    pub rate_limits: crate::rate_limit::RateLimits,
    /// TLS certificates by host, for the edge's TLS listener.
    pub certificates: HashMap<String, Arc<CertifiedKey>>,
    /// Tokens already verified for this snapshot of the tenant.
    pub verified: crate::auth::verify::VerifyCache,
    /// A digest of the rows it was built from (Postgres mode), so an unchanged tenant is not
    /// rebuilt on a resync; 0 from the file.
    pub fingerprint: u64,
}

impl Tenant {
    /// Build a tenant from its validated spec: keys, certificates, and its LRS node pool (DNS
    /// is resolved here, once per load).
    pub async fn build(spec: TenantSpec, server: &ServerConfig, health: &Arc<Balancers>) -> Result<Self, LoadError> {
        let upstream = UpstreamPool::build(
            &spec.nodes,
            spec.lrs_username.as_str(),
            &spec.lrs_password,
            server.upstream.with(spec.upstream_timeouts),
            health,
        )
        .await
        .map_err(|error| LoadError::Upstream { tenant: spec.id.to_string(), error })?;
        let mut certificates = HashMap::with_capacity(spec.tls.len());
        for t in &spec.tls {
            let key = CertifiedKey::parse(&t.cert_pem, &t.key_pem).map_err(|error| LoadError::Certificate {
                tenant: spec.id.to_string(),
                host: t.host.to_string(),
                error,
            })?;
            certificates.insert(t.host.as_str().to_owned(), Arc::new(key));
        }
        Ok(Tenant {
            keys: TenantKeys::hs256(spec.id.as_str(), &spec.secret, &server.issuer, server.clock_skew_seconds),
            status: spec.status,
            hosts: spec.hosts.into_iter().map(HostName::into_string).collect(),
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
            rate_limits: spec.rate_limits,
            certificates,
            fingerprint: 0,
            verified: Default::default(),
            id: spec.id.into_string(),
        })
    }
}

#[cfg(test)]
impl Tenant {
    /// A tenant `id` on `host` from a minimal tenants file (its LRS node unreachable), built
    /// the way a source builds one: for tests of what is decided with a tenant in hand.
    #[allow(clippy::unwrap_used)]
    pub(crate) fn for_tests(id: &str, host: &str) -> Tenant {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenants.toml");
        std::fs::write(
            &file,
            format!(
                "[[tenant]]\nid = '{id}'\nhosts = ['{host}']\n[tenant.upstream]\nnodes = ['http://127.0.0.1:9/xapi/']\n\
                 username = 'u'\npassword = 'p'\n[tenant.signing]\nsecret = '0123456789abcdef0123456789abcdef'\n"
            ),
        )
        .unwrap();
        let spec = crate::config::tenants::load(&file).unwrap().remove(0);
        let file = dir.path().join("lrsgate.toml");
        let server = ServerConfig::from_file(&file, crate::config::server::ServerFile::default()).unwrap();
        let health = crate::server::balancers(&server);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(Tenant::build(spec, &server, &health)).unwrap()
    }
}

/// Host name → tenant, for one config generation.
#[derive(Default, Clone)]
pub struct TenantTable {
    by_host: imbl::HashMap<String, Arc<Tenant>>,
    by_id: imbl::HashMap<String, Arc<Tenant>>,
}

/// The shared holder every service reads from.
pub type TenantStore = Arc<ArcSwap<TenantTable>>;

impl TenantTable {
    /// The tenant serving `host` (a `Host` header or SNI value; port and case are ignored).
    pub fn resolve(&self, host: &str) -> Option<&Arc<Tenant>> {
        self.by_host.get(normalize_host(host).as_ref())
    }

    /// The tenant with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.by_id.get(id)
    }

    pub fn tenant_count(&self) -> usize {
        self.by_id.len()
    }

    /// Every tenant id, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.by_id.keys()
    }

    /// A table holding these tenants. A host served by two of them is refused.
    pub fn from_tenants(tenants: impl IntoIterator<Item = Arc<Tenant>>) -> Result<Self, LoadError> {
        let mut table = TenantTable::default();
        for tenant in tenants {
            if table.by_id.contains_key(&tenant.id) {
                return Err(LoadError::DuplicateTenant { tenant: tenant.id.clone() });
            }
            table = table.with_tenant(tenant)?;
        }
        Ok(table)
    }

    /// This table with `tenant` added, or replacing the tenant of the same id (its old hosts
    /// removed). Refused when one of its hosts is served by another tenant.
    pub fn with_tenant(&self, tenant: Arc<Tenant>) -> Result<Self, LoadError> {
        if let Some(host) = tenant.hosts.iter().find(|h| self.by_host.get(*h).is_some_and(|t| t.id != tenant.id)) {
            return Err(LoadError::HostTaken { tenant: tenant.id.clone(), host: host.clone() });
        }
        let mut next = self.without_tenant(&tenant.id);
        for host in &tenant.hosts {
            next.by_host.insert(host.clone(), tenant.clone());
        }
        next.by_id.insert(tenant.id.clone(), tenant);
        Ok(next)
    }

    /// This table without the tenant `id` (and its hosts).
    pub fn without_tenant(&self, id: &str) -> Self {
        let mut next = self.clone();
        if let Some(old) = next.by_id.remove(id) {
            for host in &old.hosts {
                if next.by_host.get(host).is_some_and(|t| t.id == id) {
                    next.by_host.remove(host);
                }
            }
        }
        next
    }

    /// Build every tenant of a validated config.
    pub async fn build(
        specs: Vec<TenantSpec>,
        server: &ServerConfig,
        health: &Arc<Balancers>,
    ) -> Result<Self, LoadError> {
        let mut tenants = Vec::with_capacity(specs.len());
        for spec in specs {
            tenants.push(Arc::new(Tenant::build(spec, server, health).await?));
        }
        Self::from_tenants(tenants)
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
    use super::*;

    fn built(tenants: &[(&str, &str)]) -> Vec<Arc<Tenant>> {
        tenants.iter().map(|(id, host)| Arc::new(Tenant::for_tests(id, host))).collect()
    }

    #[test]
    fn a_table_refuses_a_taken_host_and_a_repeated_id_by_kind() {
        let table = [
            ("two_tenants", vec![("a", "a.test"), ("b", "b.test")], None),
            ("host_taken", vec![("a", "a.test"), ("b", "a.test")], Some("host_taken")),
            ("duplicate_id", vec![("a", "a.test"), ("a", "c.test")], Some("duplicate_tenant")),
        ];
        for (rule, tenants, want) in table {
            let got = TenantTable::from_tenants(built(&tenants));
            assert_eq!(got.as_ref().err().map(LoadError::kind), want, "{rule}");
        }
        let [a, b] = <[_; 2]>::try_from(built(&[("a", "a.test"), ("b", "a.test")])).ok().unwrap();
        let with_a = TenantTable::from_tenants([a]).unwrap();
        assert_eq!(
            with_a.with_tenant(b).err(),
            Some(LoadError::HostTaken { tenant: "b".into(), host: "a.test".into() }),
            "names the tenant refused and the host"
        );
    }

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
