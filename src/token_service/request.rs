//! The LMS's token request: strictly parsed and validated before anything is signed.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::claims::{Permissions, SessionClaims};
use crate::policy::{CourseCatalog, LaunchMode, Scope};
use crate::session::store::EndReason;
use crate::xapi::agent::{parse_actor, parse_agent, Actor, AgentError, Ifi};
use crate::xapi::iri::{is_absolute_iri, parse_uuid};
use crate::xapi::strict_json::{self, Json, JsonError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequestBody {
    actor: Value,
    registration: String,
    activity_id: String,
    #[serde(default)]
    course_id: Option<String>,
    #[serde(default)]
    permissions: Option<Permissions>,
    #[serde(default)]
    group: Option<Value>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
    /// The cmi5 session id the LMS uses (in `launched` and LaunchData); generated when absent.
    #[serde(default)]
    session_id: Option<String>,
    /// The publisher's AU id (the `au` id in cmi5.xml), checked in every statement's grouping.
    #[serde(default)]
    publisher_id: Option<String>,
    /// The course's AU activity ids, for the course scope.
    #[serde(default)]
    course_activities: Option<Vec<String>>,
    /// `"cmi5"`: deliver the token through a one-time fetch URL (cmi5 §8.2) instead of the reply.
    #[serde(default)]
    delivery: Option<String>,
    /// The cmi5 launch mode (`Normal`, `Browse`, `Review`); makes the token a cmi5 launch.
    #[serde(default)]
    launch_mode: Option<String>,
}

/// The most activity ids a token request may list (they ride in the token).
pub const MAX_COURSE_ACTIVITIES: usize = 500;
/// The longest session id accepted from the LMS.
pub const MAX_SESSION_ID_BYTES: usize = 128;

/// Why a token request is refused (all 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequestError {
    Json(JsonError),
    /// Missing field, wrong type or unknown field; serde's text names it.
    Shape(String),
    Actor(AgentError),
    Registration,
    ActivityId,
    CourseId,
    UnknownScope(String),
    /// A read-only scope asked for writes.
    ReadOnlyScope(String),
    Group(String),
    Ttl,
    SessionId,
    PublisherId,
    CourseActivities,
    /// A scope that needs a field the request lacks (`group`, or the course's activities).
    ScopeNeeds(&'static str),
    Delivery,
    LaunchMode,
    /// A session end with a reason other than `abandoned`, `ended` or `revoked`.
    EndReason,
}

impl fmt::Display for TokenRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenRequestError::Json(e) => e.fmt(f),
            TokenRequestError::Shape(detail) => write!(f, "token request: {detail}"),
            TokenRequestError::Actor(e) => write!(f, "actor {e}"),
            TokenRequestError::Registration => f.write_str("registration must be a UUID"),
            TokenRequestError::ActivityId => f.write_str("activity_id must be an absolute IRI"),
            TokenRequestError::CourseId => f.write_str("course_id must be an absolute IRI"),
            TokenRequestError::UnknownScope(s) => write!(f, "unknown scope \"{s}\""),
            TokenRequestError::ReadOnlyScope(s) => write!(f, "scope \"{s}\" is read only"),
            TokenRequestError::Group(why) => write!(f, "group {why}"),
            TokenRequestError::Ttl => f.write_str("ttl_seconds must be greater than 0"),
            TokenRequestError::SessionId => {
                write!(f, "session_id must be 1 to {MAX_SESSION_ID_BYTES} bytes of printable ASCII")
            }
            TokenRequestError::PublisherId => f.write_str("publisher_id must be an absolute IRI"),
            TokenRequestError::CourseActivities => {
                write!(f, "course_activities must be 1 to {MAX_COURSE_ACTIVITIES} absolute IRIs")
            }
            TokenRequestError::ScopeNeeds(what) => write!(f, "the requested scope needs {what}"),
            TokenRequestError::Delivery => f.write_str("delivery must be \"cmi5\" (a fetch URL) or absent (the token)"),
            TokenRequestError::LaunchMode => f.write_str("launch_mode must be Normal, Browse or Review"),
            TokenRequestError::EndReason => f.write_str("reason must be abandoned, ended or revoked"),
        }
    }
}

/// A validated token request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub actor: Ifi,
    pub registration: Uuid,
    pub activity_id: String,
    pub course_id: Option<String>,
    pub write: Scope,
    pub read: Scope,
    /// The team, as an identified Group's IFI.
    pub group: Option<Ifi>,
    pub ttl_seconds: Option<u64>,
    pub session_id: Option<String>,
    pub publisher_id: Option<String>,
    pub course_activities: Vec<String>,
    /// The token is delivered through a one-time cmi5 fetch URL.
    pub cmi5_delivery: bool,
    /// A cmi5 launch (Normal when cmi5 delivery is asked without a mode): the cmi5 session
    /// rules apply to its statements.
    pub launch_mode: Option<LaunchMode>,
}

impl TokenRequest {
    /// Parse and validate a request for a tenant whose registered course structures are
    /// `courses`: a scope is granted only with what it needs to be judged.
    pub fn parse(body: &[u8], courses: &CourseCatalog) -> Result<Self, TokenRequestError> {
        let value = strict_json::parse(body).map_err(TokenRequestError::Json)?;
        let raw: TokenRequestBody =
            serde_json::from_value(value).map_err(|e| TokenRequestError::Shape(e.to_string()))?;
        let actor = parse_agent(&Json::from_value(&raw.actor)).map_err(TokenRequestError::Actor)?;
        let registration = parse_uuid(&raw.registration).ok_or(TokenRequestError::Registration)?;
        if !is_absolute_iri(&raw.activity_id) {
            return Err(TokenRequestError::ActivityId);
        }
        if raw.course_id.as_deref().is_some_and(|c| !is_absolute_iri(c)) {
            return Err(TokenRequestError::CourseId);
        }
        let default = Scope::ActorActivityRegistration.as_str().to_owned();
        let permissions = raw.permissions.unwrap_or(Permissions { write: default.clone(), read: default });
        let scope = |name: &str| name.parse::<Scope>().map_err(|_| TokenRequestError::UnknownScope(name.to_owned()));
        let write = scope(&permissions.write)?;
        let read = scope(&permissions.read)?;
        if !write.allows_writes() {
            return Err(TokenRequestError::ReadOnlyScope(permissions.write));
        }
        let group = match &raw.group {
            None => None,
            Some(group) => match parse_actor(&Json::from_value(group)) {
                // Membership is the LMS's word: it must list the learner (by IFI) among the members.
                Ok(Actor::Group { ifi: Some(ifi), members }) if members.contains(&actor) => Some(ifi),
                Ok(Actor::Group { ifi: Some(_), .. }) => {
                    return Err(TokenRequestError::Group("must list the actor among its members".into()))
                }
                Ok(_) => return Err(TokenRequestError::Group("must be a Group identified by an IFI".into())),
                Err(e) => return Err(TokenRequestError::Group(e.to_string())),
            },
        };
        if raw.ttl_seconds == Some(0) {
            return Err(TokenRequestError::Ttl);
        }
        if raw.session_id.as_deref().is_some_and(|id| !valid_session_id(id)) {
            return Err(TokenRequestError::SessionId);
        }
        if raw.publisher_id.as_deref().is_some_and(|p| !is_absolute_iri(p)) {
            return Err(TokenRequestError::PublisherId);
        }
        let course_activities = raw.course_activities.unwrap_or_default();
        if course_activities.len() > MAX_COURSE_ACTIVITIES || course_activities.iter().any(|a| !is_absolute_iri(a)) {
            return Err(TokenRequestError::CourseActivities);
        }
        let cmi5_delivery = match raw.delivery.as_deref() {
            None => false,
            Some("cmi5") => true,
            Some(_) => return Err(TokenRequestError::Delivery),
        };
        let launch_mode = match raw.launch_mode.as_deref() {
            None => cmi5_delivery.then_some(LaunchMode::Normal),
            Some(mode) => Some(mode.parse::<LaunchMode>().map_err(|_| TokenRequestError::LaunchMode)?),
        };
        let uses = |scope| write == scope || read == scope;
        if uses(Scope::GroupActivityRegistration) && group.is_none() {
            return Err(TokenRequestError::ScopeNeeds("a group"));
        }
        let course_known =
            !course_activities.is_empty() || raw.course_id.as_ref().is_some_and(|id| courses.contains_key(id));
        if uses(Scope::ActorCourseRegistration) && !course_known {
            return Err(TokenRequestError::ScopeNeeds(
                "course_activities, or a course_id whose course structure the tenant registered",
            ));
        }
        Ok(TokenRequest {
            actor,
            registration,
            activity_id: raw.activity_id,
            course_id: raw.course_id,
            write,
            read,
            group,
            ttl_seconds: raw.ttl_seconds,
            session_id: raw.session_id,
            publisher_id: raw.publisher_id,
            course_activities,
            cmi5_delivery,
            launch_mode,
        })
    }

    /// The claims for this request, issued at `now` (Unix seconds). The TTL is the requested one,
    /// or the tenant default, capped by the tenant maximum. The actor is stored in canonical
    /// form: its IFI only, so a display name (personal data) never rides in the token.
    pub fn claims(&self, tenant_id: &str, issuer: &str, now: u64, default_ttl: u64, max_ttl: u64) -> SessionClaims {
        let ttl = self.ttl_seconds.unwrap_or(default_ttl).min(max_ttl);
        SessionClaims {
            tenant_id: tenant_id.to_owned(),
            actor: self.actor.agent_json(),
            registration: self.registration.hyphenated().to_string(),
            activity_id: self.activity_id.clone(),
            course_id: self.course_id.clone(),
            permissions: Permissions { write: self.write.as_str().to_owned(), read: self.read.as_str().to_owned() },
            group: self.group.as_ref().map(Ifi::group_json),
            session_id: self.session_id.clone().unwrap_or_else(|| Uuid::new_v4().hyphenated().to_string()),
            publisher_id: self.publisher_id.clone(),
            course_activities: self.course_activities.clone(),
            launch_mode: self.launch_mode.map(|m| m.as_str().to_owned()),
            jti: Uuid::new_v4().hyphenated().to_string(),
            iat: now,
            nbf: now,
            exp: now + ttl,
            iss: issuer.to_owned(),
            aud: tenant_id.to_owned(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndRequestBody {
    session_id: Option<String>,
    jti: Option<String>,
    learner: Option<Value>,
    reason: String,
}

/// What an LMS ends or revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndTarget {
    /// Every token of a session (abandoned, ended or revoked).
    Session(String),
    /// One token, by its `jti` (revoked).
    Token(String),
    /// Every token issued to the learner so far (revoked); tokens issued later work.
    Learner(Ifi),
}

/// The LMS ends a session (`POST /auth/sessions/end`): abandoned (cmi5 §9.3.6), ended, or
/// revoked; or revokes one token (`jti`) or a learner's tokens (`learner`, an Agent). Exactly
/// one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRequest {
    pub target: EndTarget,
    pub reason: EndReason,
}

impl EndRequest {
    pub fn parse(body: &[u8]) -> Result<Self, TokenRequestError> {
        let value = strict_json::parse(body).map_err(TokenRequestError::Json)?;
        let raw: EndRequestBody = serde_json::from_value(value).map_err(|e| TokenRequestError::Shape(e.to_string()))?;
        let reason = EndReason::from_lms(&raw.reason).ok_or(TokenRequestError::EndReason)?;
        let target = match (raw.session_id, raw.jti, raw.learner) {
            (Some(id), None, None) if valid_session_id(&id) => EndTarget::Session(id),
            (Some(_), None, None) => return Err(TokenRequestError::SessionId),
            (None, Some(jti), None) if valid_session_id(&jti) => EndTarget::Token(jti),
            (None, None, Some(agent)) => {
                EndTarget::Learner(parse_agent(&Json::from_value(&agent)).map_err(TokenRequestError::Actor)?)
            }
            _ => {
                return Err(TokenRequestError::Shape(
                    "give exactly one of session_id, jti (one token) or learner (an Agent)".into(),
                ))
            }
        };
        // A token or a learner is revoked; abandoning or ending is said of a session.
        if !matches!(target, EndTarget::Session(_)) && reason != EndReason::Revoked {
            return Err(TokenRequestError::EndReason);
        }
        Ok(EndRequest { target, reason })
    }
}

/// 1 to `MAX_SESSION_ID_BYTES` bytes of printable ASCII.
fn valid_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_SESSION_ID_BYTES && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "actor": {"objectType": "Agent", "name": "Ann", "account": {"homePage": "https://lms.example", "name": "42"}},
            "registration": "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11",
            "activity_id": "https://lms.example/au/1"
        })
    }

    fn parse(v: Value) -> Result<TokenRequest, TokenRequestError> {
        let mut courses = CourseCatalog::new();
        courses.insert(
            "https://lms.example/course/registered".into(),
            std::sync::Arc::new(crate::policy::CourseActivities::new(["https://pub.example/au/1".to_owned()])),
        );
        TokenRequest::parse(v.to_string().as_bytes(), &courses)
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    #[test]
    fn request_rules() {
        type Check = fn(&TokenRequestError) -> bool;
        let table: Vec<(&str, Value, Result<(), Check>)> = vec![
            ("minimal_request_is_valid", base(), Ok(())),
            (
                "explicit_scopes_are_valid",
                with("permissions", json!({"write": "false", "read": "actor-activity-all-registrations"})),
                Ok(()),
            ),
            (
                "course_scope_without_course_activities_is_refused",
                with("permissions", json!({"write": "false", "read": "actor-course-registration-scoped"})),
                Err(|e| matches!(e, TokenRequestError::ScopeNeeds(_))),
            ),
            (
                "course_scope_with_listed_activities_is_valid",
                {
                    let mut v =
                        with("permissions", json!({"write": "false", "read": "actor-course-registration-scoped"}));
                    v["course_activities"] = json!(["https://lms.example/au/2"]);
                    v
                },
                Ok(()),
            ),
            (
                "course_scope_with_registered_structure_is_valid",
                {
                    let mut v =
                        with("permissions", json!({"write": "false", "read": "actor-course-registration-scoped"}));
                    v["course_id"] = json!("https://lms.example/course/registered");
                    v
                },
                Ok(()),
            ),
            (
                "course_scope_with_unregistered_course_is_refused",
                {
                    let mut v =
                        with("permissions", json!({"write": "false", "read": "actor-course-registration-scoped"}));
                    v["course_id"] = json!("https://lms.example/course/unknown");
                    v
                },
                Err(|e| matches!(e, TokenRequestError::ScopeNeeds(_))),
            ),
            (
                "course_activities_must_be_absolute",
                with("course_activities", json!(["au/2"])),
                Err(|e| *e == TokenRequestError::CourseActivities),
            ),
            (
                "group_scope_without_group_is_refused",
                with("permissions", json!({"write": "false", "read": "group-activity-registration-scoped"})),
                Err(|e| matches!(e, TokenRequestError::ScopeNeeds(_))),
            ),
            (
                "group_without_the_actor_as_member_is_refused",
                with(
                    "group",
                    json!({"objectType": "Group", "mbox": "mailto:team@x", "member": [{"mbox": "mailto:other@x"}]}),
                ),
                Err(|e| matches!(e, TokenRequestError::Group(_))),
            ),
            ("session_id_is_accepted", with("session_id", json!("lms-session-7")), Ok(())),
            ("empty_session_id_is_refused", with("session_id", json!("")), Err(|e| *e == TokenRequestError::SessionId)),
            (
                "session_id_with_spaces_is_refused",
                with("session_id", json!("a b")),
                Err(|e| *e == TokenRequestError::SessionId),
            ),
            (
                "publisher_id_must_be_absolute",
                with("publisher_id", json!("au")),
                Err(|e| *e == TokenRequestError::PublisherId),
            ),
            (
                "actor_without_ifi_is_refused",
                with("actor", json!({"name": "Ann"})),
                Err(|e| matches!(e, TokenRequestError::Actor(AgentError::IfiCount(0)))),
            ),
            (
                "actor_with_two_ifis_is_refused",
                with("actor", json!({"mbox": "mailto:a@x", "openid": "https://id/a"})),
                Err(|e| matches!(e, TokenRequestError::Actor(AgentError::IfiCount(2)))),
            ),
            (
                "group_as_actor_is_refused",
                with("actor", json!({"objectType": "Group", "mbox": "mailto:g@x"})),
                Err(|e| matches!(e, TokenRequestError::Actor(_))),
            ),
            (
                "registration_must_be_uuid",
                with("registration", json!("reg-1")),
                Err(|e| *e == TokenRequestError::Registration),
            ),
            (
                "activity_id_must_be_absolute",
                with("activity_id", json!("au/1")),
                Err(|e| *e == TokenRequestError::ActivityId),
            ),
            (
                "course_id_must_be_absolute",
                with("course_id", json!("course")),
                Err(|e| *e == TokenRequestError::CourseId),
            ),
            (
                "unknown_scope_is_refused",
                with("permissions", json!({"write": "all", "read": "false"})),
                Err(|e| matches!(e, TokenRequestError::UnknownScope(_))),
            ),
            (
                "read_only_scope_for_writes_is_refused",
                with("permissions", json!({"write": "actor-cross-course-certification", "read": "false"})),
                Err(|e| matches!(e, TokenRequestError::ReadOnlyScope(_))),
            ),
            (
                "half_permissions_are_refused",
                with("permissions", json!({"write": "false"})),
                Err(|e| matches!(e, TokenRequestError::Shape(_))),
            ),
            ("unknown_field_is_refused", with("admin", json!(true)), Err(|e| matches!(e, TokenRequestError::Shape(_)))),
            (
                "anonymous_group_is_refused",
                with("group", json!({"objectType": "Group", "member": [{"mbox": "mailto:a@x"}]})),
                Err(|e| matches!(e, TokenRequestError::Group(_))),
            ),
            (
                "identified_group_listing_the_actor_is_valid",
                with(
                    "group",
                    json!({"objectType": "Group", "account": {"homePage": "https://lms.example", "name": "team-1"},
                        "member": [{"account": {"homePage": "https://lms.example", "name": "42"}}]}),
                ),
                Ok(()),
            ),
            ("zero_ttl_is_refused", with("ttl_seconds", json!(0)), Err(|e| *e == TokenRequestError::Ttl)),
            ("cmi5_delivery_is_valid", with("delivery", json!("cmi5")), Ok(())),
            (
                "unknown_delivery_is_refused",
                with("delivery", json!("email")),
                Err(|e| *e == TokenRequestError::Delivery),
            ),
            ("launch_mode_is_valid", with("launch_mode", json!("Browse")), Ok(())),
            (
                "launch_mode_is_case_exact",
                with("launch_mode", json!("browse")),
                Err(|e| *e == TokenRequestError::LaunchMode),
            ),
        ];
        for (rule, body, want) in table {
            match (parse(body), want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(check)) => assert!(check(&e), "{rule}: unexpected {e:?}"),
                (got, _) => panic!("{rule}: got {:?}", got.map(|_| ())),
            }
        }
    }

    #[test]
    fn cmi5_delivery_makes_a_cmi5_launch() {
        let req = parse(with("delivery", json!("cmi5"))).unwrap();
        assert!(req.cmi5_delivery);
        assert_eq!(req.launch_mode, Some(LaunchMode::Normal));
        let claims = req.claims("acme", "lrsgate", 1000, 3600, 7200);
        assert_eq!(claims.launch_mode.as_deref(), Some("Normal"));
        assert_eq!(claims.grant(&CourseCatalog::new()).unwrap().launch_mode, Some(LaunchMode::Normal));
        let plain = parse(base()).unwrap();
        assert_eq!((plain.cmi5_delivery, plain.launch_mode), (false, None));
        assert_eq!(plain.claims("acme", "lrsgate", 1000, 3600, 7200).launch_mode, None);
        let review = parse(with("launch_mode", json!("Review"))).unwrap();
        assert_eq!((review.cmi5_delivery, review.launch_mode), (false, Some(LaunchMode::Review)));
    }

    #[test]
    fn end_request_rules() {
        let parse = |v: Value| EndRequest::parse(v.to_string().as_bytes());
        assert_eq!(
            parse(json!({"session_id": "s-1", "reason": "abandoned"})),
            Ok(EndRequest { target: EndTarget::Session("s-1".into()), reason: EndReason::Abandoned })
        );
        assert_eq!(
            parse(json!({"jti": "j-1", "reason": "revoked"})),
            Ok(EndRequest { target: EndTarget::Token("j-1".into()), reason: EndReason::Revoked })
        );
        let learner = json!({"objectType": "Agent", "mbox": "mailto:l@x.org"});
        assert_eq!(
            parse(json!({"learner": learner, "reason": "revoked"})).map(|r| r.target),
            Ok(EndTarget::Learner(Ifi::Mbox("mailto:l@x.org".into())))
        );
        for (rule, body) in [
            ("two_targets", json!({"session_id": "s-1", "jti": "j-1", "reason": "revoked"})),
            ("no_target", json!({"reason": "revoked"})),
        ] {
            assert!(matches!(parse(body), Err(TokenRequestError::Shape(_))), "{rule}");
        }
        assert_eq!(parse(json!({"jti": "j-1", "reason": "abandoned"})), Err(TokenRequestError::EndReason));
        assert!(matches!(
            parse(json!({"learner": {"name": "no IFI"}, "reason": "revoked"})),
            Err(TokenRequestError::Actor(_))
        ));
        assert_eq!(parse(json!({"session_id": "s-1", "reason": "revoked"})).map(|r| r.reason), Ok(EndReason::Revoked));
        assert_eq!(parse(json!({"session_id": "s-1", "reason": "terminated"})), Err(TokenRequestError::EndReason));
        assert_eq!(parse(json!({"session_id": "", "reason": "ended"})), Err(TokenRequestError::SessionId));
        assert!(matches!(parse(json!({"session_id": "s-1"})), Err(TokenRequestError::Shape(_))));
        assert!(matches!(
            parse(json!({"session_id": "s-1", "reason": "ended", "all": true})),
            Err(TokenRequestError::Shape(_))
        ));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let body = br#"{"actor":{"mbox":"mailto:a@x"},"actor":{"mbox":"mailto:b@x"},"registration":"7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11","activity_id":"https://a"}"#;
        assert!(matches!(
            TokenRequest::parse(body, &CourseCatalog::new()),
            Err(TokenRequestError::Json(JsonError::DuplicateKey(_)))
        ));
    }

    #[test]
    fn claims_cap_ttl_and_drop_the_display_name() {
        let req = parse(with("ttl_seconds", json!(999_999))).unwrap();
        let c = req.claims("acme", "lrsgate", 1000, 3600, 7200);
        assert_eq!(c.exp, 1000 + 7200);
        assert_eq!(c.aud, "acme");
        assert!(c.actor.get("name").is_none());
        assert_eq!(c.grant(&CourseCatalog::new()).unwrap().actor, req.actor);
        let c = parse(base()).unwrap().claims("acme", "lrsgate", 1000, 3600, 7200);
        assert_eq!(c.exp, 1000 + 3600);
        assert_ne!(c.jti, c.session_id);
    }
}
