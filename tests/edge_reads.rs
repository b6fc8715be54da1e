//! Statement reads, routing and tenancy through the real edge.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn own_agent() -> String {
    enc(
        r#"{"objectType":"Agent","name":"Display Name","account":{"homePage":"https://lms.example","name":"learner-1"}}"#,
    )
}

fn agent_in(query: &[(String, String)]) -> Value {
    let agent = query.iter().find(|(k, _)| k == "agent").map(|(_, v)| v.clone()).expect("agent forced");
    serde_json::from_str(&agent).unwrap()
}

#[test]
fn read_forces_the_tokens_filters_onto_the_lrs_query() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let r = gate.edge(&Req::statements(&token, statement().to_string().into_bytes()));
    assert_eq!(r.status, 200);

    let r = gate.edge(&Req::get("/xapi/statements?limit=5").bearer(&token).header("X-Experience-API-Version", "1.0.3"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["statements"].as_array().unwrap().len(), 1);
    let got = lrs.last_request();
    assert_eq!(got.method, "GET");
    let q = got.query();
    let names: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["limit", "agent", "registration", "activity"], "missing filters are added");
    assert_eq!(
        agent_in(&q),
        json!({"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "learner-1"}})
    );
    assert!(q.contains(&("registration".into(), REGISTRATION.into())));
    assert!(q.contains(&("activity".into(), ACTIVITY.into())));

    // An equal client value is kept in meaning, sent in canonical form (display name dropped).
    let r = gate.edge(&Req::get(&format!("/xapi/statements?agent={}", own_agent())).bearer(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    let q = lrs.last_request().query();
    assert_eq!(agent_in(&q).get("name"), None);
    assert_eq!(q.iter().filter(|(k, _)| k == "agent").count(), 1);
}

#[test]
fn read_rules_end_to_end() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let other_agent = enc(r#"{"account":{"homePage":"https://lms.example","name":"learner-2"}}"#);
    let rows: Vec<(&str, String, u16, &str)> = vec![
        ("other_agent_is_403", format!("agent={other_agent}"), 403, "query_out_of_scope"),
        (
            "other_registration_is_403",
            "registration=00000000-0000-4000-8000-000000000000".into(),
            403,
            "query_out_of_scope",
        ),
        (
            "other_activity_is_403",
            format!("activity={}", enc("https://lms.example/course/1/au/2")),
            403,
            "query_out_of_scope",
        ),
        ("malformed_agent_is_400", "agent=%7Bnope".into(), 400, "invalid_parameter"),
        ("duplicate_parameter_is_400", "limit=1&limit=2".into(), 400, "duplicate_parameter"),
        ("case_variant_parameter_is_400", format!("Agent={other_agent}"), 400, "unknown_parameter"),
        ("unknown_parameter_is_400", "foo=bar".into(), 400, "unknown_parameter"),
        ("related_agents_outside_the_scope_is_403", "related_agents=true".into(), 403, "related_not_allowed"),
    ];
    let before = lrs.stats();
    for (rule, query, status, reason) in &rows {
        for method in ["GET", "HEAD"] {
            let r = gate.edge(&Req::new(method, &format!("/xapi/statements?{query}")).bearer(&token));
            assert_eq!(r.status, *status, "{rule} ({method})");
            if method == "GET" {
                assert_eq!(r.reason(), *reason, "{rule}");
            }
        }
    }
    let mut with_body = Req::get("/xapi/statements").bearer(&token);
    with_body.body = b"{}".to_vec();
    let r = gate.edge(&with_body);
    assert_eq!((r.status, r.reason().as_str()), (400, "unexpected_body"));
    assert_eq!(lrs.stats(), before, "no refused read reached the LRS");
}

#[test]
fn head_is_judged_like_get() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let r = gate.edge(&Req::new("HEAD", "/xapi/statements").bearer(&token));
    assert_eq!((r.status, r.body.len()), (200, 0));
    let got = lrs.last_request();
    // lrsgate reads the answer to judge it, so the LRS sees a GET with the forced filters.
    assert_eq!(got.method, "GET");
    assert_eq!(got.query().len(), 3);
}

#[test]
fn routes_and_resources() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();

    let r = gate.edge(&Req::get("/xapi/about"));
    assert_eq!(r.status, 200, "about is public: {}", r.text());
    assert_eq!(r.json()["version"], json!(["1.0.3"]));
    assert_eq!(lrs.last_request().target, "/xapi/about");

    let r = gate.edge(&Req::get("/xapi//statements").bearer(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(lrs.last_request().target.starts_with("/xapi/statements?"), "the double slash is normalised once");

    let rows: Vec<(&str, Req, u16, &str)> = vec![
        ("about_write_is_405", Req::post("/xapi/about", b"{}".to_vec()), 405, "method_not_allowed"),
        ("delete_statements_is_405", Req::new("DELETE", "/xapi/statements").bearer(&token), 405, "method_not_allowed"),
        ("activities_needs_an_activity_id", Req::get("/xapi/activities").bearer(&token), 400, "missing_parameter"),
        ("agents_write_is_405", Req::post("/xapi/agents", b"{}".to_vec()).bearer(&token), 405, "method_not_allowed"),
        ("unsealed_more_is_400", Req::get("/xapi/statements/more/abc").bearer(&token), 400, "more_invalid"),
        ("encoded_path_is_400", Req::get("/xapi/%73tatements").bearer(&token), 400, "bad_path"),
        ("dot_segment_is_400", Req::get("/xapi/activities/../statements").bearer(&token), 400, "bad_path"),
        ("unknown_resource_is_404", Req::get("/xapi/nothing").bearer(&token), 404, "unknown_route"),
        ("outside_xapi_is_404", Req::get("/statements").bearer(&token), 404, "unknown_route"),
        ("unknown_host_is_404", Req::get("/xapi/statements").host("nobody.test").bearer(&token), 404, "unknown_tenant"),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}

#[test]
fn token_rules_at_the_edge() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let claims: Value = {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let sign = |c: &Value, secret: &str| {
        encode(&Header::new(Algorithm::HS256), c, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    };
    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_u64().unwrap() - 3600);
    let unsigned = {
        use base64::Engine;
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims))
    };
    let other_token = {
        let r = gate.issue("other.test", API_KEY_OTHER, &token_request());
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["token"].as_str().unwrap().to_owned()
    };
    let body = statement().to_string().into_bytes();
    let post = |auth: Option<String>| {
        let mut r = Req::post("/xapi/statements", body.clone()).xapi_json();
        if let Some(a) = auth {
            r = r.header("Authorization", &a);
        }
        gate.edge(&r)
    };
    let before = lrs.stats();
    let rows: Vec<(&str, Option<String>, &str)> = vec![
        ("missing_token_is_401", None, "token_missing"),
        ("other_scheme_is_401", Some(format!("Digest {token}")), "token_malformed"),
        ("garbage_is_401", Some("Bearer not-a-token".into()), "token_malformed"),
        ("alg_none_is_401", Some(format!("Bearer {unsigned}")), "token_algorithm_refused"),
        ("expired_is_401", Some(format!("Bearer {}", sign(&expired, SECRET_ACME))), "token_expired"),
        (
            "wrong_key_is_401",
            Some(format!("Bearer {}", sign(&claims, "an-entirely-different-secret-0123456789"))),
            "token_invalid_signature",
        ),
        ("other_tenants_token_is_401", Some(format!("Bearer {other_token}")), "token_wrong_tenant"),
        ("lms_api_key_is_not_a_session_token", Some(format!("Bearer {API_KEY_ACME}")), "token_malformed"),
    ];
    for (rule, auth, reason) in rows {
        let r = post(auth);
        assert_eq!((r.status, r.reason().as_str()), (401, reason), "{rule}: {}", r.text());
    }
    assert_eq!(lrs.stats(), before, "no unauthenticated request reached the LRS");

    // Basic, as cmi5 content sends the fetched auth-token, and scheme names in any case.
    for auth in [format!("Basic {token}"), format!("bearer {token}"), format!("BASIC {token}")] {
        let r = post(Some(auth.clone()));
        assert_eq!(r.status, 200, "{auth}: {}", r.text());
    }
    // The other tenant's token works at its own host.
    let r = gate.edge(&Req::statements(&other_token, body.clone()).host("other.test"));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn lrs_down_is_a_json_502() {
    let lrs = StandIn::start();
    let port = lrs.port;
    let gate = Gate::start(GateOptions::new(&[port]));
    let token = gate.token();
    drop(lrs);
    let r = gate.edge(&Req::get("/xapi/statements").bearer(&token));
    assert_eq!((r.status, r.reason().as_str()), (502, "upstream_unavailable"), "{}", r.text());
    let r = gate.edge(&Req::statements(
        &token,
        vec![b' '; 70_000].into_iter().chain(statement().to_string().into_bytes()).collect(),
    ));
    assert_eq!((r.status, r.reason().as_str()), (502, "upstream_unavailable"), "{}", r.text());
}

#[test]
fn a_node_that_dies_is_failed_over_before_health_checks_notice() {
    let a = StandIn::start();
    let b = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[a.port, b.port]));
    let token = gate.token();
    drop(b);
    for i in 0..6 {
        let r = gate.edge(&Req::get("/xapi/statements").bearer(&token));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    assert_eq!(a.requests().len(), 6);
    drop(a);
    let r = gate.edge(&Req::get("/xapi/statements").bearer(&token));
    assert_eq!((r.status, r.reason().as_str()), (502, "upstream_unavailable"));
}

#[test]
fn single_statement_reads_are_judged_on_the_returned_statement() {
    use base64::Engine;
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let own = statement();
    let own_id = own["id"].as_str().unwrap().to_owned();
    assert_eq!(gate.edge(&Req::statements(&token, own.to_string().into_bytes())).status, 200);
    // Another learner's statement, written straight to the LRS (e.g. by another AU's session).
    let mut other = statement();
    other["actor"]["account"]["name"] = json!("learner-2");
    let other_id = other["id"].as_str().unwrap().to_owned();
    let lrs_auth = base64::engine::general_purpose::STANDARD.encode(format!("{LRS_USER}:{LRS_PASSWORD}"));
    let direct = Req::post("/xapi/statements", other.to_string().into_bytes())
        .header("Authorization", &format!("Basic {lrs_auth}"))
        .header("Content-Type", "application/json");
    assert_eq!(send(lrs.port, &direct).status, 200);

    let get =
        |query: String, method: &str| gate.edge(&Req::new(method, &format!("/xapi/statements?{query}")).bearer(&token));
    let r = get(format!("statementId={own_id}"), "GET");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], json!(own_id));
    assert_eq!(
        lrs.last_request().target,
        format!("/xapi/statements?statementId={own_id}"),
        "no filter added to an id query"
    );
    let r = get(format!("statementId={own_id}&format=ids"), "HEAD");
    assert_eq!((r.status, r.body.len()), (200, 0));

    for method in ["GET", "HEAD"] {
        let r = get(format!("statementId={other_id}"), method);
        assert_eq!(r.status, 404, "another learner's statement is not found ({method})");
        if method == "GET" {
            assert_eq!(r.reason(), "statement_not_found");
            assert!(!r.text().contains("learner-2"), "nothing of it leaks");
        }
    }
    let r = get(format!("voidedStatementId={}", uuid::Uuid::new_v4()), "GET");
    assert_eq!(r.status, 404, "the LRS's own 404 passes through");

    let before = lrs.stats();
    let r = get(format!("statementId={own_id}&agent={}", own_agent()), "GET");
    assert_eq!((r.status, r.reason().as_str()), (400, "invalid_parameter"));
    let r = get(format!("statementId={own_id}&voidedStatementId={own_id}"), "GET");
    assert_eq!((r.status, r.reason().as_str()), (400, "invalid_parameter"));
    assert_eq!(lrs.stats(), before);
}

#[test]
fn list_reads_return_only_in_scope_statements() {
    use base64::Engine;
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let own = statement();
    assert_eq!(gate.edge(&Req::statements(&token, own.to_string().into_bytes())).status, 200);
    // An instructor's statement about the learner's statement, written straight to the LRS.
    // The LRS returns it for the learner's agent query (the StatementRef rule).
    let comment = json!({
        "actor": {"mbox": "mailto:instructor@lms.example"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/commented"},
        "object": {"objectType": "StatementRef", "id": own["id"]},
        "result": {"response": "private note about the learner"}
    });
    let lrs_auth = base64::engine::general_purpose::STANDARD.encode(format!("{LRS_USER}:{LRS_PASSWORD}"));
    let direct = Req::post("/xapi/statements", comment.to_string().into_bytes())
        .header("Authorization", &format!("Basic {lrs_auth}"))
        .header("Content-Type", "application/json");
    assert_eq!(send(lrs.port, &direct).status, 200);

    let r = gate.edge(&Req::get("/xapi/statements").bearer(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    let statements = r.json()["statements"].as_array().unwrap().clone();
    assert_eq!(statements.len(), 1, "only the learner's own statement: {}", r.text());
    assert_eq!(statements[0]["id"], own["id"]);
    assert!(!r.text().contains("private note"), "nothing of the other statement leaks");
    assert_eq!(r.json()["more"], json!(""));
    let r = gate.edge(&Req::new("HEAD", "/xapi/statements").bearer(&token));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length").map(str::to_owned),
        Some(gate.edge(&Req::get("/xapi/statements").bearer(&token)).body.len().to_string())
    );
}

#[test]
fn an_answer_too_large_to_judge_is_refused_not_relayed() {
    let lrs = StandIn::start();
    let mut opts = GateOptions::new(&[lrs.port]);
    opts.max_body_bytes = 100 * 1024;
    let gate = Gate::start(opts);
    let token = gate.token();
    for _ in 0..2 {
        let batch = serde_json::Value::from((0..100).map(|_| statement()).collect::<Vec<_>>());
        let r = gate.edge(&Req::statements(&token, batch.to_string().into_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = gate.edge(&Req::get("/xapi/statements").bearer(&token));
    assert_eq!((r.status, r.reason().as_str()), (502, "upstream_invalid_response"), "{}", r.text());
    let r = gate.edge(&Req::get("/xapi/statements?limit=10").bearer(&token));
    assert_eq!(r.status, 200, "paging with limit still works");
    assert_eq!(r.json()["statements"].as_array().unwrap().len(), 10);
}
