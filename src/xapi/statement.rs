//! The statement facts the policy judges, extracted from a strictly parsed body.
//!
//! Parsing never rewrites anything: the body forwarded is the client's bytes (signed statements
//! must stay valid), and these values are only what the policy reads.

use std::fmt;

use uuid::Uuid;

use super::agent::{parse_actor, Actor, AgentError, Ifi};
use super::cmi5;
use super::iri::{is_absolute_iri, parse_uuid};
use super::strict_json::{self, Json, JsonError, Object};

/// The verb that voids another statement.
pub const VERB_VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// What a statement is about, as far as the policy cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementObject {
    Activity { id: String },
    Agent(Actor),
    StatementRef { id: Uuid },
    SubStatement(Box<SubStatement>),
}

/// The judged parts of a SubStatement (no id, stored, version or authority of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubStatement {
    pub actor: Actor,
    pub verb_id: String,
    pub object: StatementObject,
}

/// One statement's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub id: Option<Uuid>,
    pub actor: Actor,
    pub verb_id: String,
    pub object: StatementObject,
    pub context_registration: Option<Uuid>,
    /// A client-set `authority` (the LRS should set it from the credential).
    pub has_authority: bool,
    /// Carries the cmi5 category (§9.6.2.1): a cmi5-defined statement.
    pub cmi5_defined: bool,
    /// Activity ids in `context.contextActivities.grouping` (the publisher AU id, §9.6.2.3).
    pub grouping: Vec<String>,
    /// The cmi5 session id context extension (§9.6.3.1), when present.
    pub session_id: Option<String>,
    /// `context.team`, when it is a Group identified by an IFI.
    pub team: Option<Ifi>,
}

/// Why one statement is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementError {
    NotAnObject,
    Missing(&'static str),
    Invalid(&'static str),
    UnknownProperty(String),
    /// An Agent or Group at the named position is malformed.
    Agent {
        at: &'static str,
        error: AgentError,
    },
}

impl fmt::Display for StatementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatementError::NotAnObject => f.write_str("a statement must be a JSON object"),
            StatementError::Missing(what) => write!(f, "{what} is required"),
            StatementError::Invalid(what) => write!(f, "{what} is malformed"),
            StatementError::UnknownProperty(p) => write!(f, "unknown statement property \"{p}\""),
            StatementError::Agent { at, error } => write!(f, "{at} {error}"),
        }
    }
}

/// Why a statement request body was refused by the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    Json(JsonError),
    /// The body is neither a statement object nor an array of them.
    NotStatements,
    EmptyBatch,
    /// Statement number `index` (0-based, 0 for a single statement) is malformed.
    Statement {
        index: usize,
        error: StatementError,
    },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Json(e) => e.fmt(f),
            BodyError::NotStatements => f.write_str("body must be a statement or an array of statements"),
            BodyError::EmptyBatch => f.write_str("the statement array is empty"),
            BodyError::Statement { index, error } => write!(f, "statement {index}: {error}"),
        }
    }
}

const STATEMENT_KEYS: &[&str] = &[
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "stored",
    "authority",
    "version",
    "attachments",
];
const SUBSTATEMENT_KEYS: &[&str] =
    &["objectType", "actor", "verb", "object", "result", "context", "timestamp", "attachments"];

/// Parse a statement request body: one statement or a non-empty array of them.
pub fn parse_body(bytes: &[u8]) -> Result<Vec<Statement>, BodyError> {
    let value = strict_json::parse_borrowed(bytes).map_err(BodyError::Json)?;
    match &value {
        Json::Object(_) => Ok(vec![parse_one(&value).map_err(|error| BodyError::Statement { index: 0, error })?]),
        Json::Array(items) if items.is_empty() => Err(BodyError::EmptyBatch),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| parse_one(item).map_err(|error| BodyError::Statement { index, error }))
            .collect(),
        _ => Err(BodyError::NotStatements),
    }
}

fn parse_one(value: &Json<'_>) -> Result<Statement, StatementError> {
    let obj = value.as_object().ok_or(StatementError::NotAnObject)?;
    refuse_unknown(obj, STATEMENT_KEYS)?;
    let id = match obj.get("id") {
        None => None,
        Some(v) => Some(v.as_str().and_then(parse_uuid).ok_or(StatementError::Invalid("id"))?),
    };
    let context = match obj.get("context") {
        None => ContextFacts::default(),
        Some(c) => parse_context(c)?,
    };
    let has_authority = match obj.get("authority") {
        None => false,
        Some(a) => {
            parse_actor(a).map_err(|error| StatementError::Agent { at: "authority", error })?;
            true
        }
    };
    let core = parse_core(obj, "actor", "object")?;
    Ok(Statement {
        id,
        actor: core.actor,
        verb_id: core.verb_id,
        object: core.object,
        context_registration: context.registration,
        has_authority,
        cmi5_defined: context.cmi5_defined,
        grouping: context.grouping,
        session_id: context.session_id,
        team: context.team,
    })
}

/// What the policy reads from a statement's `context`.
#[derive(Default)]
struct ContextFacts {
    registration: Option<Uuid>,
    cmi5_defined: bool,
    grouping: Vec<String>,
    session_id: Option<String>,
    team: Option<Ifi>,
}

fn parse_context(context: &Json<'_>) -> Result<ContextFacts, StatementError> {
    let ctx = context.as_object().ok_or(StatementError::Invalid("context"))?;
    let mut facts = ContextFacts::default();
    if let Some(v) = ctx.get("registration") {
        facts.registration =
            Some(v.as_str().and_then(parse_uuid).ok_or(StatementError::Invalid("context.registration"))?);
    }
    if let Some(activities) = ctx.get("contextActivities") {
        let activities = activities.as_object().ok_or(StatementError::Invalid("context.contextActivities"))?;
        for (kind, value) in activities.iter() {
            let at = match kind {
                "parent" => "context.contextActivities.parent",
                "grouping" => "context.contextActivities.grouping",
                "category" => "context.contextActivities.category",
                "other" => "context.contextActivities.other",
                _ => return Err(StatementError::Invalid("context.contextActivities (unknown key)")),
            };
            // A single Activity object or an array of them (Data §2.4.6.2).
            let items = match value {
                Json::Array(items) => items.as_slice(),
                single => std::slice::from_ref(single),
            };
            for item in items {
                let id = activity_id(item).ok_or(StatementError::Invalid(at))?;
                match kind {
                    "grouping" => facts.grouping.push(id.to_owned()),
                    "category" if cmi5::is_cmi5_category(id) => facts.cmi5_defined = true,
                    _ => {}
                }
            }
        }
    }
    if let Some(extensions) = ctx.get("extensions") {
        let extensions = extensions.as_object().ok_or(StatementError::Invalid("context.extensions"))?;
        for key in [cmi5::EXTENSION_SESSION_ID, cmi5::EXTENSION_SESSION_ID_PRE_QUARTZ] {
            let Some(v) = extensions.get(key) else { continue };
            let id = v.as_str().ok_or(StatementError::Invalid("context.extensions (cmi5 session id)"))?;
            match &facts.session_id {
                Some(seen) if seen != id => {
                    return Err(StatementError::Invalid("context.extensions (two different cmi5 session ids)"))
                }
                _ => facts.session_id = Some(id.to_owned()),
            }
        }
    }
    facts.team = check_context_agents(ctx)?;
    Ok(facts)
}

/// The id of an Activity in a context activity list.
fn activity_id<'v>(value: &'v Json<'_>) -> Option<&'v str> {
    let obj = value.as_object()?;
    if obj.get("objectType").is_some_and(|t| t.as_str() != Some("Activity")) {
        return None;
    }
    obj.get("id")?.as_str().filter(|id| is_absolute_iri(id))
}

/// The parts statements and SubStatements share: actor, verb, object, context agents.
fn parse_core(
    obj: &Object<'_>,
    actor_at: &'static str,
    object_at: &'static str,
) -> Result<SubStatement, StatementError> {
    let actor_value = obj.get("actor").ok_or(StatementError::Missing("actor"))?;
    let actor = parse_actor(actor_value).map_err(|error| StatementError::Agent { at: actor_at, error })?;
    let verb_id = obj
        .get("verb")
        .ok_or(StatementError::Missing("verb"))?
        .get("id")
        .and_then(Json::as_str)
        .filter(|s| is_absolute_iri(s))
        .ok_or(StatementError::Invalid("verb.id"))?
        .to_owned();
    let object = parse_object(obj.get("object").ok_or(StatementError::Missing("object"))?, object_at)?;
    Ok(SubStatement { actor, verb_id, object })
}

fn parse_object(value: &Json<'_>, at: &'static str) -> Result<StatementObject, StatementError> {
    let obj = value.as_object().ok_or(StatementError::Invalid("object"))?;
    let kind = match obj.get("objectType") {
        None => "Activity",
        Some(v) => v.as_str().ok_or(StatementError::Invalid("object.objectType"))?,
    };
    match kind {
        "Activity" => {
            let id = obj.get("id").and_then(Json::as_str).filter(|s| is_absolute_iri(s));
            Ok(StatementObject::Activity { id: id.ok_or(StatementError::Invalid("object.id"))?.to_owned() })
        }
        "Agent" | "Group" => {
            Ok(StatementObject::Agent(parse_actor(value).map_err(|error| StatementError::Agent { at, error })?))
        }
        "StatementRef" => {
            let id = obj.get("id").and_then(Json::as_str).and_then(parse_uuid);
            Ok(StatementObject::StatementRef { id: id.ok_or(StatementError::Invalid("object.id"))? })
        }
        "SubStatement" if at == "object" => {
            refuse_unknown(obj, SUBSTATEMENT_KEYS)?;
            let sub = parse_core(obj, "object.actor", "object.object")?;
            if let Some(context) = obj.get("context") {
                parse_context(context)?;
            }
            if matches!(sub.object, StatementObject::SubStatement(_)) {
                return Err(StatementError::Invalid("object.object (a SubStatement cannot nest)"));
            }
            Ok(StatementObject::SubStatement(Box::new(sub)))
        }
        _ => Err(StatementError::Invalid("object.objectType")),
    }
}

/// Validates `instructor` and `team`; returns the team's IFI when it is an identified Group.
fn check_context_agents(ctx: &Object<'_>) -> Result<Option<Ifi>, StatementError> {
    if let Some(instructor) = ctx.get("instructor") {
        parse_actor(instructor).map_err(|error| StatementError::Agent { at: "context.instructor", error })?;
    }
    match ctx.get("team") {
        None => Ok(None),
        Some(team) => match parse_actor(team).map_err(|error| StatementError::Agent { at: "context.team", error })? {
            Actor::Group { ifi, .. } => Ok(ifi),
            Actor::Agent(_) => Err(StatementError::Invalid("context.team (must be a Group)")),
        },
    }
}

fn refuse_unknown(obj: &Object<'_>, known: &[&str]) -> Result<(), StatementError> {
    match obj.keys().find(|k| !known.contains(k)) {
        Some(k) => Err(StatementError::UnknownProperty(k.to_owned())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xapi::agent::Ifi;
    use serde_json::{json, Value};

    fn stmt() -> Value {
        json!({
            "id": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
            "actor": {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "learner-1"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
            "object": {"id": "https://lms.example/au/1"},
            "context": {"registration": "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11"}
        })
    }

    fn parse(v: &Value) -> Result<Vec<Statement>, BodyError> {
        parse_body(v.to_string().as_bytes())
    }

    fn err_of(v: Value) -> StatementError {
        match parse(&v) {
            Err(BodyError::Statement { error, .. }) => error,
            other => panic!("expected a statement error, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_cmi5_statement() {
        let s = &parse(&stmt()).unwrap()[0];
        assert_eq!(
            s.actor,
            Actor::Agent(Ifi::Account { home_page: "https://lms.example".into(), name: "learner-1".into() })
        );
        assert_eq!(s.object, StatementObject::Activity { id: "https://lms.example/au/1".into() });
        assert_eq!(s.context_registration.unwrap().to_string(), "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11");
        assert!(!s.has_authority);
    }

    #[test]
    fn batch_reports_the_bad_index() {
        let mut bad = stmt();
        bad["actor"] = json!({"name": "nobody"});
        let body = json!([stmt(), stmt(), bad]);
        assert!(matches!(
            parse(&body),
            Err(BodyError::Statement { index: 2, error: StatementError::Agent { at: "actor", .. } })
        ));
    }

    #[test]
    fn shape_rules() {
        let mut v = stmt();
        v.as_object_mut().unwrap().remove("verb");
        assert_eq!(err_of(v), StatementError::Missing("verb"));
        let mut v = stmt();
        v["id"] = json!("nope");
        assert_eq!(err_of(v), StatementError::Invalid("id"));
        let mut v = stmt();
        v["context"]["registration"] = json!(42);
        assert_eq!(err_of(v), StatementError::Invalid("context.registration"));
        let mut v = stmt();
        v["surprise"] = json!(true);
        assert_eq!(err_of(v), StatementError::UnknownProperty("surprise".into()));
        let mut v = stmt();
        v["object"] = json!({"objectType": "Thing", "id": "https://x"});
        assert_eq!(err_of(v), StatementError::Invalid("object.objectType"));
    }

    #[test]
    fn two_ifis_anywhere_is_malformed() {
        let mut v = stmt();
        v["context"]["instructor"] = json!({"mbox": "mailto:i@x", "openid": "https://id/i"});
        assert_eq!(err_of(v), StatementError::Agent { at: "context.instructor", error: AgentError::IfiCount(2) });
    }

    #[test]
    fn cmi5_context_facts() {
        let mut v = stmt();
        v["context"]["contextActivities"] = json!({
            "grouping": {"id": "https://pub.example/au/1"},
            "category": [{"id": cmi5::CATEGORY_CMI5}, {"id": "https://w3id.org/xapi/cmi5/context/categories/moveon"}]
        });
        v["context"]["extensions"] = json!({ cmi5::EXTENSION_SESSION_ID: "s-1" });
        v["context"]["team"] = json!({"objectType": "Group", "mbox": "mailto:team@x"});
        let s = &parse(&v).unwrap()[0];
        assert!(s.cmi5_defined);
        assert_eq!(s.grouping, vec!["https://pub.example/au/1".to_owned()]);
        assert_eq!(s.session_id.as_deref(), Some("s-1"));
        assert_eq!(s.team, Some(Ifi::Mbox("mailto:team@x".into())));
        let plain = &parse(&stmt()).unwrap()[0];
        assert!(!plain.cmi5_defined && plain.grouping.is_empty() && plain.session_id.is_none());

        let mut v = stmt();
        v["context"]["extensions"] =
            json!({ cmi5::EXTENSION_SESSION_ID: "a", cmi5::EXTENSION_SESSION_ID_PRE_QUARTZ: "b" });
        assert!(matches!(err_of(v), StatementError::Invalid(_)), "two session ids that differ");
        let mut v = stmt();
        v["context"]["extensions"] = json!({ cmi5::EXTENSION_SESSION_ID: 7 });
        assert!(matches!(err_of(v), StatementError::Invalid(_)), "a session id that is not a string");
        let mut v = stmt();
        v["context"]["contextActivities"] = json!({"grouping": [{"id": "not an iri"}]});
        assert_eq!(err_of(v), StatementError::Invalid("context.contextActivities.grouping"));
        let mut v = stmt();
        v["context"]["contextActivities"] = json!({"siblings": []});
        assert!(matches!(err_of(v), StatementError::Invalid(_)));
    }

    #[test]
    fn authority_is_noticed() {
        let mut v = stmt();
        v["authority"] = json!({"mbox": "mailto:boss@x"});
        assert!(parse(&v).unwrap()[0].has_authority);
    }

    #[test]
    fn voiding_and_substatement_objects() {
        let mut v = stmt();
        v["verb"]["id"] = json!(VERB_VOIDED);
        v["object"] = json!({"objectType": "StatementRef", "id": "ec531277-b57b-4c15-8d91-d292c5b2b8f7"});
        assert!(matches!(parse(&v).unwrap()[0].object, StatementObject::StatementRef { .. }));
        let mut v = stmt();
        v["object"] = json!({"objectType": "SubStatement", "actor": {"mbox": "mailto:o@x"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/asked"}, "object": {"id": "https://a/1"}});
        assert!(matches!(parse(&v).unwrap()[0].object, StatementObject::SubStatement(_)));
    }

    #[test]
    fn body_level_errors() {
        assert_eq!(parse_body(b"[]"), Err(BodyError::EmptyBatch));
        assert_eq!(parse_body(b"42"), Err(BodyError::NotStatements));
        assert!(matches!(parse_body(br#"{"actor":{},"actor":{}}"#), Err(BodyError::Json(JsonError::DuplicateKey(_)))));
    }
}
