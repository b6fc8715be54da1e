//! Session token claims (seed-compatible) and their conversion into a policy grant.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::{Grant, Scope};
use crate::xapi::agent::parse_agent;
use crate::xapi::iri::{is_absolute_iri, parse_uuid};

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
    pub fn grant(&self) -> Result<Grant, BadPayload> {
        let actor = parse_agent(&self.actor).map_err(|_| BadPayload)?;
        let registration = parse_uuid(&self.registration).ok_or(BadPayload)?;
        if !is_absolute_iri(&self.activity_id) {
            return Err(BadPayload);
        }
        let write: Scope = self.permissions.write.parse().map_err(|_| BadPayload)?;
        let read: Scope = self.permissions.read.parse().map_err(|_| BadPayload)?;
        if !write.allows_writes() {
            return Err(BadPayload);
        }
        Ok(Grant { actor, activity_id: self.activity_id.clone(), registration, write, read })
    }
}
