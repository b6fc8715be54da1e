//! Prometheus metrics, registered in the default registry that `pingora-prometheus` serves.
//! Handles are incremented at the decision and never awaited. No tenant, learner or token
//! value is ever a label: labels are fixed small sets (resource, outcome, reason code).

// Registering a metric fails only for a duplicate or malformed name: a bug seen at the first
// start, never at a request.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge, Histogram,
    HistogramVec, IntCounter, IntCounterVec, IntGauge,
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

/// Edge connections closed by the connection guards (`max_connections`,
/// `max_connections_per_client`, `head_timeout`).
pub static CONNECTIONS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "lrsgate_edge_connections_refused_total",
        "Edge connections refused or closed before a request: over a cap, or a request head too slow",
        &["reason"]
    )
    .expect("metric registered once")
});

/// LRS nodes taken out of rotation by passive health.
pub static UPSTREAM_EJECTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("lrsgate_upstream_ejections_total", "LRS nodes taken out of rotation after failed requests")
        .expect("metric registered once")
});

/// Attempts sent to another LRS node, by why (`connect`: nothing reached the first; `read`: a
/// read retried) and whether the retry budget allowed it.
pub static UPSTREAM_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "lrsgate_upstream_retries_total",
        "Requests retried on another LRS node, by cause and outcome (retried, budget_exhausted)",
        &["cause", "outcome"]
    )
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

/// Latency buckets (seconds) for every duration histogram: 250 µs to 30 s.
const DURATION_BUCKETS: &[f64] =
    &[0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Edge request duration, from the request head to the last byte, by resource, outcome and
/// tenant (the tenant's id only for tenants listed in `[metrics] tenant_labels`, else `""`).
pub static EDGE_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "lrsgate_edge_request_duration_seconds",
        "Edge request duration by resource, outcome and (listed) tenant",
        &["resource", "outcome", "tenant"],
        DURATION_BUCKETS.to_vec()
    )
    .expect("metric registered once")
});

/// Time the LRS took, from connecting to its response header, by resource.
pub static UPSTREAM_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "lrsgate_upstream_duration_seconds",
        "LRS time to response header by resource",
        &["resource"],
        DURATION_BUCKETS.to_vec()
    )
    .expect("metric registered once")
});

/// Token service request duration by endpoint (`token`, `sessions_end`, `other`) and outcome.
pub static TOKEN_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "lrsgate_token_request_duration_seconds",
        "Token service request duration by endpoint and outcome",
        &["endpoint", "outcome"],
        DURATION_BUCKETS.to_vec()
    )
    .expect("metric registered once")
});

/// Failed exchanges with the LRS by kind (`connect_refused`, `connect_timeout`, `timeout`,
/// `closed`, `no_healthy_node`, `other`).
pub static UPSTREAM_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("lrsgate_upstream_errors_total", "Failed exchanges with the LRS by kind", &["kind"])
        .expect("metric registered once")
});

/// Open edge connections: HTTP/1.x connections (idle keep-alive ones included) plus HTTP/2
/// streams in flight.
pub static OPEN_CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "lrsgate_edge_open_connections",
        "Open edge HTTP/1.x connections (idle included) plus HTTP/2 streams in flight"
    )
    .expect("metric registered once")
});

/// Requests refused with 429, by service and limit (`tenant`, `token`, `api_key`), and
/// (listed) tenant.
pub static RATE_LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "lrsgate_rate_limited_total",
        "Requests refused by a rate limit, by service, limit and (listed) tenant",
        &["service", "limit", "tenant"]
    )
    .expect("metric registered once")
});

/// Live instances of the fleet this instance divides its rate limits by (1 in file mode).
pub static FLEET_INSTANCES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("lrsgate_fleet_instances", "Live instances the rate limits are shared by")
        .expect("metric registered once")
});

/// Audit events by what became of them (`written`, `spooled`, `replayed`).
pub static AUDIT_EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("lrsgate_audit_events_total", "Audit events written, spooled and replayed", &["result"])
        .expect("metric registered once")
});

/// Audit events lost, by why (`queue_full`, `spool_full`, `spool_error`, `file_error`,
/// `writer_stopped`).
pub static AUDIT_DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("lrsgate_audit_dropped_total", "Audit events dropped, by reason", &["reason"])
        .expect("metric registered once")
});

/// Events waiting in the audit spool.
pub static AUDIT_SPOOL_EVENTS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("lrsgate_audit_spool_events", "Audit events waiting in the disk spool")
        .expect("metric registered once")
});

/// Bytes of the audit spool.
pub static AUDIT_SPOOL_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("lrsgate_audit_spool_bytes", "Bytes in the audit disk spool").expect("metric registered once")
});

/// The `resource` labels of edge metrics (`Resource::label`, and `none` before a route is known).
pub const RESOURCE_LABELS: [&str; 9] = [
    "about",
    "statements",
    "statements_more",
    "state",
    "activity_profile",
    "activities",
    "agent_profile",
    "agents",
    "none",
];
const OUTCOMES: [&str; 3] = ["forwarded", "denied", "failed"];

/// The per-request edge series of every (resource, outcome) for unlisted tenants, resolved once:
/// `with_label_values` takes the metric family's lock, which the hot path must not.
struct EdgeSeries {
    requests: IntCounter,
    duration: Histogram,
}

static EDGE_SERIES: LazyLock<HashMap<(&'static str, &'static str), EdgeSeries>> = LazyLock::new(|| {
    let mut series = HashMap::new();
    for resource in RESOURCE_LABELS {
        for outcome in OUTCOMES {
            series.insert(
                (resource, outcome),
                EdgeSeries {
                    requests: EDGE_REQUESTS.with_label_values(&[resource, outcome]),
                    duration: EDGE_DURATION.with_label_values(&[resource, outcome, ""]),
                },
            );
        }
    }
    series
});

static UPSTREAM_SERIES: LazyLock<HashMap<&'static str, Histogram>> =
    LazyLock::new(|| RESOURCE_LABELS.iter().map(|r| (*r, UPSTREAM_DURATION.with_label_values(&[r]))).collect());

/// Count one edge request and its duration. `tenant` is the tenant's label (`""` unless listed).
pub fn edge_request(resource: &'static str, outcome: &'static str, tenant: &str, seconds: f64) {
    match EDGE_SERIES.get(&(resource, outcome)) {
        Some(series) if tenant.is_empty() => {
            series.requests.inc();
            series.duration.observe(seconds);
        }
        _ => {
            EDGE_REQUESTS.with_label_values(&[resource, outcome]).inc();
            EDGE_DURATION.with_label_values(&[resource, outcome, tenant]).observe(seconds);
        }
    }
}

/// The status classes' series of `lrsgate_upstream_responses_total`, resolved once.
static UPSTREAM_RESPONSE_SERIES: LazyLock<[IntCounter; 5]> =
    LazyLock::new(|| ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| UPSTREAM_RESPONSES.with_label_values(&[class])));

/// Count one LRS response by its status class.
pub fn upstream_response(status: u16) {
    let index = match status_class(status) {
        "1xx" => 0,
        "2xx" => 1,
        "3xx" => 2,
        "4xx" => 3,
        _ => 4,
    };
    UPSTREAM_RESPONSE_SERIES[index].inc();
}

/// The LRS's time to its response header for `resource`.
pub fn upstream_duration(resource: &'static str, seconds: f64) {
    match UPSTREAM_SERIES.get(resource) {
        Some(h) => h.observe(seconds),
        None => UPSTREAM_DURATION.with_label_values(&[resource]).observe(seconds),
    }
}

/// Touch every metric so `/metrics` lists them (at zero) from the start.
pub fn init() {
    // One instance until a fleet heartbeat counts more (file mode stays at one).
    if FLEET_INSTANCES.get() == 0 {
        FLEET_INSTANCES.set(1);
    }
    LazyLock::force(&EDGE_SERIES);
    LazyLock::force(&UPSTREAM_SERIES);
    LazyLock::force(&UPSTREAM_RESPONSE_SERIES);
    LazyLock::force(&EDGE_DURATION);
    LazyLock::force(&UPSTREAM_DURATION);
    LazyLock::force(&TOKEN_DURATION);
    LazyLock::force(&UPSTREAM_ERRORS);
    LazyLock::force(&OPEN_CONNECTIONS);
    LazyLock::force(&RATE_LIMITED);
    LazyLock::force(&FLEET_INSTANCES);
    LazyLock::force(&AUDIT_EVENTS);
    LazyLock::force(&AUDIT_DROPPED);
    LazyLock::force(&AUDIT_SPOOL_EVENTS);
    LazyLock::force(&AUDIT_SPOOL_BYTES);
    for kind in ["connect_refused", "connect_timeout", "no_healthy_node", "timeout", "closed", "other"] {
        UPSTREAM_ERRORS.with_label_values(&[kind]);
    }
    for result in ["ok", "rejected"] {
        CONFIG_RELOADS.with_label_values(&[result]);
    }
    for (service, limit) in [("edge", "token"), ("edge", "tenant"), ("token", "api_key")] {
        RATE_LIMITED.with_label_values(&[service, limit, ""]);
    }
    for class in ["2xx", "3xx", "4xx", "5xx"] {
        UPSTREAM_RESPONSES.with_label_values(&[class]);
    }
    for reason in ["queue_full", "spool_full", "spool_error", "file_error"] {
        AUDIT_DROPPED.with_label_values(&[reason]);
    }
    for result in ["written", "spooled", "replayed"] {
        AUDIT_EVENTS.with_label_values(&[result]);
    }
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

/// Count a failed exchange with the LRS by its kind.
pub fn upstream_error(e: &pingora::Error) {
    use pingora::ErrorType as T;
    let kind = match e.etype() {
        T::ConnectRefused => "connect_refused",
        T::ConnectTimedout => "connect_timeout",
        T::ConnectNoRoute => "no_healthy_node",
        T::ReadTimedout | T::WriteTimedout => "timeout",
        T::ConnectionClosed | T::ReadError | T::WriteError | T::H1Error | T::InvalidHTTPHeader => "closed",
        _ => "other",
    };
    UPSTREAM_ERRORS.with_label_values(&[kind]).inc();
}

/// Whether `t` is a failure to connect (counted per attempt by the edge's `fail_to_connect`).
pub fn is_connect_error(t: &pingora::ErrorType) -> bool {
    use pingora::ErrorType as T;
    matches!(
        t,
        T::ConnectTimedout
            | T::ConnectRefused
            | T::TLSWantX509Lookup
            | T::TLSHandshakeFailure
            | T::TLSHandshakeTimedout
            | T::InvalidCert
            | T::HandshakeError
            | T::ConnectError
            | T::BindError
            | T::SocketError
            | T::ConnectProxyFailure
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_resolved_series_are_the_labelled_ones() {
        init();
        let count = |tenant: &str| EDGE_DURATION.with_label_values(&["agents", "failed", tenant]).get_sample_count();
        let requests = || EDGE_REQUESTS.with_label_values(&["agents", "failed"]).get();
        let (before, before_listed, before_requests) = (count(""), count("listed"), requests());
        edge_request("agents", "failed", "", 0.001);
        edge_request("agents", "failed", "listed", 0.001);
        assert_eq!(count(""), before + 1);
        assert_eq!(count("listed"), before_listed + 1);
        assert_eq!(requests(), before_requests + 2);
        let upstream = || UPSTREAM_DURATION.with_label_values(&["agents"]).get_sample_count();
        let before = upstream();
        upstream_duration("agents", 0.002);
        assert_eq!(upstream(), before + 1);
        let class = |c: &str| UPSTREAM_RESPONSES.with_label_values(&[c]).get();
        let (ok, error) = (class("2xx"), class("5xx"));
        upstream_response(204);
        upstream_response(503);
        assert_eq!((class("2xx"), class("5xx")), (ok + 1, error + 1));
        for resource in crate::xapi::route::Resource::ALL {
            assert!(RESOURCE_LABELS.contains(&resource.label()), "{resource:?} has no pre-resolved series");
        }
    }
}
