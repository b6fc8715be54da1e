//! The cmi5 launch flow through the real binary: the fetch URL (once, racing, expiry, wrong
//! tenant), session lifetime (terminated + grace, the LMS's end, revocation) and the cmi5
//! session rules, each refusal proven to leave the LRS untouched.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const PUBLIC_ORIGIN: &str = "https://lrs.acme.test";
const CMI5_CATEGORY: &str = "https://w3id.org/xapi/cmi5/context/categories/cmi5";
const VERBS: &str = "http://adlnet.gov/expapi/verbs/";

fn gate(lrs: &StandIn, sessions: &str) -> Gate {
    Gate::start(
        GateOptions::new(&[lrs.port])
            .acme_key(&format!("public_origin = \"{PUBLIC_ORIGIN}\""))
            .acme(&format!("[tenant.sessions]\n{sessions}")),
    )
}

/// A cmi5 token request for `session_id`, delivered through a fetch URL.
fn cmi5_request(session_id: &str) -> Value {
    let mut r = token_request();
    r["delivery"] = json!("cmi5");
    r["session_id"] = json!(session_id);
    r
}

/// A statement of the default learner in `session_id`: cmi5-defined (with the cmi5 category)
/// when `defined`, with the result cmi5 asks of the verb.
fn cmi5_statement(verb: &str, session_id: &str, defined: bool) -> Value {
    let mut s = statement();
    s["verb"] = json!({"id": format!("{VERBS}{verb}")});
    s["context"]["extensions"]["https://w3id.org/xapi/cmi5/context/extensions/sessionid"] = json!(session_id);
    if defined {
        s["context"]["contextActivities"]["category"] = json!([{"id": CMI5_CATEGORY}]);
    }
    s["result"] = match verb {
        "completed" => json!({"completion": true, "duration": "PT1M"}),
        "passed" => json!({"success": true, "duration": "PT1M"}),
        "failed" => json!({"success": false, "duration": "PT1M"}),
        "terminated" => json!({"duration": "PT2M"}),
        _ => json!({}),
    };
    if verb != "completed" && verb != "passed" && verb != "failed" && verb != "terminated" {
        s.as_object_mut().unwrap().remove("result");
    }
    s
}

fn post(token: &str, statement: &Value) -> Req {
    Req::statements("", statement.to_string().into_bytes()).basic(token)
}

/// The path of a fetch URL on the public origin.
fn fetch_path(fetch_url: &str) -> String {
    fetch_url.strip_prefix(PUBLIC_ORIGIN).expect("the fetch URL is on the public origin").to_owned()
}

/// Ask for a cmi5 launch and return the fetch URL's path.
fn launch(gate: &Gate, session_id: &str) -> String {
    let r = gate.issue("acme.test", API_KEY_ACME, &cmi5_request(session_id));
    assert_eq!(r.status, 200, "{}", r.text());
    fetch_path(r.json()["fetch_url"].as_str().unwrap())
}

fn fetch(gate: &Gate, path: &str) -> Value {
    let r = gate.edge(&Req::post(path, Vec::new()));
    assert_eq!(r.status, 200, "fetch answers are always 200: {}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    r.json()
}

fn auth_token(answer: &Value) -> String {
    answer["auth-token"].as_str().unwrap_or_else(|| panic!("no auth-token: {answer}")).to_owned()
}

#[test]
fn the_fetch_url_gives_the_token_once_on_the_public_origin() {
    let lrs = StandIn::start();
    let gate = gate(&lrs, "max_seconds = 7200");
    let r = gate.issue("acme.test", API_KEY_ACME, &cmi5_request("s-fetch"));
    assert_eq!(r.status, 200, "{}", r.text());
    let reply = r.json();
    assert!(reply.get("token").is_none(), "the token goes to the AU, not the LMS: {reply}");
    assert_eq!(reply["expires_in"], 7200, "a cmi5 session lives for the tenant's maximum session length");
    assert_eq!(reply["session_id"], "s-fetch");
    assert!(reply["fetch_expires_at"].as_str().is_some());
    let url = reply["fetch_url"].as_str().unwrap();
    let code = url.strip_prefix(&format!("{PUBLIC_ORIGIN}/cmi5/fetch/")).expect("fetch URL shape");
    assert_eq!(code.len(), 43, "256 random bits, base64url");
    let path = fetch_path(url);
    assert_ne!(launch(&gate, "s-fetch"), path, "unique per launch");

    let before = lrs.stats();
    for method in ["GET", "PUT", "DELETE"] {
        let r = gate.edge(&Req::new(method, &path));
        assert_eq!((r.status, r.reason().as_str()), (405, "method_not_allowed"), "{method}");
    }
    let token = auth_token(&fetch(&gate, &path));
    let again = fetch(&gate, &path);
    assert_eq!(again["error-code"], "1", "{again}");
    assert!(again.get("auth-token").is_none());
    assert!(again["error-text"].as_str().is_some());
    assert_eq!(lrs.stats(), before, "the fetch URL never reaches the LRS");

    // The auth-token is exactly what the edge accepts after `Basic `.
    let r = gate.edge(&post(&token, &cmi5_statement("initialized", "s-fetch", true)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(lrs.last_request().header("authorization"), Some(lrs_basic().as_str()));
    assert!(gate.metric("lrsgate_cmi5_fetch_total{outcome=\"redeemed\"}") >= 1.0);
    assert!(gate.metric("lrsgate_denials_total{reason=\"fetch_used_or_expired\",service=\"edge\"}") >= 1.0);
}

fn lrs_basic() -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{LRS_USER}:{LRS_PASSWORD}")))
}

#[test]
fn forged_and_foreign_fetch_codes_are_a_security_error() {
    let lrs = StandIn::start();
    let gate = gate(&lrs, "");
    let path = launch(&gate, "s-foreign");
    let forged = format!("/cmi5/fetch/{}", "A".repeat(43));
    for (rule, req) in [
        ("forged_code", Req::post(&forged, Vec::new())),
        ("malformed_code", Req::post("/cmi5/fetch/abc", Vec::new())),
        ("another_tenants_code", Req::post(&path, Vec::new()).host("other.test")),
    ] {
        let r = gate.edge(&req);
        assert_eq!(r.status, 200, "{rule}");
        assert_eq!(r.json()["error-code"], "2", "{rule}: {}", r.text());
    }
    // The real code still works once: the foreign attempt did not spend it.
    auth_token(&fetch(&gate, &path));
}

#[test]
fn racing_fetches_yield_exactly_one_token() {
    let lrs = StandIn::start();
    let gate = gate(&lrs, "");
    let path = launch(&gate, "s-race");
    let answers: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16).map(|_| s.spawn(|| gate.edge(&Req::post(&path, Vec::new())).json())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tokens = answers.iter().filter(|a| a.get("auth-token").is_some()).count();
    let used = answers.iter().filter(|a| a["error-code"] == "1").count();
    assert_eq!((tokens, used), (1, 15), "{answers:?}");
}

#[test]
fn an_unused_fetch_url_expires() {
    let lrs = StandIn::start();
    let gate = gate(&lrs, "fetch_ttl_seconds = 1");
    let path = launch(&gate, "s-stale");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(fetch(&gate, &path)["error-code"], "1");
}

#[test]
fn cmi5_delivery_needs_the_tenants_public_origin() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let r = gate.issue("acme.test", API_KEY_ACME, &cmi5_request("s-1"));
    assert_eq!((r.status, r.reason().as_str()), (400, "delivery_unavailable"), "{}", r.text());
    let mut bad = cmi5_request("s-1");
    bad["launch_mode"] = json!("browse");
    let r = gate.issue("acme.test", API_KEY_ACME, &bad);
    assert_eq!((r.status, r.reason().as_str()), (400, "invalid_launch_mode"));
}

#[test]
fn the_session_rules_and_the_end_of_a_session() {
    let lrs = StandIn::start();
    let gate = gate(&lrs, "terminated_grace_seconds = 2");
    let token = auth_token(&fetch(&gate, &launch(&gate, "s-rules")));
    let st = |verb: &str, defined: bool| cmi5_statement(verb, "s-rules", defined);
    let ok = |statement: Value| {
        let r = gate.edge(&post(&token, &statement));
        assert_eq!(r.status, 200, "{}: {}", statement["verb"]["id"], r.text());
    };

    assert_refused_untouched(
        &gate,
        &lrs,
        vec![
            ("nothing_before_initialized", post(&token, &st("completed", true)), 403, "cmi5_not_initialized"),
            (
                "no_allowed_statement_before_initialized",
                post(&token, &st("experienced", false)),
                403,
                "cmi5_not_initialized",
            ),
        ],
    );
    ok(st("initialized", true));
    ok(st("experienced", false));
    ok(st("completed", true));
    ok(st("passed", true));
    assert_refused_untouched(
        &gate,
        &lrs,
        vec![
            ("initialized_only_once", post(&token, &st("initialized", true)), 403, "cmi5_verb_repeated"),
            ("completed_only_once", post(&token, &st("completed", true)), 403, "cmi5_verb_repeated"),
            ("never_passed_and_failed", post(&token, &st("failed", true)), 403, "cmi5_passed_and_failed"),
            (
                "one_bad_statement_refuses_the_batch",
                Req::statements("", json!([st("experienced", false), st("failed", true)]).to_string().into_bytes())
                    .basic(&token),
                403,
                "cmi5_passed_and_failed",
            ),
        ],
    );
    ok(st("terminated", true));
    assert_refused_untouched(
        &gate,
        &lrs,
        vec![("nothing_after_terminated", post(&token, &st("experienced", false)), 403, "cmi5_after_terminated")],
    );
    // Within the grace period the AU may still read.
    let read = || Req::get("/xapi/statements?limit=5").basic(&token).header("X-Experience-API-Version", "1.0.3");
    assert_eq!(gate.edge(&read()).status, 200);

    std::thread::sleep(Duration::from_millis(2200));
    assert_refused_untouched(
        &gate,
        &lrs,
        vec![
            ("read_after_grace", read(), 401, "session_ended"),
            ("write_after_grace", post(&token, &st("experienced", false)), 401, "session_ended"),
        ],
    );
    let verbs: Vec<String> = lrs
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["verb"]["id"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = ["initialized", "experienced", "completed", "passed", "terminated"]
        .iter()
        .map(|v| format!("{VERBS}{v}"))
        .collect();
    assert_eq!(verbs, want, "the LRS holds exactly the accepted statements, in order");
    assert!(gate.metric("lrsgate_sessions_ended_total{reason=\"terminated\"}") >= 1.0);
}

#[test]
fn browse_and_review_launches_send_only_initialized_and_terminated() {
    let lrs = StandIn::start();
    let gate = gate(&lrs, "");
    for mode in ["Browse", "Review"] {
        let session = format!("s-{mode}");
        let mut request = cmi5_request(&session);
        request["launch_mode"] = json!(mode);
        let token = auth_token(&fetch(
            &gate,
            &fetch_path(gate.issue("acme.test", API_KEY_ACME, &request).json()["fetch_url"].as_str().unwrap()),
        ));
        let st = |verb: &str| cmi5_statement(verb, &session, true);
        assert_eq!(gate.edge(&post(&token, &st("initialized"))).status, 200, "{mode}");
        assert_refused_untouched(
            &gate,
            &lrs,
            vec![
                ("completed_in_this_mode", post(&token, &st("completed")), 403, "cmi5_launch_mode"),
                ("passed_in_this_mode", post(&token, &st("passed")), 403, "cmi5_launch_mode"),
            ],
        );
        assert_eq!(gate.edge(&post(&token, &cmi5_statement("experienced", &session, false))).status, 200, "{mode}");
        assert_eq!(gate.edge(&post(&token, &st("terminated"))).status, 200, "{mode}");
    }
}

#[test]
fn the_lms_ends_and_revokes_sessions() {
    let lrs = StandIn::start();
    let gate = gate(&lrs, "");
    let end = |body: Value, key: &str| {
        send(
            gate.token,
            &Req::post("/auth/sessions/end", body.to_string().into_bytes())
                .header("Authorization", &format!("Bearer {key}"))
                .header("Content-Type", "application/json"),
        )
    };
    let token = auth_token(&fetch(&gate, &launch(&gate, "s-abandon")));
    assert_eq!(gate.edge(&post(&token, &cmi5_statement("initialized", "s-abandon", true))).status, 200);

    let r = end(json!({"session_id": "s-abandon", "reason": "abandoned"}), API_KEY_OTHER);
    assert_eq!((r.status, r.reason().as_str()), (401, "api_key_invalid"));
    let r = end(json!({"session_id": "s-abandon", "reason": "terminated"}), API_KEY_ACME);
    assert_eq!((r.status, r.reason().as_str()), (400, "invalid_reason"));
    assert_eq!(gate.edge(&post(&token, &cmi5_statement("experienced", "s-abandon", false))).status, 200);

    let r = end(json!({"session_id": "s-abandon", "reason": "abandoned"}), API_KEY_ACME);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ended"], "abandoned");
    assert!(r.header("Access-Control-Allow-Origin").is_none());
    let get = Req::get("/xapi/statements").basic(&token).header("X-Experience-API-Version", "1.0.3");
    assert_refused_untouched(
        &gate,
        &lrs,
        vec![
            (
                "abandoned_refuses_writes",
                post(&token, &cmi5_statement("experienced", "s-abandon", false)),
                401,
                "session_ended",
            ),
            ("abandoned_refuses_reads", get, 401, "session_ended"),
        ],
    );

    // A plain (Bearer) token of another session, revoked.
    let mut plain = token_request();
    plain["session_id"] = json!("s-revoke");
    let bearer = gate.token_for(&plain);
    assert_eq!(
        gate.edge(&Req::statements(&bearer, cmi5_statement("experienced", "s-revoke", false).to_string().into_bytes()))
            .status,
        200
    );
    assert_eq!(end(json!({"session_id": "s-revoke", "reason": "revoked"}), API_KEY_ACME).status, 200);
    let r =
        gate.edge(&Req::statements(&bearer, cmi5_statement("experienced", "s-revoke", false).to_string().into_bytes()));
    assert_eq!((r.status, r.reason().as_str()), (401, "session_ended"));
    assert!(r.json()["message"].as_str().unwrap().contains("revoked"));

    // Ended before the AU fetched its token: the fetch URL gives none.
    let path = launch(&gate, "s-early");
    assert_eq!(end(json!({"session_id": "s-early", "reason": "ended"}), API_KEY_ACME).status, 200);
    assert_eq!(fetch(&gate, &path)["error-code"], "1");

    // Sessions are per tenant: the same session id elsewhere is untouched.
    assert!(gate.metric("lrsgate_sessions_ended_total{reason=\"abandoned\"}") >= 1.0);
}

#[test]
fn progress_the_lrs_did_not_store_is_given_back() {
    let lrs = StandIn::start();
    let gate = gate(&lrs, "");
    let token = auth_token(&fetch(&gate, &launch(&gate, "s-retry")));
    let mut first = cmi5_statement("initialized", "s-retry", true);
    // The LRS already holds another statement with this id: it answers 409.
    let mut other = cmi5_statement("experienced", "s-elsewhere", false);
    other["id"] = first["id"].clone();
    assert_eq!(lrs.direct(Req::statements("", other.to_string().into_bytes())).status, 200);
    let r = gate.edge(&post(&token, &first));
    assert_eq!(r.status, 409, "the LRS's answer is relayed: {}", r.text());
    // Not stored, so not counted: the AU's retry with a fresh id is its first initialized.
    first["id"] = json!(uuid::Uuid::new_v4().to_string());
    let r = gate.edge(&post(&token, &first));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gate.edge(&post(&token, &cmi5_statement("initialized", "s-retry", true)));
    assert_eq!((r.status, r.reason().as_str()), (403, "cmi5_verb_repeated"));
}

#[test]
fn plain_tokens_and_tenants_without_the_rules_are_not_judged_by_them() {
    let lrs = StandIn::start();
    let gate = gate(&lrs, "");
    // A token without cmi5 delivery or launch mode is plain xAPI content.
    let r = gate.edge(&Req::statements(&gate.token(), statement().to_string().into_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    drop(gate);

    let gate = Gate::start(
        GateOptions::new(&[lrs.port])
            .acme_key(&format!("public_origin = \"{PUBLIC_ORIGIN}\""))
            .acme("[tenant.policy]\ncmi5_session_rules = false"),
    );
    let token = auth_token(&fetch(&gate, &launch(&gate, "s-off")));
    let r = gate.edge(&post(&token, &cmi5_statement("completed", "s-off", true)));
    assert_eq!(r.status, 200, "rules switched off: {}", r.text());
}
