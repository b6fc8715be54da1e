//! What a verified session token allows, in policy terms.

use uuid::Uuid;

use super::scope::Scope;
use crate::xapi::agent::Ifi;

/// The policy's view of a session token: who, where, and how far reads and writes reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub actor: Ifi,
    pub activity_id: String,
    pub registration: Uuid,
    pub write: Scope,
    pub read: Scope,
}

/// The grant the policy's table tests share: learner-1 at `https://lms.example`, the given
/// activity, one fixed registration, the default scope both ways.
#[cfg(test)]
pub(crate) fn test_grant(activity_id: &str) -> Grant {
    Grant {
        actor: Ifi::Account { home_page: "https://lms.example".into(), name: "learner-1".into() },
        activity_id: activity_id.into(),
        registration: Uuid::parse_str("7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11").expect("a valid UUID literal"),
        write: Scope::ActorActivityRegistration,
        read: Scope::ActorActivityRegistration,
    }
}
