//! Judging the Statement resource: writes by their statements, reads by their query and by
//! what the LRS returns. What each scope covers is `reach`; this file applies it.

use super::denial::{PolicyDenial, WriteDenial};
use super::grant::Grant;
use super::reach::Direction;
use super::rules::TenantRules;
use super::scope::Scope;
use crate::xapi::agent::{parse_actor, Actor};
use crate::xapi::cmi5;
use crate::xapi::iri::parse_uuid;
use crate::xapi::query::{Param, QueryBuilder};
use crate::xapi::statement::{Statement, StatementObject, SubStatement, VERB_VOIDED};
use crate::xapi::strict_json;

/// Judge a statement write (`POST` batch or single `PUT`). One refused statement refuses all.
pub fn check_write(grant: &Grant, rules: &TenantRules, statements: &[Statement]) -> Result<(), WriteDenial> {
    let scope = grant.usable_scope(Direction::Write).map_err(|denial| WriteDenial { index: 0, denial })?;
    for (index, statement) in statements.iter().enumerate() {
        check_one(grant, rules, scope, statement).map_err(|denial| WriteDenial { index, denial })?;
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

fn check_one(grant: &Grant, rules: &TenantRules, scope: Scope, s: &Statement) -> Result<(), PolicyDenial> {
    check_verb(&s.verb_id)?;
    if s.has_authority {
        return Err(PolicyDenial::AuthorityRefused);
    }
    if !grant.actor_in_scope(scope, Direction::Write, &s.actor, None) {
        return Err(PolicyDenial::ActorMismatch);
    }
    if !grant.registration_in_scope(scope, Direction::Write, s.context_registration) {
        return Err(PolicyDenial::RegistrationMismatch);
    }
    if rules.require_session_id && s.session_id.as_deref() != Some(grant.session_id.as_str()) {
        return Err(PolicyDenial::SessionIdMismatch);
    }
    if let Some(publisher) = &grant.publisher_id {
        if !s.grouping.iter().any(|g| g == publisher) {
            return Err(PolicyDenial::PublisherIdMissing);
        }
    }
    check_object(grant, rules, scope, &s.object, s.cmi5_defined, &s.grouping)
}

/// Voiding is the LMS's (cmi5 §6.3); so are the LMS-only cmi5 verbs, with or without the cmi5
/// category (a `launched` without the category is no more an AU's to send).
fn check_verb(verb_id: &str) -> Result<(), PolicyDenial> {
    if crate::xapi::iri::same_iri(verb_id, VERB_VOIDED) {
        return Err(PolicyDenial::VoidingRefused);
    }
    if cmi5::is_lms_only_verb(verb_id) {
        return Err(PolicyDenial::LmsOnlyVerb);
    }
    Ok(())
}

/// A statement's object: an activity the scope reaches; for a cmi5-allowed statement another
/// activity too when the tenant allows it. Agents and StatementRefs as objects are refused (a
/// StatementRef would make the statement match queries about someone else's statement).
fn check_object(
    grant: &Grant,
    rules: &TenantRules,
    scope: Scope,
    object: &StatementObject,
    cmi5_defined: bool,
    grouping: &[String],
) -> Result<(), PolicyDenial> {
    match object {
        StatementObject::Activity { id } => {
            if grant.activity_in_scope(scope, id, grouping) || (!cmi5_defined && rules.cmi5_other_objects) {
                Ok(())
            } else {
                Err(PolicyDenial::ActivityMismatch)
            }
        }
        StatementObject::SubStatement(sub) if !cmi5_defined => check_substatement(grant, rules, scope, sub),
        _ => Err(PolicyDenial::ActivityMismatch),
    }
}

/// A SubStatement is judged like a statement: its own actor, verb and object.
fn check_substatement(
    grant: &Grant,
    rules: &TenantRules,
    scope: Scope,
    sub: &SubStatement,
) -> Result<(), PolicyDenial> {
    check_verb(&sub.verb_id)?;
    if !grant.actor_in_scope(scope, Direction::Write, &sub.actor, None) {
        return Err(PolicyDenial::ActorMismatch);
    }
    check_object(grant, rules, scope, &sub.object, false, &[])
}

/// The filters a read scope forces onto a statement query.
struct Forced {
    /// The canonical `agent` value; the client may name this identity (or, under the group
    /// scope, the learner) and nobody else.
    agent: String,
    /// The registration, for scopes that pin it.
    registration: Option<String>,
    /// The activity, for scopes bound to one; the course scope lets the client name any of the
    /// course's activities, certification any activity.
    activity: Option<&'static str>,
}

/// Judge a `GET`/`HEAD /statements` query and build the query the LRS receives: the scope's
/// filters forced (the client's equal value replaced by the canonical one, a missing one added),
/// every other parameter re-encoded canonically (never the client's own text).
pub fn check_read(grant: &Grant, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    let scope = grant.usable_scope(Direction::Read)?;
    let agent_json = match (&grant.group, scope) {
        (Some(group), Scope::GroupActivityRegistration) => group.group_json(),
        _ => grant.actor.agent_json(),
    };
    let forced = Forced {
        agent: agent_json.to_string(),
        registration: scope.pins_registration().then(|| grant.registration.hyphenated().to_string()),
        activity: match scope {
            Scope::ActorCourseRegistration | Scope::ActorCrossCourseCertification => None,
            _ => Some("activity"),
        },
    };
    let (related_agents, related_activities) = match scope {
        Scope::GroupActivityRegistration => (true, false),
        Scope::ActorCourseRegistration
        | Scope::ActorActivityAllRegistrations
        | Scope::ActorCrossCourseCertification => (false, true),
        _ => (false, false),
    };
    let mut out = QueryBuilder::new();
    let (mut has_agent, mut has_registration, mut has_activity) = (false, false, false);
    for p in params {
        let replaced: Option<(&str, &str)> = match p.name.as_ref() {
            "statementId" | "voidedStatementId" => return Err(PolicyDenial::NotOneStatementQuery),
            "related_agents" | "related_activities" => {
                let name = if p.name == "related_agents" { "related_agents" } else { "related_activities" };
                let allowed = if name == "related_agents" { related_agents } else { related_activities };
                match p.value.as_ref() {
                    "false" => None,
                    "true" if allowed => None,
                    "true" => return Err(PolicyDenial::RelatedNotAllowed(name)),
                    _ => return Err(PolicyDenial::InvalidParameter(name)),
                }
            }
            "agent" => {
                let value = strict_json::parse_borrowed(p.value.as_bytes())
                    .map_err(|_| PolicyDenial::InvalidParameter("agent"))?;
                let actor = parse_actor(&value).map_err(|_| PolicyDenial::InvalidParameter("agent"))?;
                has_agent = true;
                match query_identity(grant, scope, &actor) {
                    Some(QueryIdentity::Forced) => Some(("agent", forced.agent.as_str())),
                    Some(QueryIdentity::Learner) => None,
                    None => return Err(PolicyDenial::QueryOutOfScope("agent")),
                }
            }
            "registration" => {
                let reg = parse_uuid(&p.value).ok_or(PolicyDenial::InvalidParameter("registration"))?;
                match &forced.registration {
                    Some(_) if reg != grant.registration => return Err(PolicyDenial::QueryOutOfScope("registration")),
                    Some(pinned) => {
                        has_registration = true;
                        Some(("registration", pinned.as_str()))
                    }
                    None => None,
                }
            }
            "activity" => {
                if !grant.activity_in_scope(scope, &p.value, &[]) {
                    return Err(PolicyDenial::QueryOutOfScope("activity"));
                }
                has_activity = true;
                forced.activity.map(|name| (name, grant.activity_id.as_str()))
            }
            _ => {
                check_plain_value(p)?;
                None
            }
        };
        match replaced {
            Some((name, value)) => out.push(name, value),
            None => out.push(&p.name, &p.value),
        }
    }
    if !has_agent {
        out.push("agent", &forced.agent);
    }
    if let (false, Some(reg)) = (has_registration, &forced.registration) {
        out.push("registration", reg);
    }
    if let (false, Some(name)) = (has_activity, forced.activity) {
        out.push(name, &grant.activity_id);
    }
    Ok(out.finish())
}

/// Which identity a client's `agent` filter names, if the scope allows it.
enum QueryIdentity {
    /// The scope's own identity (the learner, or the team under the group scope): canonicalised.
    Forced,
    /// The learner under the group scope: narrower than the team, kept as sent.
    Learner,
}

fn query_identity(grant: &Grant, scope: Scope, actor: &Actor) -> Option<QueryIdentity> {
    match (scope, actor, &grant.group) {
        (Scope::GroupActivityRegistration, Actor::Group { ifi: Some(ifi), .. }, Some(group)) if ifi == group => {
            Some(QueryIdentity::Forced)
        }
        (Scope::GroupActivityRegistration, Actor::Agent(ifi), _) if *ifi == grant.actor => Some(QueryIdentity::Learner),
        (Scope::GroupActivityRegistration, _, _) => None,
        (_, Actor::Agent(ifi), _) if *ifi == grant.actor => Some(QueryIdentity::Forced),
        _ => None,
    }
}

/// Judge a single-statement read (`statementId` or `voidedStatementId`). xAPI allows only
/// `format` and `attachments` beside the id (Comm §2.1.3), so the scope cannot be forced onto
/// the query: the statement the LRS returns is judged by [`returned_in_scope`] instead.
/// Returns the query the LRS receives, re-encoded.
pub fn check_single_read(grant: &Grant, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    grant.usable_scope(Direction::Read)?;
    let mut ids = 0;
    for p in params {
        match p.name.as_ref() {
            "statementId" | "voidedStatementId" => {
                parse_uuid(&p.value).ok_or(PolicyDenial::InvalidParameter("statementId"))?;
                ids += 1;
            }
            "format" | "attachments" => check_plain_value(p)?,
            _ => return Err(PolicyDenial::InvalidParameter("statementId (only format and attachments may join it)")),
        }
    }
    if ids != 1 {
        return Err(PolicyDenial::InvalidParameter("statementId (use statementId or voidedStatementId, not both)"));
    }
    let mut out = QueryBuilder::new();
    out.push_all(params);
    Ok(out.finish())
}

/// The parameters whose values xAPI enumerates (Comm §2.1.3): anything else is a 400 here, not
/// a value each LRS may read its own way.
fn check_plain_value(p: &Param<'_>) -> Result<(), PolicyDenial> {
    let ok = match p.name.as_ref() {
        "format" => matches!(p.value.as_ref(), "ids" | "exact" | "canonical"),
        "attachments" => matches!(p.value.as_ref(), "true" | "false"),
        "ascending" => matches!(p.value.as_ref(), "true" | "false"),
        "limit" => p.value.len() <= 9 && p.value.bytes().all(|b| b.is_ascii_digit()),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(PolicyDenial::InvalidParameter(match p.name.as_ref() {
            "format" => "format",
            "attachments" => "attachments",
            "ascending" => "ascending",
            _ => "limit",
        }))
    }
}

/// Whether a statement the LRS returned lies within the grant's read scope: an actor, a
/// registration and an object the scope reaches. Anything else is answered as not found, so a
/// token learns nothing of statements outside its scope.
pub fn returned_in_scope(grant: &Grant, s: &Statement) -> bool {
    let Ok(scope) = grant.usable_scope(Direction::Read) else { return false };
    grant.actor_in_scope(scope, Direction::Read, &s.actor, s.team.as_ref())
        && grant.registration_in_scope(scope, Direction::Read, s.context_registration)
        && match &s.object {
            StatementObject::Activity { id } => grant.activity_in_scope(scope, id, &s.grouping),
            _ => scope == Scope::ActorCrossCourseCertification,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Want = Result<(), PolicyDenial>;
    type WriteWant = Result<(), WriteDenial>;
    type ReadWant = Result<&'static [&'static str], PolicyDenial>;
    use crate::policy::course::CourseActivities;
    use crate::policy::grant::TEST_SESSION_ID;
    use crate::xapi::agent::{parse_agent_value as parse_agent, Ifi};
    use crate::xapi::query::{encode, parse, STATEMENT_GET_PARAMS};
    use crate::xapi::statement::parse_body;
    use serde_json::{json, Value};
    use std::sync::Arc;

    const ACTIVITY: &str = "https://lms.example/course/1/au/1";
    const SIBLING_AU: &str = "https://lms.example/course/1/au/2";
    const PUBLISHER_AU: &str = "https://pub.example/au/1";
    const REG: &str = "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11";
    const OTHER_REG: &str = "00000000-0000-4000-8000-000000000000";
    const TEAM: &str = "mailto:team-1@lms.example";

    fn grant() -> Grant {
        crate::policy::grant::test_grant(ACTIVITY)
    }

    /// The test grant with both scopes set to `scope`, and what that scope needs (team, course).
    fn scoped(scope: Scope) -> Grant {
        let mut g = grant();
        g.read = scope;
        g.write = if scope.allows_writes() { scope } else { Scope::Nothing };
        g.group = Some(Ifi::Mbox(TEAM.into()));
        g.course = Some(Arc::new(CourseActivities::new([SIBLING_AU.to_owned(), PUBLISHER_AU.to_owned()])));
        g
    }

    fn learner(name: &str) -> Value {
        json!({"account": {"homePage": "https://lms.example", "name": name}})
    }

    /// A cmi5-allowed statement of learner-1 in the token's session.
    fn statement() -> Value {
        json!({
            "actor": learner("learner-1"),
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
            "object": {"id": ACTIVITY},
            "context": {
                "registration": REG,
                "contextActivities": {"grouping": [{"id": PUBLISHER_AU}]},
                "extensions": {(cmi5::EXTENSION_SESSION_ID): TEST_SESSION_ID}
            }
        })
    }

    /// The same statement made cmi5-defined (the cmi5 category) with the given verb.
    fn cmi5_defined(verb: &str) -> Value {
        let mut s = with(&["verb", "id"], json!(verb));
        s["context"]["contextActivities"]["category"] = json!([{"id": cmi5::CATEGORY_CMI5}]);
        s
    }

    fn with(path: &[&str], value: Value) -> Value {
        with_on(statement(), path, value)
    }

    fn with_on(mut s: Value, path: &[&str], value: Value) -> Value {
        let mut at = &mut s;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        s
    }

    fn deny(index: usize, denial: PolicyDenial) -> Result<(), WriteDenial> {
        Err(WriteDenial { index, denial })
    }

    /// Rules of the default scope and the tenant defaults: one row per rule.
    #[test]
    fn write_rules() {
        let table: Vec<(&str, Value, WriteWant)> = vec![
            ("own_statement_is_allowed", statement(), Ok(())),
            ("actor_name_does_not_count", with(&["actor", "name"], json!("Someone Else")), Ok(())),
            ("other_actor_is_refused", with(&["actor"], learner("learner-2")), deny(0, PolicyDenial::ActorMismatch)),
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
                "group_actor_is_refused_outside_the_group_scope",
                with(&["actor"], json!({"objectType": "Group", "member": [learner("learner-1")]})),
                deny(0, PolicyDenial::ActorMismatch),
            ),
            ("cmi5_defined_on_own_activity_is_allowed", cmi5_defined(cmi5::VERB_COMPLETED), Ok(())),
            (
                "cmi5_defined_on_other_activity_is_refused",
                with_on(cmi5_defined(cmi5::VERB_COMPLETED), &["object", "id"], json!(SIBLING_AU)),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            (
                "cmi5_defined_on_activity_prefix_is_refused",
                with_on(cmi5_defined(cmi5::VERB_PASSED), &["object", "id"], json!(format!("{ACTIVITY}/x"))),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            (
                "cmi5_allowed_on_other_activity_is_allowed",
                with(&["object", "id"], json!(format!("{ACTIVITY}/test/q1"))),
                Ok(()),
            ),
            (
                "agent_object_is_refused",
                with(&["object"], json!({"objectType": "Agent", "mbox": "mailto:x@y"})),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            (
                "statement_ref_object_is_refused",
                with(&["object"], json!({"objectType": "StatementRef", "id": "ec531277-b57b-4c15-8d91-d292c5b2b8f7"})),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            (
                "own_substatement_is_allowed",
                with(
                    &["object"],
                    json!({"objectType": "SubStatement", "actor": learner("learner-1"),
                        "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"}, "object": {"id": ACTIVITY}}),
                ),
                Ok(()),
            ),
            (
                "substatement_of_other_actor_is_refused",
                with(
                    &["object"],
                    json!({"objectType": "SubStatement", "actor": learner("learner-2"),
                        "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"}, "object": {"id": ACTIVITY}}),
                ),
                deny(0, PolicyDenial::ActorMismatch),
            ),
            (
                "substatement_voiding_is_refused",
                with(
                    &["object"],
                    json!({"objectType": "SubStatement", "actor": learner("learner-1"),
                        "verb": {"id": VERB_VOIDED}, "object": {"id": ACTIVITY}}),
                ),
                deny(0, PolicyDenial::VoidingRefused),
            ),
            (
                "other_registration_is_refused",
                with(&["context", "registration"], json!(OTHER_REG)),
                deny(0, PolicyDenial::RegistrationMismatch),
            ),
            (
                "missing_registration_is_refused",
                with(&["context"], json!({"extensions": {(cmi5::EXTENSION_SESSION_ID): TEST_SESSION_ID}})),
                deny(0, PolicyDenial::RegistrationMismatch),
            ),
            (
                "registration_case_does_not_matter",
                with(&["context", "registration"], json!(REG.to_uppercase())),
                Ok(()),
            ),
            (
                "missing_session_id_is_refused",
                with(&["context", "extensions"], json!({})),
                deny(0, PolicyDenial::SessionIdMismatch),
            ),
            (
                "other_session_id_is_refused",
                with(&["context", "extensions", cmi5::EXTENSION_SESSION_ID], json!("another-session")),
                deny(0, PolicyDenial::SessionIdMismatch),
            ),
            (
                "pre_quartz_session_id_is_accepted",
                with(&["context", "extensions"], json!({(cmi5::EXTENSION_SESSION_ID_PRE_QUARTZ): TEST_SESSION_ID})),
                Ok(()),
            ),
            ("voiding_is_refused", with(&["verb", "id"], json!(VERB_VOIDED)), deny(0, PolicyDenial::VoidingRefused)),
            ("launched_is_refused", cmi5_defined(cmi5::VERB_LAUNCHED), deny(0, PolicyDenial::LmsOnlyVerb)),
            ("abandoned_is_refused", cmi5_defined(cmi5::VERB_ABANDONED), deny(0, PolicyDenial::LmsOnlyVerb)),
            ("waived_is_refused", cmi5_defined(cmi5::VERB_WAIVED), deny(0, PolicyDenial::LmsOnlyVerb)),
            ("satisfied_is_refused", cmi5_defined(cmi5::VERB_SATISFIED), deny(0, PolicyDenial::LmsOnlyVerb)),
            (
                "lms_only_verb_without_category_is_refused",
                with(&["verb", "id"], json!(cmi5::VERB_LAUNCHED)),
                deny(0, PolicyDenial::LmsOnlyVerb),
            ),
            (
                "client_authority_is_refused",
                with(&["authority"], json!({"mbox": "mailto:lrs@x"})),
                deny(0, PolicyDenial::AuthorityRefused),
            ),
            (
                "one_bad_statement_refuses_the_batch",
                json!([statement(), statement(), cmi5_defined(cmi5::VERB_LAUNCHED)]),
                deny(2, PolicyDenial::LmsOnlyVerb),
            ),
        ];
        for (rule, body, want) in table {
            let statements = parse_body(body.to_string().as_bytes()).unwrap();
            assert_eq!(check_write(&grant(), &TenantRules::default(), &statements), want, "{rule}");
        }
    }

    /// The tenant switches and the token's optional publisher id.
    #[test]
    fn write_rules_per_tenant_and_token() {
        let strict = TenantRules { cmi5_other_objects: false, ..TenantRules::default() };
        let plain_xapi = TenantRules { require_session_id: false, ..TenantRules::default() };
        let base = grant();
        let mut with_publisher = grant();
        with_publisher.publisher_id = Some(PUBLISHER_AU.into());
        let question = with(&["object", "id"], json!(format!("{ACTIVITY}/test/q1")));
        let table: Vec<(&str, &Grant, TenantRules, Value, WriteWant)> = vec![
            (
                "other_objects_refused_when_the_tenant_says_so",
                &base,
                strict,
                question.clone(),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            ("own_activity_still_allowed_when_strict", &base, strict, statement(), Ok(())),
            (
                "session_id_optional_when_the_tenant_says_so",
                &base,
                plain_xapi,
                with(&["context", "extensions"], json!({})),
                Ok(()),
            ),
            ("publisher_in_grouping_is_allowed", &with_publisher, TenantRules::default(), statement(), Ok(())),
            (
                "publisher_missing_from_grouping_is_refused",
                &with_publisher,
                TenantRules::default(),
                with(&["context", "contextActivities"], json!({})),
                deny(0, PolicyDenial::PublisherIdMissing),
            ),
            (
                "publisher_as_parent_is_not_grouping",
                &with_publisher,
                TenantRules::default(),
                with(&["context", "contextActivities"], json!({"parent": [{"id": PUBLISHER_AU}]})),
                deny(0, PolicyDenial::PublisherIdMissing),
            ),
        ];
        for (rule, g, rules, body, want) in table {
            let statements = parse_body(body.to_string().as_bytes()).unwrap();
            assert_eq!(check_write(g, &rules, &statements), want, "{rule}");
        }
    }

    /// What each write scope accepts beyond the default one.
    #[test]
    fn write_rules_per_scope() {
        let team_actor = json!({"objectType": "Group", "mbox": TEAM});
        let strict = TenantRules { cmi5_other_objects: false, ..TenantRules::default() };
        let table: Vec<(&str, Scope, Value, WriteWant)> = vec![
            ("false_scope_refuses_writes", Scope::Nothing, statement(), deny(0, PolicyDenial::ScopeDenies)),
            (
                "course_scope_accepts_a_sibling_au",
                Scope::ActorCourseRegistration,
                with_on(cmi5_defined(cmi5::VERB_COMPLETED), &["object", "id"], json!(SIBLING_AU)),
                Ok(()),
            ),
            (
                "course_scope_refuses_an_activity_outside_the_course",
                Scope::ActorCourseRegistration,
                with_on(
                    with_on(cmi5_defined(cmi5::VERB_COMPLETED), &["object", "id"], json!("https://other/au")),
                    &["context", "contextActivities", "grouping"],
                    json!([]),
                ),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            (
                "course_scope_knows_an_au_by_its_publisher_grouping",
                Scope::ActorCourseRegistration,
                with_on(cmi5_defined(cmi5::VERB_COMPLETED), &["object", "id"], json!("https://lms.example/launch/9")),
                Ok(()),
            ),
            (
                "course_scope_keeps_the_registration",
                Scope::ActorCourseRegistration,
                with(&["context", "registration"], json!(OTHER_REG)),
                deny(0, PolicyDenial::RegistrationMismatch),
            ),
            (
                "all_registrations_scope_accepts_another_registration",
                Scope::ActorActivityAllRegistrations,
                with(&["context", "registration"], json!(OTHER_REG)),
                Ok(()),
            ),
            (
                "all_registrations_scope_still_needs_one",
                Scope::ActorActivityAllRegistrations,
                with(&["context"], json!({"extensions": {(cmi5::EXTENSION_SESSION_ID): TEST_SESSION_ID}})),
                deny(0, PolicyDenial::RegistrationMismatch),
            ),
            (
                "all_registrations_scope_keeps_the_activity",
                Scope::ActorActivityAllRegistrations,
                with_on(cmi5_defined(cmi5::VERB_COMPLETED), &["object", "id"], json!(SIBLING_AU)),
                deny(0, PolicyDenial::ActivityMismatch),
            ),
            ("group_scope_accepts_the_learner", Scope::GroupActivityRegistration, statement(), Ok(())),
            (
                "group_scope_accepts_the_team_by_ifi",
                Scope::GroupActivityRegistration,
                with(&["actor"], team_actor),
                Ok(()),
            ),
            (
                "group_scope_refuses_another_group",
                Scope::GroupActivityRegistration,
                with(&["actor"], json!({"objectType": "Group", "mbox": "mailto:team-2@lms.example"})),
                deny(0, PolicyDenial::ActorMismatch),
            ),
            (
                "group_scope_refuses_a_group_named_like_the_team",
                Scope::GroupActivityRegistration,
                with(&["actor"], json!({"objectType": "Group", "name": TEAM, "member": [learner("learner-1")]})),
                deny(0, PolicyDenial::ActorMismatch),
            ),
            (
                "group_scope_refuses_a_teammate",
                Scope::GroupActivityRegistration,
                with_on(
                    with(&["actor"], learner("learner-2")),
                    &["context", "team"],
                    json!({"objectType": "Group", "mbox": TEAM}),
                ),
                deny(0, PolicyDenial::ActorMismatch),
            ),
        ];
        for (rule, scope, body, want) in table {
            let statements = parse_body(body.to_string().as_bytes()).unwrap();
            assert_eq!(check_write(&scoped(scope), &strict, &statements), want, "{rule}");
        }
        let mut unknown_course = scoped(Scope::ActorCourseRegistration);
        unknown_course.course = None;
        let stmts = parse_body(statement().to_string().as_bytes()).unwrap();
        assert_eq!(
            check_write(&unknown_course, &TenantRules::default(), &stmts),
            deny(0, PolicyDenial::CourseUnknown),
            "course_scope_without_known_activities_refuses"
        );
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

    fn read_as(g: &Grant, query: &str) -> Result<String, PolicyDenial> {
        check_read(g, &parse(Some(query), STATEMENT_GET_PARAMS).unwrap())
    }

    fn read(query: &str) -> Result<String, PolicyDenial> {
        read_as(&grant(), query)
    }

    fn decoded(query: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(query.as_bytes()).into_owned().collect()
    }

    fn names(query: &str) -> Vec<String> {
        decoded(query).into_iter().map(|(n, _)| n).collect()
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
        let table: Vec<(&str, String, Want)> = vec![
            ("equal_agent_is_kept_in_canonical_form", format!("agent={own_agent}"), Ok(())),
            ("other_agent_is_refused", format!("agent={other_agent}"), Err(PolicyDenial::QueryOutOfScope("agent"))),
            ("malformed_agent_is_invalid", "agent=%7B".into(), Err(PolicyDenial::InvalidParameter("agent"))),
            (
                "other_registration_is_refused",
                format!("registration={OTHER_REG}"),
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
                "related_agents_true_is_refused_in_the_default_scope",
                "related_agents=true".into(),
                Err(PolicyDenial::RelatedNotAllowed("related_agents")),
            ),
            (
                "related_activities_true_is_refused_in_the_default_scope",
                "related_activities=true".into(),
                Err(PolicyDenial::RelatedNotAllowed("related_activities")),
            ),
            ("related_activities_false_is_fine", "related_activities=false".into(), Ok(())),
            ("attachments_pass", "attachments=true".into(), Ok(())),
            ("format_passes", "format=canonical".into(), Ok(())),
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

    /// Which filters each read scope forces, and what the client may add.
    #[test]
    fn read_rules_per_scope() {
        let team_agent = encode(&format!(r#"{{"objectType":"Group","mbox":"{TEAM}"}}"#));
        let own_agent = encode(r#"{"account":{"homePage":"https://lms.example","name":"learner-1"}}"#);
        let table: Vec<(&str, Scope, String, ReadWant)> = vec![
            ("false_scope_refuses_reads", Scope::Nothing, String::new(), Err(PolicyDenial::ScopeDenies)),
            (
                "course_scope_forces_agent_and_registration",
                Scope::ActorCourseRegistration,
                String::new(),
                Ok(&["agent", "registration"]),
            ),
            (
                "course_scope_allows_an_activity_of_the_course",
                Scope::ActorCourseRegistration,
                format!("activity={}", encode(SIBLING_AU)),
                Ok(&["activity", "agent", "registration"]),
            ),
            (
                "course_scope_refuses_an_activity_outside_the_course",
                Scope::ActorCourseRegistration,
                "activity=https%3A%2F%2Fother".into(),
                Err(PolicyDenial::QueryOutOfScope("activity")),
            ),
            (
                "course_scope_allows_related_activities",
                Scope::ActorCourseRegistration,
                "related_activities=true".into(),
                Ok(&["related_activities", "agent", "registration"]),
            ),
            (
                "course_scope_refuses_related_agents",
                Scope::ActorCourseRegistration,
                "related_agents=true".into(),
                Err(PolicyDenial::RelatedNotAllowed("related_agents")),
            ),
            (
                "all_registrations_scope_forces_agent_and_activity",
                Scope::ActorActivityAllRegistrations,
                String::new(),
                Ok(&["agent", "activity"]),
            ),
            (
                "all_registrations_scope_accepts_any_registration",
                Scope::ActorActivityAllRegistrations,
                format!("registration={OTHER_REG}"),
                Ok(&["registration", "agent", "activity"]),
            ),
            (
                "group_scope_forces_the_team_registration_and_activity",
                Scope::GroupActivityRegistration,
                String::new(),
                Ok(&["agent", "registration", "activity"]),
            ),
            (
                "group_scope_allows_related_agents",
                Scope::GroupActivityRegistration,
                format!("agent={team_agent}&related_agents=true"),
                Ok(&["agent", "related_agents", "registration", "activity"]),
            ),
            (
                "group_scope_allows_narrowing_to_the_learner",
                Scope::GroupActivityRegistration,
                format!("agent={own_agent}"),
                Ok(&["agent", "registration", "activity"]),
            ),
            (
                "group_scope_refuses_another_group",
                Scope::GroupActivityRegistration,
                format!("agent={}", encode(r#"{"objectType":"Group","mbox":"mailto:team-2@lms.example"}"#)),
                Err(PolicyDenial::QueryOutOfScope("agent")),
            ),
            (
                "certification_scope_forces_only_the_agent",
                Scope::ActorCrossCourseCertification,
                "activity=https%3A%2F%2Fother%2Fcourse&related_activities=true".into(),
                Ok(&["activity", "related_activities", "agent"]),
            ),
            (
                "certification_scope_refuses_another_agent",
                Scope::ActorCrossCourseCertification,
                format!("agent={}", encode(r#"{"mbox":"mailto:someone@else"}"#)),
                Err(PolicyDenial::QueryOutOfScope("agent")),
            ),
        ];
        for (rule, scope, query, want) in table {
            let got = read_as(&scoped(scope), &query);
            match want {
                Ok(expected) => assert_eq!(names(&got.unwrap_or_else(|e| panic!("{rule}: {e:?}"))), expected, "{rule}"),
                Err(denial) => assert_eq!(got, Err(denial), "{rule}"),
            }
        }
        let q = decoded(&read_as(&scoped(Scope::GroupActivityRegistration), "").unwrap());
        let agent: Value = serde_json::from_str(&q[0].1).unwrap();
        assert_eq!(agent, json!({"objectType": "Group", "mbox": TEAM}), "the team is forced by IFI alone");
    }

    #[test]
    fn read_re_encodes_other_params_canonically() {
        // `+` and a lower-case escape are the client's spelling; the LRS gets lrsgate's.
        let out = read("since=2024-01-01T00%3a00%3A00+00:00&limit=1").unwrap();
        assert!(out.starts_with("since=2024-01-01T00%3A00%3A00%2000%3A00&limit=1&agent="), "{out}");
    }

    #[test]
    fn enumerated_values_are_checked() {
        for (rule, query) in [
            ("format_unknown", "format=all"),
            ("attachments_not_boolean", "attachments=1"),
            ("ascending_not_boolean", "ascending=yes"),
            ("limit_not_a_number", "limit=-1"),
            ("limit_too_long", "limit=10000000000"),
        ] {
            assert!(matches!(read(query), Err(PolicyDenial::InvalidParameter(_))), "{rule}");
        }
    }

    #[test]
    fn single_read_rules() {
        let single = |q: &str| check_single_read(&grant(), &parse(Some(q), STATEMENT_GET_PARAMS).unwrap());
        let id = "ec531277-b57b-4c15-8d91-d292c5b2b8f7";
        assert_eq!(single(&format!("statementId={id}")), Ok(format!("statementId={id}")));
        assert_eq!(
            single(&format!("voidedStatementId={id}&format=ids&attachments=true")),
            Ok(format!("voidedStatementId={id}&format=ids&attachments=true"))
        );
        assert!(single(&format!("statementId={id}&format=everything")).is_err());
        assert!(single(&format!("statementId={id}&agent=%7B%7D")).is_err(), "no narrowing beside an id");
        assert!(single(&format!("statementId={id}&voidedStatementId={id}")).is_err());
        assert!(single("statementId=nope").is_err());
        let mut nothing = grant();
        nothing.read = Scope::Nothing;
        assert_eq!(
            check_single_read(&nothing, &parse(Some(&format!("statementId={id}")), STATEMENT_GET_PARAMS).unwrap()),
            Err(PolicyDenial::ScopeDenies)
        );
    }

    /// Which returned statements each read scope shows: one row per rule.
    #[test]
    fn returned_statement_rules() {
        let team = json!({"objectType": "Group", "mbox": TEAM});
        let table: Vec<(&str, Scope, Value, bool)> = vec![
            ("own_statement_is_shown", Scope::ActorActivityRegistration, statement(), true),
            ("other_actor_is_hidden", Scope::ActorActivityRegistration, with(&["actor"], learner("learner-2")), false),
            (
                "other_activity_is_hidden",
                Scope::ActorActivityRegistration,
                with(&["object", "id"], json!(SIBLING_AU)),
                false,
            ),
            ("missing_registration_is_hidden", Scope::ActorActivityRegistration, with(&["context"], json!({})), false),
            (
                "lrs_set_authority_is_no_reason_to_hide",
                Scope::ActorActivityRegistration,
                with(&["authority"], json!({"mbox": "mailto:lrs@x"})),
                true,
            ),
            (
                "statement_ref_by_the_learner_is_hidden",
                Scope::ActorActivityRegistration,
                with(&["object"], json!({"objectType": "StatementRef", "id": "ec531277-b57b-4c15-8d91-d292c5b2b8f7"})),
                false,
            ),
            ("false_scope_shows_nothing", Scope::Nothing, statement(), false),
            (
                "course_scope_shows_a_sibling_au",
                Scope::ActorCourseRegistration,
                with(&["object", "id"], json!(SIBLING_AU)),
                true,
            ),
            (
                "course_scope_hides_another_registration",
                Scope::ActorCourseRegistration,
                with(&["context", "registration"], json!(OTHER_REG)),
                false,
            ),
            (
                "course_scope_hides_another_course",
                Scope::ActorCourseRegistration,
                with_on(
                    with(&["object", "id"], json!("https://other/au")),
                    &["context", "contextActivities", "grouping"],
                    json!([]),
                ),
                false,
            ),
            (
                "all_registrations_scope_shows_another_registration",
                Scope::ActorActivityAllRegistrations,
                with(&["context", "registration"], json!(OTHER_REG)),
                true,
            ),
            (
                "all_registrations_scope_hides_another_activity",
                Scope::ActorActivityAllRegistrations,
                with(&["object", "id"], json!(SIBLING_AU)),
                false,
            ),
            ("group_scope_shows_the_team", Scope::GroupActivityRegistration, with(&["actor"], team.clone()), true),
            (
                "group_scope_shows_a_teammate_acting_for_the_team",
                Scope::GroupActivityRegistration,
                with_on(with(&["actor"], learner("learner-2")), &["context", "team"], team),
                true,
            ),
            (
                "group_scope_hides_a_teammate_alone",
                Scope::GroupActivityRegistration,
                with(&["actor"], learner("learner-2")),
                false,
            ),
            (
                "certification_scope_shows_own_statements_anywhere",
                Scope::ActorCrossCourseCertification,
                with_on(with(&["object", "id"], json!("https://other/course")), &["context"], json!({})),
                true,
            ),
            (
                "certification_scope_hides_others",
                Scope::ActorCrossCourseCertification,
                with(&["actor"], learner("learner-2")),
                false,
            ),
        ];
        for (rule, scope, body, want) in table {
            let s = parse_body(body.to_string().as_bytes()).unwrap().remove(0);
            assert_eq!(returned_in_scope(&scoped(scope), &s), want, "{rule}");
        }
    }
}
