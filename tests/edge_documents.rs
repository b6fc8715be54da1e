//! The documents a cmi5 AU uses at launch, through the real edge: State (its own documents and
//! the LMS's read-only LMS.LaunchData) and the Agent Profile (cmi5LearnerPreferences).

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::*;

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const AGENT: &str = r#"{"objectType":"Agent","account":{"homePage":"https://lms.example","name":"learner-1"}}"#;

fn state_query(state_id: Option<&str>) -> String {
    let mut q = format!("activityId={}&agent={}&registration={REGISTRATION}", enc(ACTIVITY), enc(AGENT));
    if let Some(id) = state_id {
        q.push_str(&format!("&stateId={}", enc(id)));
    }
    q
}

/// The LMS writes LMS.LaunchData straight to the LRS with its own credential (cmi5 §10.1).
fn lms_writes_launch_data(lrs: &StandIn, body: &[u8]) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{LRS_USER}:{LRS_PASSWORD}"));
    let mut req = Req::new("PUT", &format!("/xapi/activities/state?{}", state_query(Some("LMS.LaunchData"))))
        .header("Authorization", &format!("Basic {auth}"))
        .header("Content-Type", "application/json");
    req.body = body.to_vec();
    assert_eq!(send(lrs.port, &req).status, 204);
}

fn doc(method: &str, target: &str, token: &str, body: &[u8], content_type: &str) -> Req {
    let mut r = Req::new(method, target).bearer(token).header("X-Experience-API-Version", "1.0.3");
    if !body.is_empty() || method == "PUT" || method == "POST" {
        r = r.header("Content-Type", content_type);
        r.body = body.to_vec();
    }
    r
}

#[test]
fn launch_data_is_readable_and_never_writable_by_the_au() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let launch_data = br#"{"contextTemplate":{"registration":"7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11"},"launchMode":"Normal","moveOn":"Completed"}"#;
    lms_writes_launch_data(&lrs, launch_data);

    let read = |q: String| gate.edge(&doc("GET", &format!("/xapi/activities/state?{q}"), &token, b"", ""));
    let r = read(state_query(Some("LMS.LaunchData")));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, launch_data);
    // Without a registration in the request, the token's is forced: the same document.
    let r = read(format!("activityId={}&agent={}&stateId=LMS.LaunchData", enc(ACTIVITY), enc(AGENT)));
    assert_eq!(r.body, launch_data, "{}", r.text());

    let before = lrs.stats();
    let target = format!("/xapi/activities/state?{}", state_query(Some("LMS.LaunchData")));
    let r = gate.edge(&doc("PUT", &target, &token, b"{\"launchMode\":\"Review\"}", "application/json"));
    assert_eq!((r.status, r.reason().as_str()), (403, "launch_data_read_only"));
    let r = gate.edge(&doc("POST", &target, &token, b"{\"moveOn\":\"NotApplicable\"}", "application/json"));
    assert_eq!((r.status, r.reason().as_str()), (403, "launch_data_read_only"));
    let r = gate.edge(&doc("DELETE", &target, &token, b"", ""));
    assert_eq!((r.status, r.reason().as_str()), (403, "launch_data_read_only"));
    let everything = format!("/xapi/activities/state?{}", state_query(None));
    let r = gate.edge(&doc("DELETE", &everything, &token, b"", ""));
    assert_eq!((r.status, r.reason().as_str()), (403, "bulk_delete_refused"));
    assert_eq!(lrs.stats(), before, "no refused document request reached the LRS");
    assert_eq!(read(state_query(Some("LMS.LaunchData"))).body, launch_data, "LaunchData is intact");
}

#[test]
fn the_au_keeps_its_own_state_of_any_type_and_size() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    for (state_id, body) in [("bookmark", b"page=7".to_vec()), ("suspend-data", vec![b'z'; 200_000])] {
        let target = format!("/xapi/activities/state?{}", state_query(Some(state_id)));
        let r = gate.edge(&doc("PUT", &target, &token, &body, "application/octet-stream").header("If-None-Match", "*"));
        assert_eq!(r.status, 204, "{state_id}: {}", r.text());
        let got = lrs.last_request();
        assert_eq!(got.body, body, "{state_id}: the LRS got the exact bytes");
        assert_eq!(got.header("if-none-match"), Some("*"), "concurrency headers pass unchanged");
        assert_eq!(got.header("content-type"), Some("application/octet-stream"));
        let r = gate.edge(&doc("GET", &target, &token, b"", ""));
        assert_eq!((r.status, r.body.len()), (200, body.len()));
        let r = gate.edge(&doc("DELETE", &target, &token, b"", ""));
        assert_eq!(r.status, 204);
        let r = gate.edge(&doc("GET", &target, &token, b"", ""));
        assert_eq!(r.status, 404, "the LRS's 404 passes through");
    }
}

#[test]
fn state_and_profile_rules_end_to_end() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let other_agent = enc(r#"{"account":{"homePage":"https://lms.example","name":"learner-2"}}"#);
    let prefs = format!("/xapi/agents/profile?agent={}&profileId=cmi5LearnerPreferences", enc(AGENT));
    let r = gate.edge(&doc("GET", &prefs, &token, b"", ""));
    assert_eq!(r.status, 404, "a missing preferences document is the LRS's 404: {}", r.text());
    assert!(lrs.last_request().target.starts_with("/xapi/agents/profile?agent="));

    let rows: Vec<(&str, Req, u16, &str)> = vec![
        (
            "other_learners_state_is_403",
            doc(
                "GET",
                &format!("/xapi/activities/state?activityId={}&agent={other_agent}&stateId=x", enc(ACTIVITY)),
                &token,
                b"",
                "",
            ),
            403,
            "query_out_of_scope",
        ),
        (
            "other_activitys_state_is_403",
            doc(
                "GET",
                &format!(
                    "/xapi/activities/state?activityId={}&agent={}&stateId=x",
                    enc("https://lms.example/course/1/au/2"),
                    enc(AGENT)
                ),
                &token,
                b"",
                "",
            ),
            403,
            "query_out_of_scope",
        ),
        (
            "other_registrations_state_is_403",
            doc(
                "GET",
                &format!(
                    "/xapi/activities/state?activityId={}&agent={}&registration=00000000-0000-4000-8000-000000000000",
                    enc(ACTIVITY),
                    enc(AGENT)
                ),
                &token,
                b"",
                "",
            ),
            403,
            "query_out_of_scope",
        ),
        (
            "state_without_agent_is_400",
            doc("GET", &format!("/xapi/activities/state?activityId={}", enc(ACTIVITY)), &token, b"", ""),
            400,
            "missing_parameter",
        ),
        (
            "state_unknown_parameter_is_400",
            doc("GET", &format!("/xapi/activities/state?{}&profileId=x", state_query(None)), &token, b"", ""),
            400,
            "unknown_parameter",
        ),
        (
            "preferences_write_is_403",
            doc("PUT", &prefs, &token, b"{}", "application/json"),
            403,
            "profile_write_refused",
        ),
        (
            "other_learners_profile_is_403",
            doc(
                "GET",
                &format!("/xapi/agents/profile?agent={other_agent}&profileId=cmi5LearnerPreferences"),
                &token,
                b"",
                "",
            ),
            403,
            "query_out_of_scope",
        ),
        (
            "state_without_token_is_401",
            Req::get(&format!("/xapi/activities/state?{}", state_query(Some("LMS.LaunchData")))),
            401,
            "token_missing",
        ),
        (
            "state_patch_is_405",
            doc("PATCH", &format!("/xapi/activities/state?{}", state_query(Some("x"))), &token, b"", ""),
            405,
            "method_not_allowed",
        ),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}

#[test]
fn activity_profile_activities_and_agents() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let other_activity = enc("https://lms.example/course/1/au/2");
    let other_agent = enc(r#"{"account":{"homePage":"https://lms.example","name":"learner-2"}}"#);
    let allowed = [
        format!("/xapi/activities/profile?activityId={}&profileId=shared-notes", enc(ACTIVITY)),
        format!("/xapi/activities?activityId={}", enc(ACTIVITY)),
        format!("/xapi/agents?agent={}", enc(AGENT)),
    ];
    for target in &allowed {
        let r = gate.edge(&doc("GET", target, &token, b"", ""));
        assert_eq!(r.status, 404, "{target}: the stand-in's answer passes through: {}", r.text());
        let got = lrs.last_request();
        assert_eq!(got.target.split('?').next(), target.split('?').next(), "{target}");
    }
    let rows: Vec<(&str, Req, u16, &str)> = vec![
        (
            "activity_profile_write_is_403",
            doc("PUT", &allowed[0], &token, b"{}", "application/json"),
            403,
            "profile_write_refused",
        ),
        ("activity_profile_delete_is_403", doc("DELETE", &allowed[0], &token, b"", ""), 403, "profile_write_refused"),
        (
            "other_activitys_profile_is_403",
            doc("GET", &format!("/xapi/activities/profile?activityId={other_activity}&profileId=p"), &token, b"", ""),
            403,
            "query_out_of_scope",
        ),
        (
            "other_activity_is_403",
            doc("GET", &format!("/xapi/activities?activityId={other_activity}"), &token, b"", ""),
            403,
            "query_out_of_scope",
        ),
        (
            "other_learners_person_is_403",
            doc("GET", &format!("/xapi/agents?agent={other_agent}"), &token, b"", ""),
            403,
            "query_out_of_scope",
        ),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}
