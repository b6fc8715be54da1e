//! Judging the document and metadata resources under every scope: State (the AU's own documents
//! and the LMS's read-only `LMS.LaunchData`), Agent Profile (`cmi5LearnerPreferences`), Activity
//! Profile, Activities and Agents.

use super::denial::PolicyDenial;
use super::grant::Grant;
use super::reach::Direction;
use super::rules::TenantRules;
use super::scope::Scope;
use crate::xapi::agent::parse_agent;
use crate::xapi::document_id;
use crate::xapi::iri::parse_uuid;
use crate::xapi::query::{Param, QueryBuilder};
use crate::xapi::strict_json;

/// Parameters of the State resource (Comm §2.3).
pub const STATE_PARAMS: &[&str] = &["activityId", "agent", "registration", "stateId", "since"];
/// Parameters of the Agent Profile resource (Comm §2.6).
pub const AGENT_PROFILE_PARAMS: &[&str] = &["agent", "profileId", "since"];
/// Parameters of the Activity Profile resource (Comm §2.7).
pub const ACTIVITY_PROFILE_PARAMS: &[&str] = &["activityId", "profileId", "since"];
/// Parameters of the Activities resource (Comm §2.5).
pub const ACTIVITIES_PARAMS: &[&str] = &["activityId"];
/// Parameters of the Agents resource (Comm §2.4).
pub const AGENTS_PARAMS: &[&str] = &["agent"];
/// The State document the LMS writes before launch; an AU may only read it (cmi5 §10.2.1).
pub const LAUNCH_DATA_STATE_ID: &str = "LMS.LaunchData";
/// The Agent Profile document holding the learner's preferences (cmi5 §11).
pub const LEARNER_PREFERENCES_PROFILE_ID: &str = "cmi5LearnerPreferences";

/// What a request does to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET or HEAD.
    Read,
    /// PUT or POST.
    Write,
    Delete,
}

impl Access {
    fn direction(self) -> Direction {
        if self == Access::Read {
            Direction::Read
        } else {
            Direction::Write
        }
    }
}

/// The `agent` parameter must name the token's learner; returns its canonical form.
fn own_agent(grant: &Grant, value: &str) -> Result<String, PolicyDenial> {
    let json = strict_json::parse_borrowed(value.as_bytes()).map_err(|_| PolicyDenial::InvalidParameter("agent"))?;
    let ifi = parse_agent(&json).map_err(|_| PolicyDenial::InvalidParameter("agent"))?;
    if ifi != grant.actor {
        return Err(PolicyDenial::QueryOutOfScope("agent"));
    }
    Ok(grant.actor.agent_json().to_string())
}

/// Judge a State request and build the LRS query: `activityId` must be one the scope reaches and
/// `agent` the learner; scopes bound to one registration force it (a differing one → 403, a
/// missing one added); `LMS.LaunchData` is read only; and a DELETE must name one `stateId`
/// (without it the LRS deletes every document of the learner and activity, LaunchData included).
pub fn check_state(grant: &Grant, access: Access, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    let scope = grant.usable_scope(access.direction())?;
    let pinned = scope.pins_registration();
    let mut out = QueryBuilder::new();
    let (mut has_activity, mut has_agent, mut has_registration) = (false, false, false);
    let mut state_id = None;
    for p in params {
        match p.name.as_ref() {
            "activityId" => {
                if !grant.activity_in_scope(scope, &p.value, &[]) {
                    return Err(PolicyDenial::QueryOutOfScope("activityId"));
                }
                has_activity = true;
                out.push("activityId", &p.value);
            }
            "agent" => {
                let agent = own_agent(grant, &p.value)?;
                has_agent = true;
                out.push("agent", &agent);
            }
            "registration" => {
                let reg = parse_uuid(&p.value).ok_or(PolicyDenial::InvalidParameter("registration"))?;
                if !pinned {
                    out.push("registration", &reg.hyphenated().to_string());
                    continue;
                }
                if reg != grant.registration {
                    return Err(PolicyDenial::QueryOutOfScope("registration"));
                }
                has_registration = true;
                out.push("registration", &grant.registration.hyphenated().to_string());
            }
            "stateId" => {
                state_id = Some(p.value.as_ref());
                out.push("stateId", &p.value);
            }
            _ => out.push(&p.name, &p.value),
        }
    }
    if !has_activity {
        return Err(PolicyDenial::MissingParameter("activityId"));
    }
    if !has_agent {
        return Err(PolicyDenial::MissingParameter("agent"));
    }
    if pinned && !has_registration {
        out.push("registration", &grant.registration.hyphenated().to_string());
    }
    match (access, state_id) {
        (Access::Delete, None) => Err(PolicyDenial::BulkDeleteRefused),
        (Access::Write, None) => Err(PolicyDenial::MissingParameter("stateId")),
        // Under every spelling an LRS's collation may store as the same document.
        (Access::Write | Access::Delete, Some(id)) if document_id::same_document(id, LAUNCH_DATA_STATE_ID) => {
            Err(PolicyDenial::LaunchDataReadOnly)
        }
        _ => Ok(out.finish()),
    }
}

/// Judge an Agent Profile request: the token's own learner only. Writes and deletes only of
/// `cmi5LearnerPreferences`, and only where the tenant allows them (cmi5 §11 lets the LMS
/// refuse them with 403, which the AU must not treat as an error).
pub fn check_agent_profile(
    grant: &Grant,
    rules: &TenantRules,
    access: Access,
    params: &[Param<'_>],
) -> Result<String, PolicyDenial> {
    if access != Access::Read {
        let prefs = params.iter().any(|p| p.name == "profileId" && p.value == LEARNER_PREFERENCES_PROFILE_ID);
        if !(prefs && rules.learner_preferences_writes) {
            return Err(PolicyDenial::ProfileWriteRefused);
        }
    }
    grant.usable_scope(access.direction())?;
    let mut out = QueryBuilder::new();
    let mut has_agent = false;
    for p in params {
        if p.name == "agent" {
            let agent = own_agent(grant, &p.value)?;
            has_agent = true;
            out.push("agent", &agent);
        } else {
            out.push(&p.name, &p.value);
        }
    }
    if !has_agent {
        return Err(PolicyDenial::MissingParameter("agent"));
    }
    Ok(out.finish())
}

/// Judge an Activity Profile request: reads of activities the read scope reaches. The document
/// is shared by every learner of the activity, so writes need the tenant's consent and an
/// activity the write scope reaches.
pub fn check_activity_profile(
    grant: &Grant,
    rules: &TenantRules,
    access: Access,
    params: &[Param<'_>],
) -> Result<String, PolicyDenial> {
    if access != Access::Read && !rules.activity_profile_writes {
        return Err(PolicyDenial::ProfileWriteRefused);
    }
    let scope = grant.usable_scope(access.direction())?;
    if access != Access::Read && scope == Scope::ActorCrossCourseCertification {
        return Err(PolicyDenial::ProfileWriteRefused);
    }
    activity_query(grant, scope, params)
}

/// Judge an Activities request (an activity's canonical definition): an activity the read
/// scope reaches.
pub fn check_activities(grant: &Grant, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    let scope = grant.usable_scope(Direction::Read)?;
    activity_query(grant, scope, params)
}

/// Judge an Agents request (the Person object with every IFI of an agent): own agent only.
pub fn check_agents(grant: &Grant, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    grant.usable_scope(Direction::Read)?;
    match params {
        [p] if p.name == "agent" => {
            let mut out = QueryBuilder::new();
            out.push("agent", &own_agent(grant, &p.value)?);
            Ok(out.finish())
        }
        _ => Err(PolicyDenial::MissingParameter("agent")),
    }
}

/// A query whose `activityId` must be one the scope reaches; other parameters pass as sent.
fn activity_query(grant: &Grant, scope: Scope, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    let mut out = QueryBuilder::new();
    let mut has_activity = false;
    for p in params {
        if p.name == "activityId" {
            if !grant.activity_in_scope(scope, &p.value, &[]) {
                return Err(PolicyDenial::QueryOutOfScope("activityId"));
            }
            has_activity = true;
        }
        out.push(&p.name, &p.value);
    }
    if !has_activity {
        return Err(PolicyDenial::MissingParameter("activityId"));
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Want = Result<(), PolicyDenial>;
    use crate::xapi::query::{encode, parse};

    const ACTIVITY: &str = "https://lms.example/au/1";
    const REG: &str = "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11";

    fn grant() -> Grant {
        crate::policy::grant::test_grant(ACTIVITY)
    }

    fn agent(name: &str) -> String {
        encode(&format!(r#"{{"account":{{"homePage":"https://lms.example","name":"{name}"}}}}"#))
    }

    fn state(access: Access, query: &str) -> Result<String, PolicyDenial> {
        check_state(&grant(), access, &parse(Some(query), STATE_PARAMS).unwrap())
    }

    #[test]
    fn state_rules() {
        let own = format!("activityId={}&agent={}", encode(ACTIVITY), agent("learner-1"));
        let table: Vec<(&str, Access, String, Want)> = vec![
            ("launch_data_read_is_allowed", Access::Read, format!("{own}&stateId=LMS.LaunchData"), Ok(())),
            (
                "launch_data_write_is_refused",
                Access::Write,
                format!("{own}&stateId=LMS.LaunchData"),
                Err(PolicyDenial::LaunchDataReadOnly),
            ),
            (
                "launch_data_delete_is_refused",
                Access::Delete,
                format!("{own}&stateId=LMS.LaunchData"),
                Err(PolicyDenial::LaunchDataReadOnly),
            ),
            ("own_state_write_is_allowed", Access::Write, format!("{own}&stateId=bookmark"), Ok(())),
            ("own_state_delete_is_allowed", Access::Delete, format!("{own}&stateId=bookmark"), Ok(())),
            ("listing_state_ids_is_allowed", Access::Read, own.clone(), Ok(())),
            ("delete_without_state_id_is_refused", Access::Delete, own.clone(), Err(PolicyDenial::BulkDeleteRefused)),
            (
                "write_without_state_id_is_refused",
                Access::Write,
                own.clone(),
                Err(PolicyDenial::MissingParameter("stateId")),
            ),
            (
                "other_agent_is_refused",
                Access::Read,
                format!("activityId={}&agent={}&stateId=x", encode(ACTIVITY), agent("learner-2")),
                Err(PolicyDenial::QueryOutOfScope("agent")),
            ),
            (
                "other_activity_is_refused",
                Access::Read,
                format!("activityId=https%3A%2F%2Fother&agent={}&stateId=x", agent("learner-1")),
                Err(PolicyDenial::QueryOutOfScope("activityId")),
            ),
            (
                "other_registration_is_refused",
                Access::Read,
                format!("{own}&registration=00000000-0000-4000-8000-000000000000"),
                Err(PolicyDenial::QueryOutOfScope("registration")),
            ),
            (
                "missing_agent_is_refused",
                Access::Read,
                format!("activityId={}", encode(ACTIVITY)),
                Err(PolicyDenial::MissingParameter("agent")),
            ),
            (
                "missing_activity_is_refused",
                Access::Read,
                format!("agent={}", agent("learner-1")),
                Err(PolicyDenial::MissingParameter("activityId")),
            ),
            (
                // A case-insensitive collation stores it as LMS.LaunchData itself.
                "case_variant_launch_data_is_read_only_too",
                Access::Write,
                format!("{own}&stateId=lms.launchdata"),
                Err(PolicyDenial::LaunchDataReadOnly),
            ),
            (
                "padded_launch_data_delete_is_refused",
                Access::Delete,
                format!("{own}&stateId=LMS.LaunchData%20"),
                Err(PolicyDenial::LaunchDataReadOnly),
            ),
            ("case_variant_launch_data_read_is_allowed", Access::Read, format!("{own}&stateId=lms.launchdata"), Ok(())),
        ];
        for (rule, access, query, want) in table {
            assert_eq!(state(access, &query).map(|_| ()), want, "{rule}");
        }
    }

    #[test]
    fn state_forces_the_registration() {
        let own = format!("activityId={}&agent={}&stateId=LMS.LaunchData", encode(ACTIVITY), agent("learner-1"));
        let q: Vec<(String, String)> =
            form_urlencoded::parse(state(Access::Read, &own).unwrap().as_bytes()).into_owned().collect();
        assert!(q.contains(&("registration".into(), REG.into())), "{q:?}");
        assert!(q.contains(&("stateId".into(), "LMS.LaunchData".into())));
    }

    #[test]
    fn state_scope_false_is_refused() {
        let mut g = grant();
        g.write = Scope::Nothing;
        let own = format!("activityId={}&agent={}&stateId=x", encode(ACTIVITY), agent("learner-1"));
        assert_eq!(
            check_state(&g, Access::Write, &parse(Some(&own), STATE_PARAMS).unwrap()),
            Err(PolicyDenial::ScopeDenies)
        );
        assert!(check_state(&g, Access::Read, &parse(Some(&own), STATE_PARAMS).unwrap()).is_ok());
    }

    #[test]
    fn state_rules_per_scope() {
        use crate::policy::course::CourseActivities;
        let sibling = "https://lms.example/au/2";
        let scoped = |scope: Scope| {
            let mut g = grant();
            g.read = scope;
            g.write = if scope.allows_writes() { scope } else { Scope::Nothing };
            g.course = Some(std::sync::Arc::new(CourseActivities::new([sibling.to_owned()])));
            g
        };
        let at =
            |activity: &str| format!("activityId={}&agent={}&stateId=bookmark", encode(activity), agent("learner-1"));
        let other_reg = "registration=00000000-0000-4000-8000-000000000000";
        let table: Vec<(&str, Scope, Access, String, Want)> = vec![
            ("course_scope_reaches_a_sibling_au", Scope::ActorCourseRegistration, Access::Write, at(sibling), Ok(())),
            (
                "course_scope_refuses_an_activity_outside",
                Scope::ActorCourseRegistration,
                Access::Read,
                at("https://other/au"),
                Err(PolicyDenial::QueryOutOfScope("activityId")),
            ),
            (
                "course_scope_pins_the_registration",
                Scope::ActorCourseRegistration,
                Access::Read,
                format!("{}&{other_reg}", at(ACTIVITY)),
                Err(PolicyDenial::QueryOutOfScope("registration")),
            ),
            (
                "all_registrations_scope_reads_another_registration",
                Scope::ActorActivityAllRegistrations,
                Access::Read,
                format!("{}&{other_reg}", at(ACTIVITY)),
                Ok(()),
            ),
            (
                "all_registrations_scope_keeps_the_activity",
                Scope::ActorActivityAllRegistrations,
                Access::Read,
                at(sibling),
                Err(PolicyDenial::QueryOutOfScope("activityId")),
            ),
            (
                "certification_scope_reads_any_activity",
                Scope::ActorCrossCourseCertification,
                Access::Read,
                at("https://other/course/au"),
                Ok(()),
            ),
            (
                "certification_scope_writes_nothing",
                Scope::ActorCrossCourseCertification,
                Access::Write,
                at(ACTIVITY),
                Err(PolicyDenial::ScopeDenies),
            ),
            (
                "certification_scope_still_protects_launch_data",
                Scope::ActorCrossCourseCertification,
                Access::Read,
                at(ACTIVITY).replace("bookmark", "LMS.LaunchData"),
                Ok(()),
            ),
        ];
        for (rule, scope, access, query, want) in table {
            let got = check_state(&scoped(scope), access, &parse(Some(&query), STATE_PARAMS).unwrap());
            assert_eq!(got.map(|_| ()), want, "{rule}");
        }
        let forced = check_state(
            &scoped(Scope::ActorActivityAllRegistrations),
            Access::Read,
            &parse(Some(&at(ACTIVITY)), STATE_PARAMS).unwrap(),
        )
        .unwrap();
        assert!(!forced.contains("registration="), "no registration is forced across registrations: {forced}");
    }

    #[test]
    fn activity_profile_activities_and_agents_rules() {
        fn q<'a>(query: &'a str, known: &[&str]) -> Vec<Param<'a>> {
            parse(Some(query), known).unwrap()
        }
        let own = format!("activityId={}", encode(ACTIVITY));
        let other = "activityId=https%3A%2F%2Flms.example%2Fau%2F2";
        let g = grant();
        let defaults = TenantRules::default();
        let writable = TenantRules { activity_profile_writes: true, ..TenantRules::default() };
        let profile = format!("{own}&profileId=p");
        let other_profile = format!("{other}&profileId=p");
        let table: Vec<(&str, &TenantRules, Access, &str, Want)> = vec![
            ("activity_profile_read_of_own_activity_is_allowed", &defaults, Access::Read, &profile, Ok(())),
            (
                "activity_profile_read_of_other_activity_is_refused",
                &defaults,
                Access::Read,
                &other_profile,
                Err(PolicyDenial::QueryOutOfScope("activityId")),
            ),
            (
                "activity_profile_write_is_refused_by_default",
                &defaults,
                Access::Write,
                &profile,
                Err(PolicyDenial::ProfileWriteRefused),
            ),
            (
                "activity_profile_delete_is_refused_by_default",
                &defaults,
                Access::Delete,
                &profile,
                Err(PolicyDenial::ProfileWriteRefused),
            ),
            ("activity_profile_write_allowed_by_the_tenant", &writable, Access::Write, &profile, Ok(())),
            (
                "activity_profile_write_allowed_only_within_scope",
                &writable,
                Access::Write,
                &other_profile,
                Err(PolicyDenial::QueryOutOfScope("activityId")),
            ),
        ];
        for (rule, rules, access, query, want) in table {
            let got = check_activity_profile(&g, rules, access, &q(query, ACTIVITY_PROFILE_PARAMS));
            assert_eq!(got.map(|_| ()), want, "{rule}");
        }
        assert_eq!(check_activities(&g, &q(&own, ACTIVITIES_PARAMS)), Ok(own.clone()));
        assert_eq!(
            check_activities(&g, &q(other, ACTIVITIES_PARAMS)),
            Err(PolicyDenial::QueryOutOfScope("activityId"))
        );
        assert_eq!(check_activities(&g, &[]), Err(PolicyDenial::MissingParameter("activityId")));
        assert!(check_agents(&g, &q(&format!("agent={}", agent("learner-1")), AGENTS_PARAMS)).is_ok());
        assert_eq!(
            check_agents(&g, &q(&format!("agent={}", agent("learner-2")), AGENTS_PARAMS)),
            Err(PolicyDenial::QueryOutOfScope("agent"))
        );
        assert_eq!(check_agents(&g, &[]), Err(PolicyDenial::MissingParameter("agent")));
    }

    #[test]
    fn agent_profile_rules() {
        let defaults = TenantRules::default();
        let prefs_writable = TenantRules { learner_preferences_writes: true, ..TenantRules::default() };
        let prefs = |name: &str| format!("agent={}&profileId=cmi5LearnerPreferences", agent(name));
        let other_profile = format!("agent={}&profileId=notes", agent("learner-1"));
        let table: Vec<(&str, &TenantRules, Access, String, Want)> = vec![
            ("learner_preferences_read_is_allowed", &defaults, Access::Read, prefs("learner-1"), Ok(())),
            (
                "learner_preferences_write_is_refused_by_default",
                &defaults,
                Access::Write,
                prefs("learner-1"),
                Err(PolicyDenial::ProfileWriteRefused),
            ),
            (
                "learner_preferences_delete_is_refused_by_default",
                &defaults,
                Access::Delete,
                prefs("learner-1"),
                Err(PolicyDenial::ProfileWriteRefused),
            ),
            (
                "learner_preferences_write_allowed_by_the_tenant",
                &prefs_writable,
                Access::Write,
                prefs("learner-1"),
                Ok(()),
            ),
            (
                "other_profile_write_is_refused_even_then",
                &prefs_writable,
                Access::Write,
                other_profile,
                Err(PolicyDenial::ProfileWriteRefused),
            ),
            (
                "other_learner_profile_is_refused",
                &defaults,
                Access::Read,
                prefs("learner-2"),
                Err(PolicyDenial::QueryOutOfScope("agent")),
            ),
            (
                "other_learner_write_is_refused_even_when_allowed",
                &prefs_writable,
                Access::Write,
                prefs("learner-2"),
                Err(PolicyDenial::QueryOutOfScope("agent")),
            ),
            (
                "missing_agent_is_refused",
                &defaults,
                Access::Read,
                "profileId=x".into(),
                Err(PolicyDenial::MissingParameter("agent")),
            ),
        ];
        for (rule, rules, access, query, want) in table {
            let got = check_agent_profile(&grant(), rules, access, &parse(Some(&query), AGENT_PROFILE_PARAMS).unwrap());
            assert_eq!(got.map(|_| ()), want, "{rule}");
        }
    }
}
