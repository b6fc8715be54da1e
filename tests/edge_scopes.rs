//! Every scope, `more` paging and the tenant's policy switches, through the real edge and a
//! recording LRS: what a rule refuses never reaches the LRS; what it allows arrives unchanged.

// Tests and benches may panic on what they did not expect: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

const SIBLING_AU: &str = "https://lms.example/course/1/au/2";
const OTHER_REGISTRATION: &str = "00000000-0000-4000-8000-000000000000";
const TEAM: &str = "mailto:team-1@lms.example";
const COURSE_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<courseStructure xmlns="https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd">
  <course id="https://publisher.example/course/1"><title><langstring lang="en">C</langstring></title>
    <description><langstring lang="en">C</langstring></description></course>
  <au id="https://publisher.example/au/1"><title><langstring lang="en">A</langstring></title>
    <description><langstring lang="en">A</langstring></description><url>a.html</url></au>
  <au id="https://publisher.example/au/2"><title><langstring lang="en">B</langstring></title>
    <description><langstring lang="en">B</langstring></description><url>b.html</url></au>
</courseStructure>"#;

fn with(mut s: Value, path: &[&str], value: Value) -> Value {
    let mut at = &mut s;
    for key in &path[..path.len() - 1] {
        at = &mut at[*key];
    }
    at[path[path.len() - 1]] = value;
    s
}

fn scoped_request(write: &str, read: &str) -> Value {
    let mut req = token_request();
    req["permissions"] = json!({"write": write, "read": read});
    req
}

fn post(gate: &Gate, token: &str, statement: &Value) -> Resp {
    gate.edge(&Req::statements(token, statement.to_string().into_bytes()))
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn more_links_page_through_lrsgate_for_the_token_that_started_the_query() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    let written: Vec<Value> = (0..5).map(|_| statement()).collect();
    assert_eq!(gate.edge(&Req::statements(&token, Value::from(written.clone()).to_string().into_bytes())).status, 200);

    let mut seen = Vec::new();
    let mut target = "/xapi/statements?limit=2".to_owned();
    let mut first_more = None;
    for page in 0.. {
        assert!(page < 5, "paging does not end");
        let r = gate.edge(&Req::get(&target).bearer(&token));
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let body = r.json();
        seen.extend(body["statements"].as_array().unwrap().iter().map(|s| s["id"].clone()));
        let more = body["more"].as_str().unwrap().to_owned();
        if more.is_empty() {
            break;
        }
        assert!(more.starts_with("/xapi/statements/more/"), "more points at lrsgate: {more}");
        assert!(!more.contains('?') && !more.contains("offset"), "the LRS's own path stays sealed: {more}");
        first_more.get_or_insert(more.clone());
        target = more;
    }
    let want: Vec<Value> = written.iter().map(|s| s["id"].clone()).collect();
    assert_eq!(seen, want, "every statement once, in order");
    let continued = lrs.requests().into_iter().filter(|r| r.query().iter().any(|(k, _)| k == "offset")).count();
    assert_eq!(continued, 2, "the continuations were the LRS's own more paths");

    let first_more = first_more.unwrap();
    let another_token = gate.token();
    let (prefix, cursor) = first_more.rsplit_once('/').unwrap();
    let (payload, tag) = cursor.split_once('.').unwrap();
    let forged = format!("{prefix}/{}.{tag}", payload.replace('A', "B").replace('a', "b"));
    let rows = vec![
        ("another_tokens_more_is_403", Req::get(&first_more).bearer(&another_token), 403, "more_other_token"),
        ("a_forged_cursor_is_400", Req::get(&forged).bearer(&token), 400, "more_invalid"),
        ("junk_cursor_is_400", Req::get("/xapi/statements/more/abc").bearer(&token), 400, "more_invalid"),
        ("more_needs_a_token", Req::get(&first_more), 401, "token_missing"),
        ("a_query_on_more_is_400", Req::get(&format!("{first_more}?limit=9")).bearer(&token), 400, "unknown_parameter"),
        ("more_is_read_only", Req::post(&first_more, Vec::new()).bearer(&token), 405, "method_not_allowed"),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}

#[test]
fn more_pages_are_filtered_like_the_first() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let token = gate.token();
    assert_eq!(post(&gate, &token, &statement()).status, 200);
    // Someone else's statement about the learner's statement matches the learner's query
    // (the StatementRef rule); it must not show on any page.
    let own_id =
        lrs.requests().last().map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["id"].clone()).unwrap();
    let foreign = json!({"actor": {"mbox": "mailto:other@x"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/commented"},
        "object": {"objectType": "StatementRef", "id": own_id}});
    let direct = Req::post("/xapi/statements", foreign.to_string().into_bytes())
        .header("Authorization", &format!("Basic {}", base64_of(&format!("{LRS_USER}:{LRS_PASSWORD}"))))
        .xapi_json();
    assert_eq!(send(lrs.port, &direct).status, 200);
    let r = gate.edge(&Req::get("/xapi/statements?limit=1").bearer(&token));
    let first = r.json();
    assert_eq!(first["statements"].as_array().unwrap().len(), 1);
    let next = gate.edge(&Req::get(first["more"].as_str().unwrap()).bearer(&token));
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(next.json()["statements"], json!([]), "the foreign statement on page 2 is hidden");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn course_scope_reaches_the_courses_aus_and_nothing_else() {
    let lrs = StandIn::start();
    let gate = Gate::start(
        GateOptions::new(&[lrs.port])
            .file("course-1.xml", COURSE_XML)
            .acme("[[tenant.course]]\nstructure = \"course-1.xml\""),
    );
    // Without the course's activities the scope cannot be judged, so it is not granted.
    let mut unknown = scoped_request("actor-course-registration-scoped", "actor-course-registration-scoped");
    unknown["course_id"] = json!("https://publisher.example/course/unregistered");
    let r = gate.issue("acme.test", API_KEY_ACME, &unknown);
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("scope_incomplete")));

    // Listed in the token request.
    let mut listed = scoped_request("actor-course-registration-scoped", "actor-course-registration-scoped");
    listed["course_activities"] = json!([SIBLING_AU]);
    let listed = gate.token_for(&listed);
    let sibling = with(statement(), &["object", "id"], json!(SIBLING_AU));
    assert_eq!(post(&gate, &listed, &sibling).status, 200);
    assert_eq!(lrs.last_request().body, sibling.to_string().into_bytes());

    // Registered by the tenant as a cmi5 course structure: the AU is known by its publisher id
    // in the grouping, since the launch activity id is the LMS's own.
    let mut registered = scoped_request("actor-course-registration-scoped", "actor-course-registration-scoped");
    registered["course_id"] = json!("https://publisher.example/course/1");
    let registered = gate.token_for(&registered);
    let au2 = with(
        with(statement(), &["object", "id"], json!("https://lms.example/launch/au-2")),
        &["context", "contextActivities", "grouping"],
        json!([{"id": "https://publisher.example/au/2"}]),
    );
    assert_eq!(post(&gate, &registered, &au2).status, 200);

    let r = gate.edge(&Req::get("/xapi/statements").bearer(&listed));
    assert_eq!(r.status, 200);
    let names: Vec<String> = lrs.last_request().query().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["agent", "registration"], "course reads force the learner and the registration");
    let shown: Vec<String> = r.json()["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["object"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shown, [SIBLING_AU], "the other course's AU is not in the token's list");

    let outside = with(
        with(statement(), &["object", "id"], json!("https://other.example/course/9/au/1")),
        &["context", "contextActivities", "grouping"],
        json!([]),
    );
    let cmi5_outside = with(
        outside.clone(),
        &["context", "contextActivities", "category"],
        json!([{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}]),
    );
    let rows = vec![
        (
            "course_write_outside_the_course_is_403",
            Req::statements(&listed, cmi5_outside.to_string().into_bytes()),
            403,
            "activity_mismatch",
        ),
        (
            "course_write_in_another_registration_is_403",
            Req::statements(
                &listed,
                with(sibling.clone(), &["context", "registration"], json!(OTHER_REGISTRATION)).to_string().into_bytes(),
            ),
            403,
            "registration_mismatch",
        ),
        (
            "course_read_of_an_activity_outside_is_403",
            Req::get(&format!("/xapi/statements?activity={}", enc("https://other.example/x"))).bearer(&listed),
            403,
            "query_out_of_scope",
        ),
        (
            "course_state_outside_the_course_is_403",
            Req::get(&format!(
                "/xapi/activities/state?activityId={}&agent={}&stateId=s",
                enc("https://other.example/x"),
                enc(r#"{"account":{"homePage":"https://lms.example","name":"learner-1"}}"#)
            ))
            .bearer(&listed),
            403,
            "query_out_of_scope",
        ),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}

#[test]
fn all_registrations_group_and_certification_scopes() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let default_token = gate.token();
    assert_eq!(post(&gate, &default_token, &statement()).status, 200);

    // All registrations of the activity: another registration's statement is shown and writable.
    let all = gate.token_for(&scoped_request("actor-activity-all-registrations", "actor-activity-all-registrations"));
    let other_reg = with(statement(), &["context", "registration"], json!(OTHER_REGISTRATION));
    assert_eq!(post(&gate, &all, &other_reg).status, 200);
    let r = gate.edge(&Req::get("/xapi/statements").bearer(&all));
    assert_eq!(r.json()["statements"].as_array().unwrap().len(), 2, "{}", r.text());
    let names: Vec<String> = lrs.last_request().query().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["agent", "activity"]);

    // Team: the group by its IFI; the learner must be a member; the team's statements are seen.
    let mut team_req = scoped_request("group-activity-registration-scoped", "group-activity-registration-scoped");
    team_req["group"] = json!({"objectType": "Group", "mbox": TEAM, "name": "Team One",
        "member": [{"account": {"homePage": "https://lms.example", "name": "learner-1"}}]});
    let team = gate.token_for(&team_req);
    let as_team = with(statement(), &["actor"], json!({"objectType": "Group", "mbox": TEAM}));
    assert_eq!(post(&gate, &team, &as_team).status, 200);
    let r = gate.edge(&Req::get("/xapi/statements").bearer(&team));
    assert_eq!(r.status, 200);
    let forced: Value = serde_json::from_str(&lrs.last_request().query()[0].1).unwrap();
    assert_eq!(forced, json!({"objectType": "Group", "mbox": TEAM}), "the team is queried by IFI alone");
    assert_eq!(r.json()["statements"][0]["actor"]["mbox"], TEAM);
    let mut not_member = team_req.clone();
    not_member["group"]["member"] = json!([{"mbox": "mailto:someone@else"}]);
    let r = gate.issue("acme.test", API_KEY_ACME, &not_member);
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_group")));

    // Certification: the learner's own statements anywhere, read only.
    let cert = gate.token_for(&scoped_request("false", "actor-cross-course-certification"));
    let r = gate.edge(&Req::get("/xapi/statements").bearer(&cert));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["statements"].as_array().unwrap().len(), 2, "both registrations, not the team's");
    let names: Vec<String> = lrs.last_request().query().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["agent"]);
    let r = gate.issue("acme.test", API_KEY_ACME, &scoped_request("actor-cross-course-certification", "false"));
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("scope_not_writable")));

    let rows = vec![
        (
            "certification_cannot_write",
            Req::statements(&cert, statement().to_string().into_bytes()),
            403,
            "scope_denies",
        ),
        (
            "all_registrations_keeps_the_activity",
            Req::statements(&all, with(statement(), &["object", "id"], json!(SIBLING_AU)).to_string().into_bytes()),
            200,
            "",
        ),
        (
            "team_token_cannot_write_as_a_teammate",
            Req::statements(
                &team,
                with(
                    statement(),
                    &["actor"],
                    json!({"account": {"homePage": "https://lms.example", "name": "learner-2"}}),
                )
                .to_string()
                .into_bytes(),
            ),
            403,
            "actor_mismatch",
        ),
        (
            "team_token_cannot_query_another_group",
            Req::get(&format!("/xapi/statements?agent={}", enc(r#"{"objectType":"Group","mbox":"mailto:t2@x"}"#)))
                .bearer(&team),
            403,
            "query_out_of_scope",
        ),
        (
            "default_scope_refuses_related_agents",
            Req::get("/xapi/statements?related_agents=true").bearer(&default_token),
            403,
            "related_not_allowed",
        ),
    ];
    // A cmi5-allowed statement about another activity is fine (tenant default), so this row is
    // an allow row: check it separately from the refusals.
    let (allowed, refused): (Vec<_>, Vec<_>) = rows.into_iter().partition(|row| row.2 == 200);
    for (rule, req, status, _) in allowed {
        assert_eq!(gate.edge(&req).status, status, "{rule}");
    }
    assert_refused_untouched(&gate, &lrs, refused);
}

#[test]
fn cmi5_statement_rules_at_the_edge() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]));
    let mut req = token_request();
    req["publisher_id"] = json!("https://publisher.example/au/1");
    let token = gate.token_for(&req);
    let cmi5 = |verb: &str| {
        with(
            with(statement(), &["verb", "id"], json!(verb)),
            &["context", "contextActivities", "category"],
            json!([{"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}]),
        )
    };
    let question = with(statement(), &["object", "id"], json!(format!("{ACTIVITY}/test/q1")));
    assert_eq!(post(&gate, &token, &question).status, 200, "cmi5-allowed: another object");
    assert_eq!(post(&gate, &token, &cmi5("http://adlnet.gov/expapi/verbs/completed")).status, 200);
    let body = |v: Value| v.to_string().into_bytes();
    let rows = vec![
        (
            "launched_from_an_au_is_403",
            Req::statements(&token, body(cmi5("http://adlnet.gov/expapi/verbs/launched"))),
            403,
            "lms_only_verb",
        ),
        (
            "satisfied_from_an_au_is_403",
            Req::statements(&token, body(cmi5("https://w3id.org/xapi/adl/verbs/satisfied"))),
            403,
            "lms_only_verb",
        ),
        (
            "cmi5_defined_on_another_object_is_403",
            Req::statements(
                &token,
                body(with(cmi5("http://adlnet.gov/expapi/verbs/passed"), &["object", "id"], json!(SIBLING_AU))),
            ),
            403,
            "activity_mismatch",
        ),
        (
            "missing_session_id_is_403",
            Req::statements(&token, body(with(statement(), &["context", "extensions"], json!({})))),
            403,
            "session_id_mismatch",
        ),
        (
            "another_session_id_is_403",
            Req::statements(
                &token,
                body(with(
                    statement(),
                    &["context", "extensions", "https://w3id.org/xapi/cmi5/context/extensions/sessionid"],
                    json!("s-2"),
                )),
            ),
            403,
            "session_id_mismatch",
        ),
        (
            "missing_publisher_grouping_is_403",
            Req::statements(&token, body(with(statement(), &["context", "contextActivities"], json!({})))),
            403,
            "publisher_id_missing",
        ),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}

#[test]
fn tenant_policy_switches() {
    let lrs = StandIn::start();
    let gate = Gate::start(GateOptions::new(&[lrs.port]).acme(
        "[tenant.policy]\nalternate_syntax = \"refuse\"\ncmi5_other_objects = false\nlearner_preferences_writes = true",
    ));
    let token = gate.token();
    let prefs = format!(
        "/xapi/agents/profile?agent={}&profileId=cmi5LearnerPreferences",
        enc(r#"{"account":{"homePage":"https://lms.example","name":"learner-1"}}"#)
    );
    let mut put = Req::new("PUT", &prefs).bearer(&token).xapi_json().header("If-None-Match", "*");
    put.body = br#"{"languagePreference":"en-US","audioPreference":"on"}"#.to_vec();
    let r = gate.edge(&put);
    assert_eq!(r.status, 204, "learner preference writes are allowed here: {}", r.text());
    assert_eq!(lrs.last_request().body, put.body);

    let question = with(statement(), &["object", "id"], json!(format!("{ACTIVITY}/test/q1")));
    let form = format!(
        "Authorization={}&X-Experience-API-Version=1.0.3&Content-Type=application%2Fjson&content={}",
        enc(&format!("Bearer {token}")),
        enc(&statement().to_string())
    );
    let rows = vec![
        (
            "other_objects_refused_by_the_tenant",
            Req::statements(&token, question.to_string().into_bytes()),
            403,
            "activity_mismatch",
        ),
        (
            "alternate_syntax_refused_by_the_tenant",
            Req::post("/xapi/statements?method=POST", form.into_bytes())
                .header("Content-Type", "application/x-www-form-urlencoded"),
            400,
            "alternate_syntax_refused",
        ),
        (
            "other_agent_profiles_still_refused",
            Req::new("PUT", &prefs.replace("learner-1", "learner-2")).bearer(&token).xapi_json(),
            403,
            "query_out_of_scope",
        ),
        (
            "other_profile_ids_still_refused",
            Req::new("PUT", &prefs.replace("cmi5LearnerPreferences", "notes")).bearer(&token).xapi_json(),
            403,
            "profile_write_refused",
        ),
    ];
    assert_refused_untouched(&gate, &lrs, rows);
}
