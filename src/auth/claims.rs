//! Session token claims (seed-compatible) and their conversion into a policy grant.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::{CourseActivities, CourseCatalog, Grant, LaunchMode, Scope};
use crate::xapi::agent::{parse_actor, parse_agent, Actor};
use crate::xapi::iri::{is_absolute_iri, parse_uuid};
use crate::xapi::strict_json::Json;

/// The claims of a session token. `deny_unknown_fields` keeps token kinds apart: a claim set
/// shaped for another kind (LMS client, admin) does not deserialize as a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionClaims {
    pub tenant_id: String,
    /// An xAPI Agent with exactly one IFI.
    pub actor: Value,
    pub registration: String,
    pub activity_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_id: Option<String>,
    pub permissions: Permissions,
    /// An identified xAPI Group, for team scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Value>,
    pub session_id: String,
    /// The publisher's AU id, required in every statement's `contextActivities.grouping`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher_id: Option<String>,
    /// The course's AU activity ids, as the LMS listed them, for the course scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub course_activities: Vec<String>,
    /// A cmi5 launch's mode (`Normal`, `Browse`, `Review`): present only for cmi5 launches,
    /// whose statements follow the cmi5 session rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_mode: Option<String>,
    pub jti: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
}

/// Scope names for writes and reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    pub write: String,
    pub read: String,
}

/// A signed, unexpired token whose payload is not a valid session (it was signed by this
/// tenant's key, so this means a bug or a leaked key: refuse it all the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPayload;

impl SessionClaims {
    /// The policy's view of these claims; any field the policy cannot read refuses the token.
    /// `courses` is the tenant's course catalog: the course scope's activities come from the
    /// token's own list, else from the course structure registered for its `course_id`.
    pub fn grant(&self, courses: &CourseCatalog) -> Result<Grant, BadPayload> {
        let actor = parse_agent(&Json::from_value(&self.actor)).map_err(|_| BadPayload)?;
        let registration = parse_uuid(&self.registration).ok_or(BadPayload)?;
        let iris = std::iter::once(&self.activity_id).chain(&self.publisher_id).chain(&self.course_activities);
        if iris.into_iter().any(|iri| !is_absolute_iri(iri)) || self.session_id.is_empty() {
            return Err(BadPayload);
        }
        let write: Scope = self.permissions.write.parse().map_err(|_| BadPayload)?;
        let read: Scope = self.permissions.read.parse().map_err(|_| BadPayload)?;
        if !write.allows_writes() {
            return Err(BadPayload);
        }
        let group = match &self.group {
            None => None,
            Some(value) => match parse_actor(&Json::from_value(value)) {
                Ok(Actor::Group { ifi: Some(ifi), .. }) => Some(ifi),
                _ => return Err(BadPayload),
            },
        };
        if group.is_none() && (write == Scope::GroupActivityRegistration || read == Scope::GroupActivityRegistration) {
            return Err(BadPayload);
        }
        let launch_mode = match &self.launch_mode {
            None => None,
            Some(mode) => Some(mode.parse::<LaunchMode>().map_err(|_| BadPayload)?),
        };
        let course = if !self.course_activities.is_empty() {
            Some(Arc::new(CourseActivities::new(self.course_activities.iter().cloned())))
        } else {
            self.course_id.as_ref().and_then(|id| courses.get(id)).cloned()
        };
        Ok(Grant {
            actor,
            activity_id: self.activity_id.clone(),
            registration,
            session_id: self.session_id.clone(),
            publisher_id: self.publisher_id.clone(),
            group,
            course,
            write,
            read,
            launch_mode,
        })
    }
}
