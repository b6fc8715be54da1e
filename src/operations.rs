//! What every service shares for operating lrsgate: the audit trail's handle, the learner-hash
//! salt, the rate limiter and which tenants label metrics. Built once by `server::build`.

use std::collections::HashSet;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use crate::audit::Audit;
use crate::rate_limit::RateLimiter;
use crate::xapi::agent::Ifi;

pub struct Operations {
    pub audit: Audit,
    learner_salt: String,
    pub limiter: RateLimiter,
    /// Live instances of the fleet (the heartbeat's count; 1 in file mode).
    pub instances: Arc<AtomicU32>,
    metric_tenants: HashSet<String>,
}

impl Operations {
    pub fn new(audit: Audit, learner_salt: String, metric_tenants: HashSet<String>) -> Operations {
        let instances = Arc::new(AtomicU32::new(1));
        Operations { audit, learner_salt, limiter: RateLimiter::new(instances.clone()), instances, metric_tenants }
    }

    /// A learner as logs and the audit trail name them.
    pub fn learner_hash(&self, tenant: &str, actor: &Ifi) -> String {
        crate::logging::learner_hash(&self.learner_salt, tenant, actor)
    }

    /// The `tenant` label of per-tenant metrics: the id for configured tenants, else `""`
    /// (bounded cardinality).
    pub fn tenant_label<'a>(&self, tenant: &'a str) -> &'a str {
        // Off by default: no hash of the tenant id per request then.
        if !self.metric_tenants.is_empty() && self.metric_tenants.contains(tenant) {
            tenant
        } else {
            ""
        }
    }
}

impl Default for Operations {
    /// No audit, a random salt, no per-tenant labels (tests and tools).
    fn default() -> Self {
        Operations::new(Audit::disabled(), uuid::Uuid::new_v4().to_string(), HashSet::new())
    }
}
