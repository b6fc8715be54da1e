//! Strict JSON: a parser that refuses a key used twice in any object.
//!
//! xAPI leaves duplicate keys undefined (Data §2.2), so the LRS may read the last `actor` while a
//! lenient checker read the first. Refusing them makes the proxy and the LRS see one statement.
//!
//! The judged paths (statement bodies and answers, `agent` parameters) read a borrowed tree,
//! [`Json`]: its strings are slices of the body wherever the text has no escapes, and an object
//! is its entries in order, so a 1 KB statement costs a few allocations instead of one per
//! key and string. [`parse`] gives a `serde_json::Value` for the few callers that deserialize
//! into their own types (token requests), after the same strict check.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Why a body is not strict JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON at all (syntax, trailing data, bad UTF-8); the parser's position is in the text.
    Syntax(String),
    /// A key occurs twice in one object.
    DuplicateKey(String),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax(detail) => write!(f, "body is not valid JSON: {detail}"),
            JsonError::DuplicateKey(key) => write!(f, "key \"{key}\" occurs twice in one object"),
        }
    }
}

const DUPLICATE_MARK: &str = "lrsgate-duplicate-key:";

/// A JSON value borrowed from the text it was parsed from. Numbers are only told apart from
/// other kinds: nothing lrsgate judges reads a number's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number,
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object: its entries in document order, keys unique (checked when parsed). Lookups
/// are a scan, which for the handful of keys an xAPI object has is faster than hashing; every
/// caller looks up a fixed number of keys, so a hostile object with many keys costs linear time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> Json<'a> {
    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Json::Str(_))
    }

    /// `self[key]` for an object, `None` for anything else.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.as_object()?.get(key)
    }

    /// A view of an already parsed `serde_json::Value` (token claims, token requests), so one
    /// judging code reads both.
    pub fn from_value(value: &'a Value) -> Json<'a> {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(_) => Json::Number,
            Value::String(s) => Json::Str(Cow::Borrowed(s)),
            Value::Array(items) => Json::Array(items.iter().map(Json::from_value).collect()),
            Value::Object(map) => Json::Object(Object(
                map.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::from_value(v))).collect(),
            )),
        }
    }
}

/// Parse `bytes` as one JSON value into a borrowed tree, refusing duplicate keys at any depth.
pub fn parse_borrowed(bytes: &[u8]) -> Result<Json<'_>, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = JsonSeed.deserialize(&mut de).map_err(classify)?;
    de.end().map_err(classify)?;
    Ok(value)
}

/// Parse `bytes` as one JSON value, refusing duplicate keys at any depth.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    parse_borrowed(bytes)?;
    serde_json::from_slice(bytes).map_err(classify)
}

fn classify(e: serde_json::Error) -> JsonError {
    let text = e.to_string();
    match text.strip_prefix(DUPLICATE_MARK) {
        // serde_json appends " at line L column C"; keep only the key.
        Some(rest) => JsonError::DuplicateKey(rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k).to_owned()),
        None => JsonError::Syntax(text),
    }
}

/// The first key of `entries` that an earlier entry already has. Pairwise for the small
/// objects xAPI uses; sorted (n log n) past that, so a hostile object is not quadratic.
fn repeated_key<'e>(entries: &'e [(Cow<'_, str>, Json<'_>)]) -> Option<&'e str> {
    const PAIRWISE_UP_TO: usize = 16;
    if entries.len() <= PAIRWISE_UP_TO {
        return entries
            .iter()
            .enumerate()
            .find(|(i, (key, _))| entries[..*i].iter().any(|(seen, _)| seen == key))
            .map(|(_, (key, _))| key.as_ref());
    }
    let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    keys.windows(2).find(|pair| pair[0] == pair[1]).map(|pair| pair[0])
}

struct JsonSeed;

impl<'de> DeserializeSeed<'de> for JsonSeed {
    type Value = Json<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Json<'de>, E> {
        Ok(Json::Number)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(JsonSeed)? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            entries.push((key, map.next_value_seed(JsonSeed)?));
        }
        if let Some(key) = repeated_key(&entries) {
            return Err(de::Error::custom(format_args!("{DUPLICATE_MARK}{key}")));
        }
        Ok(Json::Object(Object(entries)))
    }
}

/// An object key, borrowed from the text when it has no escapes (`Cow`'s own `Deserialize`
/// always copies).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_json() {
        let v = parse(br#"{"a":[1,{"b":null}],"c":"d"}"#).unwrap();
        assert_eq!(v["a"][1]["b"], Value::Null);
    }

    #[test]
    fn refuses_duplicate_top_level_key() {
        assert_eq!(parse(br#"{"actor":1,"actor":2}"#), Err(JsonError::DuplicateKey("actor".into())));
    }

    #[test]
    fn refuses_duplicate_nested_key() {
        let e = parse(br#"[{"actor":{"mbox":"mailto:a@x","mbox":"mailto:b@x"}}]"#).unwrap_err();
        assert_eq!(e, JsonError::DuplicateKey("mbox".into()));
    }

    #[test]
    fn same_key_in_sibling_objects_is_fine() {
        assert!(parse(br#"[{"id":1},{"id":2}]"#).is_ok());
    }

    #[test]
    fn refuses_trailing_data_and_garbage() {
        assert!(matches!(parse(br#"{} {}"#), Err(JsonError::Syntax(_))));
        assert!(matches!(parse(b"{\"a\":"), Err(JsonError::Syntax(_))));
        assert!(matches!(parse(b"\xff"), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn the_borrowed_tree_borrows_plain_text_and_decodes_escapes() {
        // Keys in sorted order, as a `Value`'s map keeps them, so the two trees compare equal.
        let text = br#"{"esc\u0061ped":"x\ny","n":[1,-2.5e3,true,null],"plain":"abc"}"#;
        let tree = parse_borrowed(text).unwrap();
        let obj = tree.as_object().unwrap();
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["escaped", "n", "plain"]);
        assert!(matches!(obj.get("plain"), Some(Json::Str(Cow::Borrowed("abc")))), "no copy without escapes");
        assert_eq!(obj.get("escaped").and_then(Json::as_str), Some("x\ny"));
        assert_eq!(
            obj.get("n").and_then(Json::as_array),
            Some(&[Json::Number, Json::Number, Json::Bool(true), Json::Null][..])
        );
        let unsorted = parse_borrowed(br#"{"b":1,"a":2}"#).unwrap();
        assert_eq!(unsorted.as_object().unwrap().keys().collect::<Vec<_>>(), ["b", "a"], "in document order");
        let value: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(Json::from_value(&value), tree, "a Value viewed is the same tree");
    }

    #[test]
    fn a_key_repeated_in_a_large_object_is_found_and_an_escaped_twin_counts() {
        let mut keys: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        assert!(parse_borrowed(format!("{{{}}}", keys.join(",")).as_bytes()).is_ok());
        keys.push("\"k7\":0".into());
        let e = parse_borrowed(format!("{{{}}}", keys.join(",")).as_bytes()).unwrap_err();
        assert_eq!(e, JsonError::DuplicateKey("k7".into()));
        assert_eq!(parse_borrowed(br#"{"ab":1,"\u0061b":2}"#), Err(JsonError::DuplicateKey("ab".into())));
    }

    #[test]
    fn a_key_that_looks_like_the_marker_is_not_confused() {
        // The marker is only produced by our visitor; a literal key containing it is data.
        let v = parse(br#"{"lrsgate-duplicate-key:x":1}"#).unwrap();
        assert_eq!(v["lrsgate-duplicate-key:x"], 1);
    }
}
