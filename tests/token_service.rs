//! The LMS-facing token service through the real binary.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn issues_a_scoped_token_the_edge_accepts() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let r = gate.issue("acme.test", API_KEY_ACME, &token_request());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), None, "the LMS-facing service sends no CORS headers");
    let body = r.json();
    assert_eq!(body["expires_in"], json!(600), "the tenant default TTL");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    let claims = payload(body["token"].as_str().unwrap());
    assert_eq!(claims["aud"], "acme");
    assert_eq!(claims["tenant_id"], "acme");
    assert_eq!(claims["iss"], "lrsgate");
    assert_eq!(claims["registration"], REGISTRATION);
    assert_eq!(claims["activity_id"], ACTIVITY);
    assert_eq!(claims["session_id"], body["session_id"]);
    assert_eq!(claims["permissions"]["write"], "actor-activity-registration-scoped");
    assert_eq!(claims["actor"].get("name"), None, "no display name (personal data) in the token");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 600);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 36));
    let r = gate.edge(&Req::statements(body["token"].as_str().unwrap(), statement().to_string().into_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn ttl_is_capped_by_the_tenant_maximum() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let mut req = token_request();
    req["ttl_seconds"] = json!(999_999);
    assert_eq!(gate.issue("acme.test", API_KEY_ACME, &req).json()["expires_in"], json!(3600));
    req["ttl_seconds"] = json!(60);
    assert_eq!(gate.issue("acme.test", API_KEY_ACME, &req).json()["expires_in"], json!(60));
}

#[test]
fn api_key_rules() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let rows = [
        ("wrong_key_is_401", "acme.test", Some("lrsk_wrong"), 401, "api_key_invalid"),
        ("other_tenants_key_is_401", "acme.test", Some(API_KEY_OTHER), 401, "api_key_invalid"),
        ("missing_key_is_401", "acme.test", None, 401, "api_key_missing"),
        ("unknown_host_is_404", "nobody.test", Some(API_KEY_ACME), 404, "unknown_tenant"),
    ];
    for (rule, host, key, status, reason) in rows {
        let mut req = Req::post("/auth/token", token_request().to_string().into_bytes())
            .host(host)
            .header("Content-Type", "application/json");
        if let Some(key) = key {
            req = req.header("Authorization", &format!("Bearer {key}"));
        }
        let r = send(gate.token, &req);
        assert_eq!((r.status, r.reason().as_str()), (status, reason), "{rule}");
    }
    let r = send(gate.token, &Req::get("/auth/token").header("Authorization", &format!("Bearer {API_KEY_ACME}")));
    assert_eq!((r.status, r.reason().as_str()), (405, "method_not_allowed"));
    assert_eq!(gate.metric("lrsgate_tokens_issued_total"), 0.0);
    assert!(gate.metric("lrsgate_denials_total{reason=\"api_key_invalid\",service=\"token\"}") >= 2.0);
}

#[test]
fn request_validation_rules() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let with = |key: &str, value: Value| {
        let mut v = token_request();
        v[key] = value;
        v.to_string()
    };
    let rows: Vec<(&str, String, &str)> = vec![
        (
            "actor_with_two_ifis",
            with("actor", json!({"mbox": "mailto:a@x.org", "openid": "https://id/a"})),
            "invalid_actor",
        ),
        ("actor_without_ifi", with("actor", json!({"name": "Ann"})), "invalid_actor"),
        ("registration_not_uuid", with("registration", json!("r-1")), "invalid_registration"),
        ("relative_activity_id", with("activity_id", json!("au/1")), "invalid_activity_id"),
        ("unknown_scope", with("permissions", json!({"write": "all", "read": "all"})), "unknown_scope"),
        (
            "read_only_scope_for_writes",
            with("permissions", json!({"write": "actor-cross-course-certification", "read": "false"})),
            "scope_not_writable",
        ),
        ("unknown_field", with("is_admin", json!(true)), "invalid_request"),
        ("zero_ttl", with("ttl_seconds", json!(0)), "invalid_ttl"),
        ("duplicate_key", token_request().to_string().replacen("{", "{\"registration\":\"x\",", 1), "duplicate_key"),
        ("not_json", "actor=me".into(), "malformed_json"),
    ];
    for (rule, body, reason) in rows {
        let r = send(
            gate.token,
            &Req::post("/auth/token", body.into_bytes())
                .host("acme.test")
                .header("Authorization", &format!("Bearer {API_KEY_ACME}"))
                .header("Content-Type", "application/json"),
        );
        assert_eq!((r.status, r.reason().as_str()), (400, reason), "{rule}: {}", r.text());
    }
    let r = send(
        gate.token,
        &Req::post("/auth/token", token_request().to_string().into_bytes())
            .host("acme.test")
            .header("Authorization", &format!("Bearer {API_KEY_ACME}"))
            .header("Content-Type", "text/plain"),
    );
    assert_eq!((r.status, r.reason().as_str()), (400, "unsupported_content_type"));
}
