//! Query strings, parsed once and strictly (Comm §3.2: unknown, duplicate and case-variant
//! parameters are errors), keeping each pair's raw text so what is forwarded is what was judged.

use std::borrow::Cow;
use std::fmt;

/// Parameters of `GET /statements` (Comm §2.1.3).
pub const STATEMENT_GET_PARAMS: &[&str] = &[
    "statementId",
    "voidedStatementId",
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
    "since",
    "until",
    "limit",
    "format",
    "attachments",
    "ascending",
];

/// One `name=value` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: Cow<'a, str>,
    pub value: Cow<'a, str>,
    /// The pair exactly as the client encoded it.
    pub raw: &'a str,
}

/// Why a query string is refused before any authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    Unknown(String),
    Duplicate(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Unknown(name) => write!(f, "unknown query parameter \"{name}\" (names are case-sensitive)"),
            QueryError::Duplicate(name) => write!(f, "query parameter \"{name}\" occurs more than once"),
        }
    }
}

/// Split and decode a raw query (without `?`), checking every name against `known`.
pub fn parse<'a>(raw: Option<&'a str>, known: &[&str]) -> Result<Vec<Param<'a>>, QueryError> {
    let mut params: Vec<Param<'a>> = Vec::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name);
        if !known.contains(&name.as_ref()) {
            return Err(QueryError::Unknown(name.into_owned()));
        }
        if params.iter().any(|p| p.name == name) {
            return Err(QueryError::Duplicate(name.into_owned()));
        }
        params.push(Param { name, value: decode(value), raw: pair });
    }
    Ok(params)
}

/// Whether a raw query names `name` in any letter case (used to spot the Alternate Request
/// Syntax's `method` before anything else reads the query).
pub fn mentions(raw: Option<&str>, name: &str) -> bool {
    raw.unwrap_or("")
        .split('&')
        .map(|pair| decode(pair.split_once('=').map_or(pair, |(n, _)| n)))
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// Decode one component as `application/x-www-form-urlencoded`, the way LRSs read queries.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes: Vec<u8> = form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
}

/// Encode one value for a query string.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let p =
            parse(Some("agent=%7B%22mbox%22%3A%22mailto%3Aa%2Bb%40x%22%7D&limit=10"), STATEMENT_GET_PARAMS).unwrap();
        assert_eq!(p[0].name, "agent");
        assert_eq!(p[0].value, r#"{"mbox":"mailto:a+b@x"}"#);
        assert_eq!(p[1].raw, "limit=10");
        assert!(parse(None, STATEMENT_GET_PARAMS).unwrap().is_empty());
    }

    #[test]
    fn refuses_unknown_case_variant_and_duplicate() {
        assert_eq!(parse(Some("foo=1"), STATEMENT_GET_PARAMS), Err(QueryError::Unknown("foo".into())));
        assert_eq!(parse(Some("Agent=1"), STATEMENT_GET_PARAMS), Err(QueryError::Unknown("Agent".into())));
        assert_eq!(parse(Some("limit=1&limit=2"), STATEMENT_GET_PARAMS), Err(QueryError::Duplicate("limit".into())));
        // An encoded name is the same name: it must not slip past the duplicate check.
        assert_eq!(parse(Some("limit=1&%6Cimit=2"), STATEMENT_GET_PARAMS), Err(QueryError::Duplicate("limit".into())));
    }

    #[test]
    fn spots_method_in_any_case() {
        assert!(mentions(Some("Method=PUT"), "method"));
        assert!(mentions(Some("a=1&%6Dethod=GET"), "method"));
        assert!(!mentions(Some("a=1"), "method"));
    }
}
