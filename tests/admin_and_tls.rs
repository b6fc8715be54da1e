//! Postgres mode's admin API (real admin authentication, tenant management that reaches
//! traffic) and the edge's TLS listener choosing each tenant's certificate by SNI from the
//! snapshot (a certificate added at runtime is served without a restart; a Host naming another
//! tenant than the SNI is 421). Against a real PostgreSQL the test starts itself.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::*;
use serde_json::{json, Value};

fn setup() -> (PgCluster, String, std::path::PathBuf) {
    let pg = PgCluster::start();
    let keys = lrsgate::secrets::MasterKeys::generate_entry("k1");
    let config = pg.path().join("cli.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\nmaster_keys = \"{keys}\"\n", pg.url())).unwrap();
    cli(&config, &["migrate"], &[]).unwrap();
    (pg, keys, config)
}

fn start_gate(pg: &PgCluster, keys: &str, lrs: &StandIn, tls: bool) -> Gate {
    let mut opts = GateOptions::new(&[lrs.port]);
    opts.database = Some((pg.url(), keys.to_owned()));
    opts.edge_tls = tls;
    Gate::start(opts)
}

fn admin(gate: &Gate, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let mut req = Req::new(method, path).header("Authorization", &format!("Bearer {key}"));
    if let Some(body) = body {
        req = req.header("Content-Type", "application/json");
        req.body = body.to_string().into_bytes();
    }
    send(gate.admin, &req)
}

fn eventually(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_admin_api_needs_an_admin_key_and_manages_tenants_that_serve() {
    let (pg, keys, config) = setup();
    let lrs = StandIn::start();
    let gate = start_gate(&pg, &keys, &lrs, false);
    let admin_key =
        cli(&config, &["admin-key", "new", "--description", "ops"], &[]).unwrap()["key"].as_str().unwrap().to_owned();
    assert!(admin_key.starts_with("lrsa_"));

    // Real authentication: no key, a wrong key, an LMS-looking key: all 401.
    let r = send(gate.admin, &Req::get("/tenants"));
    assert_eq!((r.status, r.reason().as_str()), (401, "admin_key_missing"));
    for wrong in ["lrsa_not-a-key", "anything"] {
        let r = admin(&gate, wrong, "GET", "/tenants", None);
        assert_eq!((r.status, r.reason().as_str()), (401, "admin_key_invalid"), "{wrong}");
    }
    assert_eq!(admin(&gate, &admin_key, "GET", "/tenants", None).json(), json!([]));

    // Create a tenant with a host and an LRS node; make an API key (shown once).
    let created = admin(
        &gate,
        &admin_key,
        "POST",
        "/tenants",
        Some(json!({
            "id": "acme", "hosts": ["acme.test"], "lrs_username": LRS_USER, "lrs_password": LRS_PASSWORD,
            "upstreams": [{"url": format!("http://127.0.0.1:{}/xapi", lrs.port), "weight": 2}],
            "public_origin": "https://lrs.acme.test"
        })),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["upstreams"][0]["weight"], 2);
    assert!(!created.text().contains(LRS_PASSWORD), "no secret in answers");
    let key = admin(&gate, &admin_key, "POST", "/tenants/acme/api-keys", Some(json!({"description": "LMS"})));
    assert_eq!(key.status, 201, "{}", key.text());
    let lms_key = key.json()["key"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(2), "the new tenant issues tokens", || {
        gate.issue("acme.test", &lms_key, &token_request()).status == 200
    });
    let token = gate.issue("acme.test", &lms_key, &token_request()).json()["token"].as_str().unwrap().to_owned();
    assert_eq!(gate.edge(&Req::statements(&token, statement().to_string().into_bytes())).status, 200);

    // Errors are precise and change nothing.
    type Row<'a> = (&'a str, &'a str, &'a str, Option<Value>, u16, &'a str);
    let rows: Vec<Row<'_>> = vec![
        (
            "duplicate_tenant",
            "POST",
            "/tenants",
            Some(json!({"id": "acme", "lrs_username": "u", "lrs_password": "p"})),
            409,
            "conflict",
        ),
        ("unknown_tenant", "GET", "/tenants/nobody", None, 404, "not_found"),
        ("host_with_port", "POST", "/tenants/acme/hosts", Some(json!({"host": "x.test:8080"})), 400, "invalid_request"),
        ("host_of_another_tenant", "POST", "/tenants/acme/hosts", Some(json!({"host": "acme.test"})), 409, "conflict"),
        (
            "unknown_field",
            "POST",
            "/tenants/acme/hosts",
            Some(json!({"host": "y.test", "admin": true})),
            400,
            "invalid_request",
        ),
        ("bad_upstream", "POST", "/tenants/acme/upstreams", Some(json!({"url": "ftp://lrs"})), 400, "invalid_request"),
        (
            "bad_weight",
            "POST",
            "/tenants/acme/upstreams",
            Some(json!({"url": "http://lrs/xapi", "weight": 0})),
            400,
            "invalid_request",
        ),
        (
            "bad_origin",
            "POST",
            "/tenants/acme/cors-origins",
            Some(json!({"origin": "https://c.example/path"})),
            400,
            "invalid_request",
        ),
        ("unknown_route", "GET", "/everything", None, 404, "unknown_route"),
        // The names rule the tenants file uses (config::names): no silent trimming, ids of at
        // most 64 characters, a named LRS user.
        ("host_with_space", "POST", "/tenants/acme/hosts", Some(json!({"host": " z.test"})), 400, "invalid_request"),
        ("host_empty_label", "POST", "/tenants/acme/hosts", Some(json!({"host": "z..test"})), 400, "invalid_request"),
        (
            "tenant_id_too_long",
            "POST",
            "/tenants",
            Some(json!({"id": "a".repeat(65), "lrs_username": "u", "lrs_password": "p"})),
            400,
            "invalid_request",
        ),
        (
            "empty_lrs_user",
            "PUT",
            "/tenants/acme/lrs-credential",
            Some(json!({"username": "", "password": "p"})),
            400,
            "invalid_request",
        ),
    ];
    for (rule, method, path, body, status, reason) in rows {
        let r = admin(&gate, &admin_key, method, path, body);
        assert_eq!((r.status, r.reason().as_str()), (status, reason), "{rule}: {}", r.text());
    }

    // Limits and switches: checked with the reload's rules before anything is committed.
    let small = admin(&gate, &admin_key, "PATCH", "/tenants/acme", Some(json!({"max_body_bytes": 600})));
    assert_eq!(small.status, 200, "{}", small.text());
    eventually(Duration::from_secs(2), "the new body limit", || {
        gate.edge(&Req::statements(&token, statement().to_string().into_bytes())).reason() == "body_too_large"
    });
    for (rule, body, needle) in [
        (
            "grace_longer_than_session",
            json!({"session_max_seconds": 60, "terminated_grace_seconds": 61}),
            "terminated_grace_seconds",
        ),
        ("zero_fetch_ttl", json!({"fetch_ttl_seconds": 0}), "fetch_ttl_seconds"),
        ("unknown_setting", json!({"max_body_byte": 1}), "unknown field"),
        ("unknown_alternate_syntax", json!({"policy_alternate_syntax": "maybe"}), "not allowed"),
    ] {
        let r = admin(&gate, &admin_key, "PATCH", "/tenants/acme", Some(body));
        assert_eq!((r.status, r.reason().as_str()), (400, "invalid_request"), "{rule}: {}", r.text());
        assert!(r.text().contains(needle), "{rule}: {}", r.text());
    }
    let back = admin(&gate, &admin_key, "PATCH", "/tenants/acme", Some(json!({"max_body_bytes": null})));
    assert_eq!(back.status, 200, "{}", back.text());
    eventually(Duration::from_secs(2), "the default body limit again", || {
        gate.edge(&Req::statements(&token, statement().to_string().into_bytes())).status == 200
    });

    // Suspend through the API: every service refuses; resume: it serves again.
    assert_eq!(admin(&gate, &admin_key, "POST", "/tenants/acme/suspend", None).status, 200);
    eventually(Duration::from_secs(2), "suspended", || {
        gate.edge(&Req::statements(&token, statement().to_string().into_bytes())).reason() == "tenant_suspended"
    });
    assert_eq!(admin(&gate, &admin_key, "GET", "/tenants/acme", None).json()["status"], "suspended");
    assert_eq!(admin(&gate, &admin_key, "POST", "/tenants/acme/resume", None).status, 200);
    eventually(Duration::from_secs(2), "resumed", || {
        gate.edge(&Req::statements(&token, statement().to_string().into_bytes())).status == 200
    });

    // An IPv6 literal is a host under the same rule as in the tenants file (migration 0005),
    // and the edge resolves it from a Host header with a port.
    assert_eq!(admin(&gate, &admin_key, "POST", "/tenants/acme/hosts", Some(json!({"host": "[::1]"}))).status, 200);
    eventually(Duration::from_secs(2), "the IPv6 host served", || {
        gate.edge(&Req::get("/xapi/statements").bearer(&token).host("[::1]:8443")).status == 200
    });
    assert_eq!(admin(&gate, &admin_key, "DELETE", "/tenants/acme/hosts/%5B%3A%3A1%5D", None).status, 200);

    // A new host and a CORS origin through the API reach the edge.
    assert_eq!(
        admin(&gate, &admin_key, "POST", "/tenants/acme/hosts", Some(json!({"host": "lrs2.acme.test"}))).status,
        200
    );
    let origin = admin(
        &gate,
        &admin_key,
        "POST",
        "/tenants/acme/cors-origins",
        Some(json!({"origin": "https://Content.example"})),
    );
    assert_eq!(origin.json()["origin"], "https://content.example");
    eventually(Duration::from_secs(2), "host and origin served", || {
        let r = gate.edge(
            &Req::get("/xapi/statements")
                .bearer(&token)
                .host("lrs2.acme.test")
                .header("Origin", "https://content.example"),
        );
        r.status == 200 && r.header("Access-Control-Allow-Origin") == Some("https://content.example")
    });
    // Removing it: refused again. Percent-encoded path segments name the origin.
    let r = admin(&gate, &admin_key, "DELETE", "/tenants/acme/cors-origins/https%3A%2F%2Fcontent.example", None);
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(Duration::from_secs(2), "origin removed", || {
        gate.edge(&Req::get("/xapi/statements").bearer(&token).header("Origin", "https://content.example")).status
            == 403
    });
    let listed = admin(&gate, &admin_key, "GET", "/tenants", None).json();
    assert_eq!(listed, json!([{"id": "acme", "status": "active", "hosts": ["acme.test", "lrs2.acme.test"]}]));
}

/// A self-signed certificate for `host`: (cert PEM path, key PEM path).
fn certificate(dir: &std::path::Path, host: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join(format!("{host}.crt")), dir.join(format!("{host}.key")));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={host}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{host}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// The subject of the certificate the TLS listener presents for `sni`, or `None` when the
/// handshake fails.
fn served_subject(port: u16, sni: &str) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {sni} </dev/null 2>/dev/null | openssl x509 -noout -subject"
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// An HTTPS request with this SNI and Host: the status curl saw (0: no answer).
fn https_status(port: u16, sni: &str, host: &str, path: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--resolve"])
        .arg(format!("{sni}:{port}:127.0.0.1"))
        .args(["-H", &format!("Host: {host}")])
        .arg(format!("https://{sni}:{port}{path}"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[test]
fn tls_certificates_are_chosen_by_sni_from_the_snapshot_and_sni_must_match_host() {
    let (pg, keys, config) = setup();
    let lrs = StandIn::start();
    let env = [("LRSGATE_LRS_PASSWORD", LRS_PASSWORD)];
    let upstream = format!("http://127.0.0.1:{}/xapi", lrs.port);
    for (id, host) in [("acme", "acme.test"), ("other", "other.test")] {
        cli(
            &config,
            &["tenant", "create", id, "--host", host, "--upstream", &upstream, "--lrs-username", LRS_USER],
            &env,
        )
        .unwrap();
        let (cert, key) = certificate(pg.path(), host);
        cli(&config, &["cert", id, host, "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()], &[])
            .unwrap();
    }
    let gate = start_gate(&pg, &keys, &lrs, true);

    assert_eq!(served_subject(gate.edge_tls, "acme.test").as_deref(), Some("subject=CN = acme.test"));
    assert_eq!(served_subject(gate.edge_tls, "other.test").as_deref(), Some("subject=CN = other.test"));
    assert_eq!(served_subject(gate.edge_tls, "unknown.test"), None, "no tenant, no certificate");

    assert_eq!(https_status(gate.edge_tls, "acme.test", "acme.test", "/xapi/about"), 200);
    let before = lrs.stats();
    assert_eq!(https_status(gate.edge_tls, "acme.test", "other.test", "/xapi/about"), 421, "Host names another tenant");
    assert_eq!(lrs.stats().1, before.1, "a misdirected request never reaches the LRS");

    // A tenant and certificate added at runtime are served without a restart.
    cli(
        &config,
        &["tenant", "create", "late", "--host", "late.test", "--upstream", &upstream, "--lrs-username", "u"],
        &env,
    )
    .unwrap();
    let (cert, key) = certificate(pg.path(), "late.test");
    cli(&config, &["cert", "late", "late.test", "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()], &[])
        .unwrap();
    eventually(Duration::from_secs(3), "the new certificate", || {
        served_subject(gate.edge_tls, "late.test").as_deref() == Some("subject=CN = late.test")
    });
    assert_eq!(https_status(gate.edge_tls, "late.test", "late.test", "/xapi/about"), 200);

    // A key that does not belong to the certificate is refused by the CLI.
    let (other_cert, _) = certificate(pg.path(), "mismatch.test");
    let e = cli(
        &config,
        &["cert", "late", "late.test", "--cert", other_cert.to_str().unwrap(), "--key", key.to_str().unwrap()],
        &[],
    )
    .unwrap_err();
    assert!(e.contains("does not belong"), "{e}");
}
