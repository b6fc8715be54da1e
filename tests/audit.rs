//! The audit trail: what is recorded (and what never is), file mode's JSON lines and query, and
//! in Postgres mode that every event lands exactly once through a 60-second outage under load
//! and through a `kill -9` with events still spooled.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::db::Db;
use common::*;
use serde_json::{json, Value};

const SALT: &str = "test-salt";

fn audit_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// Wait until `f` holds (the writer takes events in batches, never on the request's time).
fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn file_mode_records_who_did_what_without_personal_data() {
    let lrs = StandIn::start();
    let gate = Gate::start(
        GateOptions::new(&[lrs.port])
            .acme_key("public_origin = \"https://lrs.acme.test\"")
            .server(&format!("[logging]\nlearner_hash_salt = \"{SALT}\"\n[audit]\nfile = \"audit.jsonl\"\n")),
    );
    let path = gate.dir.path().join("audit.jsonl");
    // A token issued in the reply, a cmi5 launch redeemed once then refused, a refusal.
    let issued = gate.issue("acme.test", API_KEY_ACME, &token_request());
    let token = issued.json()["token"].as_str().unwrap().to_owned();
    let mut launch = token_request();
    launch["delivery"] = json!("cmi5");
    let fetch_url = gate.issue("acme.test", API_KEY_ACME, &launch).json()["fetch_url"].as_str().unwrap().to_owned();
    let fetch_path = fetch_url.strip_prefix("https://lrs.acme.test").unwrap().to_owned();
    let fetch = |gate: &Gate| gate.edge(&Req::post(&fetch_path, Vec::new()).host("acme.test"));
    let au_token = fetch(&gate).json()["auth-token"].as_str().unwrap().to_owned();
    let second = fetch(&gate);
    assert_eq!(second.json()["error-code"], "1");
    // The AU's session: initialized, then terminated, which ends it.
    for (verb, result) in [("initialized", None), ("terminated", Some(json!({"duration": "PT1M"})))] {
        let mut s = statement();
        s["verb"] = json!({"id": format!("http://adlnet.gov/expapi/verbs/{verb}")});
        s["context"]["contextActivities"]["category"] =
            json!([{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}]);
        match result {
            Some(r) => s["result"] = r,
            None => drop(s.as_object_mut().unwrap().remove("result")),
        }
        let r = gate.edge(&Req::statements("", s.to_string().into_bytes()).basic(&au_token));
        assert_eq!(r.status, 200, "{verb}: {}", r.text());
    }
    let refused = gate.edge(&Req::get("/xapi/activities/state?stateId=x").host("acme.test"));
    assert_eq!(refused.reason(), "token_missing");
    let refused_id = refused.json()["request_id"].as_str().unwrap().to_owned();
    assert_eq!(refused.header("x-request-id"), Some(refused_id.as_str()));
    let forbidden = gate.edge(&Req::statements(&token, b"{\"actor\": 1}".to_vec()));
    assert_eq!(forbidden.status, 400);

    eventually("the events", Duration::from_secs(10), || audit_lines(&path).len() >= 7);
    let events = audit_lines(&path);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["token_issued", "fetch_redeemed", "fetch_refused", "request_refused", "session_ended"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let ended = events.iter().find(|e| e["kind"] == "session_ended").unwrap();
    assert_eq!((&ended["reason"], &ended["session_id"]), (&json!("terminated"), &json!(SESSION_ID)));
    let refusal = events.iter().find(|e| e["request_id"] == refused_id.as_str()).expect("the refusal's event");
    assert_eq!(refusal["reason"], "token_missing");
    assert_eq!(refusal["tenant"], "acme");
    assert_eq!(refusal["resource"], "state");
    assert_eq!(refusal["status"], 401);
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "every event has its own id");
    // The learner is a salted hash, the same for every event of that learner in the tenant.
    let learner = lrsgate::logging::learner_hash(
        SALT,
        "acme",
        &lrsgate::xapi::agent::Ifi::Account { home_page: "https://lms.example".into(), name: "learner-1".into() },
    );
    let issued_event = events.iter().find(|e| e["kind"] == "token_issued").unwrap();
    assert_eq!(issued_event["learner"], learner.as_str());
    assert_eq!(
        issued_event["actor"],
        lrsgate::auth::apikey::audit_name(&lrsgate::auth::apikey::hash_key(API_KEY_ACME))
    );
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [token.as_str(), "learner-1", API_KEY_ACME, &fetch_path["/cmi5/fetch/".len()..]] {
        assert!(!text.contains(secret), "the audit trail holds {secret:?}");
    }

    // The CLI reads the file with the same filters as the admin API.
    let found = gate.cli(&["audit", "query", "--tenant", "acme", "--reason", "token_missing"], &[]).unwrap();
    let found = found["events"].as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["request_id"], refused_id.as_str());
    let by_learner = gate.cli(&["audit", "query", "--learner", &learner, "--kind", "token_issued"], &[]).unwrap();
    assert_eq!(by_learner["events"].as_array().unwrap().len(), 2);

    // A config reload is recorded (applied), and so is a refused one.
    let tenants = std::fs::read_to_string(gate.tenants_file()).unwrap();
    std::fs::write(gate.tenants_file(), "not toml [").unwrap();
    gate.signal("HUP");
    eventually("config_rejected", Duration::from_secs(10), || {
        audit_lines(&path).iter().any(|e| e["kind"] == "config_rejected")
    });
    std::fs::write(gate.tenants_file(), tenants).unwrap();
    gate.signal("HUP");
    eventually("config_applied", Duration::from_secs(10), || {
        audit_lines(&path)
            .iter()
            .any(|e| e["kind"] == "config_applied" && e["detail"] == "tenants file (SIGHUP): 2 tenant(s)")
    });
}

#[test]
fn the_audit_trail_needs_a_stable_salt() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lrsgate.toml");
    std::fs::write(&config, "[audit]\nfile = \"audit.jsonl\"\n").unwrap();
    std::fs::write(dir.path().join("tenants.toml"), tenants_toml(&[1], 1024)).unwrap();
    let e = cli(&config, &["check-config"], &[]).unwrap_err();
    assert!(e.contains("logging.learner_hash_salt"), "{e}");
}

/// A client that keeps sending requests that each make exactly one audit event (edge refusals
/// and token issuances), remembering each response's request id.
struct Load {
    stop: Arc<AtomicBool>,
    ids: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(edge: u16, token: u16, key: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|n| {
                let (stop, ids, key) = (stop.clone(), ids.clone(), key.to_owned());
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let r = if (i + n).is_multiple_of(4) {
                            let r = send(
                                token,
                                &Req::post("/auth/token", token_request().to_string().into_bytes())
                                    .host("acme.test")
                                    .header("Authorization", &format!("Bearer {key}"))
                                    .header("Content-Type", "application/json"),
                            );
                            assert_eq!(r.status, 200, "{}", r.text());
                            r
                        } else {
                            let r = send(edge, &Req::get("/xapi/statements").host("acme.test"));
                            assert_eq!(r.reason(), "token_missing");
                            r
                        };
                        mine.push(r.header("x-request-id").expect("every answer names its request").to_owned());
                    }
                    ids.lock().unwrap().extend(mine);
                })
            })
            .collect();
        Load { stop, ids, threads }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.ids).unwrap().into_inner().unwrap()
    }
}

/// request id → how many times it is in `audit_events`.
fn stored_ids(db: &Db) -> HashMap<String, usize> {
    let text = db.pg.sql("SELECT request_id, count(*) FROM audit_events WHERE request_id IS NOT NULL GROUP BY 1");
    text.lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, n)| (id.trim().to_owned(), n.trim().parse().unwrap()))
        .collect()
}

fn assert_each_once(db: &Db, sent: &[String]) {
    let stored = stored_ids(db);
    let duplicated: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "stored more than once: {:?}", &duplicated[..duplicated.len().min(5)]);
    let missing: Vec<&String> = sent.iter().filter(|id| !stored.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events lost, e.g. {:?}",
        missing.len(),
        sent.len(),
        &missing[..missing.len().min(3)]
    );
}

fn audit_gate(db: &Db, lrs: &StandIn, spool: &std::path::Path, replay_batch: usize) -> Gate {
    let mut opts = db.options(lrs);
    // The upgraded process must start while Postgres is away: from the snapshot cache, which
    // is written about 2 s after the tenants were applied. A test may stop Postgres only once
    // it exists (under CI load an upgrade 2 s in found none and was refused, rightly).
    let cache = spool.with_extension("snapshot");
    opts.database_extra = format!("snapshot_cache = \"{}\"", cache.display());
    let gate = Gate::start(opts.server(&format!(
        "[logging]\nlearner_hash_salt = \"{SALT}\"\n[audit]\nspool_dir = \"{}\"\nreplay_batch = {replay_batch}\n",
        spool.display()
    )));
    eventually("the snapshot cache written", Duration::from_secs(30), || cache.exists());
    gate
}

#[test]
fn a_60_second_postgres_outage_under_load_loses_and_duplicates_nothing() {
    let db = Db::start();
    let lrs = StandIn::start();
    let key = db.tenant("acme", &["acme.test"], lrs.port);
    let spool = tempfile::tempdir().unwrap();
    let gate = audit_gate(&db, &lrs, spool.path(), 1000);
    let load = Load::start(gate.edge, gate.token, &key, 3);
    std::thread::sleep(Duration::from_secs(3));
    db.pg.stop_server();
    let outage = Instant::now();
    eventually("events spooled", Duration::from_secs(30), || gate.metric("lrsgate_audit_spool_events") > 0.0);
    std::thread::sleep(Duration::from_secs(60).saturating_sub(outage.elapsed()));
    let spooled = gate.metric("lrsgate_audit_spool_events");
    db.pg.start_server(true);
    std::thread::sleep(Duration::from_secs(3));
    let sent = load.finish();
    eventually("the spool replayed", Duration::from_secs(120), || gate.metric("lrsgate_audit_spool_events") == 0.0);
    // What was queued after the replay goes straight to the table; give the writer a moment.
    eventually("every event stored", Duration::from_secs(30), || stored_ids(&db).len() >= sent.len());
    assert_each_once(&db, &sent);
    assert!(gate.metric("lrsgate_audit_events_total{result=\"replayed\"}") >= spooled);
    assert_eq!(gate.metric("lrsgate_audit_dropped_total{reason=\"queue_full\"}"), 0.0);
    eprintln!(
        "outage: {} events sent, {spooled} spooled at the end of the 60 s outage, {} replayed, all stored once",
        sent.len(),
        gate.metric("lrsgate_audit_events_total{result=\"replayed\"}")
    );

    // Admin API: the same filters; an admin change is itself recorded with its key.
    let admin_key = db.cli(&["admin-key", "new"]).unwrap()["key"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {admin_key}");
    let r = send(gate.admin, &Req::get("/audit?tenant=acme&kind=token_issued&limit=3").header("Authorization", &auth));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["events"].as_array().unwrap().len(), 3);
    let r = send(gate.admin, &Req::get("/audit?tenant=acme&colour=red").header("Authorization", &auth));
    assert_eq!(r.status, 400);
    let r = send(gate.admin, &Req::post("/tenants/acme/suspend", Vec::new()).header("Authorization", &auth));
    assert_eq!(r.status, 200, "{}", r.text());
    eventually("the admin change", Duration::from_secs(10), || {
        let r = send(gate.admin, &Req::get("/audit?kind=admin_change&tenant=acme").header("Authorization", &auth));
        r.json()["events"].as_array().is_some_and(|e| {
            e.iter().any(|e| {
                e["detail"] == "POST /tenants/acme/suspend"
                    && e["actor"].as_str().is_some_and(|a| a.starts_with("admin_key:"))
            })
        })
    });
    // Append-only: the table refuses an update.
    let updated = db.pg.try_sql("UPDATE audit_events SET reason = 'x' WHERE true");
    assert!(updated.is_err_and(|e| e.contains("append-only")), "an UPDATE of the audit trail went through");
}

#[test]
fn kill_9_with_events_spooled_then_restart_replays_each_once() {
    let db = Db::start();
    let lrs = StandIn::start();
    let key = db.tenant("acme", &["acme.test"], lrs.port);
    let spool = tempfile::tempdir().unwrap();
    let mut gate = audit_gate(&db, &lrs, spool.path(), 10);
    db.pg.stop_server();
    let load = Load::start(gate.edge, gate.token, &key, 2);
    std::thread::sleep(Duration::from_secs(3));
    let sent = load.finish();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (gate.metric("lrsgate_audit_spool_events") as usize) < sent.len() {
        assert!(
            Instant::now() < deadline,
            "not all {} events spooled: spool {}, dropped {}, spooled {}, written {}\n{}",
            sent.len(),
            gate.metric("lrsgate_audit_spool_events"),
            send(gate.metrics, &Req::get("/metrics"))
                .text()
                .lines()
                .filter(|l| l.starts_with("lrsgate_audit"))
                .collect::<Vec<_>>()
                .join("\n"),
            gate.metric("lrsgate_audit_events_total{result=\"spooled\"}"),
            gate.metric("lrsgate_audit_events_total{result=\"written\"}"),
            gate.log().lines().rev().take(15).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    gate.kill9();

    // As if an earlier replay had stored half the oldest segment and crashed before deleting it.
    db.pg.start_server(true);
    let mut segments: Vec<_> = std::fs::read_dir(spool.path()).unwrap().map(|e| e.unwrap().path()).collect();
    segments.sort();
    assert!(!segments.is_empty(), "nothing was spooled");
    let oldest = std::fs::read_to_string(&segments[0]).unwrap();
    let half: Vec<Value> =
        oldest.lines().take(oldest.lines().count() / 2).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!half.is_empty());
    let values: Vec<String> = half
        .iter()
        .map(|e| {
            format!(
                "('{}', to_timestamp({} / 1000.0), '{}', '{}', '{}')",
                e["id"].as_str().unwrap(),
                e["at_ms"],
                e["kind"].as_str().unwrap(),
                e["service"].as_str().unwrap(),
                e["request_id"].as_str().unwrap()
            )
        })
        .collect();
    db.pg.sql(&format!("INSERT INTO audit_events (id, at, kind, service, request_id) VALUES {}", values.join(", ")));

    let gate = audit_gate(&db, &lrs, spool.path(), 10);
    // Not the spool gauge alone: it reads 0 until the new writer has opened the spool.
    eventually("every event stored", Duration::from_secs(60), || stored_ids(&db).len() >= sent.len());
    eventually("the spool replayed", Duration::from_secs(60), || gate.metric("lrsgate_audit_spool_events") == 0.0);
    assert_each_once(&db, &sent);
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0, "replayed segments are deleted");
    eprintln!(
        "kill -9: {} events spooled, {} pre-stored, replayed after restart, each stored once",
        sent.len(),
        half.len()
    );
}

/// A graceful upgrade while Postgres is away: the old and the new process share the spool
/// directory; requests in flight during the old one's grace period still record theirs, and
/// once Postgres is back every event is stored once.
#[test]
fn a_graceful_upgrade_with_events_spooled_loses_and_duplicates_nothing() {
    let db = Db::start();
    let lrs = StandIn::start();
    let key = db.tenant("acme", &["acme.test"], lrs.port);
    let spool = tempfile::tempdir().unwrap();
    let mut gate = audit_gate(&db, &lrs, spool.path(), 100);
    db.pg.stop_server();
    let load = Load::start(gate.edge, gate.token, &key, 2);
    std::thread::sleep(Duration::from_secs(2));
    gate.upgrade();
    std::thread::sleep(Duration::from_secs(2));
    let sent = load.finish();
    db.pg.start_server(true);
    eventually("the spool replayed", Duration::from_secs(60), || gate.metric("lrsgate_audit_spool_events") == 0.0);
    eventually("every event stored", Duration::from_secs(30), || stored_ids(&db).len() >= sent.len());
    assert_each_once(&db, &sent);
}

#[test]
fn the_retention_sweep_deletes_only_what_is_past_its_days() {
    let db = Db::start();
    let lrs = StandIn::start();
    db.tenant("acme", &["acme.test"], lrs.port);
    db.pg.sql(
        "INSERT INTO audit_events (id, at, kind, service, request_id) VALUES
           ('00000000-0000-0000-0000-00000000000a', now() - interval '91 days', 'revoked', 'token', 'old'),
           ('00000000-0000-0000-0000-00000000000b', now() - interval '89 days', 'revoked', 'token', 'recent')",
    );
    let spool = tempfile::tempdir().unwrap();
    let mut opts = db.options(&lrs);
    opts.server_extra = format!(
        "[logging]\nlearner_hash_salt = \"{SALT}\"\n[audit]\nspool_dir = \"{}\"\nretention_days = 90\n",
        spool.path().display()
    );
    let _gate = Gate::start(opts);
    eventually("the sweep", Duration::from_secs(20), || !stored_ids(&db).contains_key("old"));
    assert!(stored_ids(&db).contains_key("recent"), "an event inside its retention was deleted");
}
