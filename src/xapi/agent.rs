//! Agents, Groups and their Inverse Functional Identifiers (xAPI Data §2.4.2).
//!
//! Identity is the IFI: the same kind with the same value (Comm §2.1.3). `name` never counts.
//! Comparison is exact, never more lenient than an LRS: a looser match would let a token write
//! as an identity the LRS treats as someone else.

use std::fmt;

use serde_json::{json, Map, Value};

use super::iri::is_absolute_iri;
use super::strict_json::{Json, Object};

/// One Inverse Functional Identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ifi {
    Mbox(String),
    MboxSha1Sum(String),
    OpenId(String),
    Account { home_page: String, name: String },
}

/// A statement's actor, or any other Agent/Group position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Agent(Ifi),
    /// Identified (`ifi` is `Some`) or anonymous Group; members are Agents.
    Group {
        ifi: Option<Ifi>,
        members: Vec<Ifi>,
    },
}

/// Why a JSON value is not a valid Agent or Group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    NotAnObject,
    /// An Agent needs exactly one IFI; an identified Group at most one.
    IfiCount(usize),
    /// The IFI named is present but malformed.
    BadIfi(&'static str),
    UnknownProperty(String),
    BadObjectType,
    /// An anonymous Group without a `member` list.
    MissingMembers,
    /// A Group member that is itself a Group.
    NestedGroup,
    BadName,
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::NotAnObject => f.write_str("is not a JSON object"),
            AgentError::IfiCount(n) => write!(f, "has {n} identifiers; an Agent needs exactly one"),
            AgentError::BadIfi(which) => write!(f, "has a malformed {which}"),
            AgentError::UnknownProperty(p) => write!(f, "has an unknown property \"{p}\""),
            AgentError::BadObjectType => f.write_str("has an objectType other than Agent or Group"),
            AgentError::MissingMembers => f.write_str("is an anonymous Group without members"),
            AgentError::NestedGroup => f.write_str("is a Group inside a Group"),
            AgentError::BadName => f.write_str("has a name that is not a string"),
        }
    }
}

impl Ifi {
    /// The canonical JSON of an Agent with this IFI, as sent in an `agent` query parameter.
    pub fn agent_json(&self) -> Value {
        self.json_as("Agent")
    }

    /// The canonical JSON of an identified Group with this IFI (no members: identity is the IFI).
    pub fn group_json(&self) -> Value {
        self.json_as("Group")
    }

    fn json_as(&self, object_type: &str) -> Value {
        let mut obj = Map::with_capacity(2);
        obj.insert("objectType".into(), Value::from(object_type));
        let (key, value) = match self {
            Ifi::Mbox(v) => ("mbox", Value::from(v.as_str())),
            Ifi::MboxSha1Sum(v) => ("mbox_sha1sum", Value::from(v.as_str())),
            Ifi::OpenId(v) => ("openid", Value::from(v.as_str())),
            Ifi::Account { home_page, name } => ("account", json!({ "homePage": home_page, "name": name })),
        };
        obj.insert(key.into(), value);
        Value::Object(obj)
    }

    /// A stable text form (`kind|value`), used only as input to a salted hash for logs.
    pub fn stable_text(&self) -> String {
        match self {
            Ifi::Mbox(v) => format!("mbox|{v}"),
            Ifi::MboxSha1Sum(v) => format!("mbox_sha1sum|{v}"),
            Ifi::OpenId(v) => format!("openid|{v}"),
            Ifi::Account { home_page, name } => format!("account|{home_page}|{name}"),
        }
    }
}

/// Parse an Agent (objectType absent or `Agent`) with exactly one IFI.
pub fn parse_agent(value: &Json<'_>) -> Result<Ifi, AgentError> {
    match parse_actor(value)? {
        Actor::Agent(ifi) => Ok(ifi),
        Actor::Group { .. } => Err(AgentError::BadObjectType),
    }
}

/// [`parse_agent`] of a `serde_json` value, for tables written with `json!`.
#[cfg(test)]
pub(crate) fn parse_agent_value(value: &Value) -> Result<Ifi, AgentError> {
    parse_agent(&Json::from_value(value))
}

/// Parse an Agent or a Group in an actor-like position.
pub fn parse_actor(value: &Json<'_>) -> Result<Actor, AgentError> {
    let obj = value.as_object().ok_or(AgentError::NotAnObject)?;
    let is_group = match obj.get("objectType") {
        None => false,
        Some(Json::Str(t)) if t == "Agent" => false,
        Some(Json::Str(t)) if t == "Group" => true,
        Some(_) => return Err(AgentError::BadObjectType),
    };
    for key in obj.keys() {
        let known = matches!(key, "objectType" | "name" | "mbox" | "mbox_sha1sum" | "openid" | "account")
            || (is_group && key == "member");
        if !known {
            return Err(AgentError::UnknownProperty(key.to_owned()));
        }
    }
    if obj.get("name").is_some_and(|n| !n.is_string()) {
        return Err(AgentError::BadName);
    }
    let ifi = parse_ifi(obj)?;
    if !is_group {
        return ifi.map(Actor::Agent).ok_or(AgentError::IfiCount(0));
    }
    let members = match obj.get("member") {
        None if ifi.is_some() => Vec::new(),
        None => return Err(AgentError::MissingMembers),
        Some(Json::Array(list)) => {
            if ifi.is_none() && list.is_empty() {
                return Err(AgentError::MissingMembers);
            }
            list.iter()
                .map(|m| match parse_actor(m)? {
                    Actor::Agent(ifi) => Ok(ifi),
                    Actor::Group { .. } => Err(AgentError::NestedGroup),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(AgentError::MissingMembers),
    };
    Ok(Actor::Group { ifi, members })
}

/// The object's single IFI, `None` if it has none; two or more is an error.
fn parse_ifi(obj: &Object<'_>) -> Result<Option<Ifi>, AgentError> {
    let mut found = None;
    let mut count = 0;
    if let Some(v) = obj.get("mbox") {
        count += 1;
        let s = v.as_str().filter(|s| s.len() > 7 && s.starts_with("mailto:"));
        found = Some(Ifi::Mbox(s.ok_or(AgentError::BadIfi("mbox"))?.to_owned()));
    }
    if let Some(v) = obj.get("mbox_sha1sum") {
        count += 1;
        let s = v.as_str().filter(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()));
        found = Some(Ifi::MboxSha1Sum(s.ok_or(AgentError::BadIfi("mbox_sha1sum"))?.to_owned()));
    }
    if let Some(v) = obj.get("openid") {
        count += 1;
        let s = v.as_str().filter(|s| is_absolute_iri(s));
        found = Some(Ifi::OpenId(s.ok_or(AgentError::BadIfi("openid"))?.to_owned()));
    }
    if let Some(v) = obj.get("account") {
        count += 1;
        found = Some(parse_account(v).ok_or(AgentError::BadIfi("account"))?);
    }
    if count > 1 {
        return Err(AgentError::IfiCount(count));
    }
    Ok(found)
}

fn parse_account(v: &Json<'_>) -> Option<Ifi> {
    let acc = v.as_object()?;
    if acc.len() != 2 {
        return None;
    }
    let home_page = acc.get("homePage")?.as_str().filter(|s| is_absolute_iri(s))?;
    let name = acc.get("name")?.as_str()?;
    Some(Ifi::Account { home_page: home_page.to_owned(), name: name.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::parse_agent_value as parse_agent;

    // The tables below are written as `serde_json` values; the parsers read a borrowed tree.
    fn parse_actor(v: &Value) -> Result<Actor, AgentError> {
        super::parse_actor(&Json::from_value(v))
    }

    fn agent(v: Value) -> Result<Ifi, AgentError> {
        parse_agent(&v)
    }

    #[test]
    fn agent_with_each_ifi_kind() {
        assert_eq!(agent(json!({"mbox":"mailto:a@x.org"})), Ok(Ifi::Mbox("mailto:a@x.org".into())));
        assert!(agent(json!({"mbox_sha1sum":"a".repeat(40)})).is_ok());
        assert!(agent(json!({"openid":"https://id.example/a"})).is_ok());
        assert_eq!(
            agent(json!({"objectType":"Agent","account":{"homePage":"https://lms.example","name":"42"}})),
            Ok(Ifi::Account { home_page: "https://lms.example".into(), name: "42".into() })
        );
    }

    #[test]
    fn agent_needs_exactly_one_ifi() {
        assert_eq!(agent(json!({"name":"Ann"})), Err(AgentError::IfiCount(0)));
        assert_eq!(
            agent(json!({"mbox":"mailto:a@x","account":{"homePage":"https://h","name":"n"}})),
            Err(AgentError::IfiCount(2))
        );
    }

    #[test]
    fn malformed_ifis_are_refused() {
        assert_eq!(agent(json!({"mbox":"a@x"})), Err(AgentError::BadIfi("mbox")));
        assert_eq!(agent(json!({"mbox_sha1sum":"xyz"})), Err(AgentError::BadIfi("mbox_sha1sum")));
        assert_eq!(agent(json!({"account":{"name":"n"}})), Err(AgentError::BadIfi("account")));
        assert_eq!(
            agent(json!({"account":{"homePage":"https://h","name":"n","x":1}})),
            Err(AgentError::BadIfi("account"))
        );
    }

    #[test]
    fn unknown_property_and_object_type() {
        assert_eq!(agent(json!({"mbox":"mailto:a@x","role":"admin"})), Err(AgentError::UnknownProperty("role".into())));
        assert_eq!(agent(json!({"objectType":"Person","mbox":"mailto:a@x"})), Err(AgentError::BadObjectType));
        assert_eq!(agent(json!({"objectType":"Group","mbox":"mailto:a@x"})), Err(AgentError::BadObjectType));
    }

    #[test]
    fn identity_ignores_name_but_not_case_or_kind() {
        let a = agent(json!({"name":"A","mbox":"mailto:a@x.org"})).unwrap();
        let b = agent(json!({"name":"B","mbox":"mailto:a@x.org"})).unwrap();
        let upper = agent(json!({"mbox":"mailto:A@x.org"})).unwrap();
        let openid = agent(json!({"openid":"mailto:a@x.org"})).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, upper);
        assert_ne!(a, openid);
    }

    #[test]
    fn groups() {
        let anon = parse_actor(&json!({"objectType":"Group","member":[{"mbox":"mailto:a@x"}]})).unwrap();
        assert_eq!(anon, Actor::Group { ifi: None, members: vec![Ifi::Mbox("mailto:a@x".into())] });
        assert_eq!(parse_actor(&json!({"objectType":"Group"})), Err(AgentError::MissingMembers));
        assert!(parse_actor(&json!({"objectType":"Group","mbox":"mailto:g@x"})).is_ok());
        assert_eq!(
            parse_actor(&json!({"objectType":"Group","member":[{"objectType":"Group","mbox":"mailto:g@x"}]})),
            Err(AgentError::NestedGroup)
        );
        assert_eq!(
            parse_actor(&json!({"objectType":"Group","member":[{"name":"no ifi"}]})),
            Err(AgentError::IfiCount(0))
        );
    }

    #[test]
    fn canonical_query_json_round_trips() {
        let ifi = Ifi::Account { home_page: "https://h".into(), name: "n".into() };
        assert_eq!(parse_agent(&ifi.agent_json()), Ok(ifi));
    }
}
