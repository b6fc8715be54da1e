//! A fleet: three real lrsgate processes on one throwaway PostgreSQL, each test proving one
//! promise that must hold whichever instance a load balancer picks.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::db::Db;
use common::*;
use serde_json::{json, Value};

const PUBLIC_ORIGIN: &str = "https://lrs.acme.test";

struct Fleet {
    db: Db,
    lrs: StandIn,
    key: String,
    gates: Vec<Gate>,
}

/// Three instances on one database. `order_rules`: the cmi5 session rules on (the tests of
/// fetch codes and ends send plain statements, so they turn them off).
fn fleet_with(order_rules: bool) -> Fleet {
    let db = Db::start();
    let lrs = StandIn::start();
    let key = db.tenant_with("acme", &["acme.test"], lrs.port, &["--public-origin", PUBLIC_ORIGIN]);
    if !order_rules {
        db.cli(&["tenant", "set", "acme", "policy_cmi5_session_rules=false"]).unwrap();
    }
    let gates = (0..3).map(|_| db.gate(&lrs, false)).collect();
    Fleet { db, lrs, key, gates }
}

fn fleet() -> Fleet {
    fleet_with(false)
}

impl Fleet {
    /// Ask instance `i`'s token service for a cmi5 launch; the fetch URL's path.
    fn launch(&self, i: usize, session_id: &str) -> String {
        let mut request = token_request();
        request["delivery"] = json!("cmi5");
        request["session_id"] = json!(session_id);
        let r = self.gates[i].issue("acme.test", &self.key, &request);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["fetch_url"].as_str().unwrap().strip_prefix(PUBLIC_ORIGIN).unwrap().to_owned()
    }

    fn end(&self, i: usize, session_id: &str, reason: &str) -> Resp {
        send(
            self.gates[i].token,
            &Req::post(
                "/auth/sessions/end",
                json!({"session_id": session_id, "reason": reason}).to_string().into_bytes(),
            )
            .header("Authorization", &format!("Bearer {}", self.key))
            .header("Content-Type", "application/json"),
        )
    }
}

fn fetch(gate: &Gate, path: &str) -> Value {
    let r = gate.edge(&Req::post(path, Vec::new()));
    assert_eq!(r.status, 200, "fetch answers are always 200: {}", r.text());
    r.json()
}

fn statement_in(session_id: &str) -> Value {
    let mut s = statement();
    s["context"]["extensions"]["https://w3id.org/xapi/cmi5/context/extensions/sessionid"] = json!(session_id);
    s["verb"]["id"] = json!("http://adlnet.gov/expapi/verbs/experienced");
    s.as_object_mut().unwrap().remove("result");
    s
}

/// A cmi5 statement of `session_id`: cmi5-defined (category, the result cmi5 asks) for the
/// AU's verbs, cmi5-allowed for any other.
fn cmi5(verb: &str, session_id: &str) -> Value {
    let mut s = statement_in(session_id);
    s["verb"]["id"] = json!(format!("http://adlnet.gov/expapi/verbs/{verb}"));
    let result = match verb {
        "initialized" => None,
        "completed" => Some(json!({"completion": true, "duration": "PT1M"})),
        "passed" => Some(json!({"success": true, "duration": "PT1M"})),
        "failed" => Some(json!({"success": false, "duration": "PT1M"})),
        "terminated" => Some(json!({"duration": "PT2M"})),
        _ => return s,
    };
    s["context"]["contextActivities"]["category"] =
        json!([{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}]);
    if let Some(result) = result {
        s["result"] = result;
    }
    s
}

fn send_cmi5(gate: &Gate, token: &str, verb: &str, session_id: &str) -> Resp {
    gate.edge(&Req::statements("", cmi5(verb, session_id).to_string().into_bytes()).basic(token))
}

fn write(gate: &Gate, token: &str, session_id: &str) -> Resp {
    gate.edge(&Req::statements("", statement_in(session_id).to_string().into_bytes()).basic(token))
}

/// Poll until `check` holds; panics after `limit`. The promise is about a second; the limit
/// leaves room for a loaded CI machine (delays are measured in bench/, not asserted here).
fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_fetch_url_issued_anywhere_is_redeemed_once_anywhere() {
    let f = fleet();
    // Issued on one instance, redeemed on another.
    for (issuer, redeemer) in [(0, 1), (1, 2), (2, 0)] {
        let path = f.launch(issuer, &format!("s-cross-{issuer}"));
        let token = fetch(&f.gates[redeemer], &path)["auth-token"].as_str().map(str::to_owned);
        let token = token.unwrap_or_else(|| panic!("issued on {issuer}, no token on {redeemer}"));
        assert_eq!(write(&f.gates[(redeemer + 1) % 3], &token, &format!("s-cross-{issuer}")).status, 200);
        for other in 0..3 {
            assert_eq!(fetch(&f.gates[other], &path)["error-code"], "1", "second use on {other}");
        }
    }
    // 100 codes, each POSTed concurrently to all three instances: exactly 100 tokens.
    let paths: Vec<String> = (0..100).map(|i| f.launch(i % 3, &format!("s-race-{i}"))).collect();
    let ports: Vec<u16> = f.gates.iter().map(|g| g.edge).collect();
    let answers: Vec<(usize, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .iter()
            .enumerate()
            .flat_map(|(i, path)| ports.iter().map(move |port| (i, path.clone(), *port)))
            .map(|(i, path, port)| scope.spawn(move || (i, send(port, &Req::post(&path, Vec::new())).json())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut tokens_per_code: HashMap<usize, usize> = HashMap::new();
    for (i, answer) in &answers {
        match (answer.get("auth-token"), answer["error-code"].as_str()) {
            (Some(_), _) => *tokens_per_code.entry(*i).or_default() += 1,
            (None, Some("1")) => {}
            other => panic!("code {i}: unexpected answer {other:?}"),
        }
    }
    assert_eq!(tokens_per_code.len(), 100, "every code gave a token");
    assert!(tokens_per_code.values().all(|n| *n == 1), "no code gave two: {tokens_per_code:?}");
    assert!(f.lrs.stats().1 >= 3);
}

#[test]
fn an_end_sent_to_one_instance_is_enforced_by_every_instance() {
    let f = fleet();
    let token = fetch(&f.gates[0], &f.launch(0, "s-end"))["auth-token"].as_str().unwrap().to_owned();
    for gate in &f.gates {
        assert_eq!(write(gate, &token, "s-end").status, 200);
    }
    let r = f.end(1, "s-end", "abandoned");
    assert_eq!(r.status, 200, "{}", r.text());
    // The instance that took the end enforces it at once.
    let r = write(&f.gates[1], &token, "s-end");
    assert_eq!((r.status, r.reason().as_str()), (401, "session_ended"));
    for i in [0, 2] {
        eventually(Duration::from_secs(5), &format!("instance {i} refuses the ended session"), || {
            write(&f.gates[i], &token, "s-end").status == 401
        });
    }
    // An unused fetch URL of an ended session gives no token, wherever it is presented.
    let path = f.launch(2, "s-end-early");
    assert_eq!(f.end(0, "s-end-early", "ended").status, 200);
    eventually(Duration::from_secs(5), "the fetch URL of an ended session", || {
        fetch(&f.gates[2], &path)["error-code"] == "1"
    });
}

#[test]
fn an_end_whose_notification_was_lost_is_caught_up_by_version() {
    let f = fleet();
    let token = fetch(&f.gates[0], &f.launch(0, "s-quiet"))["auth-token"].as_str().unwrap().to_owned();
    assert_eq!(write(&f.gates[2], &token, "s-quiet").status, 200);
    // Written straight into the log: no instance sends a NOTIFY for it.
    f.db.pg.sql(&format!(
        "INSERT INTO session_events (tenant_id, subject, reason, keep_until) VALUES ('acme', 's-quiet', 'revoked', {})",
        u32::MAX
    ));
    for i in 0..3 {
        eventually(Duration::from_secs(5), &format!("instance {i} catches up"), || {
            let r = write(&f.gates[i], &token, "s-quiet");
            r.status == 401 && r.text().contains("revoked")
        });
    }
}

#[test]
fn a_database_outage_keeps_traffic_flowing_and_fetch_fails_closed() {
    let mut f = fleet();
    let token = fetch(&f.gates[0], &f.launch(0, "s-outage"))["auth-token"].as_str().unwrap().to_owned();
    let pending = f.launch(1, "s-pending");
    let ended = fetch(&f.gates[1], &f.launch(1, "s-ended"))["auth-token"].as_str().unwrap().to_owned();
    assert_eq!(f.end(2, "s-ended", "revoked").status, 200);
    for i in 0..3 {
        eventually(Duration::from_secs(5), "the end is known everywhere", || {
            write(&f.gates[i], &ended, "s-ended").status == 401
        });
    }

    f.db.pg.stop_server();
    for gate in &f.gates {
        assert_eq!(write(gate, &token, "s-outage").status, 200, "ordinary statements keep flowing");
        let r = write(gate, &ended, "s-ended");
        assert_eq!((r.status, r.reason().as_str()), (401, "session_ended"), "known ends stay enforced");
        // No database, no token: cmi5 error-code 3, never a second token later.
        assert_eq!(fetch(gate, &pending)["error-code"], "3");
    }
    let r = f.end(0, "s-outage", "abandoned");
    assert_eq!((r.status, r.reason().as_str()), (503, "session_store_unavailable"));
    eventually(Duration::from_secs(5), "the view's age grows", || {
        f.gates[0].metric("lrsgate_session_events_age_seconds") >= 2.0
    });

    f.db.pg.start_server(true);
    // The code was never spent: it still gives its one token.
    let mut answer = Value::Null;
    eventually(Duration::from_secs(10), "fetch works again", || {
        answer = fetch(&f.gates[2], &pending);
        answer.get("auth-token").is_some()
    });
    assert_eq!(fetch(&f.gates[0], &pending)["error-code"], "1");
    eventually(Duration::from_secs(10), "the view is current again", || {
        f.gates[1].metric("lrsgate_session_events_age_seconds") < 2.0
    });
    assert_eq!(f.end(1, "s-outage", "abandoned").status, 200);
    for i in 0..3 {
        eventually(Duration::from_secs(5), "ends flow again", || write(&f.gates[i], &token, "s-outage").status == 401);
    }
    f.gates.clear();
}

#[test]
fn one_au_whose_requests_go_round_robin_keeps_the_cmi5_order_rules() {
    let f = fleet_with(true);
    let token = fetch(&f.gates[1], &f.launch(0, "s-au"))["auth-token"].as_str().unwrap().to_owned();
    let mut turn = 0;
    let mut next_gate = || {
        turn += 1;
        &f.gates[turn % 3]
    };
    // (verb, status, reason): each on the next instance in turn.
    let steps: [(&str, u16, &str); 8] = [
        ("experienced", 403, "cmi5_not_initialized"),
        ("initialized", 200, ""),
        // This instance never saw `initialized`: the shared row says it was sent.
        ("experienced", 200, ""),
        ("completed", 200, ""),
        ("completed", 403, "cmi5_verb_repeated"),
        ("passed", 200, ""),
        ("failed", 403, "cmi5_passed_and_failed"),
        ("initialized", 403, "cmi5_verb_repeated"),
    ];
    for (i, (verb, status, reason)) in steps.into_iter().enumerate() {
        let before = f.lrs.stats().1;
        let r = send_cmi5(next_gate(), &token, verb, "s-au");
        assert_eq!(r.status, status, "step {i} ({verb}): {}", r.text());
        if status != 200 {
            assert_eq!(r.reason(), reason, "step {i} ({verb})");
            assert_eq!(f.lrs.stats().1, before, "step {i}: a refused statement reached the LRS");
        }
    }

    // Postgres away: a cmi5-defined verb cannot be judged fleet-wide (503, the AU resends);
    // ordinary statements carry on.
    f.db.pg.stop_server();
    let r = send_cmi5(&f.gates[0], &token, "terminated", "s-au");
    assert_eq!((r.status, r.reason().as_str()), (503, "session_store_unavailable"), "{}", r.text());
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert_eq!(send_cmi5(&f.gates[0], &token, "experienced", "s-au").status, 200);
    f.db.pg.start_server(true);
    eventually(Duration::from_secs(10), "terminated accepted again", || {
        send_cmi5(&f.gates[2], &token, "terminated", "s-au").status == 200
    });
    // After terminated: a cmi5-defined verb is refused at once on every instance (the shared
    // row), an ordinary statement once the `terminated` event reached the instance.
    for gate in &f.gates {
        let r = send_cmi5(gate, &token, "completed", "s-au");
        assert_eq!((r.status, r.reason().as_str()), (403, "cmi5_after_terminated"));
        eventually(Duration::from_secs(5), "ordinary statements after terminated", || {
            let r = send_cmi5(gate, &token, "experienced", "s-au");
            r.status == 403 && r.reason() == "cmi5_after_terminated"
        });
    }
}

#[test]
fn a_full_fleet_restart_while_postgres_is_down_serves_from_the_snapshot_cache() {
    let db = Db::start();
    let lrs = StandIn::start();
    let key = db.tenant("acme", &["acme.test"], lrs.port);
    let caches: Vec<std::path::PathBuf> = (0..3).map(|i| db.pg.path().join(format!("snapshot-{i}.sealed"))).collect();
    let start = |i: usize| db.gate_with(&lrs, false, &format!("snapshot_cache = \"{}\"", caches[i].display()));
    let gates: Vec<Gate> = (0..3).map(start).collect();
    let r = gates[0].issue("acme.test", &key, &token_request());
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let post = || Req::statements(&token, statement().to_string().into_bytes());
    eventually(Duration::from_secs(10), "every instance wrote its cache", || caches.iter().all(|c| c.exists()));
    let sealed = std::fs::read_to_string(&caches[0]).unwrap();
    assert!(!sealed.contains("acme.test") && !sealed.contains(LRS_USER), "the copy is sealed");

    db.pg.stop_server();
    drop(gates);
    let gates: Vec<Gate> = (0..3).map(start).collect();
    for gate in &gates {
        assert_eq!(gate.edge(&post()).status, 200, "serves from the copy");
        assert_eq!(gate.issue("acme.test", &key, &token_request()).status, 200, "the LMS's key still works");
        eventually(Duration::from_secs(5), "shows its age", || {
            gate.metric("lrsgate_config_snapshot_age_seconds") >= 1.0
        });
    }
    assert!(gates[0].log().contains("snapshot cache"), "says where it serves from");

    // Without a usable copy and no database: a clear startup error, never an empty snapshot.
    let config = gates[0].dir.path().join("lrsgate.toml");
    std::fs::write(&caches[0], "not a cache").unwrap();
    let err = cli(&config, &["check-config"], &[]).unwrap_err();
    assert!(err.contains("snapshot cache"), "{err}");

    // Postgres back: every instance resyncs (a new host is served) and writes a fresh copy.
    db.pg.start_server(true);
    db.cli(&["host", "add", "acme", "new.acme.test"]).unwrap();
    for gate in &gates {
        eventually(Duration::from_secs(15), "resync after the database returned", || {
            gate.edge(&post().host("new.acme.test")).status == 200
        });
    }
    eventually(Duration::from_secs(10), "a fresh copy", || read_ok(&caches[0]));
}

fn read_ok(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.starts_with('{'))
}

#[test]
fn a_token_or_a_learner_revoked_anywhere_is_refused_everywhere() {
    let f = fleet();
    let issue = |i: usize, session: &str| {
        let mut request = token_request();
        request["session_id"] = json!(session);
        let r = f.gates[i].issue("acme.test", &f.key, &request);
        assert_eq!(r.status, 200, "{}", r.text());
        let reply = r.json();
        (reply["token"].as_str().unwrap().to_owned(), reply["jti"].as_str().unwrap().to_owned())
    };
    let bearer = |gate: &Gate, token: &str, session: &str| {
        gate.edge(&Req::statements(token, statement_in(session).to_string().into_bytes())).status
    };
    let revoke = |i: usize, body: Value| {
        send(
            f.gates[i].token,
            &Req::post("/auth/sessions/end", body.to_string().into_bytes())
                .header("Authorization", &format!("Bearer {}", f.key))
                .header("Content-Type", "application/json"),
        )
    };
    // One token of a session revoked; the other token of the same session still works.
    let (first, first_jti) = issue(0, "s-two-tokens");
    let (second, _) = issue(1, "s-two-tokens");
    let r = revoke(2, json!({"jti": first_jti, "reason": "revoked"}));
    assert_eq!(r.status, 200, "{}", r.text());
    for gate in &f.gates {
        eventually(Duration::from_secs(5), "the revoked token is refused", || {
            bearer(gate, &first, "s-two-tokens") == 401
        });
        assert_eq!(bearer(gate, &second, "s-two-tokens"), 200, "the other token is not revoked");
    }

    // A learner revoked by the operator (CLI): every token issued so far, on every instance;
    // a token issued afterwards works.
    let (a, _) = issue(0, "s-learner-a");
    let (b, _) = issue(1, "s-learner-b");
    let learner = token_request()["actor"].to_string();
    // Issued in an earlier second than the revocation (token times are whole seconds).
    std::thread::sleep(Duration::from_millis(1100));
    let out = f.db.cli(&["session", "revoke", "acme", "--learner", &learner]).unwrap();
    assert_eq!(out["ended"], "revoked");
    assert!(out["learner_key"].as_str().is_some_and(|k| k.len() == 64) && !out.to_string().contains("learner-1"));
    for gate in &f.gates {
        eventually(Duration::from_secs(5), "the learner's tokens are refused", || {
            bearer(gate, &a, "s-learner-a") == 401 && bearer(gate, &b, "s-learner-b") == 401
        });
    }
    std::thread::sleep(Duration::from_millis(1100));
    let (later, _) = issue(2, "s-learner-c");
    for gate in &f.gates {
        assert_eq!(bearer(gate, &later, "s-learner-c"), 200, "a token issued after the revocation");
    }
}
