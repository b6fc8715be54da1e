//! Per-tenant LRS node pools: a weighted round-robin `LoadBalancer` whose active health comes
//! from one shared `HealthRegistry` (so two tenants probing the same LRS node the same way share
//! one probe), passive health from what requests saw, the LRS credential, and the peer options
//! every upstream connection uses. See `health` for when a node is out of rotation.
//!
//! Tenants with the same node set share one balancer ([`Balancers`]): a SaaS provider's tenants
//! mostly sit on the same LRS fleet, and Pingora 0.9's registry reconciles every registered
//! balancer on each registration (quadratic in their number), so 100,000 per-tenant balancers
//! would take minutes to load and kilobytes each.

pub mod forward;
pub mod health;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pingora::lb::discovery::Static;
use pingora::lb::selection::RoundRobin;
use pingora::lb::HealthRegistry;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::prelude::HttpPeer;

use self::health::{monotonic_ms, Observed, PassiveHealth, Probe, RetryBudget, Tried};
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

/// A backend's node (its spec) and its slot (its address's passive health), in its `ext`.
#[derive(Debug, Clone, Copy)]
struct NodeIndex {
    node: usize,
    slot: usize,
}

/// A balancer over one node set, shared by every tenant with that node set.
pub struct Balancer {
    lb: LoadBalancer<RoundRobin>,
    nodes: Vec<Arc<UpstreamNode>>,
    /// One per backend address, by slot.
    passive: Vec<PassiveHealth>,
    /// The addresses, by slot (metrics and logs name the node by it).
    addresses: Vec<String>,
    retry_budget: RetryBudget,
}

/// The shared health registry and the balancers built on it, one per distinct node set. Used
/// only while building tenants (off the hot path); a balancer no tenant holds any more is
/// dropped (and leaves the registry).
pub struct Balancers {
    registry: Arc<HealthRegistry>,
    shared: Mutex<HashMap<Vec<NodeSpec>, Weak<Balancer>>>,
    /// Connect (and for HTTP probes, answer) timeout of an active probe.
    probe_timeout: Duration,
}

impl Balancers {
    /// Balancers on one registry whose health check probes each node as its tenant chose.
    pub fn new(probe_timeout: Duration) -> Self {
        let registry = Arc::new(HealthRegistry::with_equivalence(health::probe_key));
        registry.set_health_check(Box::new(health::LrsHealthCheck));
        Balancers { registry, shared: Mutex::new(HashMap::new()), probe_timeout }
    }

    /// The registry the health-check service probes.
    pub fn registry(&self) -> &Arc<HealthRegistry> {
        &self.registry
    }

    /// The balancer for `specs`: the one already built for the same node set, or a new one.
    pub async fn get(&self, specs: &[NodeSpec]) -> Result<Arc<Balancer>, UpstreamError> {
        // The lock is never held across an await (DNS), and is poisoned only by a panic.
        let known = self.shared.lock().map_err(|_| UpstreamError::CachePoisoned)?.get(specs).and_then(Weak::upgrade);
        if let Some(balancer) = known {
            return Ok(balancer);
        }
        let balancer = Arc::new(Balancer::build(specs, &self.registry, self.probe_timeout).await?);
        let mut shared = self.shared.lock().map_err(|_| UpstreamError::CachePoisoned)?;
        shared.retain(|_, weak| weak.strong_count() > 0);
        shared.insert(specs.to_vec(), Arc::downgrade(&balancer));
        Ok(balancer)
    }
}

impl Balancer {
    /// Resolve the nodes and build the balancer. DNS is resolved here, once per build.
    async fn build(
        specs: &[NodeSpec],
        health: &Arc<HealthRegistry>,
        probe_timeout: Duration,
    ) -> Result<Self, UpstreamError> {
        let mut backends = std::collections::BTreeSet::new();
        let mut nodes = Vec::with_capacity(specs.len());
        let mut addresses = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let addrs = tokio::net::lookup_host((spec.host.as_str(), spec.port)).await.map_err(|e| {
                UpstreamError::Resolve { host: spec.host.clone(), port: spec.port, detail: e.to_string() }
            })?;
            let default_port = if spec.tls { 443 } else { 80 };
            let host_header =
                if spec.port == default_port { spec.host.clone() } else { format!("{}:{}", spec.host, spec.port) };
            let probe = Probe::new(spec.probe, spec.tls, &spec.host, &host_header, &spec.base_path, probe_timeout);
            for addr in addrs {
                let mut backend = Backend::new(&addr.to_string())
                    .map_err(|e| UpstreamError::Balancer(format!("backend {addr}: {e}")))?;
                backend.weight = spec.weight.get() as usize;
                backend.ext.insert(NodeIndex { node: i, slot: addresses.len() });
                backend.ext.insert(probe.clone());
                if backends.insert(backend) {
                    addresses.push(addr.to_string());
                }
            }
            nodes.push(Arc::new(UpstreamNode {
                tls: spec.tls,
                sni: spec.host.clone(),
                host_header,
                base_path: spec.base_path.clone(),
            }));
        }
        let lb = LoadBalancer::from_backends(Backends::new_with_health_registry(Static::new(backends), health.clone()));
        lb.update().await.map_err(|e| UpstreamError::Balancer(e.to_string()))?;
        let passive = addresses.iter().map(|_| PassiveHealth::default()).collect();
        Ok(Balancer { lb, nodes, passive, addresses, retry_budget: RetryBudget::default() })
    }
}

/// Why a tenant's LRS nodes could not be made a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// A node's host name did not resolve.
    Resolve { host: String, port: u16, detail: String },
    /// Pingora's load balancer refused a backend or its first update.
    Balancer(String),
    /// A panic left the shared balancer cache poisoned.
    CachePoisoned,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Resolve { host, port, detail } => write!(f, "cannot resolve {host}:{port}: {detail}"),
            UpstreamError::Balancer(detail) => write!(f, "load balancer: {detail}"),
            UpstreamError::CachePoisoned => f.write_str("balancer cache poisoned"),
        }
    }
}

impl std::error::Error for UpstreamError {}

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
    ) -> Result<Self, UpstreamError> {
        Ok(UpstreamPool {
            balancer: balancers.get(specs).await?,
            authorization: format!("Basic {}", STANDARD.encode(format!("{username}:{password}"))),
            timeouts,
        })
    }

    /// The next node for a request that already tried `tried` (round robin): actively healthy,
    /// not ejected by passive health, not tried. When every untried node is ejected, the
    /// actively healthy ones are used anyway: better a doubtful node than none.
    pub fn select(&self, tried: Tried) -> Option<Selected<'_>> {
        let b = &self.balancer;
        let now = monotonic_ms();
        let slot = |backend: &Backend| backend.ext.get::<NodeIndex>().map_or(usize::MAX, |i| i.slot);
        let backend =
            b.lb.select_with(b"", 64, |backend, healthy| {
                let slot = slot(backend);
                healthy && !tried.contains(slot) && b.passive.get(slot).is_none_or(|p| p.available(now))
            })
            .or_else(|| b.lb.select_with(b"", 64, |backend, healthy| healthy && !tried.contains(slot(backend))))?;
        let index = *backend.ext.get::<NodeIndex>()?;
        let node = &b.nodes[index.node];
        let addr = *backend.addr.as_inet()?;
        let mut peer = HttpPeer::new(addr, node.tls, node.sni.clone());
        let t = &self.timeouts;
        let o = &mut peer.options;
        o.connection_timeout = Some(t.connect);
        o.total_connection_timeout = Some(t.connect);
        o.read_timeout = Some(t.read);
        o.write_timeout = Some(t.write);
        o.idle_timeout = Some(t.idle);
        Some(Selected { peer: Box::new(peer), node, slot: index.slot })
    }

    /// What a request saw of the node in `slot`: passive health's input.
    pub fn observe(&self, slot: usize, ok: bool) {
        let Some(health) = self.balancer.passive.get(slot) else { return };
        if ok {
            health.success();
            return;
        }
        if let Observed::Ejected(ejection) = health.failure(&self.timeouts.passive, monotonic_ms()) {
            let node = self.balancer.addresses[slot].as_str();
            log::warn!(node, ejection_ms = ejection.as_millis() as u64; "LRS node out of rotation after failed requests");
            crate::metrics::UPSTREAM_EJECTIONS.inc();
        }
    }

    /// A read's attempt on `slot` failed after its bytes were sent (`stale`: on a pooled
    /// connection the LRS had already closed). Counts it against the node unless stale, and
    /// says whether the read may go once more: to a node not tried yet (a stale connection
    /// with no other node: the same node, on a new connection), within the retry budget. The
    /// caller has checked it is a read that was not retried and that nothing was relayed.
    /// The one rule for both forwarding paths (Pingora's and `forward`'s).
    pub fn read_failed(&self, tried: &mut Tried, slot: usize, stale: bool) -> bool {
        if !stale {
            self.observe(slot, false);
        } else if !self.has_untried(*tried) {
            tried.remove(slot);
        }
        if !self.has_untried(*tried) {
            return false;
        }
        let allowed = self.retry_budget().try_retry();
        let outcome = if allowed { "retried" } else { "budget_exhausted" };
        crate::metrics::UPSTREAM_RETRIES.with_label_values(&["read", outcome]).inc();
        allowed
    }

    /// Whether a retry could go to a node not tried yet (one an active check does not hold down).
    pub fn has_untried(&self, tried: Tried) -> bool {
        (tried.count() as usize) < self.balancer.passive.len()
            && self
                .balancer
                .lb
                .select_with(b"", 64, |backend, healthy| {
                    healthy && !tried.contains(backend.ext.get::<NodeIndex>().map_or(usize::MAX, |i| i.slot))
                })
                .is_some()
    }

    /// How many addresses the nodes resolved to.
    pub fn slot_count(&self) -> usize {
        self.balancer.passive.len()
    }

    /// Retries to another node come out of this node set's budget.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.balancer.retry_budget
    }

    pub fn timeouts(&self) -> &UpstreamTimeouts {
        &self.timeouts
    }

    pub fn idle_timeout(&self) -> Duration {
        self.timeouts.idle
    }
}

/// The error of an exchange whose tenant's total upstream timeout passed (504 upstream_timeout).
pub fn total_timeout<T>() -> pingora::Result<T> {
    pingora::Error::e_explain(pingora::ErrorType::ReadTimedout, "the tenant's total upstream timeout passed")
}

/// A failure on a pooled connection (`reused`) the LRS had closed before this request: it says
/// nothing about the node.
pub fn is_stale(e: &pingora::Error, reused: bool) -> bool {
    reused && matches!(e.etype(), pingora::ErrorType::ConnectionClosed | pingora::ErrorType::ReadError)
}

/// A node picked for one attempt.
pub struct Selected<'p> {
    pub peer: Box<HttpPeer>,
    pub node: &'p Arc<UpstreamNode>,
    /// Its address's slot, for `Tried` and `UpstreamPool::observe`.
    pub slot: usize,
}
