//! Operating lrsgate: graceful upgrades hand the listeners to a new process without failing a
//! request.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

#[test]
fn graceful_upgrade_hands_over_the_listeners_without_a_failed_request() {
    let lrs = StandIn::start();
    let mut gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let old_pid = gate.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, edge, token) = (stop.clone(), gate.edge, token.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failures) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let req = Req::statements(&token, statement().to_string().into_bytes());
                match try_send(edge, &req) {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => failures.push(format!("HTTP {}: {}", r.status, r.text())),
                    Err(e) => failures.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (ok, failures)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    gate.upgrade();
    assert_ne!(gate.pid(), old_pid);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = load.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} request(s) failed during the upgrade: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests were sent");
    // The new process serves both the edge and the token service.
    let r = gate.edge(&Req::statements(&gate.token(), statement().to_string().into_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
}
