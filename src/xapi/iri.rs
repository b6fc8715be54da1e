//! Minimal IRI and UUID shape checks used where xAPI requires them, and the comparison form
//! in which lrsgate recognises reserved IRIs.

use std::borrow::Cow;

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
    scheme_ok && !rest.is_empty() && !has_space_or_control(s)
}

/// Any whitespace or control character. Every ASCII one is at or below a space, or DEL; only
/// text with non-ASCII characters needs decoding (for NEL, NBSP, the C1 controls, …).
fn has_space_or_control(s: &str) -> bool {
    if s.is_ascii() {
        return s.bytes().any(|b| b <= b' ' || b == 0x7f);
    }
    s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The first of `set` in `s`, by byte (every member is ASCII, so the index is a char boundary).
fn find_any(s: &str, set: &[u8]) -> Option<usize> {
    s.bytes().position(|b| set.contains(&b))
}

/// The form in which two IRIs that RFC 3986 §6.2.2–6.2.3 calls equivalent are equal: scheme
/// and host lower-cased, percent-escapes of unreserved characters decoded and the others in
/// upper-case hex, dot segments removed, a default port (`:80`, `:443`) or an empty one dropped,
/// and an empty http(s) path written `/`. Used where lrsgate must recognise a reserved IRI (the
/// cmi5 category, the LMS-only verbs, voiding) in any spelling that a consumer may treat as the
/// same; identities lrsgate grants are still compared exactly (a looser match there would be
/// more lenient than the LRS).
pub fn comparison_form(iri: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = iri.split_once(':') else { return Cow::Borrowed(iri) };
    let scheme_normal = !scheme.bytes().any(|b| b.is_ascii_uppercase());
    let (authority, path_and_more) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = find_any(after, b"/?#").unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, rest),
    };
    let path_end = find_any(path_and_more, b"?#").unwrap_or(path_and_more.len());
    let (path, tail) = path_and_more.split_at(path_end);
    let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let authority_normal = authority.is_none_or(|a| {
        let host_port = a.rsplit_once('@').map_or(a, |(_, h)| h);
        !host_port.bytes().any(|b| b.is_ascii_uppercase()) && !has_default_or_empty_port(scheme, host_port)
    });
    let empty_http_path = http && authority.is_some() && path.is_empty();
    // A dot segment needs a '.', an escape a '%': most IRIs have neither past the authority.
    let dot_segments = path.contains('.') && path.split('/').any(|seg| seg == "." || seg == "..");
    let path_normal = !(empty_http_path || dot_segments || path_and_more.contains('%'));
    if scheme_normal && authority_normal && path_normal {
        return Cow::Borrowed(iri);
    }
    let mut out = String::with_capacity(iri.len());
    out.push_str(&scheme.to_ascii_lowercase());
    out.push(':');
    if let Some(a) = authority {
        out.push_str("//");
        let (userinfo, host_port) = match a.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, a),
        };
        if let Some(u) = userinfo {
            out.push_str(&normal_escapes(u));
            out.push('@');
        }
        let host_port = host_port.to_ascii_lowercase();
        if has_default_or_empty_port(scheme, &host_port) {
            out.push_str(host_port.rsplit_once(':').map_or(host_port.as_str(), |(h, _)| h));
        } else {
            out.push_str(&host_port);
        }
    }
    let path = normal_escapes(path);
    if http && authority.is_some() && path.is_empty() {
        out.push('/');
    } else {
        out.push_str(&remove_dot_segments(&path));
    }
    out.push_str(&normal_escapes(tail));
    Cow::Owned(out)
}

/// Whether two IRIs are equivalent by [`comparison_form`].
pub fn same_iri(a: &str, b: &str) -> bool {
    a == b || comparison_form(a) == comparison_form(b)
}

fn has_default_or_empty_port(scheme: &str, host_port: &str) -> bool {
    // An IPv6 literal's colons are inside brackets.
    let Some((host, port)) = host_port.rsplit_once(':') else { return false };
    if host.starts_with('[') && !host.ends_with(']') {
        return false;
    }
    port.is_empty()
        || (scheme.eq_ignore_ascii_case("http") && port == "80")
        || (scheme.eq_ignore_ascii_case("https") && port == "443")
}

/// Percent-escapes of unreserved characters decoded, the others in upper-case hex.
fn normal_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let v = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(0);
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v as char);
            } else {
                out.push('%');
                out.push_str(&s[i + 1..i + 3].to_ascii_uppercase());
            }
            i += 3;
        } else {
            let ch = s[i..].chars().next().unwrap_or('\u{FFFD}');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// RFC 3986 §5.2.4, for an absolute path (segments `.` and `..` resolved, never above the root).
fn remove_dot_segments(path: &str) -> String {
    if !path.split('/').any(|seg| seg == "." || seg == "..") {
        return path.to_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    out.join("/")
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
        // Controls and whitespace in ASCII and beyond: tab, DEL, NBSP, NEL, a C1 control,
        // ideographic space, each beside a non-ASCII letter too.
        for bad in
            ["http://a\tb", "http://a\u{7f}", "http://ä\u{a0}b", "http://a\u{85}", "http://a\u{9b}", "http://ä\u{3000}"]
        {
            assert!(!is_absolute_iri(bad), "{bad}");
        }
    }

    #[test]
    fn equivalent_spellings_of_an_iri() {
        let verb = "https://w3id.org/xapi/adl/verbs/abandoned";
        let table = [
            ("exact", "https://w3id.org/xapi/adl/verbs/abandoned"),
            ("scheme_upper_case", "HTTPS://w3id.org/xapi/adl/verbs/abandoned"),
            ("host_upper_case", "https://W3ID.ORG/xapi/adl/verbs/abandoned"),
            ("default_port", "https://w3id.org:443/xapi/adl/verbs/abandoned"),
            ("empty_port", "https://w3id.org:/xapi/adl/verbs/abandoned"),
            ("escaped_unreserved", "https://w3id.org/xapi/adl/verbs/%61bandoned"),
            ("dot_segment", "https://w3id.org/xapi/adl/./verbs/abandoned"),
            ("dot_dot_segment", "https://w3id.org/xapi/x/../adl/verbs/abandoned"),
        ];
        for (rule, spelling) in table {
            assert!(same_iri(spelling, verb), "{rule}");
        }
        for (rule, other) in [
            ("path_case_differs", "https://w3id.org/xapi/adl/verbs/Abandoned"),
            ("other_scheme", "http://w3id.org/xapi/adl/verbs/abandoned"),
            ("other_port", "https://w3id.org:8443/xapi/adl/verbs/abandoned"),
            ("trailing_slash", "https://w3id.org/xapi/adl/verbs/abandoned/"),
        ] {
            assert!(!same_iri(other, verb), "{rule}");
        }
        assert_eq!(comparison_form("HTTP://Example.COM"), "http://example.com/");
        assert_eq!(comparison_form("http://x/%7e%2f"), "http://x/~%2F");
        assert!(matches!(comparison_form(verb), Cow::Borrowed(_)), "normal IRIs are not copied");
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
