//! Config checks, reloads and the CLI, through the real binary.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn lrsgate(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lrsgate"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(dir: &std::path::Path, tenants: &str) -> String {
    std::fs::write(dir.join("lrsgate.toml"), "[listen]\nedge = \"127.0.0.1:0\"\n").unwrap();
    std::fs::write(dir.join("tenants.toml"), tenants).unwrap();
    dir.join("lrsgate.toml").display().to_string()
}

#[test]
fn check_config_names_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let good = tenants_toml(&[9], 1024);
    let env = [("TEST_LRS_PASSWORD", "pw")];
    let conf = write_config(dir.path(), &good);
    let (code, out, err) = lrsgate(&["check-config", "-c", &conf], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK (2 tenant(s))"), "{out}");

    let rows = [
        ("short_secret", good.replace(SECRET_ACME, "short"), "tenant[0].signing.secret: secret is 5 bytes"),
        (
            "unknown_key",
            good.replace("[tenant.tokens]", "[tenant.tokens]\nrefresh = true"),
            "tenant[0].tokens.refresh: unknown field",
        ),
        (
            "duplicate_host",
            good.replace("\"other.test\"", "\"acme.test\""),
            "tenant[1].hosts: host \"acme.test\" is already served by tenant \"acme\"",
        ),
        (
            "unset_env",
            good.replace("TEST_LRS_PASSWORD", "NOT_SET_BY_ANYONE"),
            "tenant[0].upstream.password: environment variable NOT_SET_BY_ANYONE is not set",
        ),
        (
            "unknown_probe",
            good.replacen("password = \"${TEST_LRS_PASSWORD}\"", "password = \"x\"\nhealth_check = \"icmp\"", 1),
            "tenant[0].upstream.health_check: unknown value \"icmp\" (known: tcp, http)",
        ),
        (
            "zero_timeout",
            good.replacen("password = \"${TEST_LRS_PASSWORD}\"", "password = \"x\"\nread_timeout_ms = 0", 1),
            "tenant[0].upstream.read_timeout_ms: must be between 1 and 3600000",
        ),
        (
            "alg_none",
            good.replace("[tenant.signing]", "[tenant.signing]\nalgorithms = [\"none\"]"),
            "tenant[0].signing.algorithms: algorithm \"none\" is not supported",
        ),
    ];
    for (rule, text, message) in rows {
        let conf = write_config(dir.path(), &text);
        let (code, _, err) = lrsgate(&["check-config", "-c", &conf], &env);
        assert_eq!(code, 2, "{rule}");
        assert!(err.contains(message), "{rule}: {err}");
    }
    std::fs::write(dir.path().join("lrsgate.toml"), "[limits]\nmax_body = 1\n").unwrap();
    let (code, _, err) = lrsgate(&["check-config", "-c", &conf], &env);
    assert_eq!(code, 2);
    assert!(err.contains("lrsgate.toml: limits.max_body: unknown field"), "{err}");
}

#[test]
fn serve_refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path(), &tenants_toml(&[9], 1024).replace(SECRET_ACME, "short"));
    let (code, _, err) = lrsgate(&["serve", "-c", &conf], &[("TEST_LRS_PASSWORD", "pw")]);
    assert_eq!(code, 2);
    assert!(err.contains("signing.secret"), "{err}");
}

#[test]
fn apikey_new_prints_a_key_and_its_hash() {
    let (code, out, _) = lrsgate(&["apikey", "new"], &[]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let key = lines[1];
    let hash = lines[3];
    assert!(key.starts_with("lrsk_") && key.len() > 40, "{out}");
    assert_eq!(hash, api_key_hash(key));
    let (_, again, _) = lrsgate(&["apikey", "new"], &[]);
    assert_ne!(again, out, "every key is new");
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reload_keeps_the_running_config_on_a_bad_file_and_swaps_a_good_one() {
    let a = StandIn::start();
    let b = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[a.port]));
    let token = gate.token();
    let post = || gate.edge(&Req::statements(&token, statement().to_string().into_bytes())).status;
    assert_eq!(post(), 200);

    // A bad file (and a SIGHUP) changes nothing.
    std::fs::write(gate.tenants_file(), tenants_toml(&[b.port], 1024).replace(SECRET_ACME, "short")).unwrap();
    gate.signal("HUP");
    wait_until("the rejected reload to be counted", || {
        gate.metric("lrsgate_config_reloads_total{result=\"rejected\"}") >= 1.0
    });
    assert_eq!(post(), 200);
    assert_eq!(b.requests().len(), 0, "the refused file must not be used");
    assert!(gate.log().contains("tenants file refused"), "{}", gate.log());

    // A good file re-points the tenant to node b, picked up on SIGHUP.
    std::fs::write(gate.tenants_file(), tenants_toml(&[b.port], 1024 * 1024)).unwrap();
    gate.signal("HUP");
    wait_until("the new upstream to serve", || post() == 200 && !b.requests().is_empty());
    let a_before = a.requests().len();
    assert_eq!(post(), 200);
    assert_eq!(a.requests().len(), a_before, "traffic moved to the new node");

    // A change to the file alone is noticed too.
    std::fs::write(gate.tenants_file(), tenants_toml(&[a.port], 1024 * 1024)).unwrap();
    wait_until("the file change to be noticed", || {
        let before = a.requests().len();
        post() == 200 && a.requests().len() > before
    });
    assert!(gate.metric("lrsgate_config_reloads_total{result=\"ok\"}") >= 2.0);
}

#[test]
fn metrics_endpoint_lists_lrsgate_metrics() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let r = send(gate.metrics, &Req::get("/metrics"));
    assert_eq!(r.status, 200);
    for name in ["lrsgate_tokens_issued_total", "lrsgate_large_body_forwards_total"] {
        assert!(r.text().contains(name), "{name} missing");
    }
}
