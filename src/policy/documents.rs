//! Judging the document and metadata resources: State (the AU's own documents and the LMS's
//! read-only `LMS.LaunchData`), Agent Profile (`cmi5LearnerPreferences`), Activity Profile,
//! Activities and Agents, for the default scope.

use super::denial::PolicyDenial;
use super::grant::Grant;
use super::scope::Scope;
use crate::xapi::agent::parse_agent;
use crate::xapi::iri::parse_uuid;
use crate::xapi::query::{encode, Param};
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

/// What a request does to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET or HEAD.
    Read,
    /// PUT or POST.
    Write,
    Delete,
}

fn require_default_scope(grant: &Grant, access: Access) -> Result<(), PolicyDenial> {
    let scope = if access == Access::Read { grant.read } else { grant.write };
    match scope {
        Scope::ActorActivityRegistration => Ok(()),
        Scope::Nothing => Err(PolicyDenial::ScopeDenies),
        _ => Err(PolicyDenial::NotSupported("this scope on document resources")),
    }
}

/// The `agent` parameter must name the token's learner; returns its canonical form.
fn own_agent(grant: &Grant, value: &str) -> Result<String, PolicyDenial> {
    let json = strict_json::parse(value.as_bytes()).map_err(|_| PolicyDenial::InvalidParameter("agent"))?;
    let ifi = parse_agent(&json).map_err(|_| PolicyDenial::InvalidParameter("agent"))?;
    if ifi != grant.actor {
        return Err(PolicyDenial::QueryOutOfScope("agent"));
    }
    Ok(grant.actor.agent_json().to_string())
}

fn push(out: &mut String, pair: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(pair);
}

/// Judge a State request and build the LRS query: `activityId` and `agent` must be the
/// token's, the token's registration is forced (a differing one → 403, a missing one added),
/// `LMS.LaunchData` is read only, and a DELETE must name one `stateId` (without it the LRS
/// deletes every document of the learner and activity, LaunchData included).
pub fn check_state(grant: &Grant, access: Access, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    require_default_scope(grant, access)?;
    let mut out = String::with_capacity(256);
    let (mut has_activity, mut has_agent, mut has_registration) = (false, false, false);
    let mut state_id = None;
    for p in params {
        match p.name.as_ref() {
            "activityId" => {
                if p.value != grant.activity_id {
                    return Err(PolicyDenial::QueryOutOfScope("activityId"));
                }
                has_activity = true;
                push(&mut out, p.raw);
            }
            "agent" => {
                let agent = own_agent(grant, &p.value)?;
                has_agent = true;
                push(&mut out, &format!("agent={}", encode(&agent)));
            }
            "registration" => {
                let reg = parse_uuid(&p.value).ok_or(PolicyDenial::InvalidParameter("registration"))?;
                if reg != grant.registration {
                    return Err(PolicyDenial::QueryOutOfScope("registration"));
                }
                has_registration = true;
                push(&mut out, &format!("registration={}", grant.registration.hyphenated()));
            }
            "stateId" => {
                state_id = Some(p.value.as_ref());
                push(&mut out, p.raw);
            }
            _ => push(&mut out, p.raw),
        }
    }
    if !has_activity {
        return Err(PolicyDenial::MissingParameter("activityId"));
    }
    if !has_agent {
        return Err(PolicyDenial::MissingParameter("agent"));
    }
    if !has_registration {
        push(&mut out, &format!("registration={}", grant.registration.hyphenated()));
    }
    match (access, state_id) {
        (Access::Delete, None) => Err(PolicyDenial::BulkDeleteRefused),
        (Access::Write, None) => Err(PolicyDenial::MissingParameter("stateId")),
        (Access::Write | Access::Delete, Some(LAUNCH_DATA_STATE_ID)) => Err(PolicyDenial::LaunchDataReadOnly),
        _ => Ok(out),
    }
}

/// Judge an Agent Profile request: reads of the token's own learner only. Writes are refused
/// (cmi5 §11 lets the LMS refuse `cmi5LearnerPreferences` writes with 403, and the AU must not
/// treat that as an error); a per-tenant policy to allow them is for later.
pub fn check_agent_profile(grant: &Grant, access: Access, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    if access != Access::Read {
        return Err(PolicyDenial::ProfileWriteRefused);
    }
    require_default_scope(grant, access)?;
    let mut out = String::with_capacity(192);
    let mut has_agent = false;
    for p in params {
        if p.name == "agent" {
            let agent = own_agent(grant, &p.value)?;
            has_agent = true;
            push(&mut out, &format!("agent={}", encode(&agent)));
        } else {
            push(&mut out, p.raw);
        }
    }
    if !has_agent {
        return Err(PolicyDenial::MissingParameter("agent"));
    }
    Ok(out)
}

/// Judge an Activity Profile request: reads of the token's activity. Shared by every learner of
/// the activity, so writes are refused until a scope grants them.
pub fn check_activity_profile(grant: &Grant, access: Access, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    if access != Access::Read {
        return Err(PolicyDenial::ProfileWriteRefused);
    }
    require_default_scope(grant, access)?;
    own_activity_query(grant, params)
}

/// Judge an Activities request (an activity's canonical definition): the token's activity.
pub fn check_activities(grant: &Grant, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    require_default_scope(grant, Access::Read)?;
    own_activity_query(grant, params)
}

/// Judge an Agents request (the Person object with every IFI of an agent): own agent only.
pub fn check_agents(grant: &Grant, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    require_default_scope(grant, Access::Read)?;
    match params {
        [p] if p.name == "agent" => Ok(format!("agent={}", encode(&own_agent(grant, &p.value)?))),
        _ => Err(PolicyDenial::MissingParameter("agent")),
    }
}

/// A query whose `activityId` must be the token's; other parameters pass as sent.
fn own_activity_query(grant: &Grant, params: &[Param<'_>]) -> Result<String, PolicyDenial> {
    let mut out = String::with_capacity(128);
    let mut has_activity = false;
    for p in params {
        if p.name == "activityId" {
            if p.value != grant.activity_id {
                return Err(PolicyDenial::QueryOutOfScope("activityId"));
            }
            has_activity = true;
        }
        push(&mut out, p.raw);
    }
    if !has_activity {
        return Err(PolicyDenial::MissingParameter("activityId"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xapi::query::parse;

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
        let table: Vec<(&str, Access, String, Result<(), PolicyDenial>)> = vec![
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
                "case_variant_launch_data_is_another_document",
                Access::Write,
                format!("{own}&stateId=lms.launchdata"),
                Ok(()),
            ),
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
    fn activity_profile_activities_and_agents_rules() {
        fn q<'a>(query: &'a str, known: &[&str]) -> Vec<Param<'a>> {
            parse(Some(query), known).unwrap()
        }
        let own = format!("activityId={}", encode(ACTIVITY));
        let other = "activityId=https%3A%2F%2Flms.example%2Fau%2F2";
        let g = grant();
        let profile = format!("{own}&profileId=p");
        assert!(check_activity_profile(&g, Access::Read, &q(&profile, ACTIVITY_PROFILE_PARAMS)).is_ok());
        assert_eq!(
            check_activity_profile(&g, Access::Write, &q(&profile, ACTIVITY_PROFILE_PARAMS)),
            Err(PolicyDenial::ProfileWriteRefused)
        );
        assert_eq!(
            check_activity_profile(&g, Access::Read, &q(&format!("{other}&profileId=p"), ACTIVITY_PROFILE_PARAMS)),
            Err(PolicyDenial::QueryOutOfScope("activityId"))
        );
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
        let profile = |access, query: String| {
            check_agent_profile(&grant(), access, &parse(Some(&query), AGENT_PROFILE_PARAMS).unwrap()).map(|_| ())
        };
        let own = format!("agent={}&profileId=cmi5LearnerPreferences", agent("learner-1"));
        assert_eq!(profile(Access::Read, own.clone()), Ok(()));
        assert_eq!(profile(Access::Write, own.clone()), Err(PolicyDenial::ProfileWriteRefused));
        assert_eq!(profile(Access::Delete, own), Err(PolicyDenial::ProfileWriteRefused));
        assert_eq!(
            profile(Access::Read, format!("agent={}&profileId=cmi5LearnerPreferences", agent("learner-2"))),
            Err(PolicyDenial::QueryOutOfScope("agent"))
        );
        assert_eq!(profile(Access::Read, "profileId=x".into()), Err(PolicyDenial::MissingParameter("agent")));
    }
}
