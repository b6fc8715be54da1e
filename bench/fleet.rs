//! Fleet mode, measured with the real binaries: three lrsgate instances in Postgres mode on one
//! throwaway PostgreSQL (the test harness's), against a recording stand-in LRS, beside one
//! lrsgate in file mode on the same stand-in as the baseline of the same run.
//!
//! `cargo bench --bench fleet` (`ENDS=100 CLIENTS=8 SECONDS=5` to change) prints one JSON line:
//! - the delay from an LMS's end answered by one instance to its enforcement (401) on another,
//!   p50/p99/max over `ENDS` ends;
//! - cmi5 fetch redemptions per second in Postgres mode (a fresh code per request), against the
//!   same in file mode;
//! - validated statement POSTs per second in Postgres mode against file mode (the hot path
//!   must not touch the database: the ratio should be about 1).
//!
//! The client is the harness's (one connection per request, `CLIENTS` threads), so read the
//! ratios within the run, not the absolutes; `bench/run.sh` measures the edge with wrk.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::db::Db;
use common::*;
use serde_json::{json, Value};

const PUBLIC_ORIGIN: &str = "https://lrs.acme.test";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn plain_statement(session: &str) -> Value {
    let mut s = statement();
    s["context"]["extensions"]["https://w3id.org/xapi/cmi5/context/extensions/sessionid"] = json!(session);
    s["verb"]["id"] = json!("http://adlnet.gov/expapi/verbs/experienced");
    s.as_object_mut().unwrap().remove("result");
    s
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Requests per second of `make` sent by `clients` threads for `seconds`, counting only `ok`.
fn rate(
    port: u16,
    clients: usize,
    seconds: u64,
    make: impl Fn(usize) -> Option<Req> + Sync,
    ok: impl Fn(&Resp) -> bool + Sync,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let done: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (make, ok) = (&make, &ok);
                scope.spawn(move || {
                    let mut n = 0;
                    let mut i = c;
                    while Instant::now() < deadline {
                        let Some(req) = make(i) else { break };
                        if try_send(port, &req).is_ok_and(|r| ok(&r)) {
                            n += 1;
                        }
                        i += clients;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    done as f64 / started.elapsed().as_secs_f64()
}

fn fetch_codes(gate: &Gate, key: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut request = token_request();
            request["delivery"] = json!("cmi5");
            request["session_id"] = json!(format!("s-fetch-{i}"));
            let r = gate.issue("acme.test", key, &request);
            r.json()["fetch_url"].as_str().unwrap().strip_prefix(PUBLIC_ORIGIN).unwrap().to_owned()
        })
        .collect()
}

fn main() {
    let (ends, clients, seconds) = (env("ENDS", 100), env("CLIENTS", 8), env("SECONDS", 5) as u64);
    let lrs = StandIn::start_with(&["--no-record"]);
    let db = Db::start();
    let key = db.tenant_with("acme", &["acme.test"], lrs.port, &["--public-origin", PUBLIC_ORIGIN]);
    db.cli(&["tenant", "set", "acme", "policy_cmi5_session_rules=false"]).unwrap();
    let fleet: Vec<Gate> = (0..3).map(|_| db.gate(&lrs, false)).collect();
    let file = Gate::start(
        GateOptions::new(&[lrs.port])
            .acme_key(&format!("public_origin = \"{PUBLIC_ORIGIN}\""))
            .acme("[tenant.policy]\ncmi5_session_rules = false"),
    );

    // End-to-enforced delay: ended through instance 0, polled on instance 2.
    let mut delays: Vec<f64> = Vec::with_capacity(ends);
    for i in 0..ends {
        let session = format!("s-end-{i}");
        let mut request = token_request();
        request["session_id"] = json!(session);
        let token = fleet[0].issue("acme.test", &key, &request).json()["token"].as_str().unwrap().to_owned();
        let write =
            || fleet[2].edge(&Req::statements(&token, plain_statement(&session).to_string().into_bytes())).status;
        assert_eq!(write(), 200);
        let end =
            Req::post("/auth/sessions/end", json!({"session_id": session, "reason": "ended"}).to_string().into_bytes())
                .header("Authorization", &format!("Bearer {key}"))
                .header("Content-Type", "application/json");
        assert_eq!(send(fleet[0].token, &end).status, 200);
        let ended = Instant::now();
        while write() != 401 {
            assert!(ended.elapsed() < Duration::from_secs(10), "end {i} not enforced within 10 s");
        }
        delays.push(ended.elapsed().as_secs_f64() * 1000.0);
    }
    delays.sort_by(f64::total_cmp);

    // Fetch redemptions: a fresh code per request, each one conditional UPDATE in Postgres.
    let codes_needed = 4000;
    let fleet_codes = fetch_codes(&fleet[0], &key, codes_needed);
    let fleet_ports: Vec<u16> = fleet.iter().map(|g| g.edge).collect();
    let redeemed = |r: &Resp| r.json().get("auth-token").is_some();
    let fetch_fleet =
        rate(fleet_ports[0], clients, seconds, |i| fleet_codes.get(i).map(|p| Req::post(p, Vec::new())), redeemed);
    let file_codes = fetch_codes(&file, API_KEY_ACME, codes_needed);
    let fetch_file =
        rate(file.edge, clients, seconds, |i| file_codes.get(i).map(|p| Req::post(p, Vec::new())), redeemed);

    // Statement POSTs: Postgres mode against file mode, same stand-in.
    let fleet_token = fleet[0].issue("acme.test", &key, &token_request()).json()["token"].as_str().unwrap().to_owned();
    let file_token = file.token();
    let body = plain_statement(SESSION_ID).to_string().into_bytes();
    let posts = |port: u16, token: &str| {
        rate(port, clients, seconds, |_| Some(Req::statements(token, body.clone())), |r| r.status == 200)
    };
    let post_fleet = posts(fleet[1].edge, &fleet_token);
    let post_file = posts(file.edge, &file_token);

    println!(
        "{}",
        json!({
            "end_to_enforced_ms": {"n": ends, "p50": percentile(&delays, 0.5), "p99": percentile(&delays, 0.99), "max": delays[delays.len() - 1]},
            "fetch_per_second": {"postgres": fetch_fleet, "file": fetch_file, "ratio": fetch_fleet / fetch_file},
            "statement_post_per_second": {"postgres": post_fleet, "file": post_file, "ratio": post_fleet / post_file},
            "clients": clients,
            "seconds": seconds,
        })
    );
}
