//! Query strings, parsed once and strictly, and rebuilt in one canonical encoding.
//!
//! xAPI makes unknown, duplicate and case-variant parameters errors (Comm §3.2). Beyond that,
//! real LRSs decode queries with different frameworks (Django, Express, servlets, Ring), which
//! disagree on malformed escapes, invalid UTF-8, `;` as a separator and `+`. So lrsgate never
//! forwards the client's text: it decodes every pair strictly (a malformed escape, invalid
//! UTF-8, a control character or an empty value is a 400) and the LRS receives a query that
//! [`QueryBuilder`] wrote from the decoded values, in which only RFC 3986 unreserved characters
//! stand unescaped. The parser is linear in its input and capped in length.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

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

/// The longest raw query lrsgate reads (a long GET has the Alternate Request Syntax, Comm §1.3).
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// One decoded `name=value` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: Cow<'a, str>,
    pub value: Cow<'a, str>,
}

/// Why a query string is refused before any authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    Unknown(String),
    Duplicate(String),
    /// `name=` or a bare `name`: servers disagree on whether such a parameter is present.
    Empty(String),
    /// A `%` not followed by two hex digits, decoded bytes that are not UTF-8, or a control
    /// character: servers decode these differently.
    BadEncoding,
    /// Longer than [`MAX_QUERY_BYTES`].
    TooLong,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Unknown(name) => {
                write!(f, "unknown query parameter \"{}\" (names are case-sensitive)", printable(name))
            }
            QueryError::Duplicate(name) => write!(f, "query parameter \"{name}\" occurs more than once"),
            QueryError::Empty(name) => write!(f, "query parameter \"{name}\" has no value"),
            QueryError::BadEncoding => {
                f.write_str("the query has a malformed percent-escape, invalid UTF-8 or a control character")
            }
            QueryError::TooLong => write!(f, "the query is longer than {MAX_QUERY_BYTES} bytes"),
        }
    }
}

/// A name as it may appear in a message: at most 64 characters, no control characters.
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Split and decode a raw query (without `?`), checking every name against `known`.
/// Empty pairs (`a=1&&b=2`) carry nothing and are skipped; they never reach the LRS.
pub fn parse<'a>(raw: Option<&'a str>, known: &[&str]) -> Result<Vec<Param<'a>>, QueryError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong);
    }
    let mut params: Vec<Param<'a>> = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name)?;
        if !known.contains(&name.as_ref()) {
            return Err(QueryError::Unknown(name.into_owned()));
        }
        // At most `known.len()` pairs get here, so this stays linear in the input.
        if params.iter().any(|p| p.name == name) {
            return Err(QueryError::Duplicate(name.into_owned()));
        }
        let value = decode(value)?;
        if value.is_empty() {
            return Err(QueryError::Empty(name.into_owned()));
        }
        params.push(Param { name, value });
    }
    Ok(params)
}

/// Whether a raw query names `name` in any letter case (used to spot the Alternate Request
/// Syntax's `method` before anything else reads the query). Undecodable names count as a
/// mention, so a malformed `method` cannot hide the syntax.
pub fn mentions(raw: Option<&str>, name: &str) -> bool {
    raw.unwrap_or("").split('&').any(|pair| {
        let n = pair.split_once('=').map_or(pair, |(n, _)| n);
        decode(n).map_or(n.contains('%'), |n| n.eq_ignore_ascii_case(name))
    })
}

/// Decode one component as `application/x-www-form-urlencoded` (`+` is a space), strictly.
pub fn decode(s: &str) -> Result<Cow<'_, str>, QueryError> {
    if !s.bytes().any(|b| b == b'%' || b == b'+' || b.is_ascii_control() || !b.is_ascii()) {
        return Ok(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
                let (Some(hi), Some(lo)) = (hi, lo) else { return Err(QueryError::BadEncoding) };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                // Raw bytes outside printable ASCII never belong in a request target.
                if !(0x21..0x7f).contains(&b) {
                    return Err(QueryError::BadEncoding);
                }
                out.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| QueryError::BadEncoding)?;
    // JSON's white space may appear in an `agent` value; other controls (NUL first) are read
    // differently by C, SQL and framework code.
    if text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(QueryError::BadEncoding);
    }
    Ok(Cow::Owned(text))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encode one name or value canonically: RFC 3986 unreserved characters as they are, every
/// other byte as `%XX` (upper-case hex). No server reads such a component two ways.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    encode_into(&mut out, value);
    out
}

/// Every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn encode_into(out: &mut String, value: &str) {
    // Upper-case hex, as the percent-encoding crate writes it.
    out.extend(utf8_percent_encode(value, NOT_UNRESERVED));
}

/// The query the LRS receives, written pair by pair in the canonical encoding.
#[derive(Debug, Default)]
pub struct QueryBuilder(String);

impl QueryBuilder {
    pub fn new() -> Self {
        QueryBuilder(String::with_capacity(256))
    }

    pub fn push(&mut self, name: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        encode_into(&mut self.0, name);
        self.0.push('=');
        encode_into(&mut self.0, value);
    }

    /// Every parsed pair, re-encoded.
    pub fn push_all(&mut self, params: &[Param<'_>]) {
        for p in params {
            self.push(&p.name, &p.value);
        }
    }

    pub fn finish(self) -> String {
        self.0
    }
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
        assert_eq!(p[1].value, "10");
        assert!(parse(None, STATEMENT_GET_PARAMS).unwrap().is_empty());
        assert_eq!(parse(Some("limit=1&&format=ids&"), STATEMENT_GET_PARAMS).unwrap().len(), 2);
    }

    #[test]
    fn refusal_rules() {
        let long = format!("limit={}", "1".repeat(MAX_QUERY_BYTES));
        let table: Vec<(&str, &str, QueryError)> = vec![
            ("unknown_name", "foo=1", QueryError::Unknown("foo".into())),
            ("case_variant_name", "Agent=1", QueryError::Unknown("Agent".into())),
            ("duplicate", "limit=1&limit=2", QueryError::Duplicate("limit".into())),
            // An encoded name is the same name: it must not slip past the duplicate check.
            ("encoded_duplicate", "limit=1&%6Cimit=2", QueryError::Duplicate("limit".into())),
            ("empty_value", "statementId=", QueryError::Empty("statementId".into())),
            ("bare_name", "statementId", QueryError::Empty("statementId".into())),
            ("lone_percent", "limit=%", QueryError::BadEncoding),
            ("truncated_escape", "limit=1%2", QueryError::BadEncoding),
            ("non_hex_escape", "limit=%zz", QueryError::BadEncoding),
            ("overlong_utf8", "verb=%C0%AF", QueryError::BadEncoding),
            ("lone_continuation_byte", "verb=%80", QueryError::BadEncoding),
            ("nul_byte", "verb=a%00b", QueryError::BadEncoding),
            ("escape_in_name", "%ZZ=1", QueryError::BadEncoding),
            ("raw_control_character", "verb=a\u{1}b", QueryError::BadEncoding),
            ("too_long", long.as_str(), QueryError::TooLong),
        ];
        for (rule, query, want) in table {
            assert_eq!(parse(Some(query), STATEMENT_GET_PARAMS), Err(want), "{rule}");
        }
    }

    #[test]
    fn separators_other_than_ampersand_are_data_and_are_escaped_on_the_way_out() {
        // `;` splits a query for some frameworks: lrsgate reads it as part of the value, and
        // the LRS then sees it escaped, so it cannot split there either.
        let p = parse(Some("verb=a;limit=0"), STATEMENT_GET_PARAMS).unwrap();
        assert_eq!(p[0].value, "a;limit=0");
        let mut q = QueryBuilder::new();
        q.push_all(&p);
        assert_eq!(q.finish(), "verb=a%3Blimit%3D0");
    }

    #[test]
    fn canonical_encoding() {
        let table = [
            ("plain", "abc-._~XYZ09", "abc-._~XYZ09"),
            ("space_is_percent_20_not_plus", "a b", "a%20b"),
            ("plus_is_escaped", "a+b", "a%2Bb"),
            ("reserved_characters", "&=?#/;:@", "%26%3D%3F%23%2F%3B%3A%40"),
            ("json", r#"{"a":1}"#, "%7B%22a%22%3A1%7D"),
            ("utf8", "é", "%C3%A9"),
        ];
        for (rule, value, want) in table {
            assert_eq!(encode(value), want, "{rule}");
            assert_eq!(decode(want).unwrap(), value, "{rule}: round trip");
        }
    }

    #[test]
    fn spots_method_in_any_case() {
        assert!(mentions(Some("Method=PUT"), "method"));
        assert!(mentions(Some("a=1&%6Dethod=GET"), "method"));
        assert!(mentions(Some("%6Dethod%ZZ=GET"), "method"), "undecodable names count");
        assert!(!mentions(Some("a=1"), "method"));
    }
}
