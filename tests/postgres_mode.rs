//! Postgres mode against a real PostgreSQL the test starts and stops itself: tenants managed
//! with the CLI, changes made with SQL reaching traffic by LISTEN/NOTIFY within a second under
//! a steady stream of requests that never fails, a suspended tenant refused, an outage that
//! changes nothing for traffic, and changes made while lrsgate's connection was lost picked up
//! when it returns.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::db::{master_key, Db};
use common::*;

fn token_for(gate: &Gate, host: &str, api_key: &str) -> String {
    let r = gate.issue(host, api_key, &token_request());
    assert_eq!(r.status, 200, "token for {host}: {}", r.text());
    r.json()["token"].as_str().unwrap().to_owned()
}

/// Requests sent in a loop from another thread until stopped: every status seen, in order.
struct Stream {
    stop: Arc<AtomicBool>,
    statuses: Arc<Mutex<Vec<u16>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Stream {
    fn start(edge: u16, make: impl Fn() -> Req + Send + 'static) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let (s, st) = (stop.clone(), statuses.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let status = try_send(edge, &make()).map_or(0, |r| r.status);
                st.lock().unwrap().push(status);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Stream { stop, statuses, handle: Some(handle) }
    }

    fn count(&self) -> usize {
        self.statuses.lock().unwrap().len()
    }

    /// Stop, and every status seen.
    fn finish(mut self) -> Vec<u16> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        self.statuses.lock().unwrap().clone()
    }
}

/// Wait until `check` holds; the time it took. Panics after `limit`.
fn within(limit: Duration, what: &str, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn statement_post(token: &str, host: &str) -> Req {
    Req::statements(token, statement().to_string().into_bytes()).host(host)
}

/// Tenant `acme` on LRS `a` (a second LRS `b` standing by), a gate in Postgres mode, a token,
/// and a steady stream of statement POSTs already flowing to `a`.
struct Streaming {
    db: Db,
    a: StandIn,
    b: StandIn,
    key: String,
    gate: Gate,
    token: String,
    stream: Stream,
}

fn streaming() -> Streaming {
    let db = Db::start();
    let (a, b) = (StandIn::start(), StandIn::start());
    let key = db.tenant("acme", &["acme.test"], a.port);
    let gate = db.gate(&a, false);
    let token = token_for(&gate, "acme.test", &key);
    let t = token.clone();
    let stream = Stream::start(gate.edge, move || statement_post(&t, "acme.test"));
    within(Duration::from_secs(5), "traffic flows to A", || a.stats().1 > 20);
    Streaming { db, a, b, key, gate, token, stream }
}

#[test]
fn sql_changes_reach_traffic_within_a_second_without_a_failed_request() {
    let Streaming { db, a, b, key, gate, token, stream } = streaming();

    // Re-point the tenant's LRS from A to B with plain SQL.
    db.pg.sql(&format!("UPDATE upstream_nodes SET url = 'http://127.0.0.1:{}/xapi' WHERE tenant_id = 'acme'", b.port));
    let took = within(Duration::from_secs(5), "B receives traffic", || b.stats().1 > 0);
    assert!(took < Duration::from_secs(1), "re-pointing took {took:?}");
    let a_after = a.stats().1;
    within(Duration::from_secs(5), "more traffic on B", || b.stats().1 > 20);
    assert_eq!(a.stats().1, a_after, "A gets nothing once B serves");

    // A new host is served.
    let new_host = Req::get("/xapi/about").host("new.acme.test");
    assert_eq!(gate.edge(&new_host).status, 404);
    db.pg.sql("INSERT INTO tenant_hosts (host, tenant_id) VALUES ('new.acme.test', 'acme')");
    let took = within(Duration::from_secs(5), "the new host is served", || gate.edge(&new_host.clone()).status == 200);
    assert!(took < Duration::from_secs(1), "a new host took {took:?}");
    let statuses = stream.finish();
    assert!(statuses.len() > 50, "a steady stream: {}", statuses.len());
    assert!(statuses.iter().all(|s| *s == 200), "no request failed: {:?}", failures(&statuses));

    // A suspended tenant is refused on every service, its tokens included; resumed, it serves.
    db.cli(&["tenant", "suspend", "acme"]).unwrap();
    within(Duration::from_secs(2), "suspension applies", || {
        gate.edge(&statement_post(&token, "acme.test")).status == 403
    });
    let before = b.stats();
    let r = gate.edge(&statement_post(&token, "acme.test"));
    assert_eq!((r.status, r.reason().as_str()), (403, "tenant_suspended"));
    let r = gate.issue("acme.test", &key, &token_request());
    assert_eq!((r.status, r.reason().as_str()), (403, "tenant_suspended"));
    assert_eq!(b.stats().1, before.1, "a suspended tenant's requests never reach the LRS");
    db.cli(&["tenant", "resume", "acme"]).unwrap();
    within(Duration::from_secs(2), "resumed", || gate.edge(&statement_post(&token, "acme.test")).status == 200);
}

fn failures(statuses: &[u16]) -> Vec<(usize, u16)> {
    statuses.iter().copied().enumerate().filter(|(_, s)| *s != 200).collect()
}

#[test]
fn an_outage_changes_nothing_and_changes_made_meanwhile_are_picked_up() {
    // `_lrs_a` keeps the first LRS alive: the stream goes on sending to it until the change.
    let Streaming { db, a: _lrs_a, b, key, gate, token: _, stream } = streaming();

    // Postgres goes away: traffic carries on from the last snapshot, whose age grows.
    db.pg.stop_server();
    let seen = stream.count();
    within(Duration::from_secs(10), "traffic during the outage", || stream.count() > seen + 50);
    within(Duration::from_secs(15), "the snapshot age shows the outage", || {
        gate.metric("lrsgate_config_snapshot_age_seconds") >= 2.0
    });
    // New tokens are still issued (the snapshot holds the tenant's keys).
    assert_eq!(gate.issue("acme.test", &key, &token_request()).status, 200);

    // Back, but reachable only by its socket: lrsgate still cannot connect, and changes are made.
    db.pg.start_server(false);
    db.pg.sql(&format!("UPDATE upstream_nodes SET url = 'http://127.0.0.1:{}/xapi' WHERE tenant_id = 'acme'", b.port));
    db.pg.sql("INSERT INTO tenant_hosts (host, tenant_id) VALUES ('late.acme.test', 'acme')");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.stats().1, 0, "no change reached lrsgate while it cannot connect");

    // Fully back: lrsgate reconnects, resyncs, and serves the changes it never heard of.
    db.pg.stop_server();
    db.pg.start_server(true);
    within(Duration::from_secs(20), "the change made while disconnected", || b.stats().1 > 0);
    within(Duration::from_secs(5), "the host added while disconnected", || {
        gate.edge(&Req::get("/xapi/about").host("late.acme.test")).status == 200
    });
    let statuses = stream.finish();
    assert!(statuses.iter().all(|s| *s == 200), "no request failed: {:?}", failures(&statuses));
    assert!(gate.metric("lrsgate_config_source_errors_total") >= 1.0);
    within(Duration::from_secs(10), "the snapshot is current again", || {
        gate.metric("lrsgate_config_snapshot_age_seconds") < 2.0
    });
}

#[test]
fn the_cli_manages_tenants_and_secrets_are_sealed_at_rest() {
    let db = Db::start();
    let lrs = StandIn::start();
    let key = db.tenant("acme", &["acme.test"], lrs.port);
    let gate = db.gate(&lrs, false);

    // Secrets are stored sealed: neither the LRS password nor anything readable is in the rows.
    let stored = db.pg.sql("SELECT encode(password_enc, 'escape') FROM lrs_credentials WHERE tenant_id = 'acme'");
    assert!(!stored.contains(LRS_PASSWORD), "the LRS password is not stored in the clear");
    assert_eq!(db.pg.sql("SELECT key_id FROM lrs_credentials"), "k2", "sealed with the first master key");
    assert_eq!(db.pg.sql("SELECT count(*) FROM lms_api_keys WHERE key_hash = sha256(convert_to('x', 'UTF8'))"), "0");

    // What the CLI does reaches traffic: a second tenant, host, CORS origin, key revocation.
    let other_key = db.tenant("other", &["other.test"], lrs.port);
    within(Duration::from_secs(2), "the new tenant serves", || {
        gate.issue("other.test", &other_key, &token_request()).status == 200
    });
    let shown = db.cli(&["tenant", "show", "other"]).unwrap();
    assert_eq!(shown["hosts"], serde_json::json!(["other.test"]));
    assert_eq!(shown["lrs_username"], LRS_USER);
    assert!(shown.to_string().find(LRS_PASSWORD).is_none(), "no secret is shown");
    let key_id = shown["api_keys"][0]["id"].as_i64().unwrap().to_string();
    db.cli(&["apikey", "revoke", "other", &key_id]).unwrap();
    within(Duration::from_secs(2), "a revoked key is refused", || {
        gate.issue("other.test", &other_key, &token_request()).status == 401
    });
    assert_eq!(gate.issue("acme.test", &key, &token_request()).status, 200, "the other tenant is untouched");

    // A host moved from one tenant to another in one transaction is served by its new tenant.
    let other_key = db.cli(&["apikey", "create", "other"]).unwrap()["key"].as_str().unwrap().to_owned();
    db.pg.sql("BEGIN; UPDATE tenant_hosts SET tenant_id = 'other' WHERE host = 'acme.test'; COMMIT;");
    within(Duration::from_secs(2), "the moved host serves its new tenant", || {
        gate.issue("acme.test", &other_key, &token_request()).status == 200
    });
    assert_eq!(gate.issue("acme.test", &key, &token_request()).status, 401, "acme's key no longer works there");
    db.pg.sql("UPDATE tenant_hosts SET tenant_id = 'acme' WHERE host = 'acme.test'");
    within(Duration::from_secs(2), "moved back", || gate.issue("acme.test", &key, &token_request()).status == 200);

    // Switches through the CLI, checked before they are committed.
    let set = db.cli(&["tenant", "set", "acme", "policy_cmi5_session_rules=false", "max_body_bytes=2048"]).unwrap();
    assert_eq!(set["id"], "acme");
    let e = db.cli(&["tenant", "set", "acme", "fetch_ttl_seconds=0"]).unwrap_err();
    assert!(e.contains("fetch_ttl_seconds"), "{e}");
    assert_eq!(db.pg.sql("SELECT fetch_ttl_seconds IS NULL FROM tenants WHERE id = 'acme'"), "t", "nothing committed");

    // Errors say what to fix.
    let e = db.cli(&["host", "add", "acme", "other.test"]).unwrap_err();
    assert!(e.contains("already exists"), "{e}");
    let e = db.cli(&["host", "add", "nobody", "x.test"]).unwrap_err();
    assert!(e.contains("no tenant \"nobody\""), "{e}");
    let e = db.cli(&["upstream", "add", "acme", "ftp://lrs"]).unwrap_err();
    assert!(e.contains("scheme"), "{e}");
    let e = db.cli(&["tenant", "create", "bad id!", "--lrs-username", "u"]).unwrap_err();
    assert!(e.contains("not a tenant id"), "{e}");

    // A row that does not validate is refused; the running version keeps serving.
    db.pg.sql("UPDATE tenants SET public_origin = 'not an origin' WHERE id = 'acme'");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(gate.issue("acme.test", &key, &token_request()).status, 200, "the last good version serves");
    assert!(gate.metric("lrsgate_config_reloads_total{result=\"rejected\"}") >= 1.0);

    // Rotation: a new master key first, re-seal, and a restart with only the new key still works.
    let rotated = format!("{},{}", master_key("k3"), db.keys);
    let config = db.pg.path().join("rotated.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\nmaster_keys = \"{rotated}\"\n", db.pg.url())).unwrap();
    let resealed = cli(&config, &["reseal-secrets"], &[]).unwrap();
    assert_eq!(resealed["with"], "k3");
    assert_eq!(db.pg.sql("SELECT DISTINCT key_id FROM signing_keys"), "k3");
}
