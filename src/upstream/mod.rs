//! Per-tenant LRS node pools: a weighted round-robin `LoadBalancer` whose health comes from one
//! shared `HealthRegistry` (so two tenants on the same LRS node share one probe), the LRS
//! credential, and the peer options every upstream connection uses.
//!
//! Tenants with the same node set share one balancer ([`Balancers`]): a SaaS provider's tenants
//! mostly sit on the same LRS fleet, and Pingora 0.9's registry reconciles every registered
//! balancer on each registration (quadratic in their number), so 100,000 per-tenant balancers
//! would take minutes to load and kilobytes each.

pub mod forward;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pingora::lb::discovery::Static;
use pingora::lb::selection::RoundRobin;
use pingora::lb::HealthRegistry;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::prelude::HttpPeer;

use crate::config::server::UpstreamTimeouts;
use crate::config::tenants::NodeSpec;

/// How an LRS node is addressed once connected.
#[derive(Debug, Clone)]
pub struct UpstreamNode {
    pub tls: bool,
    pub sni: String,
    /// `host[:port]` as the LRS expects it in `Host`.
    pub host_header: String,
    /// Prefix for the xAPI resource path, no trailing slash.
    pub base_path: String,
}

#[derive(Debug, Clone, Copy)]
struct NodeIndex(usize);

/// A balancer over one node set, shared by every tenant with that node set.
pub struct Balancer {
    lb: LoadBalancer<RoundRobin>,
    nodes: Vec<Arc<UpstreamNode>>,
}

/// The shared health registry and the balancers built on it, one per distinct node set. Used
/// only while building tenants (off the hot path); a balancer no tenant holds any more is
/// dropped (and leaves the registry).
pub struct Balancers {
    registry: Arc<HealthRegistry>,
    shared: Mutex<HashMap<Vec<NodeSpec>, Weak<Balancer>>>,
}

impl Balancers {
    pub fn new(registry: Arc<HealthRegistry>) -> Self {
        Balancers { registry, shared: Mutex::new(HashMap::new()) }
    }

    /// The registry the health-check service probes.
    pub fn registry(&self) -> &Arc<HealthRegistry> {
        &self.registry
    }

    /// The balancer for `specs`: the one already built for the same node set, or a new one.
    pub async fn get(&self, specs: &[NodeSpec]) -> Result<Arc<Balancer>, String> {
        // The lock is never held across an await (DNS), and is poisoned only by a panic.
        let known = self.shared.lock().map_err(|_| "balancer cache poisoned")?.get(specs).and_then(Weak::upgrade);
        if let Some(balancer) = known {
            return Ok(balancer);
        }
        let balancer = Arc::new(Balancer::build(specs, &self.registry).await?);
        let mut shared = self.shared.lock().map_err(|_| "balancer cache poisoned")?;
        shared.retain(|_, weak| weak.strong_count() > 0);
        shared.insert(specs.to_vec(), Arc::downgrade(&balancer));
        Ok(balancer)
    }
}

impl Balancer {
    /// Resolve the nodes and build the balancer. DNS is resolved here, once per build.
    async fn build(specs: &[NodeSpec], health: &Arc<HealthRegistry>) -> Result<Self, String> {
        let mut backends = std::collections::BTreeSet::new();
        let mut nodes = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let addrs = tokio::net::lookup_host((spec.host.as_str(), spec.port))
                .await
                .map_err(|e| format!("cannot resolve {}:{}: {e}", spec.host, spec.port))?;
            for addr in addrs {
                let mut backend = Backend::new(&addr.to_string()).map_err(|e| e.to_string())?;
                backend.weight = spec.weight as usize;
                backend.ext.insert(NodeIndex(i));
                backends.insert(backend);
            }
            let default_port = if spec.tls { 443 } else { 80 };
            let host_header =
                if spec.port == default_port { spec.host.clone() } else { format!("{}:{}", spec.host, spec.port) };
            nodes.push(Arc::new(UpstreamNode {
                tls: spec.tls,
                sni: spec.host.clone(),
                host_header,
                base_path: spec.base_path.clone(),
            }));
        }
        let lb = LoadBalancer::from_backends(Backends::new_with_health_registry(Static::new(backends), health.clone()));
        lb.update().await.map_err(|e| format!("load balancer: {e}"))?;
        Ok(Balancer { lb, nodes })
    }
}

/// A tenant's LRS nodes.
pub struct UpstreamPool {
    balancer: Arc<Balancer>,
    /// `Basic …` for the LRS; replaces the client's `Authorization` on every forwarded request.
    pub authorization: String,
    timeouts: UpstreamTimeouts,
}

impl UpstreamPool {
    /// The tenant's pool: the (shared) balancer for its nodes, its credential and timeouts.
    pub async fn build(
        specs: &[NodeSpec],
        username: &str,
        password: &str,
        timeouts: UpstreamTimeouts,
        balancers: &Balancers,
    ) -> Result<Self, String> {
        Ok(UpstreamPool {
            balancer: balancers.get(specs).await?,
            authorization: format!("Basic {}", STANDARD.encode(format!("{username}:{password}"))),
            timeouts,
        })
    }

    /// Pick a healthy node (round robin) and the peer to reach it.
    pub fn select(&self) -> Option<(Box<HttpPeer>, &Arc<UpstreamNode>)> {
        let backend = self.balancer.lb.select(b"", 64)?;
        let node = &self.balancer.nodes[backend.ext.get::<NodeIndex>()?.0];
        let addr = *backend.addr.as_inet()?;
        let mut peer = HttpPeer::new(addr, node.tls, node.sni.clone());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.timeouts.connect);
        o.total_connection_timeout = Some(self.timeouts.connect);
        o.read_timeout = Some(self.timeouts.read);
        o.write_timeout = Some(self.timeouts.write);
        o.idle_timeout = Some(self.timeouts.idle);
        Some((Box::new(peer), node))
    }

    pub fn node_count(&self) -> usize {
        self.balancer.nodes.len()
    }

    pub fn idle_timeout(&self) -> std::time::Duration {
        self.timeouts.idle
    }
}
