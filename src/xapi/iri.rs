//! Minimal IRI and UUID shape checks used where xAPI requires them.

/// True when `s` is an absolute IRI: an RFC 3987 scheme, `:`, and a non-empty rest with no
/// white space or control characters. This is a shape check, not a full grammar: the LRS stays
/// the judge of finer syntax, while the proxy needs only a stable identity to compare exactly.
pub fn is_absolute_iri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok && !rest.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Parse an xAPI UUID (RFC 4122 text form, any case); `None` if it is not one.
pub fn parse_uuid(s: &str) -> Option<uuid::Uuid> {
    // Only the hyphenated 36-character form is an xAPI UUID; `Uuid::parse_str` also takes
    // braced, URN and simple forms, which an LRS may read differently.
    if s.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_iris() {
        for ok in ["http://example.com/a", "urn:uuid:1", "https://ex.com/ä", "tag:x"] {
            assert!(is_absolute_iri(ok), "{ok}");
        }
        for bad in ["", "example.com", ":x", "1http://x", "http:", "http://a b", "ht tp://x"] {
            assert!(!is_absolute_iri(bad), "{bad}");
        }
    }

    #[test]
    fn uuids() {
        assert!(parse_uuid("ec531277-b57b-4c15-8d91-d292c5b2b8f7").is_some());
        assert!(parse_uuid("EC531277-B57B-4C15-8D91-D292C5B2B8F7").is_some());
        assert!(parse_uuid("ec531277b57b4c158d91d292c5b2b8f7").is_none());
        assert!(parse_uuid("{ec531277-b57b-4c15-8d91-d292c5b2b8f7}").is_none());
        assert!(parse_uuid("not-a-uuid-not-a-uuid-not-a-uuid-xxx").is_none());
    }
}
