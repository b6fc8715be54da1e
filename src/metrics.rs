//! Prometheus metrics, registered in the default registry that `pingora-prometheus` serves.
//! Handles are incremented at the decision and never awaited. No tenant, learner or token
//! value is ever a label: labels are fixed small sets (resource, outcome, reason code).

use std::sync::LazyLock;

use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge, IntCounter, IntCounterVec, IntGauge,
};

// The `expect`s below run once at first use; they fail only if a metric name were registered
// twice, which the unique names in this file rule out.

/// Edge requests by xAPI resource and outcome (`forwarded`, `denied`, `failed`).
pub static EDGE_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "lrsgate_edge_requests_total",
        "Edge requests by resource and outcome",
        &["resource", "outcome"]
    )
    .expect("metric registered once")
});

/// Refusals by service (`edge`, `token`) and stable reason code.
pub static DENIALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "lrsgate_denials_total",
        "Refused requests by service and reason code",
        &["service", "reason"]
    )
    .expect("metric registered once")
});

/// Session tokens issued.
pub static TOKENS_ISSUED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("lrsgate_tokens_issued_total", "Session tokens issued").expect("metric registered once")
});

/// Config reloads by result (`ok`, `rejected`).
pub static CONFIG_RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("lrsgate_config_reloads_total", "Tenant config reloads by result", &["result"])
        .expect("metric registered once")
});

/// Responses relayed from the LRS, by status class (`2xx` … `5xx`).
pub static UPSTREAM_RESPONSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("lrsgate_upstream_responses_total", "LRS responses by status class", &["class"])
        .expect("metric registered once")
});

/// Validated bodies too large for Pingora's replay buffer, forwarded by `upstream::forward`.
pub static LARGE_BODY_FORWARDS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "lrsgate_large_body_forwards_total",
        "Validated request bodies over 64 KiB forwarded directly"
    )
    .expect("metric registered once")
});

/// cmi5 fetch URLs by outcome (`issued`, `redeemed`; refusals are in `lrsgate_denials_total`).
pub static FETCHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("lrsgate_cmi5_fetch_total", "cmi5 fetch URLs issued and redeemed", &["outcome"])
        .expect("metric registered once")
});

/// Sessions ended, by reason (`terminated`, `abandoned`, `ended`, `revoked`).
pub static SESSIONS_ENDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("lrsgate_sessions_ended_total", "Sessions ended, by reason", &["reason"])
        .expect("metric registered once")
});

/// Sessions whose state this process holds (set by the session sweeper).
pub static SESSIONS_TRACKED: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("lrsgate_sessions_tracked", "Sessions whose state this process holds")
        .expect("metric registered once")
});

/// Seconds since the tenant snapshot was last known to match its source (Postgres mode; grows
/// while the database is unreachable and the last snapshot keeps serving).
pub static SNAPSHOT_AGE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "lrsgate_config_snapshot_age_seconds",
        "Seconds since the tenant snapshot was last known current"
    )
    .expect("metric registered once")
});

/// Lost connections and failed loads of the Postgres tenant source.
pub static CONFIG_SOURCE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("lrsgate_config_source_errors_total", "Postgres tenant source connection or load failures")
        .expect("metric registered once")
});

/// Touch every metric so `/metrics` lists them (at zero) from the start.
/// How old this instance's view of the fleet's session events is (Postgres mode).
pub static SESSION_EVENTS_AGE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "lrsgate_session_events_age_seconds",
        "Seconds since this instance last caught up with the fleet's session ends (Postgres mode)"
    )
    .expect("metric registered once")
});

/// Operations on the shared session store that failed because Postgres was away.
pub static SESSION_STORE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "lrsgate_session_store_errors_total",
        "Shared session store operations that failed (database away or slow), by operation",
        &["operation"]
    )
    .expect("metric registered once")
});

pub fn init() {
    LazyLock::force(&SESSION_EVENTS_AGE);
    LazyLock::force(&SESSION_STORE_ERRORS);
    LazyLock::force(&SNAPSHOT_AGE);
    LazyLock::force(&CONFIG_SOURCE_ERRORS);
    LazyLock::force(&FETCHES);
    LazyLock::force(&SESSIONS_ENDED);
    LazyLock::force(&SESSIONS_TRACKED);
    LazyLock::force(&EDGE_REQUESTS);
    LazyLock::force(&DENIALS);
    LazyLock::force(&TOKENS_ISSUED);
    LazyLock::force(&CONFIG_RELOADS);
    LazyLock::force(&UPSTREAM_RESPONSES);
    LazyLock::force(&LARGE_BODY_FORWARDS);
}

/// The label for a status code's class.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
