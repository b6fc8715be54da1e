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
