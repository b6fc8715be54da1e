//! Statement writes through the real edge: what is accepted arrives byte for byte with the LRS
//! credential; what is refused never reaches the LRS, at any body size.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

/// A batch of in-scope statements, padded with JSON whitespace to exactly `len` bytes.
fn batch_of_len(len: usize, last: Option<Value>) -> Vec<u8> {
    let one = statement().to_string().len() + 1;
    let mut items: Vec<Value> = (0..(len / one).max(1) - 1).map(|_| statement()).collect();
    items.push(last.unwrap_or_else(statement));
    let mut text = Value::from(items).to_string();
    while text.len() > len {
        let mut v: Vec<Value> = serde_json::from_str(&text).unwrap();
        v.remove(0);
        text = Value::from(v).to_string();
    }
    padded(&text, len)
}

fn other_learner() -> Value {
    let mut s = statement();
    s["actor"]["account"]["name"] = json!("learner-2");
    s
}

#[test]
fn accepted_statement_reaches_the_lrs_byte_for_byte_with_the_lrs_credential_only() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let body = serde_json::to_vec_pretty(&statement()).unwrap();
    let r = gate.edge(&Req::statements(&token, body.clone()).header("X-Experience-API-Version", "1.0.1"));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = lrs.last_request();
    assert_eq!(got.method, "POST");
    assert_eq!(got.target, "/xapi/statements");
    assert_eq!(got.body, body, "the LRS must receive exactly the client's bytes");
    let lrs_credential = format!("Basic {}", base64_of(&format!("{LRS_USER}:{LRS_PASSWORD}")));
    assert_eq!(got.header("authorization"), Some(lrs_credential.as_str()));
    assert_eq!(got.header("host"), Some(format!("127.0.0.1:{}", lrs.port).as_str()));
    assert_eq!(got.header("x-experience-api-version"), Some("1.0.1"), "the version header passes unchanged");
    for (name, value) in &got.headers {
        assert!(!value.contains(&token), "the session token leaked to the LRS in {name}");
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn bodies_on_both_sides_of_the_replay_buffer_arrive_intact() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    for (len, chunked) in [
        (1024, false),
        (64 * 1024 - 1, false),
        (64 * 1024, false),
        (64 * 1024 + 1, false),
        (64 * 1024 + 1, true),
        (1_000_000, false),
        (1_000_000, true),
    ] {
        let body = batch_of_len(len, None);
        let direct_before = gate.metric("lrsgate_large_body_forwards_total");
        let mut req = Req::statements(&token, body.clone());
        if chunked {
            req = req.chunked();
        }
        let r = gate.edge(&req);
        assert_eq!(r.status, 200, "{len} bytes (chunked: {chunked}): {}", r.text());
        let got = lrs.last_request();
        assert_eq!(got.body.len(), len, "{len} bytes (chunked: {chunked})");
        assert!(got.body == body, "{len} bytes (chunked: {chunked}): body changed on the way");
        assert_eq!(got.header("content-length"), Some(len.to_string().as_str()), "explicit length upstream");
        assert_eq!(got.header("transfer-encoding"), None);
        let ids: Vec<String> = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(ids.len(), serde_json::from_slice::<Vec<Value>>(&body).unwrap().len());
        let direct = gate.metric("lrsgate_large_body_forwards_total") - direct_before;
        assert_eq!(direct, if len > 64 * 1024 { 1.0 } else { 0.0 }, "{len} bytes took the wrong path");
    }
}

#[test]
fn refused_bodies_of_every_size_never_reach_the_lrs() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let before = lrs.stats();
    for len in [1024, 64 * 1024 - 1, 64 * 1024 + 1, 1_000_000] {
        let body = batch_of_len(len, Some(other_learner()));
        let count = serde_json::from_slice::<Vec<Value>>(&body).unwrap().len();
        let r = gate.edge(&Req::statements(&token, body));
        assert_eq!(r.status, 403, "{len}: {}", r.text());
        assert_eq!(r.reason(), "actor_mismatch");
        assert_eq!(r.json()["statement_index"], json!(count - 1), "the error names the bad statement");
    }
    assert_eq!(lrs.stats(), before, "a refused request must open no LRS connection and send nothing");
}

#[test]
fn body_over_the_tenant_limit_is_413_and_never_forwarded() {
    let lrs = StandIn::start();
    let mut opts = GateOptions::new(&[lrs.port]);
    opts.max_body_bytes = 256 * 1024;
    let gate = Gate::start(opts);
    let token = gate.token();
    let before = lrs.stats();
    let body = batch_of_len(300 * 1024, None);
    let r = gate.edge(&Req::statements(&token, body.clone()));
    assert_eq!((r.status, r.reason().as_str()), (413, "body_too_large"));
    let r = gate.edge(&Req::statements(&token, body).chunked());
    assert_eq!((r.status, r.reason().as_str()), (413, "body_too_large"));
    assert_eq!(lrs.stats(), before);
    // Just under the limit still passes.
    let r = gate.edge(&Req::statements(&token, batch_of_len(256 * 1024, None)));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn write_rules_end_to_end() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let with = |path: &[&str], value: Value| {
        let mut s = statement();
        let mut at = &mut s;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        s.to_string().into_bytes()
    };
    let duplicate_actor = statement().to_string().replacen(
        "\"actor\":",
        "\"actor\":{\"mbox\":\"mailto:someone-else@example.org\"},\"actor\":",
        1,
    );
    let rows: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("duplicate_key_is_400", duplicate_actor.into_bytes(), 400, "duplicate_key"),
        ("malformed_json_is_400", b"{\"actor\":".to_vec(), 400, "malformed_json"),
        ("two_ifis_is_400", with(&["actor", "mbox"], json!("mailto:learner-1@lms.example")), 400, "invalid_statement"),
        ("no_ifi_is_400", with(&["actor"], json!({"name": "x"})), 400, "invalid_statement"),
        ("other_actor_is_403", other_learner().to_string().into_bytes(), 403, "actor_mismatch"),
        (
            "cmi5_defined_on_other_activity_is_403",
            {
                let mut s = statement();
                s["object"]["id"] = json!("https://lms.example/course/1/au/2");
                s["context"]["contextActivities"]["category"] =
                    json!([{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}]);
                s.to_string().into_bytes()
            },
            403,
            "activity_mismatch",
        ),
        (
            "other_registration_is_403",
            with(&["context", "registration"], json!("00000000-0000-4000-8000-000000000000")),
            403,
            "registration_mismatch",
        ),
        ("missing_registration_is_403", with(&["context"], json!({})), 403, "registration_mismatch"),
        (
            "voiding_is_403",
            with(&["verb", "id"], json!("http://adlnet.gov/expapi/verbs/voided")),
            403,
            "voiding_refused",
        ),
        (
            "client_authority_is_403",
            with(&["authority"], json!({"mbox": "mailto:lrs@x.org"})),
            403,
            "authority_refused",
        ),
    ];
    let before = lrs.stats();
    for (rule, body, status, reason) in rows {
        let r = gate.edge(&Req::statements(&token, body));
        assert_eq!((r.status, r.reason().as_str()), (status, reason), "{rule}: {}", r.text());
        assert_eq!(r.header("X-Experience-API-Version"), Some("1.0.3"), "{rule}");
        assert_eq!(r.header("Content-Type"), Some("application/json"), "{rule}");
    }
    assert_eq!(lrs.stats(), before, "no refused write reached the LRS");
    assert!(gate.metric("lrsgate_denials_total{reason=\"actor_mismatch\",service=\"edge\"}") >= 1.0);
}

#[test]
fn put_with_statement_id() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let s = statement();
    let id = s["id"].as_str().unwrap().to_owned();
    let put = |target: &str, body: Vec<u8>| {
        let mut r = Req::statements(&token, body);
        r.method = "PUT".into();
        r.target = target.into();
        gate.edge(&r)
    };
    let r = put(&format!("/xapi/statements?statementId={id}"), s.to_string().into_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(lrs.last_request().target, format!("/xapi/statements?statementId={id}"));
    let before = lrs.stats();
    let r = put("/xapi/statements?statementId=00000000-0000-4000-8000-000000000000", s.to_string().into_bytes());
    assert_eq!((r.status, r.reason().as_str()), (400, "statement_id_mismatch"));
    let r = put("/xapi/statements", s.to_string().into_bytes());
    assert_eq!((r.status, r.reason().as_str()), (400, "missing_parameter"));
    let r = put(&format!("/xapi/statements?statementId={id}"), Value::from(vec![s.clone()]).to_string().into_bytes());
    assert_eq!((r.status, r.reason().as_str()), (400, "not_one_statement"));
    let r = put(&format!("/xapi/statements?statementId={id}&statementId={id}"), s.to_string().into_bytes());
    assert_eq!((r.status, r.reason().as_str()), (400, "duplicate_parameter"));
    assert_eq!(lrs.stats(), before);
}

#[test]
fn other_content_types_are_refused_never_forwarded() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let before = lrs.stats();
    let r =
        gate.edge(&Req::statements(&token, statement().to_string().into_bytes()).header("Content-Type", "text/plain"));
    assert_eq!((r.status, r.reason().as_str()), (400, "unsupported_content_type"));
    let r = gate.edge(&Req::statements(&token, statement().to_string().into_bytes()).header("Content-Type", ""));
    assert_eq!((r.status, r.reason().as_str()), (400, "unsupported_content_type"));
    assert_eq!(lrs.stats(), before);
}

#[test]
fn expect_100_continue_is_answered() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let body = statement().to_string().into_bytes();
    let r = gate.edge(&Req::statements(&token, body.clone()).header("Expect", "100-continue"));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = lrs.last_request();
    assert_eq!(got.body, body);
    assert_eq!(got.header("expect"), None, "Expect is answered at the edge, not passed on");
}

#[test]
fn nodes_are_balanced_round_robin() {
    let a = StandIn::start();
    let b = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[a.port, b.port]));
    let token = gate.token();
    for _ in 0..6 {
        let r = gate.edge(&Req::statements(&token, statement().to_string().into_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!((a.requests().len(), b.requests().len()), (3, 3));
}

#[test]
fn upstream_connections_are_pooled_on_both_paths() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let (connections_before, _) = lrs.stats();
    for _ in 0..20 {
        let r = gate.edge(&Req::statements(&token, statement().to_string().into_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let (after_small, requests) = lrs.stats();
    assert_eq!(requests, 20);
    // Requests are sequential, so one pooled connection per worker thread is the most needed.
    assert!(
        after_small - connections_before <= 2,
        "20 requests opened {} LRS connections",
        after_small - connections_before
    );
    for _ in 0..10 {
        let r = gate.edge(&Req::statements(&token, batch_of_len(100_000, None)));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let (after_large, _) = lrs.stats();
    assert!(after_large - after_small <= 2, "10 large requests opened {} LRS connections", after_large - after_small);
}

fn multipart(parts: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (headers, content) in parts {
        body.extend_from_slice(format!("--lrsgate-test\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--lrsgate-test--\r\n");
    body
}

#[test]
fn multipart_statements_with_attachments() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let mut s = statement();
    let attachment: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let sha2 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&attachment))
    };
    s["attachments"] = json!([{"usageType": "https://example.com/usage/certificate", "display": {"en-US": "certificate"},
        "contentType": "application/octet-stream", "length": attachment.len(), "sha2": sha2}]);
    let attachment_headers = format!(
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {sha2}"
    );
    let send_multipart = |body: Vec<u8>| {
        gate.edge(&Req::statements(&token, body).header("Content-Type", "multipart/mixed; boundary=lrsgate-test"))
    };
    let body = multipart(&[
        ("Content-Type: application/json", s.to_string().into_bytes()),
        (&attachment_headers, attachment.clone()),
    ]);
    let r = send_multipart(body.clone());
    assert_eq!(r.status, 200, "{}", r.text());
    let got = lrs.last_request();
    assert!(got.body == body, "the multipart body reaches the LRS intact");
    assert_eq!(got.header("content-type"), Some("multipart/mixed; boundary=lrsgate-test"));

    let before = lrs.stats();
    let mut other = s.clone();
    other["actor"]["account"]["name"] = json!("learner-2");
    let no_hash = attachment_headers.replace(&format!("\r\nX-Experience-API-Hash: {sha2}"), "");
    let rows: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "other_learner_in_first_part_is_403",
            multipart(&[
                ("Content-Type: application/json", other.to_string().into_bytes()),
                (&attachment_headers, attachment.clone()),
            ]),
            403,
            "actor_mismatch",
        ),
        (
            "attachment_without_hash_is_400",
            multipart(&[
                ("Content-Type: application/json", s.to_string().into_bytes()),
                (&no_hash, attachment.clone()),
            ]),
            400,
            "attachment_hash_missing",
        ),
        (
            "first_part_not_json_is_400",
            multipart(&[("Content-Type: text/plain", s.to_string().into_bytes())]),
            400,
            "malformed_multipart",
        ),
        ("unframed_body_is_400", s.to_string().into_bytes(), 400, "malformed_multipart"),
        (
            "duplicate_key_in_first_part_is_400",
            multipart(&[("Content-Type: application/json", b"{\"actor\":{},\"actor\":{}}".to_vec())]),
            400,
            "duplicate_key",
        ),
    ];
    for (rule, body, status, reason) in rows {
        let r = send_multipart(body);
        assert_eq!((r.status, r.reason().as_str()), (status, reason), "{rule}: {}", r.text());
    }
    let r = gate.edge(&Req::statements(&token, body).header("Content-Type", "multipart/mixed"));
    assert_eq!((r.status, r.reason().as_str()), (400, "invalid_boundary"), "no boundary");
    assert_eq!(lrs.stats(), before, "no refused multipart request reached the LRS");
}

#[test]
fn a_body_that_stalls_is_refused_with_408_and_never_forwarded() {
    use std::io::{Read, Write};
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let before = lrs.stats();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", gate.edge)).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /xapi/statements HTTP/1.1\r\nHost: acme.test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"actor\":"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = std::time::Instant::now();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("body_timeout"), "{response}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "the configured 2 s deadline applies");
    assert_eq!(lrs.stats(), before);
}
