//! Rate limits per session token, per tenant and per LMS API key: over a limit a request gets
//! 429 with `Retry-After` and a reason code, is counted, and never reaches the LRS; other
//! tokens, keys and tenants are unaffected. In a fleet each instance enforces its share.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::db::Db;
use common::*;
use serde_json::json;

/// One-second windows a burst that took `elapsed` can have touched.
fn windows(elapsed: Duration) -> usize {
    elapsed.as_secs() as usize + 2
}

/// Send `n` statement POSTs with `token` as fast as one client can; (accepted, refused, time).
fn burst(gate: &Gate, host: &str, token: &str, n: usize) -> (usize, Vec<Resp>, Duration) {
    let started = Instant::now();
    let mut accepted = 0;
    let mut refused = Vec::new();
    for _ in 0..n {
        let r = gate.edge(&Req::statements(token, statement().to_string().into_bytes()).host(host));
        match r.status {
            200 => accepted += 1,
            429 => refused.push(r),
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    (accepted, refused, started.elapsed())
}

fn statements_stored(lrs: &StandIn) -> usize {
    lrs.requests().iter().filter(|r| r.method == "POST" && r.target.contains("statements")).count()
}

#[test]
fn a_token_over_its_limit_gets_429_and_the_lrs_sees_at_most_the_limit() {
    let lrs = StandIn::start();
    let gate =
        Gate::start(GateOptions::new(&[lrs.port]).acme("[tenant.limits]\nedge_requests_per_second_per_token = 5"));
    let token = gate.token();
    let (accepted, refused, elapsed) = burst(&gate, "acme.test", &token, 40);
    assert!(!refused.is_empty(), "40 requests in {elapsed:?} with a limit of 5/s were all accepted");
    assert!(accepted <= 5 * windows(elapsed), "{accepted} accepted in {elapsed:?}");
    assert_eq!(statements_stored(&lrs), accepted, "a refused request never reaches the LRS");
    let r = &refused[0];
    assert_eq!(r.reason(), "token_rate_limited");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["request_id"].as_str().map(str::len), Some(32));
    assert!(gate.metric("lrsgate_rate_limited_total{limit=\"token\",service=\"edge\",tenant=\"\"}") >= 1.0);

    // Another token of the tenant, and another tenant, are not slowed by it.
    let mut bob = token_request();
    bob["actor"] = json!({"mbox": "mailto:bob@example.org"});
    let other_token = gate.token_for(&bob);
    let before = statements_stored(&lrs);
    let mut body = statement();
    body["actor"] = json!({"mbox": "mailto:bob@example.org"});
    let r = gate.edge(&Req::statements(&other_token, body.to_string().into_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    let other = gate.issue("other.test", API_KEY_OTHER, &token_request());
    assert_eq!(other.status, 200, "{}", other.text());
    let other = other.json()["token"].as_str().unwrap().to_owned();
    let (accepted, refused, _) = burst(&gate, "other.test", &other, 20);
    assert_eq!((accepted, refused.len()), (20, 0), "tenant other has no limit");
    assert_eq!(statements_stored(&lrs), before + 21);
}

#[test]
fn a_tenant_over_its_limit_is_refused_whichever_token_asks() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]).acme("[tenant.limits]\nedge_requests_per_second = 6"));
    let tokens: Vec<String> = (0..3).map(|_| gate.token()).collect();
    let started = Instant::now();
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..10 {
        for token in &tokens {
            let r = gate.edge(&Req::statements(token, statement().to_string().into_bytes()));
            match r.status {
                200 => accepted += 1,
                429 => {
                    assert_eq!(r.reason(), "tenant_rate_limited", "round {round}");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {}", r.text()),
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(refused > 0, "30 requests in {elapsed:?} with a tenant limit of 6/s were all accepted");
    assert!(accepted <= 6 * windows(elapsed), "{accepted} accepted in {elapsed:?}");
    assert_eq!(statements_stored(&lrs), accepted);
    // Unauthenticated requests do not spend the tenant's budget (nor are they limited).
    for _ in 0..20 {
        assert_eq!(gate.edge(&Req::get("/xapi/statements").host("acme.test")).reason(), "token_missing");
    }
}

#[test]
fn an_api_key_over_its_limit_gets_429_at_the_token_service() {
    let lrs = StandIn::start();
    let gate =
        Gate::start(GateOptions::new(&[lrs.port]).acme("[tenant.limits]\ntoken_requests_per_second_per_api_key = 3"));
    let started = Instant::now();
    let outcomes: Vec<Resp> = (0..15).map(|_| gate.issue("acme.test", API_KEY_ACME, &token_request())).collect();
    let elapsed = started.elapsed();
    let accepted = outcomes.iter().filter(|r| r.status == 200).count();
    let refused: Vec<&Resp> = outcomes.iter().filter(|r| r.status == 429).collect();
    assert_eq!(accepted + refused.len(), 15);
    assert!(!refused.is_empty(), "15 token requests in {elapsed:?} with a limit of 3/s were all accepted");
    assert!(accepted <= 3 * windows(elapsed));
    assert_eq!(refused[0].reason(), "api_key_rate_limited");
    assert_eq!(refused[0].header("retry-after"), Some("1"));
    assert!(gate.metric("lrsgate_rate_limited_total{limit=\"api_key\",service=\"token\",tenant=\"\"}") >= 1.0);
    // The other tenant's key is unaffected.
    assert!((0..10).all(|_| gate.issue("other.test", API_KEY_OTHER, &token_request()).status == 200));
}

#[test]
fn tenant_labels_are_only_for_listed_tenants() {
    let lrs = StandIn::start();
    let gate = Gate::start(
        GateOptions::new(&[lrs.port])
            .acme("[tenant.limits]\nedge_requests_per_second_per_token = 1")
            .server("[metrics]\ntenant_labels = [\"acme\"]"),
    );
    let token = gate.token();
    let (_, refused, _) = burst(&gate, "acme.test", &token, 6);
    assert!(!refused.is_empty());
    assert!(gate.metric("lrsgate_rate_limited_total{limit=\"token\",service=\"edge\",tenant=\"acme\"}") >= 1.0);
    let metrics = send(gate.metrics, &Req::get("/metrics")).text();
    assert!(metrics.contains(
        "lrsgate_edge_request_duration_seconds_bucket{outcome=\"forwarded\",resource=\"statements\",tenant=\"acme\""
    ));
    assert!(!metrics.contains("tenant=\"other\""), "an unlisted tenant is never a label");
}

/// In a fleet each instance enforces `limit / live instances`: three instances, a limit of 9
/// per token, so one instance lets at most 3 a second through.
#[test]
fn in_a_fleet_each_instance_enforces_its_share() {
    let db = Db::start();
    let lrs = StandIn::start();
    let key = db.tenant("acme", &["acme.test"], lrs.port);
    db.cli(&["tenant", "set", "acme", "edge_requests_per_second_per_token=9", "policy_cmi5_session_rules=false"])
        .unwrap();
    let shown = db.cli(&["tenant", "show", "acme"]).unwrap();
    assert_eq!(shown["rate_limits"]["edge_requests_per_second_per_token"], 9);
    let gates: Vec<Gate> = (0..3).map(|_| db.gate(&lrs, false)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while gates.iter().any(|g| g.metric("lrsgate_fleet_instances") != 3.0) {
        assert!(Instant::now() < deadline, "the heartbeat never counted three instances");
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = gates[0].issue("acme.test", &key, &token_request());
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let (accepted, refused, elapsed) = burst(&gates[0], "acme.test", &token, 20);
    assert!(!refused.is_empty());
    assert!(accepted <= 3 * windows(elapsed), "{accepted} accepted by one of three instances in {elapsed:?}");
    // An instance that stops leaves the count at once (its row is deleted).
    let mut gates = gates;
    gates.pop().unwrap().stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    while gates[0].metric("lrsgate_fleet_instances") != 2.0 {
        assert!(Instant::now() < deadline, "a stopped instance was still counted");
        std::thread::sleep(Duration::from_millis(200));
    }
}
