//! Rate limits: per tenant and per session token at the edge, per LMS API key at the token
//! service. Counted with `pingora-limits` (a lock-free count-min sketch per one-second window),
//! so the hot path takes no lock and memory does not grow with the number of keys.
//!
//! A request is admitted when the key's admitted requests over the last second, estimated as
//! Cloudflare's sliding window does (the previous one-second window weighted by how much of it
//! still overlaps, plus the current one), stay within the limit; only admitted requests are
//! counted, so a client flooding past its limit still gets its limit's worth through instead of
//! starving itself.
//!
//! Approximate by design, and documented so: the sliding window is an estimate (it assumes the
//! previous second's requests were spread evenly); the sketch may over-count a key that shares
//! its cells with busy ones (never under-count); concurrent requests of one key may pass the
//! check together (at most one per worker thread over); and in a fleet each instance enforces
//! its share, `limit / live instances` (at least 1), which holds the total only when the load
//! balancer spreads a key's requests evenly.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pingora_limits::rate::{Rate, RateComponents};

/// A tenant's limits, in requests per second; `None`: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Every authenticated edge request of the tenant.
    pub edge_per_tenant: Option<u32>,
    /// Edge requests of one session token (by its `jti`).
    pub edge_per_token: Option<u32>,
    /// Token service requests of one LMS API key.
    pub token_service_per_api_key: Option<u32>,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Tenant,
    Token,
    ApiKey,
}

impl Limited {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Limited::Tenant => "tenant",
            Limited::Token => "token",
            Limited::ApiKey => "api_key",
        }
    }
}

/// Whether one more request fits: `admitted` is the estimate of requests admitted over the
/// last second, `limit` shared by `instances`.
pub fn within(admitted: f64, limit: u32, instances: u32) -> bool {
    let share = (limit / instances.max(1)).max(1);
    admitted + 1.0 <= f64::from(share)
}

/// Admitted requests over the last second: the previous window weighted by its overlap, plus
/// the current one.
fn sliding(prev: isize, curr: isize, fraction_into_current: f64) -> f64 {
    prev as f64 * (1.0 - fraction_into_current) + curr as f64
}

/// Admit one request of `key` against `limit` (counting it only when admitted).
fn admit<K: Hash>(rate: &Rate, key: &K, limit: u32, instances: u32) -> bool {
    let admitted =
        rate.rate_with(key, |c: RateComponents| sliding(c.prev_samples, c.curr_samples, c.current_interval_fraction));
    if !within(admitted, limit, instances) {
        return false;
    }
    rate.observe(key, 1);
    true
}

/// The process's counters (one sketch per kind of limit, so one kind's traffic does not
/// inflate another's estimates) and the fleet size they are shared by.
pub struct RateLimiter {
    tenants: Rate,
    tokens: Rate,
    api_keys: Rate,
    /// Live instances (the heartbeat's count in Postgres mode; 1 in file mode).
    instances: Arc<AtomicU32>,
    /// A key is hashed once, with this process's random keys; the sketches then hash that u64
    /// per row (instead of the strings eight times over).
    keys: std::collections::hash_map::RandomState,
}

/// Columns of each sketch: its over-count is about (requests per second in that sketch) × e /
/// this, so 8192 keeps it to a few requests at tens of thousands per second.
const SLOTS: usize = 8192;
const HASHES: usize = 4;

impl RateLimiter {
    pub fn new(instances: Arc<AtomicU32>) -> RateLimiter {
        let sketch = || Rate::new_with_estimator_config(Duration::from_secs(1), HASHES, SLOTS);
        RateLimiter {
            tenants: sketch(),
            tokens: sketch(),
            api_keys: sketch(),
            instances,
            keys: std::collections::hash_map::RandomState::new(),
        }
    }

    /// One request of `tenant` (and of its token `jti`) at the edge: `Err` names the limit it
    /// is over. A request refused by its token's limit is not counted against the tenant's.
    pub fn edge(&self, limits: &RateLimits, tenant: &str, jti: &str) -> Result<(), Limited> {
        let n = self.instances();
        if let Some(limit) = limits.edge_per_token {
            if !admit(&self.tokens, &self.keys.hash_one((tenant, jti)), limit, n) {
                return Err(Limited::Token);
            }
        }
        if let Some(limit) = limits.edge_per_tenant {
            if !admit(&self.tenants, &self.keys.hash_one(tenant), limit, n) {
                return Err(Limited::Tenant);
            }
        }
        Ok(())
    }

    /// One token service request with the API key whose hash is `key`.
    pub fn token_service(&self, limits: &RateLimits, tenant: &str, key: &impl Hash) -> Result<(), Limited> {
        match limits.token_service_per_api_key {
            Some(limit) if !admit(&self.api_keys, &self.keys.hash_one((tenant, key)), limit, self.instances()) => {
                Err(Limited::ApiKey)
            }
            _ => Ok(()),
        }
    }

    fn instances(&self) -> u32 {
        self.instances.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_the_limit_divided_by_live_instances_and_never_zero() {
        // (admitted so far, limit, instances, one more fits)
        let table = [
            (0.0, 10, 1, true),
            (9.0, 10, 1, true),
            (9.5, 10, 1, false),
            (10.0, 10, 1, false),
            (2.0, 10, 3, true),
            (3.0, 10, 3, false),
            (0.0, 2, 5, true),
            (1.0, 2, 5, false),
            (9.0, 10, 0, true),
        ];
        for (count, limit, instances, expected) in table {
            assert_eq!(within(count, limit, instances), expected, "{count} of {limit} over {instances}");
        }
    }

    #[test]
    fn the_previous_window_counts_by_its_overlap() {
        assert_eq!(sliding(10, 0, 0.0), 10.0);
        assert_eq!(sliding(10, 2, 0.75), 4.5);
        assert_eq!(sliding(0, 7, 0.5), 7.0);
    }

    #[test]
    fn a_flood_still_gets_its_limit_through() {
        let limiter = RateLimiter::new(Arc::new(AtomicU32::new(1)));
        let limits = RateLimits { edge_per_token: Some(50), ..RateLimits::default() };
        let admitted = (0..10_000).filter(|_| limiter.edge(&limits, "acme", "flood").is_ok()).count();
        assert_eq!(admitted, 50, "refused requests are not counted, admitted ones are");
    }

    #[test]
    fn a_token_over_its_limit_does_not_spend_the_tenants_budget() {
        let limiter = RateLimiter::new(Arc::new(AtomicU32::new(1)));
        let limits = RateLimits { edge_per_tenant: Some(5), edge_per_token: Some(2), token_service_per_api_key: None };
        let outcomes: Vec<_> = (0..4).map(|_| limiter.edge(&limits, "acme", "jti-1")).collect();
        // The first one-second window starts with the limiter, so all of this falls in it.
        assert_eq!(outcomes, [Ok(()), Ok(()), Err(Limited::Token), Err(Limited::Token)]);
        // Two of the tenant's five spent: three more tokens' first requests pass.
        for jti in ["a", "b", "c"] {
            assert_eq!(limiter.edge(&limits, "acme", jti), Ok(()));
        }
        assert_eq!(limiter.edge(&limits, "acme", "d"), Err(Limited::Tenant));
        // Another tenant is untouched.
        assert_eq!(limiter.edge(&limits, "other", "jti-1"), Ok(()));
        let none = RateLimits::default();
        assert!((0..1000).all(|_| limiter.edge(&none, "acme", "x").is_ok()));
        assert!((0..1000).all(|_| limiter.token_service(&none, "acme", &[0u8; 32]).is_ok()));
    }
}
