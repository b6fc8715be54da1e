//! Strict JSON: a `serde_json::Value` parser that refuses a key used twice in any object.
//!
//! xAPI leaves duplicate keys undefined (Data §2.2), so the LRS may read the last `actor` while a
//! lenient checker read the first. Refusing them makes the proxy and the LRS see one statement.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

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

/// Parse `bytes` as one JSON value, refusing duplicate keys at any depth.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de).map_err(classify)?;
    de.end().map_err(classify)?;
    Ok(value)
}

fn classify(e: serde_json::Error) -> JsonError {
    let text = e.to_string();
    match text.strip_prefix(DUPLICATE_MARK) {
        // serde_json appends " at line L column C"; keep only the key.
        Some(rest) => JsonError::DuplicateKey(rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k).to_owned()),
        None => JsonError::Syntax(text),
    }
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // One walk of the map per key (a lookup, then an insert, would be two).
            match object.entry(key) {
                serde_json::map::Entry::Occupied(seen) => {
                    return Err(de::Error::custom(format_args!("{DUPLICATE_MARK}{}", seen.key())));
                }
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(StrictValue)?);
                }
            }
        }
        Ok(Value::Object(object))
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
    fn a_key_that_looks_like_the_marker_is_not_confused() {
        // The marker is only produced by our visitor; a literal key containing it is data.
        let v = parse(br#"{"lrsgate-duplicate-key:x":1}"#).unwrap();
        assert_eq!(v["lrsgate-duplicate-key:x"], 1);
    }
}
