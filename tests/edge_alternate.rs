//! The Alternate Request Syntax (POST ?method=… with a form body, as TinCanJS sends any request
//! whose URL is 2048 characters or more): decoded, judged as the normal-form request, forwarded
//! in normal form, never raw.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn alternate(method: &str, form: String) -> Req {
    Req::post(&format!("/xapi/statements?method={method}"), form.into_bytes())
        .header("Content-Type", "application/x-www-form-urlencoded")
}

#[test]
fn a_tincan_style_get_is_judged_and_forwarded_in_normal_form() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    assert_eq!(gate.edge(&Req::statements(&token, statement().to_string().into_bytes())).status, 200);
    // The token travels in the form, as TinCanJS puts it there; no Authorization header.
    let form = format!("Authorization={}&X-Experience-API-Version=1.0.3&limit=5", enc(&format!("Basic {token}")));
    let r = gate.edge(&alternate("GET", form));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["statements"].as_array().unwrap().len(), 1);
    let got = lrs.last_request();
    assert_eq!(got.method, "GET", "forwarded in normal form");
    let names: Vec<String> = got.query().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["limit", "agent", "registration", "activity"], "the scope's filters are forced");
    assert!(got.body.is_empty(), "the form never reaches the LRS");
    assert_eq!(got.header("content-type"), None);
    assert_eq!(got.header("x-experience-api-version"), Some("1.0.3"));
    assert!(got.header("authorization").is_some_and(|a| !a.contains(&token)), "the LRS credential, not the token");
}

#[test]
fn a_put_is_forwarded_with_the_content_as_its_body() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let s = statement();
    let id = s["id"].as_str().unwrap().to_owned();
    let content = s.to_string();
    let form = format!("statementId={id}&Content-Type=application%2Fjson&content={}", enc(&content));
    let r = gate.edge(&alternate("PUT", form).bearer(&token));
    assert_eq!(r.status, 204, "{}", r.text());
    let got = lrs.last_request();
    assert_eq!(
        (got.method.as_str(), got.target.as_str()),
        ("PUT", format!("/xapi/statements?statementId={id}").as_str())
    );
    assert_eq!(got.body, content.as_bytes());
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("content-length"), Some(content.len().to_string().as_str()));
}

#[test]
fn alternate_syntax_rules() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let mut other = statement();
    other["actor"]["account"]["name"] = json!("learner-2");
    let other_agent = enc(r#"{"account":{"homePage":"https://lms.example","name":"learner-2"}}"#);
    let launch_data = format!(
        "activityId={}&agent={}&stateId=LMS.LaunchData&content=%7B%7D",
        enc(ACTIVITY),
        enc(r#"{"account":{"homePage":"https://lms.example","name":"learner-1"}}"#)
    );
    let rows: Vec<(&str, Req, u16, &str)> = vec![
        (
            "other_learner_in_content_is_403",
            alternate("POST", format!("Content-Type=application%2Fjson&content={}", enc(&other.to_string())))
                .bearer(&token),
            403,
            "actor_mismatch",
        ),
        (
            "other_agent_in_form_is_403",
            alternate("GET", format!("agent={other_agent}")).bearer(&token),
            403,
            "query_out_of_scope",
        ),
        (
            "conflicting_form_authorization_is_401",
            alternate("GET", "Authorization=Bearer+someone-elses-token".into()).bearer(&token),
            401,
            "authorization_conflict",
        ),
        ("no_token_anywhere_is_401", alternate("GET", "limit=1".into()), 401, "token_missing"),
        (
            "other_outer_query_parameter_is_400",
            Req::post("/xapi/statements?method=GET&limit=1", b"".to_vec())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .bearer(&token),
            400,
            "unknown_parameter",
        ),
        ("unknown_method_is_400", alternate("PATCH", String::new()).bearer(&token), 400, "invalid_method"),
        (
            "json_body_is_not_a_form",
            alternate("GET", "{}".into()).header("Content-Type", "application/json").bearer(&token),
            400,
            "unsupported_content_type",
        ),
        (
            "duplicate_field_is_400",
            alternate("GET", "limit=1&limit=2".into()).bearer(&token),
            400,
            "duplicate_parameter",
        ),
        ("unknown_field_is_400", alternate("GET", "Limit=1".into()).bearer(&token), 400, "unknown_parameter"),
        ("content_on_a_get_is_400", alternate("GET", "content=x".into()).bearer(&token), 400, "unexpected_body"),
        (
            "header_injection_is_400",
            alternate("GET", "If-Match=%22a%22%0D%0AX-Injected%3A+1".into()).bearer(&token),
            400,
            "invalid_header",
        ),
        ("nested_alternate_is_400", alternate("POST", "method=GET".into()).bearer(&token), 400, "unknown_parameter"),
        (
            "launch_data_write_is_403",
            Req::post("/xapi/activities/state?method=PUT", launch_data.into_bytes())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .bearer(&token),
            403,
            "launch_data_read_only",
        ),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
    // The same token in header and form is no conflict.
    let form = format!("Authorization={}", enc(&format!("Bearer {token}")));
    let r = gate.edge(&alternate("GET", form).bearer(&token));
    assert_eq!(r.status, 200, "{}", r.text());
}
