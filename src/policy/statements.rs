//! Judging the Statement resource: writes by their statements, reads by their query.

use super::denial::{PolicyDenial, WriteDenial};
use super::grant::Grant;
use super::scope::Scope;
use crate::xapi::agent::{parse_agent, Actor};
use crate::xapi::iri::parse_uuid;
use crate::xapi::query::{encode, Param};
use crate::xapi::statement::{Statement, StatementObject, VERB_VOIDED};
use crate::xapi::strict_json;

/// Judge a statement write (`POST` batch or single `PUT`). One refused statement refuses all.
pub fn check_write(grant: &Grant, statements: &[Statement]) -> Result<(), WriteDenial> {
    let at0 = |denial| WriteDenial { index: 0, denial };
    match grant.write {
        Scope::ActorActivityRegistration => {}
        Scope::Nothing => return Err(at0(PolicyDenial::ScopeDenies)),
        _ => return Err(at0(PolicyDenial::NotSupported("this write scope"))),
    }
    for (index, statement) in statements.iter().enumerate() {
        check_one(grant, statement).map_err(|denial| WriteDenial { index, denial })?;
    }
    Ok(())
}

/// `PUT ?statementId=`: exactly one statement, and its `id` (if any) equal to the parameter.
pub fn check_put_id(statement_id: &str, statements: &[Statement], body_is_array: bool) -> Result<(), PolicyDenial> {
    let id = parse_uuid(statement_id).ok_or(PolicyDenial::InvalidParameter("statementId"))?;
    let [statement] = statements else {
        return Err(PolicyDenial::NotOneStatement);
    };
    if body_is_array {
        return Err(PolicyDenial::NotOneStatement);
    }
    match statement.id {
        Some(body_id) if body_id != id => Err(PolicyDenial::StatementIdMismatch),
        _ => Ok(()),
    }
}

fn check_one(grant: &Grant, s: &Statement) -> Result<(), PolicyDenial> {
    if s.verb_id == VERB_VOIDED {
        return Err(PolicyDenial::VoidingRefused);
    }
    if s.has_authority {
        return Err(PolicyDenial::AuthorityRefused);
    }
    match &s.actor {
        Actor::Agent(ifi) if *ifi == grant.actor => {}
        _ => return Err(PolicyDenial::ActorMismatch),
    }
    match &s.object {
        StatementObject::Activity { id } if *id == grant.activity_id => {}
        _ => return Err(PolicyDenial::ActivityMismatch),
    }
    if s.context_registration != Some(grant.registration) {
        return Err(PolicyDenial::RegistrationMismatch);
    }
    Ok(())
}

/// Judge a `GET`/`HEAD /statements` query and build the query the LRS receives: the scope's
/// filters forced (the client's equal value replaced by the canonical one, a missing one added),
/// every other parameter forwarded exactly as the client encoded it.
pub fn check_read(grant: &Grant, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    match grant.read {
        Scope::ActorActivityRegistration => {}
        Scope::Nothing => return Err(PolicyDenial::ScopeDenies),
        _ => return Err(PolicyDenial::NotSupported("this read scope")),
    }
    let forced_agent = grant.actor.agent_json().to_string();
    let forced_registration = grant.registration.hyphenated().to_string();
    let mut out = String::with_capacity(256);
    let mut seen = [false; 3];
    for p in params {
        let forced = match p.name.as_ref() {
            "statementId" | "voidedStatementId" => return Err(PolicyDenial::NotOneStatementQuery),
            "attachments" if p.value != "false" => {
                return Err(PolicyDenial::NotSupported("attachments=true on statement lists"))
            }
            "related_agents" | "related_activities" => match p.value.as_ref() {
                "false" => None,
                "true" => return Err(PolicyDenial::NotSupported("related_agents/related_activities")),
                _ => return Err(PolicyDenial::InvalidParameter(param_name(&p.name))),
            },
            "agent" => {
                let value =
                    strict_json::parse(p.value.as_bytes()).map_err(|_| PolicyDenial::InvalidParameter("agent"))?;
                let ifi = parse_agent(&value).map_err(|_| PolicyDenial::InvalidParameter("agent"))?;
                if ifi != grant.actor {
                    return Err(PolicyDenial::QueryOutOfScope("agent"));
                }
                seen[0] = true;
                Some(("agent", forced_agent.as_str()))
            }
            "registration" => {
                let reg = parse_uuid(&p.value).ok_or(PolicyDenial::InvalidParameter("registration"))?;
                if reg != grant.registration {
                    return Err(PolicyDenial::QueryOutOfScope("registration"));
                }
                seen[1] = true;
                Some(("registration", forced_registration.as_str()))
            }
            "activity" => {
                if p.value != grant.activity_id {
                    return Err(PolicyDenial::QueryOutOfScope("activity"));
                }
                seen[2] = true;
                Some(("activity", grant.activity_id.as_str()))
            }
            _ => None,
        };
        if !out.is_empty() {
            out.push('&');
        }
        match forced {
            Some((name, value)) => push_pair(&mut out, name, value),
            None => out.push_str(p.raw),
        }
    }
    let required =
        [("agent", forced_agent.as_str()), ("registration", &forced_registration), ("activity", &grant.activity_id)];
    for ((name, value), present) in required.into_iter().zip(seen) {
        if !present {
            if !out.is_empty() {
                out.push('&');
            }
            push_pair(&mut out, name, value);
        }
    }
    Ok(out)
}

/// Judge a single-statement read (`statementId` or `voidedStatementId`). xAPI allows only
/// `format` and `attachments` beside the id (Comm §2.1.3), so the scope cannot be forced onto
/// the query: the statement the LRS returns is judged by [`returned_in_scope`] instead.
pub fn check_single_read(grant: &Grant, params: &[Param<'_>]) -> Result<(), PolicyDenial> {
    match grant.read {
        Scope::ActorActivityRegistration => {}
        Scope::Nothing => return Err(PolicyDenial::ScopeDenies),
        _ => return Err(PolicyDenial::NotSupported("this read scope")),
    }
    let mut ids = 0;
    for p in params {
        match p.name.as_ref() {
            "statementId" | "voidedStatementId" => {
                parse_uuid(&p.value).ok_or(PolicyDenial::InvalidParameter("statementId"))?;
                ids += 1;
            }
            "format" | "attachments" => {}
            _ => return Err(PolicyDenial::InvalidParameter("statementId (only format and attachments may join it)")),
        }
    }
    if ids != 1 {
        return Err(PolicyDenial::InvalidParameter("statementId (use statementId or voidedStatementId, not both)"));
    }
    Ok(())
}

/// Whether a statement the LRS returned lies within the grant's read scope: the token's
/// learner as actor, its activity as object, its registration. Anything else is answered as
/// not found, so a token learns nothing of statements outside its scope.
pub fn returned_in_scope(grant: &Grant, s: &Statement) -> bool {
    matches!(&s.actor, Actor::Agent(ifi) if *ifi == grant.actor)
        && matches!(&s.object, StatementObject::Activity { id } if *id == grant.activity_id)
        && s.context_registration == Some(grant.registration)
}

fn push_pair(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push('=');
    out.push_str(&encode(value));
}

fn param_name(name: &str) -> &'static str {
    if name == "related_agents" {
        "related_agents"
    } else {
        "related_activities"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xapi::query::{parse, STATEMENT_GET_PARAMS};
    use crate::xapi::statement::parse_body;
    use serde_json::{json, Value};

    const ACTIVITY: &str = "https://lms.example/course/1/au/1";
    const REG: &str = "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11";

    fn grant() -> Grant {
        crate::policy::grant::test_grant(ACTIVITY)
    }

    fn statement() -> Value {
        json!({
            "actor": {"account": {"homePage": "https://lms.example", "name": "learner-1"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
            "object": {"id": ACTIVITY},
            "context": {"registration": REG}
        })
    }

    fn write(body: Value) -> Result<(), WriteDenial> {
        check_write(&grant(), &parse_body(body.to_string().as_bytes()).unwrap())
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut s = statement();
        let mut at = &mut s;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        s
    }

    #[test]
    fn write_rules() {
        let deny = |index, denial| Err(WriteDenial { index, denial });
        let other_reg = "00000000-0000-4000-8000-000000000000";
        let table: Vec<(&str, Value, Result<(), WriteDenial>)> = vec![
            ("own_statement_is_allowed", statement(), Ok(())),
            ("actor_name_does_not_count", with(&["actor", "name"], json!("Someone Else")), Ok(())),
            (
                "other_actor_is_refused",
                with(&["actor"], json!({"account": {"homePage": "https://lms.example", "name": "learner-2"}})),
                deny(0, PolicyDenial::ActorMismatch),
            ),
            (
                "same_value_other_ifi_kind_is_refused",
                with(&["actor"], json!({"openid": "https://lms.example"})),
                deny(0, PolicyDenial::ActorMismatch),
            ),
            (
                "other_home_page_is_refused",
                with(&["actor", "account", "homePage"], json!("https://evil.example")),
                deny(0, PolicyDenial::ActorMismatch),
            ),
            (
                "group_actor_is_refused",
                with(
                    &["actor"],
                    json!({"objectType": "Group", "member": [{"account": {"homePage": "https://lms.example", "name": "learner-1"}}]}),
                ),
                deny(0, PolicyDenial::ActorMismatch),
            ),
            (
                "other_activity_is_refused",
                with(&["object", "id"], json!("https://lms.example/course/1/au/2")),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            (
                "activity_prefix_is_not_enough",
                with(&["object", "id"], json!(format!("{ACTIVITY}/x"))),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            (
                "agent_object_is_refused",
                with(&["object"], json!({"objectType": "Agent", "mbox": "mailto:x@y"})),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            (
                "other_registration_is_refused",
                with(&["context", "registration"], json!(other_reg)),
                deny(0, PolicyDenial::RegistrationMismatch),
            ),
            (
                "missing_registration_is_refused",
                with(&["context"], json!({})),
                deny(0, PolicyDenial::RegistrationMismatch),
            ),
            (
                "registration_case_does_not_matter",
                with(&["context", "registration"], json!(REG.to_uppercase())),
                Ok(()),
            ),
            ("voiding_is_refused", with(&["verb", "id"], json!(VERB_VOIDED)), deny(0, PolicyDenial::VoidingRefused)),
            (
                "client_authority_is_refused",
                with(&["authority"], json!({"mbox": "mailto:lrs@x"})),
                deny(0, PolicyDenial::AuthorityRefused),
            ),
            (
                "one_bad_statement_refuses_the_batch",
                json!([statement(), statement(), with(&["object", "id"], json!("https://x/other"))]),
                deny(2, PolicyDenial::ActivityMismatch),
            ),
        ];
        for (rule, body, want) in table {
            assert_eq!(write(body), want, "{rule}");
        }
    }

    #[test]
    fn write_scope_false_and_unjudged_scopes_are_refused() {
        let stmts = parse_body(statement().to_string().as_bytes()).unwrap();
        let mut g = grant();
        g.write = Scope::Nothing;
        assert_eq!(check_write(&g, &stmts).unwrap_err().denial, PolicyDenial::ScopeDenies);
        g.write = Scope::ActorCourseRegistration;
        assert!(matches!(check_write(&g, &stmts).unwrap_err().denial, PolicyDenial::NotSupported(_)));
    }

    #[test]
    fn put_id_rules() {
        let id = "ec531277-b57b-4c15-8d91-d292c5b2b8f7";
        let with_id = parse_body(with(&["id"], json!(id)).to_string().as_bytes()).unwrap();
        let without_id = parse_body(statement().to_string().as_bytes()).unwrap();
        assert_eq!(check_put_id(id, &with_id, false), Ok(()));
        assert_eq!(check_put_id(&id.to_uppercase(), &with_id, false), Ok(()));
        assert_eq!(check_put_id(id, &without_id, false), Ok(()));
        assert_eq!(
            check_put_id("ec531277-b57b-4c15-8d91-000000000000", &with_id, false),
            Err(PolicyDenial::StatementIdMismatch)
        );
        assert_eq!(check_put_id(id, &with_id, true), Err(PolicyDenial::NotOneStatement));
        assert_eq!(check_put_id("x", &with_id, false), Err(PolicyDenial::InvalidParameter("statementId")));
    }

    fn read(query: &str) -> Result<String, PolicyDenial> {
        check_read(&grant(), &parse(Some(query), STATEMENT_GET_PARAMS).unwrap())
    }

    fn decoded(query: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(query.as_bytes()).into_owned().collect()
    }

    #[test]
    fn read_forces_all_three_filters() {
        let q = decoded(&read("limit=5").unwrap());
        assert_eq!(q[0], ("limit".into(), "5".into()));
        let agent: Value = serde_json::from_str(&q[1].1).unwrap();
        assert_eq!(q[1].0, "agent");
        assert_eq!(parse_agent(&agent).unwrap(), grant().actor);
        assert_eq!(q[2], ("registration".into(), REG.into()));
        assert_eq!(q[3], ("activity".into(), ACTIVITY.into()));
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn read_rules() {
        let own_agent = encode(r#"{"name":"x","account":{"homePage":"https://lms.example","name":"learner-1"}}"#);
        let other_agent = encode(r#"{"account":{"homePage":"https://lms.example","name":"learner-2"}}"#);
        let table: Vec<(&str, String, Result<(), PolicyDenial>)> = vec![
            ("equal_agent_is_kept_in_canonical_form", format!("agent={own_agent}"), Ok(())),
            ("other_agent_is_refused", format!("agent={other_agent}"), Err(PolicyDenial::QueryOutOfScope("agent"))),
            ("malformed_agent_is_invalid", "agent=%7B".into(), Err(PolicyDenial::InvalidParameter("agent"))),
            (
                "other_registration_is_refused",
                "registration=00000000-0000-4000-8000-000000000000".into(),
                Err(PolicyDenial::QueryOutOfScope("registration")),
            ),
            ("own_registration_is_allowed", format!("registration={REG}"), Ok(())),
            (
                "other_activity_is_refused",
                "activity=https%3A%2F%2Fother".into(),
                Err(PolicyDenial::QueryOutOfScope("activity")),
            ),
            ("own_activity_is_allowed", format!("activity={}", encode(ACTIVITY)), Ok(())),
            (
                "related_agents_true_is_not_judged_yet",
                "related_agents=true".into(),
                Err(PolicyDenial::NotSupported("related_agents/related_activities")),
            ),
            ("related_activities_false_is_fine", "related_activities=false".into(), Ok(())),
            (
                "attachments_on_lists_are_not_judged_yet",
                "attachments=true".into(),
                Err(PolicyDenial::NotSupported("attachments=true on statement lists")),
            ),
            ("attachments_false_is_fine", "attachments=false".into(), Ok(())),
            (
                "statement_id_is_not_a_list_read",
                "statementId=ec531277-b57b-4c15-8d91-d292c5b2b8f7".into(),
                Err(PolicyDenial::NotOneStatementQuery),
            ),
            (
                "plain_filters_pass",
                "verb=http%3A%2F%2Fv&since=2024-01-01T00:00:00Z&format=ids&ascending=true".into(),
                Ok(()),
            ),
        ];
        for (rule, query, want) in table {
            assert_eq!(read(&query).map(|_| ()), want, "{rule}");
        }
    }

    #[test]
    fn read_keeps_client_encoding_of_other_params() {
        let out = read("since=2024-01-01T00%3A00%3A00Z&limit=1").unwrap();
        assert!(out.starts_with("since=2024-01-01T00%3A00%3A00Z&limit=1&agent="), "{out}");
    }

    #[test]
    fn single_read_rules() {
        let single = |q: &str| check_single_read(&grant(), &parse(Some(q), STATEMENT_GET_PARAMS).unwrap());
        let id = "ec531277-b57b-4c15-8d91-d292c5b2b8f7";
        assert_eq!(single(&format!("statementId={id}")), Ok(()));
        assert_eq!(single(&format!("voidedStatementId={id}&format=ids&attachments=true")), Ok(()));
        assert!(single(&format!("statementId={id}&agent=%7B%7D")).is_err(), "no narrowing beside an id");
        assert!(single(&format!("statementId={id}&voidedStatementId={id}")).is_err());
        assert!(single("statementId=nope").is_err());
        let stmt = |v: Value| parse_body(v.to_string().as_bytes()).unwrap().remove(0);
        assert!(returned_in_scope(&grant(), &stmt(statement())));
        assert!(!returned_in_scope(&grant(), &stmt(with(&["actor", "account", "name"], json!("learner-2")))));
        assert!(!returned_in_scope(&grant(), &stmt(with(&["object", "id"], json!("https://other/au")))));
        assert!(!returned_in_scope(&grant(), &stmt(with(&["context"], json!({})))));
        // The LRS sets authority and stored on what it returns; that is no reason to hide it.
        assert!(returned_in_scope(&grant(), &stmt(with(&["authority"], json!({"mbox": "mailto:lrs@x"})))));
    }

    #[test]
    fn read_scope_false_is_refused() {
        let mut g = grant();
        g.read = Scope::Nothing;
        assert_eq!(check_read(&g, &[]), Err(PolicyDenial::ScopeDenies));
    }
}
