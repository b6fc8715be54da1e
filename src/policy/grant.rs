//! What a verified session token allows, in policy terms.

use std::sync::Arc;

use uuid::Uuid;

use super::course::CourseActivities;
use super::scope::Scope;
use super::session::LaunchMode;
use crate::xapi::agent::Ifi;

/// The policy's view of a session token: who, where, and how far reads and writes reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub actor: Ifi,
    pub activity_id: String,
    pub registration: Uuid,
    /// The session id statements carry in the cmi5 session id extension.
    pub session_id: String,
    /// The publisher's AU id, which every statement carries in `contextActivities.grouping`
    /// (cmi5 §9.6.2.3); checked only when the LMS named it.
    pub publisher_id: Option<String>,
    /// The team of the group scope: a Group identified by this IFI, the actor among its members.
    pub group: Option<Ifi>,
    /// The activities of the token's course, for the course scope. `None`: unknown, so the
    /// course scope refuses everything.
    pub course: Option<Arc<CourseActivities>>,
    pub write: Scope,
    pub read: Scope,
    /// A cmi5 launch (the LMS asked for cmi5 delivery or named a launch mode): its statements
    /// follow the cmi5 session rules. `None`: plain xAPI content, no session rules.
    pub launch_mode: Option<LaunchMode>,
}

/// The grant the policy's table tests share: learner-1 at `https://lms.example`, the given
/// activity, one fixed registration and session, the default scope both ways.
#[cfg(test)]
pub(crate) fn test_grant(activity_id: &str) -> Grant {
    Grant {
        actor: Ifi::Account { home_page: "https://lms.example".into(), name: "learner-1".into() },
        activity_id: activity_id.into(),
        registration: Uuid::parse_str("7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11").expect("a valid UUID literal"),
        session_id: TEST_SESSION_ID.into(),
        publisher_id: None,
        group: None,
        course: None,
        write: Scope::ActorActivityRegistration,
        read: Scope::ActorActivityRegistration,
        launch_mode: None,
    }
}

/// The session id of [`test_grant`].
#[cfg(test)]
pub(crate) const TEST_SESSION_ID: &str = "a7c7f4a1-5a36-4d6c-9a83-3f0f7b1e2d10";
