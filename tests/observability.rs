//! What an operator watches: the metrics the shipped alert rules and dashboard use exist, the
//! histograms fill, and the JSON log format writes one object per line with the request id.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

/// Every `lrsgate_*` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("lrsgate_") {
        let start = i + at;
        let end = start + bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        names.insert(text[start..end].to_owned());
        i = end;
    }
    names
}

#[test]
fn the_alert_rules_and_dashboard_use_metrics_that_exist() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    assert_eq!(gate.edge(&Req::statements(&token, statement().to_string().into_bytes())).status, 200);
    assert_eq!(gate.edge(&Req::get("/xapi/statements").host("acme.test")).status, 401);
    let exposed = send(gate.metrics, &Req::get("/metrics")).text();
    let exposed_names = metric_names(&exposed);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["conf/prometheus-alerts.yml", "conf/grafana-dashboard.json"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        if file.ends_with(".json") {
            serde_json::from_str::<Value>(&text).expect("the dashboard is JSON");
        }
        let used = metric_names(&text);
        assert!(used.len() >= 8, "{file} uses {used:?}");
        for name in used {
            assert!(exposed_names.contains(&name), "{file} uses {name}, which /metrics does not expose");
        }
    }
    // The histograms fill for what was just served, and connections are counted.
    assert!(
        gate.metric(
            "lrsgate_edge_request_duration_seconds_count{outcome=\"forwarded\",resource=\"statements\",tenant=\"\"}"
        ) >= 1.0
    );
    assert!(gate.metric("lrsgate_upstream_duration_seconds_count{resource=\"statements\"}") >= 1.0);
    assert!(gate.metric("lrsgate_token_request_duration_seconds_count{endpoint=\"token\",outcome=\"ok\"}") >= 1.0);
    assert!(exposed.contains("lrsgate_edge_open_connections"));
}

#[test]
fn a_dead_lrs_is_counted_by_kind() {
    let gate = Gate::start(GateOptions::new(&[free_port()]));
    let token = gate.token();
    let r = gate.edge(&Req::statements(&token, statement().to_string().into_bytes()));
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["request_id"].as_str(), r.header("x-request-id"));
    let metrics = send(gate.metrics, &Req::get("/metrics")).text();
    let errors: Vec<&str> = metrics.lines().filter(|l| l.starts_with("lrsgate_upstream_errors_total")).collect();
    // The start-up health check already marked the node down: no healthy node.
    assert!(gate.metric("lrsgate_upstream_errors_total{kind=\"no_healthy_node\"}") >= 1.0, "{errors:?}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]).server("[logging]\nformat = \"json\""));
    let r = gate.edge(&Req::get("/xapi/statements").host("acme.test"));
    let id = r.json()["request_id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("x-request-id"), Some(id.as_str()));
    let _ = gate.token();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        let log = gate.log();
        if let Some(line) = log.lines().find(|l| l.contains(&id)) {
            break line.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no log line names {id}:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    for line in gate.log().lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object: {line}: {e}"));
        for field in ["ts", "level", "target", "message"] {
            assert!(v.get(field).is_some(), "{field} missing: {line}");
        }
    }
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["message"], "edge refused");
    assert_eq!(v["request_id"], id.as_str());
    assert_eq!(v["reason"], "token_missing");
    assert_eq!(v["status"], 401);
    assert_eq!(v["tenant"], "acme");
}
