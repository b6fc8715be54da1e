//! The request headers lrsgate reads and the few it forwards, each checked.
//!
//! What reaches the LRS is an allow-list, not the client's headers minus a deny-list: a
//! deny-list forwards whatever it does not know, such as `X-HTTP-Method-Override`,
//! `X-Original-URL` or `X-Forwarded-Host`, which make some frameworks run another method, path
//! or host than the one lrsgate judged. [`ForwardHeaders`] is everything of the client's that
//! goes on: the xAPI version, the concurrency preconditions and the language preference, each
//! valid by its grammar and given at most once. Framing (`Content-Length`,
//! `Transfer-Encoding`) is judged by [`framing`] before anything else, and lrsgate writes its
//! own.

use std::fmt;

/// The xAPI versions lrsgate forwards (Comm §3.3: `1.0` is `1.0.0`; xAPI 2.0 is `2.0.0`).
pub const KNOWN_VERSIONS: [&str; 6] = ["1.0", "1.0.0", "1.0.1", "1.0.2", "1.0.3", "2.0.0"];
/// The longest forwarded header value.
pub const MAX_FORWARDED_VALUE_BYTES: usize = 1024;

/// Why a request's headers are refused (all 400 but `ContentEncoding`, 415).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// `X-Experience-API-Version` is not a version lrsgate knows.
    Version,
    /// A header lrsgate reads or forwards occurs more than once (or differs between the
    /// Alternate Request Syntax form and the request).
    Repeated(&'static str),
    /// A forwarded header's value does not follow its grammar.
    Invalid(&'static str),
    /// `Content-Length` repeated, not digits only, or beside `Transfer-Encoding`.
    ContentLength,
    /// A `Transfer-Encoding` other than `chunked`.
    TransferEncoding,
    /// A `Content-Encoding` other than identity: lrsgate judges the bytes it reads.
    ContentEncoding,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Version => write!(f, "X-Experience-API-Version must be one of {}", KNOWN_VERSIONS.join(", ")),
            HeaderError::Repeated(name) => write!(f, "the {name} header may be given once"),
            HeaderError::Invalid(name) => write!(f, "the {name} header is malformed"),
            HeaderError::ContentLength => {
                f.write_str("Content-Length must be given once, as digits only, and not with Transfer-Encoding")
            }
            HeaderError::TransferEncoding => f.write_str("the only Transfer-Encoding accepted is chunked"),
            HeaderError::ContentEncoding => f.write_str("request bodies must not be content-encoded"),
        }
    }
}

/// How the client frames its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No `Content-Length` and no `Transfer-Encoding`: no body.
    None,
    Length(u64),
    Chunked,
}

impl Framing {
    pub fn has_body(self) -> bool {
        !matches!(self, Framing::None | Framing::Length(0))
    }
}

/// Judge the framing headers of any request: one `Content-Length` of digits only, or one
/// `Transfer-Encoding: chunked`, never both; no content coding.
pub fn framing(headers: &http::HeaderMap) -> Result<Framing, HeaderError> {
    let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => None,
        (Some(v), None) => {
            let v = v.as_bytes();
            if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                return Err(HeaderError::ContentLength);
            }
            // At most 18 digits: fits a u64.
            Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
        }
        (Some(_), Some(_)) => return Err(HeaderError::ContentLength),
    };
    let mut codings = headers.get_all(http::header::TRANSFER_ENCODING).iter();
    let chunked = match (codings.next(), codings.next()) {
        (None, _) => false,
        (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"chunked") => true,
        _ => return Err(HeaderError::TransferEncoding),
    };
    for coding in headers.get_all(http::header::CONTENT_ENCODING) {
        if !coding.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err(HeaderError::ContentEncoding);
        }
    }
    match (length, chunked) {
        (Some(_), true) => Err(HeaderError::ContentLength),
        (Some(n), false) => Ok(Framing::Length(n)),
        (None, true) => Ok(Framing::Chunked),
        (None, false) => Ok(Framing::None),
    }
}

/// The client headers that are forwarded to the LRS, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardHeaders {
    pub version: Option<&'static str>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub accept_language: Option<String>,
}

impl ForwardHeaders {
    /// Read the forwarded headers from `fields` (`name`, `value`; names in any case); every
    /// other field is ignored, so it never reaches the LRS. A forwarded header given twice is
    /// refused, unless both values are equal (the Alternate Request Syntax form and the
    /// request itself may both carry the version).
    pub fn read<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<ForwardHeaders, HeaderError> {
        let mut out = ForwardHeaders::default();
        for (name, value) in fields {
            if name.eq_ignore_ascii_case("x-experience-api-version") {
                let version = KNOWN_VERSIONS.iter().find(|v| v.as_bytes() == value).ok_or(HeaderError::Version)?;
                set_once(&mut out.version, *version, "X-Experience-API-Version")?;
            } else if name.eq_ignore_ascii_case("if-match") {
                set_once(&mut out.if_match, entity_tags(value, "If-Match")?, "If-Match")?;
            } else if name.eq_ignore_ascii_case("if-none-match") {
                set_once(&mut out.if_none_match, entity_tags(value, "If-None-Match")?, "If-None-Match")?;
            } else if name.eq_ignore_ascii_case("accept-language") {
                set_once(&mut out.accept_language, language_ranges(value)?, "Accept-Language")?;
            }
        }
        Ok(out)
    }

    /// `(name, value)` pairs as they are sent to the LRS.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("X-Experience-API-Version", self.version),
            ("If-Match", self.if_match.as_deref()),
            ("If-None-Match", self.if_none_match.as_deref()),
            ("Accept-Language", self.accept_language.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
    }
}

fn set_once<T: PartialEq>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), HeaderError> {
    match slot {
        Some(existing) if *existing != value => Err(HeaderError::Repeated(name)),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// `*` or a comma-separated list of entity-tags (RFC 9110 §8.8.3, §13.1.1).
fn entity_tags(value: &[u8], name: &'static str) -> Result<String, HeaderError> {
    let invalid = HeaderError::Invalid(name);
    if value.len() > MAX_FORWARDED_VALUE_BYTES {
        return Err(invalid);
    }
    let text = std::str::from_utf8(value).map_err(|_| invalid.clone())?;
    if text.trim() == "*" {
        return Ok("*".to_owned());
    }
    let mut tags = Vec::new();
    for tag in text.split(',') {
        let tag = tag.trim_matches([' ', '\t']);
        let opaque = tag.strip_prefix("W/").unwrap_or(tag);
        let quoted = opaque.len() >= 2 && opaque.starts_with('"') && opaque.ends_with('"');
        // etagc: `!` and `#`..`~` (no `"`, no spaces, no controls, no obs-text).
        if !quoted || !opaque[1..opaque.len() - 1].bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b)) {
            return Err(invalid);
        }
        tags.push(tag);
    }
    Ok(tags.join(", "))
}

/// `Accept-Language` (RFC 9110 §12.5.4): language ranges with optional weights; checked by
/// its character set and length, forwarded with white space normalised.
fn language_ranges(value: &[u8]) -> Result<String, HeaderError> {
    let invalid = HeaderError::Invalid("Accept-Language");
    if value.is_empty() || value.len() > 256 {
        return Err(invalid);
    }
    if !value
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'*' | b',' | b';' | b'=' | b'.' | b' ' | b'\t'))
    {
        return Err(invalid);
    }
    // Only ASCII passed the check above.
    let text = String::from_utf8_lossy(value);
    Ok(text
        .split(',')
        .map(|range| range.split(';').map(str::trim).collect::<Vec<_>>().join(";"))
        .collect::<Vec<_>>()
        .join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = Vec<(&'static str, &'static str)>;

    fn map(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (k, v) in pairs {
            m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), http::HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn framing_rules() {
        let table: Vec<(&str, Pairs, Result<Framing, HeaderError>)> = vec![
            ("none", vec![], Ok(Framing::None)),
            ("length", vec![("content-length", "12")], Ok(Framing::Length(12))),
            ("zero_length", vec![("content-length", "0")], Ok(Framing::Length(0))),
            ("chunked", vec![("transfer-encoding", "Chunked")], Ok(Framing::Chunked)),
            (
                "identity_coding",
                vec![("content-length", "1"), ("content-encoding", "identity")],
                Ok(Framing::Length(1)),
            ),
            ("length_twice", vec![("content-length", "5"), ("content-length", "5")], Err(HeaderError::ContentLength)),
            ("length_list", vec![("content-length", "5, 5")], Err(HeaderError::ContentLength)),
            ("length_signed", vec![("content-length", "+5")], Err(HeaderError::ContentLength)),
            ("length_negative", vec![("content-length", "-1")], Err(HeaderError::ContentLength)),
            ("length_hex", vec![("content-length", "0x10")], Err(HeaderError::ContentLength)),
            ("length_empty", vec![("content-length", "")], Err(HeaderError::ContentLength)),
            ("length_huge", vec![("content-length", "99999999999999999999")], Err(HeaderError::ContentLength)),
            (
                "length_and_chunked",
                vec![("content-length", "5"), ("transfer-encoding", "chunked")],
                Err(HeaderError::ContentLength),
            ),
            ("gzip_then_chunked", vec![("transfer-encoding", "gzip, chunked")], Err(HeaderError::TransferEncoding)),
            (
                "chunked_twice",
                vec![("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")],
                Err(HeaderError::TransferEncoding),
            ),
            (
                "content_coded",
                vec![("content-length", "5"), ("content-encoding", "gzip")],
                Err(HeaderError::ContentEncoding),
            ),
        ];
        for (rule, headers, want) in table {
            assert_eq!(framing(&map(&headers)), want, "{rule}");
        }
    }

    fn read(pairs: &[(&str, &str)]) -> Result<ForwardHeaders, HeaderError> {
        ForwardHeaders::read(pairs.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    #[test]
    fn forwarded_header_rules() {
        let ok = read(&[
            ("X-Experience-API-Version", "1.0.3"),
            ("if-match", "\"abc\",  W/\"d\""),
            ("If-None-Match", "*"),
            ("Accept-Language", "en-GB ;q=0.9,fr"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-Original-URL", "/xapi/activities/state"),
            ("X-Forwarded-Host", "other.lrs"),
        ])
        .unwrap();
        assert_eq!(
            ok.pairs().collect::<Vec<_>>(),
            vec![
                ("X-Experience-API-Version", "1.0.3"),
                ("If-Match", "\"abc\", W/\"d\""),
                ("If-None-Match", "*"),
                ("Accept-Language", "en-GB;q=0.9, fr"),
            ],
            "only the allow-list, normalised"
        );
        let table: Vec<(&str, Pairs, HeaderError)> = vec![
            ("unknown_version", vec![("X-Experience-API-Version", "1.1.0")], HeaderError::Version),
            ("version_with_space", vec![("X-Experience-API-Version", "1.0.3 ")], HeaderError::Version),
            (
                "two_versions",
                vec![("X-Experience-API-Version", "1.0.3"), ("x-experience-api-version", "2.0.0")],
                HeaderError::Repeated("X-Experience-API-Version"),
            ),
            ("unquoted_etag", vec![("If-Match", "abc")], HeaderError::Invalid("If-Match")),
            ("etag_with_space", vec![("If-Match", "\"a b\"")], HeaderError::Invalid("If-Match")),
            ("empty_etag_list", vec![("If-None-Match", "")], HeaderError::Invalid("If-None-Match")),
            (
                "two_preconditions",
                vec![("If-Match", "\"a\""), ("If-Match", "\"b\"")],
                HeaderError::Repeated("If-Match"),
            ),
            ("language_injection", vec![("Accept-Language", "en\"x")], HeaderError::Invalid("Accept-Language")),
        ];
        for (rule, pairs, want) in table {
            assert_eq!(read(&pairs), Err(want), "{rule}");
        }
        assert!(read(&[("X-Experience-API-Version", "1.0.3"), ("X-Experience-API-Version", "1.0.3")]).is_ok());
    }
}
