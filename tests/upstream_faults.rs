//! Misbehaving LRS nodes beside a healthy one, under load: what reaches the LRS, what the
//! clients get, and how soon the bad node leaves rotation and comes back.
//!
//! Each fault test runs the same load (statement PUTs with their own ids, state reads through
//! Pingora's path, statement reads through lrsgate's judged path) against a tenant with a
//! healthy stand-in and one that misbehaves, and checks:
//! - no write is delivered twice, and every write a client was told succeeded is stored once;
//! - no read fails (a read is retried on the healthy node);
//! - a write fails only if it was sent to the bad node (its id is among what that node read, or
//!   for a node that closes connections unread, no more than it accepted);
//! - the bad node is ejected, and after ejection gets no requests until its back-off ends.
//!
//! Each prints a row of the fault table (fault | requests | failed | duplicated | eject | readmit).

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// What one load client sent and got.
#[derive(Debug, Clone)]
struct Sent {
    kind: Kind,
    request_id: String,
    /// 0: no answer (connection error).
    status: u16,
    statement_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    StateRead,
    StatementRead,
}

struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<Sent>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const AGENT: &str = r#"{"objectType":"Agent","account":{"homePage":"https://lms.example","name":"learner-1"}}"#;

fn state_read() -> Req {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    Req::get(&format!(
        "/xapi/activities/state?activityId={}&agent={}&registration={REGISTRATION}&stateId=progress",
        enc(ACTIVITY),
        enc(AGENT)
    ))
}

impl Load {
    fn start(edge: u16, token: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|n| {
                let (stop, sent, token) = (stop.clone(), sent.clone(), token.to_owned());
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    let mut i = n;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let (kind, req, statement_id) = match i % 3 {
                            0 => {
                                let id = uuid::Uuid::new_v4().to_string();
                                let mut st = statement();
                                st["id"] = json!(id);
                                let mut req = Req::new("PUT", &format!("/xapi/statements?statementId={id}"))
                                    .header("Content-Type", "application/json");
                                req.body = st.to_string().into_bytes();
                                (Kind::Write, req, Some(id))
                            }
                            1 => (Kind::StateRead, state_read(), None),
                            _ => (
                                Kind::StatementRead,
                                Req::get(&format!("/xapi/statements?statementId={}", uuid::Uuid::new_v4())),
                                None,
                            ),
                        };
                        let req = req.host("acme.test").bearer(&token).header("X-Experience-API-Version", "1.0.3");
                        let (status, request_id) = match try_send(edge, &req) {
                            Ok(r) => (r.status, r.header("x-request-id").unwrap_or("").to_owned()),
                            Err(_) => (0, String::new()),
                        };
                        mine.push(Sent { kind, request_id, status, statement_id });
                    }
                    sent.lock().unwrap().extend(mine);
                })
            })
            .collect();
        Load { stop, sent, threads }
    }

    fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.sent).unwrap().into_inner().unwrap()
    }
}

/// A tenant on a healthy node and one that will misbehave; passive ejection after 2 failures
/// for 1.5 s (doubling), no active checks to speak of.
fn pair() -> (StandIn, StandIn, Gate) {
    let (good, bad) = (StandIn::start(), StandIn::start());
    let mut opts = GateOptions::new(&[good.port, bad.port]);
    opts.upstream = "health_check_interval_seconds = 3600\nconnect_timeout_ms = 300\nread_timeout_ms = 1000\n\
                     eject_after_failures = 2\nejection_ms = 1500\nmax_ejection_ms = 6000"
        .into();
    let gate = Gate::start(opts);
    (good, bad, gate)
}

/// How a fault run went.
struct Run {
    sent: Vec<Sent>,
    /// From the fault to the first ejection.
    eject: Option<Duration>,
    /// From clearing the fault to the bad node's next handled request.
    readmit: Option<Duration>,
    /// lrsgate's log, for what an assertion names.
    log: String,
}

/// Load for 1 s healthy, `fault` for 4 s, `clear` and 3 s more; the times to eject and readmit.
/// When the bad node answers the test's own inspection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inspect {
    /// Throughout (it misbehaves only towards xAPI requests): the test checks it gets nothing
    /// while ejected, and sees when it is readmitted.
    During,
    /// Once the fault is cleared (frozen): the test sees when it is readmitted.
    AfterClear,
    /// Never (it died; the test follows the restarted node itself).
    Never,
}

fn run(gate: &Gate, bad: &StandIn, fault: impl FnOnce(), clear: impl FnOnce(), inspect: Inspect) -> Run {
    let token = gate.token();
    let load = Load::start(gate.edge, &token, 4);
    std::thread::sleep(Duration::from_secs(1));
    let ejections = gate.metric("lrsgate_upstream_ejections_total");
    fault();
    let fault_at = Instant::now();
    let mut eject = None;
    while fault_at.elapsed() < Duration::from_secs(4) {
        if eject.is_none() && gate.metric("lrsgate_upstream_ejections_total") > ejections {
            eject = Some(fault_at.elapsed());
            if inspect == Inspect::During {
                // Ejected for 1.5 s: once what was in flight has landed, nothing reaches it.
                std::thread::sleep(Duration::from_millis(100));
                let before = bad.received().len();
                std::thread::sleep(Duration::from_millis(1000));
                assert_eq!(bad.received().len(), before, "requests reached the node while it was ejected");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    clear();
    let cleared_at = Instant::now();
    let readmit_visible = inspect != Inspect::Never;
    let handled = if readmit_visible { bad.requests().len() } else { 0 };
    let mut readmit = None;
    while cleared_at.elapsed() < Duration::from_secs(8) && readmit_visible {
        if bad.requests().len() > handled {
            readmit = Some(cleared_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = load.finish();
    Run { sent, eject, readmit, log: gate.log() }
}

/// The checks every fault shares; returns (requests, failed, duplicated) for the table.
/// `died`: what a node that died had handled and read; `unknown_allowed`: failed writes whose
/// fate the test cannot see (read by a node in the instant it died, or dropped unread).
fn check(
    name: &str,
    run: &Run,
    good: &StandIn,
    bad: &StandIn,
    died: (&[Recorded], &[String]),
    unknown_allowed: usize,
) -> (usize, usize, usize) {
    let failed = |s: &Sent| matches!(s.status, 0 | 502 | 504);
    let reads_failed: Vec<&Sent> = run.sent.iter().filter(|s| s.kind != Kind::Write && failed(s)).collect();
    assert!(reads_failed.is_empty(), "{name}: reads failed although a healthy node was there: {reads_failed:?}");

    // Handled writes, by statement id, on both nodes.
    let mut handled: HashMap<String, usize> = HashMap::new();
    for r in good.requests().into_iter().chain(bad.requests()).chain(died.0.iter().cloned()) {
        if r.method == "PUT" {
            if let Some((_, id)) = r.query().into_iter().find(|(k, _)| k == "statementId") {
                *handled.entry(id).or_default() += 1;
            }
        }
    }
    let duplicated = handled.values().filter(|&&n| n > 1).count();
    assert_eq!(duplicated, 0, "{name}: writes delivered more than once");
    let accepted = run.sent.iter().filter(|s| s.kind == Kind::Write && (200..300).contains(&s.status));
    let unseen = accepted.filter(|s| !handled.contains_key(s.statement_id.as_ref().unwrap())).count();
    assert_eq!(unseen, 0, "{name}: accepted writes are not stored");

    // A failed write was sent to the bad node.
    let received: HashSet<String> = bad.received().into_iter().chain(died.1.iter().cloned()).collect();
    let writes_failed: Vec<&Sent> = run.sent.iter().filter(|s| s.kind == Kind::Write && failed(s)).collect();
    let unexplained: Vec<&&Sent> = writes_failed.iter().filter(|s| !received.contains(&s.request_id)).collect();
    let their_lines: Vec<&str> = run
        .log
        .lines()
        .filter(|l| unexplained.iter().any(|s| !s.request_id.is_empty() && l.contains(&s.request_id)))
        .collect();
    assert!(
        unexplained.len() <= unknown_allowed,
        "{name}: {} writes failed that the bad node never read (allowed {unknown_allowed}): {unexplained:?}; \
         lrsgate's lines for them: {their_lines:#?}",
        unexplained.len()
    );
    assert!(run.eject.is_some(), "{name}: the bad node was never ejected");
    let row = (run.sent.len(), writes_failed.len(), duplicated);
    eprintln!(
        "fault table | {name} | {} requests | {} failed | {} duplicated | eject {:?} | readmit {:?}",
        row.0, row.1, row.2, run.eject, run.readmit
    );
    row
}

#[test]
fn a_node_answering_500_is_ejected_and_its_answers_were_all_it_read() {
    let (good, bad, gate) = pair();
    let r = run(&gate, &bad, || bad.fault("status:500"), || bad.fault("none"), Inspect::During);
    check("answers 500", &r, &good, &bad, (&[], &[]), 0);
    // A 500 reached the client only for a request the bad node read.
    let received: HashSet<String> = bad.received().into_iter().collect();
    for s in r.sent.iter().filter(|s| s.status == 500) {
        assert!(received.contains(&s.request_id), "a 500 the bad node never sent: {s:?}");
    }
    assert!(r.readmit.is_some(), "the node was not readmitted after it recovered");
}

#[test]
fn a_node_that_never_answers_costs_a_timeout_and_is_ejected() {
    let (good, bad, gate) = pair();
    let r = run(&gate, &bad, || bad.fault("hang"), || bad.fault("none"), Inspect::During);
    let (_, failed, _) = check("accepts, never answers", &r, &good, &bad, (&[], &[]), 0);
    let timeouts = r.sent.iter().filter(|s| s.status == 504).count();
    assert_eq!(timeouts, failed, "a write sent to a node that never answers is a 504 upstream_timeout");
    assert!(r.readmit.is_some(), "the node was not readmitted after it recovered");
}

#[test]
fn a_node_that_closes_connections_unanswered_is_ejected() {
    let (good, bad, gate) = pair();
    let r = run(&gate, &bad, || bad.fault("close"), || bad.fault("none"), Inspect::During);
    // A write it read and dropped is not resent: lrsgate cannot know it was not stored.
    check("reads, then closes", &r, &good, &bad, (&[], &[]), 0);
    assert!(r.readmit.is_some(), "the node was not readmitted after it recovered");
}

#[test]
fn a_node_that_accepts_and_closes_unread_is_ejected() {
    let (good, bad, gate) = pair();
    let r = run(&gate, &bad, || bad.fault("drop"), || bad.fault("none"), Inspect::During);
    // Closed unread: lrsgate cannot tell that from a write stored and then cut off, so a write
    // sent on such a connection is not resent; at most one per connection the node dropped.
    let dropped = bad.dropped() as usize;
    check("accepts, closes unread", &r, &good, &bad, (&[], &[]), dropped);
    assert!(r.readmit.is_some(), "the node was not readmitted after it recovered");
}

#[test]
fn a_frozen_node_is_ejected_and_readmitted_when_it_thaws() {
    let (good, bad, gate) = pair();
    let r = run(&gate, &bad, || bad.signal("STOP"), || bad.signal("CONT"), Inspect::AfterClear);
    // What it read while frozen it reads once thawed; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    check("frozen (SIGSTOP)", &r, &good, &bad, (&[], &[]), 0);
    assert!(r.readmit.is_some(), "the node was not readmitted after it thawed");
}

#[test]
fn a_node_that_dies_under_load_is_ejected_and_readmitted_when_restarted() {
    let (good, bad, gate) = pair();
    let port = bad.port;
    // What the node held when it died (its memory dies with it), and the restarted node.
    let before_death = std::cell::RefCell::new((Vec::new(), Vec::new()));
    let restarted = std::cell::RefCell::new(None);
    let r = run(
        &gate,
        &bad,
        || {
            // It stops answering first, so every write it acknowledged is in what it held.
            bad.fault("hang");
            *before_death.borrow_mut() = (bad.requests(), bad.received());
            bad.signal("KILL");
        },
        || *restarted.borrow_mut() = Some(StandIn::start_with(&["--listen", &format!("127.0.0.1:{port}")])),
        Inspect::Never,
    );
    let restarted = restarted.into_inner().expect("restarted");
    let (handled, received) = before_death.into_inner();
    let readmit = Instant::now();
    let deadline = readmit + Duration::from_secs(10);
    // Back in rotation once its ejection has passed.
    let token = gate.token();
    while restarted.requests().is_empty() {
        assert!(Instant::now() < deadline, "the restarted node never got a request");
        gate.edge(&Req::statements(&token, statement().to_string().into_bytes()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = Run { readmit: Some(readmit.elapsed()), ..r };
    // Writes it read between the snapshot and the kill failed unseen: at most one per client.
    check("dies (SIGKILL), restarts", &r, &good, &restarted, (&handled, &received), 4);
}

#[test]
fn a_node_that_refuses_connections_takes_no_request_down() {
    let good = StandIn::start();
    let refused = free_port(); // nothing listens there
    let mut opts = GateOptions::new(&[good.port, refused]);
    opts.upstream = "health_check_interval_seconds = 3600\nconnect_timeout_ms = 300\neject_after_failures = 2".into();
    let gate = Gate::start(opts);
    let token = gate.token();
    let load = Load::start(gate.edge, &token, 4);
    std::thread::sleep(Duration::from_secs(3));
    let sent = load.finish();
    let failed: Vec<&Sent> = sent.iter().filter(|s| !(200..500).contains(&s.status)).collect();
    assert!(failed.is_empty(), "requests failed although nothing reached the refusing node: {failed:?}");
    // Out of rotation at once: the first active probe (at start) or the first refused connects.
    let refused_connects = gate.metric("lrsgate_upstream_errors_total{kind=\"connect_refused\"}");
    assert!(refused_connects <= 2.0, "{refused_connects} connects to the refusing node: it stayed in rotation");
    eprintln!("fault table | refuses connections | {} requests | 0 failed | 0 duplicated | out at start", sent.len());
}

#[test]
fn a_slow_node_within_the_timeout_serves_and_stays() {
    let (good, bad, gate) = pair();
    let token = gate.token();
    bad.fault("slow:200");
    let load = Load::start(gate.edge, &token, 4);
    std::thread::sleep(Duration::from_secs(3));
    let sent = load.finish();
    let failed = sent.iter().filter(|s| !(200..500).contains(&s.status)).count();
    assert_eq!(failed, 0, "a slow node within the read timeout failed requests");
    assert_eq!(gate.metric("lrsgate_upstream_ejections_total"), 0.0, "a slow but answering node was ejected");
    assert!(!bad.requests().is_empty() && !good.requests().is_empty());
    eprintln!(
        "fault table | slow (200 ms, timeout 1 s) | {} requests | 0 failed | 0 duplicated | not ejected",
        sent.len()
    );
}

#[test]
fn an_http_health_check_takes_out_a_node_whose_about_fails() {
    let (good, bad) = (StandIn::start(), StandIn::start());
    let mut opts = GateOptions::new(&[good.port, bad.port]);
    // Passive health out of the way: only the active probe can take the node out.
    opts.upstream = "health_check_interval_seconds = 1\neject_after_failures = 1000".into();
    opts.acme_upstream = "health_check = \"http\"".into();
    let gate = Gate::start(opts);
    let token = gate.token();
    let write = |token: &str| {
        let mut st = statement();
        let id = uuid::Uuid::new_v4().to_string();
        st["id"] = json!(id);
        gate.edge(&Req::statements(token, st.to_string().into_bytes()))
    };
    bad.fault("status:500");
    // Within a few probe periods the node is out: then no request reaches it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let before = bad.received().len();
        for _ in 0..10 {
            write(&token);
        }
        if bad.received().len() == before {
            break;
        }
        assert!(Instant::now() < deadline, "the HTTP probe never took out a node answering 500");
    }
    bad.fault("none");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let before = bad.received().len();
        for _ in 0..10 {
            assert_eq!(write(&token).status, 200);
        }
        if bad.received().len() > before {
            break;
        }
        assert!(Instant::now() < deadline, "the HTTP probe never brought the node back");
    }
}

#[test]
fn a_tcp_health_check_keeps_a_node_answering_500() {
    // The contrast to the HTTP probe: a TCP connect succeeds, so only passive health could act.
    let (good, bad) = (StandIn::start(), StandIn::start());
    let mut opts = GateOptions::new(&[good.port, bad.port]);
    opts.upstream = "health_check_interval_seconds = 1\neject_after_failures = 1000".into();
    let gate = Gate::start(opts);
    let token = gate.token();
    bad.fault("status:500");
    std::thread::sleep(Duration::from_millis(2500));
    let before = bad.received().len();
    for _ in 0..10 {
        gate.edge(&Req::statements(&token, statement().to_string().into_bytes()));
    }
    assert!(bad.received().len() > before, "a TCP probe took out a node that accepts connections");
}

#[test]
fn a_tenants_own_timeouts_answer_504_upstream_timeout() {
    let hanging = StandIn::start();
    let mut opts = GateOptions::new(&[hanging.port]);
    // The server's read timeout is a minute (the client gives up after 20 s): only the
    // tenant's own timeout can answer in time.
    opts.upstream = "health_check_interval_seconds = 3600\nread_timeout_ms = 60000".into();
    opts.acme_upstream = "read_timeout_ms = 300".into();
    let gate = Gate::start(opts);
    let token = gate.token();
    hanging.fault("hang");
    for req in [
        Req::statements(&token, statement().to_string().into_bytes()),
        state_read().host("acme.test").bearer(&token),
        Req::get("/xapi/statements?limit=1").host("acme.test").bearer(&token),
    ] {
        let r = gate.edge(&req.header("X-Experience-API-Version", "1.0.3"));
        assert_eq!((r.status, r.reason()), (504, "upstream_timeout".to_owned()), "{}", r.text());
    }
}

#[test]
fn a_tenants_total_timeout_holds_for_a_slow_answer() {
    let slow = StandIn::start();
    let mut opts = GateOptions::new(&[slow.port]);
    opts.upstream = "health_check_interval_seconds = 3600\nread_timeout_ms = 60000".into();
    opts.acme_upstream = "total_timeout_ms = 400".into();
    let gate = Gate::start(opts);
    let token = gate.token();
    slow.fault("slow:30000");
    let r = gate.edge(&state_read().host("acme.test").bearer(&token).header("X-Experience-API-Version", "1.0.3"));
    assert_eq!((r.status, r.reason()), (504, "upstream_timeout".to_owned()), "{}", r.text());
}
