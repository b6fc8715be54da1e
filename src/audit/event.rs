//! One audit event: who did what, when, for which tenant. Never a body, a token, a secret or a
//! learner's identity: a learner is `logging::learner_hash` (salted, stable per tenant).

use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The token service issued a session token (in its reply or behind a fetch URL).
    TokenIssued,
    /// A cmi5 fetch URL handed out its token.
    FetchRedeemed,
    /// A cmi5 fetch URL gave no token (used, expired, invalid).
    FetchRefused,
    /// A request refused by lrsgate (edge, token service or admin API), with its reason code.
    RequestRefused,
    /// A session ended: `terminated` stored by the LRS, or the LMS ended or abandoned it.
    SessionEnded,
    /// One token, a session or a learner revoked (LMS or operator).
    Revoked,
    /// An admin API change (which admin key in `actor`).
    AdminChange,
    /// A tenant's config was applied.
    ConfigApplied,
    /// A tenant's config was refused (the last good one keeps serving).
    ConfigRejected,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TokenIssued => "token_issued",
            EventKind::FetchRedeemed => "fetch_redeemed",
            EventKind::FetchRefused => "fetch_refused",
            EventKind::RequestRefused => "request_refused",
            EventKind::SessionEnded => "session_ended",
            EventKind::Revoked => "revoked",
            EventKind::AdminChange => "admin_change",
            EventKind::ConfigApplied => "config_applied",
            EventKind::ConfigRejected => "config_rejected",
        }
    }

    pub const ALL: [EventKind; 9] = [
        EventKind::TokenIssued,
        EventKind::FetchRedeemed,
        EventKind::FetchRefused,
        EventKind::RequestRefused,
        EventKind::SessionEnded,
        EventKind::Revoked,
        EventKind::AdminChange,
        EventKind::ConfigApplied,
        EventKind::ConfigRejected,
    ];

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// An audit event as it is queued, spooled (one JSON line) and stored. Absent optional
/// members read back as `None`; an unknown kind or service refuses the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique across the fleet (`request_id::event_id`); replays are deduplicated on it.
    pub id: uuid::Uuid,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub kind: EventKind,
    pub service: Service,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The stable reason code of a refusal (or of a session end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The xAPI resource of an edge request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The learner's salted hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learner: Option<String>,
    /// Who acted: `admin_key:<id>`, `lms_key:<hash prefix>`, `cli:<user>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// A short, personal-data-free detail (the admin route, a config error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The service that recorded an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Edge,
    Token,
    Admin,
    Config,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Edge => "edge",
            Service::Token => "token",
            Service::Admin => "admin",
            Service::Config => "config",
        }
    }
}

impl AuditEvent {
    /// A new event of `kind` from `service`, now.
    pub fn new(kind: EventKind, service: Service) -> AuditEvent {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        AuditEvent {
            id: crate::request_id::event_id(),
            at_ms,
            kind,
            service,
            tenant: None,
            reason: None,
            resource: None,
            status: None,
            session_id: None,
            learner: None,
            actor: None,
            request_id: None,
            detail: None,
        }
    }

    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_owned());
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    pub fn request(mut self, id: crate::request_id::RequestId) -> Self {
        self.request_id = Some(id.as_str().to_owned());
        self
    }

    pub fn session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_owned());
        self
    }

    pub fn learner(mut self, hash: String) -> Self {
        self.learner = Some(hash);
        self
    }

    pub fn actor(mut self, actor: String) -> Self {
        self.actor = Some(actor);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        // Bounded: a detail is a hint, never a payload.
        if detail.len() > 512 {
            let mut cut = 512;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        self.detail = Some(detail);
        self
    }

    /// One JSON line (no newline).
    pub fn to_json(&self) -> String {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read one spooled line back.
    pub fn from_json(line: &[u8]) -> Option<AuditEvent> {
        serde_json::from_slice(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_through_its_json_line() {
        let e = AuditEvent::new(EventKind::RequestRefused, Service::Edge)
            .tenant("acme")
            .reason("scope_denies")
            .session("s-1")
            .learner("0123456789abcdef".into());
        let line = e.to_json();
        assert!(!line.contains('\n'));
        assert_eq!(AuditEvent::from_json(line.as_bytes()), Some(e));
        assert_eq!(AuditEvent::from_json(b"{\"id\":\"x\"}"), None);
        assert_eq!(
            AuditEvent::from_json(
                br#"{"id":"00000000-0000-0000-0000-000000000001","at_ms":1,"kind":"revoked","service":"elsewhere"}"#
            ),
            None
        );
    }

    #[test]
    fn kinds_parse_back() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn details_are_bounded_on_a_char_boundary() {
        let e = AuditEvent::new(EventKind::ConfigRejected, Service::Config).detail("é".repeat(400));
        let d = e.detail.unwrap();
        assert!(d.len() <= 512 && d.chars().all(|c| c == 'é'));
    }
}
