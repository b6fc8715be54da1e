//! How lrsgate knows an LRS node is fit to take a request.
//!
//! - **Active**: Pingora's `HealthCheckService` probes every node on one shared registry. A
//!   tenant chooses the probe for its nodes ([`Probe`]): a TCP connect, or `GET <base>/about`
//!   expecting 200 (a node that accepts connections but cannot answer fails only the latter).
//! - **Passive** ([`PassiveHealth`]): what real requests saw. A node whose connections fail,
//!   time out or answer 5xx `failures` times in a row is ejected for a back-off period that
//!   doubles while it keeps failing; once readmitted, one more failure ejects it again (it is
//!   on probation until a success).
//! - **Retry budget** ([`RetryBudget`]): retries to another node are at most a fifth of the
//!   requests of the last second, plus a few, so a failing fleet is not hit with twice its load.
//!
//! All of it is atomics: the hot path takes no lock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use pingora_limits::rate::Rate;

/// The active probe a tenant chose for its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProbeKind {
    /// A TCP (or TLS) connect.
    #[default]
    Tcp,
    /// `GET <base>/about`, healthy only on 200.
    Http,
}

impl ProbeKind {
    pub fn parse(text: &str) -> Option<ProbeKind> {
        match text {
            "tcp" => Some(ProbeKind::Tcp),
            "http" => Some(ProbeKind::Http),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Tcp => "tcp",
            ProbeKind::Http => "http",
        }
    }
}

/// How one backend is probed, carried in its `ext`.
#[derive(Clone)]
pub enum Probe {
    Tcp(std::sync::Arc<TcpHealthCheck>),
    Http(std::sync::Arc<HttpHealthCheck>),
}

impl Probe {
    /// The probe for a node addressed as `host_header` under `base_path`.
    pub fn new(kind: ProbeKind, tls: bool, sni: &str, host_header: &str, base_path: &str, timeout: Duration) -> Probe {
        match kind {
            ProbeKind::Tcp => {
                let mut check = if tls { TcpHealthCheck::new_tls(sni) } else { TcpHealthCheck::new() };
                check.peer_template.options.connection_timeout = Some(timeout);
                Probe::Tcp(std::sync::Arc::from(check))
            }
            ProbeKind::Http => {
                let mut check = HttpHealthCheck::new(host_header, tls);
                if tls {
                    check.peer_template.sni = sni.to_owned();
                }
                check.peer_template.options.connection_timeout = Some(timeout);
                check.peer_template.options.read_timeout = Some(timeout);
                #[allow(clippy::expect_used, reason = "a GET with a validated base path builds")]
                let mut req = pingora::http::RequestHeader::build("GET", format!("{base_path}/about").as_bytes(), None)
                    .expect("a GET request header builds");
                let _ = req.insert_header(http::header::HOST, host_header);
                let _ = req.insert_header("X-Experience-API-Version", "1.0.3");
                check.req = req;
                Probe::Http(std::sync::Arc::new(check))
            }
        }
    }

    fn kind(&self) -> ProbeKind {
        match self {
            Probe::Tcp(_) => ProbeKind::Tcp,
            Probe::Http(_) => ProbeKind::Http,
        }
    }
}

/// The registry key: the same address probed the same way shares one probe and one health.
pub fn probe_key(backend: &Backend) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    backend.addr.hash(&mut hasher);
    backend.ext.get::<Probe>().map(Probe::kind).unwrap_or_default().hash(&mut hasher);
    if let Some(Probe::Http(check)) = backend.ext.get::<Probe>() {
        check.req.uri.to_string().hash(&mut hasher);
    }
    hasher.finish()
}

/// The registry's one health check: each backend probed the way its tenant chose.
pub struct LrsHealthCheck;

#[async_trait]
impl HealthCheck for LrsHealthCheck {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        match target.ext.get::<Probe>() {
            Some(Probe::Http(check)) => check.check(target).await,
            Some(Probe::Tcp(check)) => check.check(target).await,
            None => TcpHealthCheck::new().check(target).await,
        }
    }

    fn health_threshold(&self, _success: bool) -> usize {
        // One failed probe takes a node out, one success brings it back: passive health and
        // retries cover the flapping this allows.
        1
    }
}

/// When passive health ejects a node, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct PassivePolicy {
    /// Consecutive failed requests that eject a node (default 3).
    pub failures: u32,
    /// The first ejection (default 5 s); each further one in a row doubles it, up to `max`.
    pub ejection: Duration,
    /// The longest ejection (default 60 s).
    pub max_ejection: Duration,
}

impl Default for PassivePolicy {
    fn default() -> Self {
        PassivePolicy { failures: 3, ejection: Duration::from_secs(5), max_ejection: Duration::from_secs(60) }
    }
}

/// Milliseconds on a monotonic clock shared by every node's state.
pub fn monotonic_ms() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64 + 1
}

/// What real requests saw of one node.
#[derive(Debug, Default)]
pub struct PassiveHealth {
    failures_in_a_row: AtomicU32,
    ejections_in_a_row: AtomicU32,
    /// `monotonic_ms` until which the node takes no request; 0: never ejected.
    ejected_until: AtomicU64,
}

/// What one observation did to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Kept,
    /// The node was taken out for this long.
    Ejected(Duration),
}

impl PassiveHealth {
    pub fn available(&self, now_ms: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) <= now_ms
    }

    /// A request it answered well: the node is trusted again. Writes only when something
    /// changes, so healthy traffic does not bounce the cache line between threads.
    pub fn success(&self) {
        if self.failures_in_a_row.load(Ordering::Relaxed) != 0 {
            self.failures_in_a_row.store(0, Ordering::Relaxed);
        }
        if self.ejections_in_a_row.load(Ordering::Relaxed) != 0 {
            self.ejections_in_a_row.store(0, Ordering::Relaxed);
        }
    }

    /// A request it failed (connect, timeout, broken answer, 5xx).
    pub fn failure(&self, policy: &PassivePolicy, now_ms: u64) -> Observed {
        let failures = self.failures_in_a_row.fetch_add(1, Ordering::AcqRel) + 1;
        let on_probation = self.ejections_in_a_row.load(Ordering::Acquire) > 0;
        let threshold = if on_probation { 1 } else { policy.failures.max(1) };
        if failures < threshold || !self.available(now_ms) {
            return Observed::Kept;
        }
        // One thread ejects; the others' failures were counted in the same run.
        if self.failures_in_a_row.compare_exchange(failures, 0, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Observed::Kept;
        }
        let in_a_row = self.ejections_in_a_row.fetch_add(1, Ordering::AcqRel).min(16);
        let ejection = policy.ejection.saturating_mul(1 << in_a_row).min(policy.max_ejection);
        self.ejected_until.store(now_ms + ejection.as_millis() as u64, Ordering::Release);
        Observed::Ejected(ejection)
    }
}

/// Whether an LRS answer counts against the node: it could not serve (500, 502, 503, 504),
/// as opposed to answering the request (4xx, or 501 for what it does not implement).
pub fn is_node_failure(status: u16) -> bool {
    matches!(status, 500 | 502..=504)
}

/// Retries to another node: at most `MIN_PER_SECOND` plus a fifth of the requests of the last
/// second (linkerd's and Envoy's shape of budget).
pub struct RetryBudget {
    requests: Rate,
    retries: Rate,
}

impl Default for RetryBudget {
    fn default() -> Self {
        // One key: one hash, one slot.
        let rate = || Rate::new_with_estimator_config(Duration::from_secs(1), 1, 1);
        RetryBudget { requests: rate(), retries: rate() }
    }
}

impl RetryBudget {
    const MIN_PER_SECOND: f64 = 10.0;
    const RATIO: f64 = 0.2;

    /// A request to this node set (a first attempt).
    pub fn request(&self) {
        self.requests.observe(&(), 1);
    }

    /// Takes one retry if the budget has one.
    pub fn try_retry(&self) -> bool {
        let allowed = Self::MIN_PER_SECOND + Self::RATIO * self.requests.rate(&());
        if self.retries.observe(&(), 0) as f64 >= allowed {
            return false;
        }
        self.retries.observe(&(), 1);
        true
    }
}

/// The nodes (by slot) a request has already tried: a retry never goes back to one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tried(u64);

impl Tried {
    /// Slots past 63 are not remembered (a tenant with that many addresses is retried by round
    /// robin alone).
    pub fn add(&mut self, slot: usize) {
        if slot < 64 {
            self.0 |= 1 << slot;
        }
    }

    pub fn remove(&mut self, slot: usize) {
        if slot < 64 {
            self.0 &= !(1 << slot);
        }
    }

    pub fn contains(self, slot: usize) -> bool {
        slot < 64 && self.0 & (1 << slot) != 0
    }

    pub fn count(self) -> u32 {
        self.0.count_ones()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PassivePolicy {
        PassivePolicy { failures: 3, ejection: Duration::from_millis(100), max_ejection: Duration::from_millis(350) }
    }

    #[test]
    fn a_node_is_ejected_after_failures_in_a_row_and_back_off_doubles() {
        let (h, p) = (PassiveHealth::default(), policy());
        assert_eq!(h.failure(&p, 1000), Observed::Kept);
        h.success();
        assert_eq!(h.failure(&p, 1000), Observed::Kept);
        assert_eq!(h.failure(&p, 1000), Observed::Kept, "a success in between restarts the count");
        assert_eq!(h.failure(&p, 1000), Observed::Ejected(Duration::from_millis(100)));
        assert!(!h.available(1050));
        assert_eq!(h.failure(&p, 1050), Observed::Kept, "an ejected node is not ejected again");
        assert!(h.available(1100));
        // Readmitted on probation: one failure ejects it again, for twice as long, up to the cap.
        assert_eq!(h.failure(&p, 1100), Observed::Ejected(Duration::from_millis(200)));
        assert_eq!(h.failure(&p, 1300), Observed::Ejected(Duration::from_millis(350)));
        assert_eq!(h.failure(&p, 1650), Observed::Ejected(Duration::from_millis(350)));
        // A success ends probation: the full count again, from the first ejection's length.
        h.success();
        assert_eq!(h.failure(&p, 2000), Observed::Kept);
        assert_eq!(h.failure(&p, 2000), Observed::Kept);
        assert_eq!(h.failure(&p, 2000), Observed::Ejected(Duration::from_millis(100)));
    }

    #[test]
    fn the_retry_budget_has_a_floor_and_then_refuses() {
        let budget = RetryBudget::default();
        let granted = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, RetryBudget::MIN_PER_SECOND as usize);
    }

    #[test]
    fn tried_nodes_are_remembered_up_to_64() {
        let mut tried = Tried::default();
        tried.add(0);
        tried.add(63);
        tried.add(64);
        assert!(tried.contains(0) && tried.contains(63));
        assert!(!tried.contains(1) && !tried.contains(64));
        assert_eq!(tried.count(), 2);
    }

    #[test]
    fn probe_kinds_parse_and_print() {
        for kind in [ProbeKind::Tcp, ProbeKind::Http] {
            assert_eq!(ProbeKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ProbeKind::parse("TCP"), None);
        assert_eq!(ProbeKind::parse(""), None);
    }
}
