//! Content-Type values, parsed per RFC 9110 §8.3.1 (tokens, quoted strings with escapes), and
//! written again by lrsgate: the LRS never receives the client's own Content-Type text.
//!
//! A naive `split(';')` reads `multipart/mixed; boundary="a;b"` or a repeated `boundary`
//! differently from the LRS's parser, and then the LRS frames other parts than the ones lrsgate
//! judged. Here a parameter given twice is an error, and what goes upstream is rendered from
//! the parsed value. Linear in its input, capped in length and parameter count.

use std::fmt;

/// The longest Content-Type value read.
pub const MAX_CONTENT_TYPE_BYTES: usize = 1024;
/// The most parameters a Content-Type may have.
pub const MAX_PARAMETERS: usize = 8;

/// A parsed media type: `type/subtype` and parameters, names lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lower-cased.
    pub essence: String,
    /// `(name, value)` with the name lower-cased and the value unquoted, in the order given.
    pub params: Vec<(String, String)>,
}

/// Why a Content-Type is not one lrsgate can read in exactly one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaTypeError {
    /// Not `type/subtype *(; name=value)` with tokens and quoted strings.
    Syntax,
    /// A parameter given twice (in any letter case).
    DuplicateParameter(String),
    /// Longer than [`MAX_CONTENT_TYPE_BYTES`] or more than [`MAX_PARAMETERS`] parameters.
    TooLong,
}

impl fmt::Display for MediaTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaTypeError::Syntax => f.write_str("the Content-Type is not a valid media type (RFC 9110 8.3.1)"),
            MediaTypeError::DuplicateParameter(name) => {
                write!(f, "the Content-Type parameter \"{name}\" is given more than once")
            }
            MediaTypeError::TooLong => write!(
                f,
                "the Content-Type is longer than {MAX_CONTENT_TYPE_BYTES} bytes or has more than {MAX_PARAMETERS} parameters"
            ),
        }
    }
}

impl MediaType {
    /// The value of parameter `name` (lower-case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The Content-Type lrsgate writes for this media type: lower-case names, each value as a
    /// token where it is one, otherwise as a quoted string.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.essence.len() + 16 * self.params.len());
        out.push_str(&self.essence);
        for (name, value) in &self.params {
            out.push_str("; ");
            out.push_str(name);
            out.push('=');
            push_value(&mut out, value);
        }
        out
    }
}

fn push_value(out: &mut String, value: &str) {
    if !value.is_empty() && value.bytes().all(is_tchar) {
        out.push_str(value);
        return;
    }
    // Parsed values hold neither `"` nor `\`, so quoting needs no escapes.
    out.push('"');
    out.push_str(value);
    out.push('"');
}

/// RFC 9110 §5.6.2 `tchar`.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parse a Content-Type value. Only visible ASCII, space and tab are accepted (no obs-text).
pub fn parse(value: &[u8]) -> Result<MediaType, MediaTypeError> {
    if value.len() > MAX_CONTENT_TYPE_BYTES {
        return Err(MediaTypeError::TooLong);
    }
    let mut i = 0;
    let skip_ows = |i: &mut usize| {
        while *i < value.len() && is_ows(value[*i]) {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> Result<String, MediaTypeError> {
        let start = *i;
        while *i < value.len() && is_tchar(value[*i]) {
            *i += 1;
        }
        if *i == start {
            return Err(MediaTypeError::Syntax);
        }
        // Tokens are ASCII, so this is valid UTF-8.
        Ok(String::from_utf8_lossy(&value[start..*i]).to_ascii_lowercase())
    };
    skip_ows(&mut i);
    let kind = token(&mut i)?;
    if value.get(i) != Some(&b'/') {
        return Err(MediaTypeError::Syntax);
    }
    i += 1;
    let subtype = token(&mut i)?;
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        skip_ows(&mut i);
        match value.get(i) {
            None => break,
            Some(b';') => i += 1,
            Some(_) => return Err(MediaTypeError::Syntax),
        }
        skip_ows(&mut i);
        // `;` with nothing after it (or before the next `;`) is allowed by the grammar.
        if i == value.len() || value[i] == b';' {
            continue;
        }
        let name = token(&mut i)?;
        if value.get(i) != Some(&b'=') {
            return Err(MediaTypeError::Syntax);
        }
        i += 1;
        let param_value = if value.get(i) == Some(&b'"') {
            // An empty quoted value is valid RFC 9110 but read differently by some parsers
            // (the `mime` crate refuses it); no Content-Type lrsgate reads needs one.
            let quoted = quoted_string(value, &mut i)?;
            if quoted.is_empty() {
                return Err(MediaTypeError::Syntax);
            }
            quoted
        } else {
            let start = i;
            while i < value.len() && is_tchar(value[i]) {
                i += 1;
            }
            if i == start {
                return Err(MediaTypeError::Syntax);
            }
            String::from_utf8_lossy(&value[start..i]).into_owned()
        };
        if params.iter().any(|(n, _)| *n == name) {
            return Err(MediaTypeError::DuplicateParameter(name));
        }
        if params.len() == MAX_PARAMETERS {
            return Err(MediaTypeError::TooLong);
        }
        params.push((name, param_value));
    }
    Ok(MediaType { essence: format!("{kind}/{subtype}"), params })
}

/// A quoted string at `value[*i]` (the opening quote), unescaped.
fn quoted_string(value: &[u8], i: &mut usize) -> Result<String, MediaTypeError> {
    *i += 1;
    let mut out = String::new();
    loop {
        let Some(&b) = value.get(*i) else { return Err(MediaTypeError::Syntax) };
        *i += 1;
        match b {
            b'"' => return Ok(out),
            // RFC 9110 also allows HTAB and quoted-pairs (`\x`) here; other parsers do not
            // unescape them the same way (the `mime` crate keeps the backslash), and no value
            // lrsgate reads needs either, so both are refused.
            b'\\' => return Err(MediaTypeError::Syntax),
            0x20..=0x7e => out.push(b as char),
            _ => return Err(MediaTypeError::Syntax),
        }
    }
}

/// How a statement write's body is framed, from its Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementBody {
    Json,
    /// `multipart/mixed` with this boundary (the statements are the first part).
    Multipart {
        boundary: String,
    },
}

/// Why a Content-Type is refused for a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentTypeError {
    Invalid(MediaTypeError),
    /// Not a media type this body may have (statements: JSON or multipart/mixed).
    Unsupported,
    /// JSON declared in a charset other than UTF-8 (RFC 8259 §8.1: JSON is UTF-8).
    Charset,
    /// A parameter lrsgate does not know for this media type.
    UnknownParameter(String),
    /// multipart/mixed without a valid `boundary` (RFC 2046 §5.1.1: 1 to 70 characters).
    Boundary,
}

impl fmt::Display for ContentTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentTypeError::Invalid(e) => e.fmt(f),
            ContentTypeError::Unsupported => {
                f.write_str("the body must be application/json (statement writes: or multipart/mixed)")
            }
            ContentTypeError::Charset => f.write_str("JSON bodies must be UTF-8 (charset=utf-8 or none)"),
            ContentTypeError::UnknownParameter(name) => {
                write!(f, "the Content-Type parameter \"{name}\" is not accepted")
            }
            ContentTypeError::Boundary => {
                f.write_str("multipart/mixed needs one boundary of 1 to 70 characters (RFC 2046 5.1.1)")
            }
        }
    }
}

/// The framing of a statement write: `application/json` (no parameter but `charset=utf-8`) or
/// `multipart/mixed` with exactly one valid `boundary` and nothing else.
pub fn statement_body(content_type: &[u8]) -> Result<StatementBody, ContentTypeError> {
    if content_type.trim_ascii().is_empty() {
        return Err(ContentTypeError::Unsupported);
    }
    let media = parse(content_type).map_err(ContentTypeError::Invalid)?;
    match media.essence.as_str() {
        "application/json" => {
            check_json_params(&media)?;
            Ok(StatementBody::Json)
        }
        "multipart/mixed" => {
            for (name, _) in &media.params {
                if name != "boundary" {
                    return Err(ContentTypeError::UnknownParameter(name.clone()));
                }
            }
            let boundary = media.param("boundary").ok_or(ContentTypeError::Boundary)?;
            if !is_valid_boundary(boundary) {
                return Err(ContentTypeError::Boundary);
            }
            Ok(StatementBody::Multipart { boundary: boundary.to_owned() })
        }
        _ => Err(ContentTypeError::Unsupported),
    }
}

impl StatementBody {
    /// The Content-Type lrsgate sends the LRS for this body.
    pub fn content_type(&self) -> String {
        match self {
            StatementBody::Json => "application/json".to_owned(),
            StatementBody::Multipart { boundary } => {
                MediaType { essence: "multipart/mixed".into(), params: vec![("boundary".into(), boundary.clone())] }
                    .render()
            }
        }
    }
}

/// A JSON-only body (the token service's requests): `application/json`, UTF-8.
pub fn json_body(content_type: &[u8]) -> Result<(), ContentTypeError> {
    if content_type.trim_ascii().is_empty() {
        return Err(ContentTypeError::Unsupported);
    }
    let media = parse(content_type).map_err(ContentTypeError::Invalid)?;
    if media.essence != "application/json" {
        return Err(ContentTypeError::Unsupported);
    }
    check_json_params(&media)
}

/// `application/json` may carry `charset`, and only UTF-8's.
fn check_json_params(media: &MediaType) -> Result<(), ContentTypeError> {
    for (name, value) in &media.params {
        if name != "charset" {
            return Err(ContentTypeError::UnknownParameter(name.clone()));
        }
        if !value.eq_ignore_ascii_case("utf-8") {
            return Err(ContentTypeError::Charset);
        }
    }
    Ok(())
}

/// The Content-Type a document write is forwarded with: the client's, parsed and written again
/// (documents may be of any type, Comm §2.2); JSON only in UTF-8. `None` when there was none.
pub fn document_content_type(content_type: Option<&[u8]>) -> Result<Option<String>, ContentTypeError> {
    let Some(raw) = content_type.filter(|raw| !raw.trim_ascii().is_empty()) else { return Ok(None) };
    let media = parse(raw).map_err(ContentTypeError::Invalid)?;
    if media.essence == "application/json" {
        check_json_params(&media)?;
        return Ok(Some("application/json".to_owned()));
    }
    Ok(Some(media.render()))
}

/// RFC 2046 §5.1.1: 1 to 70 `bchars`, the last not a space.
pub fn is_valid_boundary(boundary: &str) -> bool {
    let b = boundary.as_bytes();
    !b.is_empty()
        && b.len() <= 70
        && b[b.len() - 1] != b' '
        && b.iter().all(|&c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'\'' | b'(' | b')' | b'+' | b'_' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?' | b' '
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_and_quoted_strings() {
        let m = parse(br#"Multipart/Mixed ; Boundary="a;b c" ;charset=x"#).unwrap();
        assert_eq!(m.essence, "multipart/mixed");
        assert_eq!(m.params, vec![("boundary".into(), "a;b c".into()), ("charset".into(), "x".into())]);
        assert_eq!(m.render(), r#"multipart/mixed; boundary="a;b c"; charset=x"#);
        assert_eq!(parse(b"text/plain;").unwrap().params, vec![]);
        assert_eq!(parse(b"application/json").unwrap().render(), "application/json");
    }

    #[test]
    fn syntax_refusals() {
        let long = format!("text/plain; x=\"{}\"", "a".repeat(MAX_CONTENT_TYPE_BYTES));
        let many = format!("text/plain{}", (0..=MAX_PARAMETERS).map(|i| format!("; p{i}=1")).collect::<String>());
        let table: Vec<(&str, Vec<u8>, MediaTypeError)> = vec![
            ("no_subtype", b"application".to_vec(), MediaTypeError::Syntax),
            ("empty", b"".to_vec(), MediaTypeError::Syntax),
            ("space_in_essence", b"application/ json".to_vec(), MediaTypeError::Syntax),
            ("parameter_without_value", b"text/plain; charset".to_vec(), MediaTypeError::Syntax),
            ("space_around_equals", b"text/plain; charset = utf-8".to_vec(), MediaTypeError::Syntax),
            ("unterminated_quote", br#"multipart/mixed; boundary="abc"#.to_vec(), MediaTypeError::Syntax),
            ("junk_after_quoted", br#"multipart/mixed; boundary="a"b"#.to_vec(), MediaTypeError::Syntax),
            ("comma_list", b"application/json, text/plain".to_vec(), MediaTypeError::Syntax),
            ("non_ascii", "text/plain; x=\u{e9}".as_bytes().to_vec(), MediaTypeError::Syntax),
            ("control_in_quoted", b"text/plain; x=\"a\x01\"".to_vec(), MediaTypeError::Syntax),
            ("empty_quoted_value", b"text/plain; x=\"\"".to_vec(), MediaTypeError::Syntax),
            ("tab_in_quoted_value", b"text/plain; x=\"a\tb\"".to_vec(), MediaTypeError::Syntax),
            ("quoted_pair", br#"text/plain; x="a\"b""#.to_vec(), MediaTypeError::Syntax),
            ("escaped_letter", br#"text/plain; x="a\db""#.to_vec(), MediaTypeError::Syntax),
            (
                "repeated_boundary",
                b"multipart/mixed; boundary=a; boundary=b".to_vec(),
                MediaTypeError::DuplicateParameter("boundary".into()),
            ),
            (
                "repeated_in_other_case",
                b"multipart/mixed; boundary=a; BOUNDARY=a".to_vec(),
                MediaTypeError::DuplicateParameter("boundary".into()),
            ),
            ("too_long", long.into_bytes(), MediaTypeError::TooLong),
            ("too_many_parameters", many.into_bytes(), MediaTypeError::TooLong),
        ];
        for (rule, value, want) in table {
            assert_eq!(parse(&value), Err(want), "{rule}");
        }
    }

    #[test]
    fn statement_body_rules() {
        let table: Vec<(&str, &[u8], Result<StatementBody, ContentTypeError>)> = vec![
            ("json", b"application/json", Ok(StatementBody::Json)),
            ("json_utf8", b"application/json; charset=UTF-8", Ok(StatementBody::Json)),
            ("json_quoted_utf8", b"application/json; charset=\"utf-8\"", Ok(StatementBody::Json)),
            ("json_latin1", b"application/json; charset=iso-8859-1", Err(ContentTypeError::Charset)),
            ("json_utf16", b"application/json; charset=utf-16", Err(ContentTypeError::Charset)),
            (
                "json_unknown_parameter",
                b"application/json; boundary=x",
                Err(ContentTypeError::UnknownParameter("boundary".into())),
            ),
            ("multipart", b"multipart/mixed; boundary=abc", Ok(StatementBody::Multipart { boundary: "abc".into() })),
            (
                "multipart_quoted_with_bchars_that_are_not_tokens",
                br#"multipart/mixed; boundary="a=b:c?""#,
                Ok(StatementBody::Multipart { boundary: "a=b:c?".into() }),
            ),
            // `;` is no bchar (RFC 2046 5.1.1); a naive split would read the boundary as `"a`.
            ("multipart_quoted_with_semicolon", br#"multipart/mixed; boundary="a;b""#, Err(ContentTypeError::Boundary)),
            ("multipart_without_boundary", b"multipart/mixed", Err(ContentTypeError::Boundary)),
            (
                "multipart_empty_boundary",
                br#"multipart/mixed; boundary="""#,
                Err(ContentTypeError::Invalid(MediaTypeError::Syntax)),
            ),
            (
                "multipart_boundary_with_quote",
                br#"multipart/mixed; boundary="a\"b""#,
                Err(ContentTypeError::Invalid(MediaTypeError::Syntax)),
            ),
            (
                "multipart_boundary_ends_in_space",
                br#"multipart/mixed; boundary="ab ""#,
                Err(ContentTypeError::Boundary),
            ),
            (
                "multipart_repeated_boundary",
                b"multipart/mixed; boundary=a; boundary=b",
                Err(ContentTypeError::Invalid(MediaTypeError::DuplicateParameter("boundary".into()))),
            ),
            (
                "multipart_charset",
                b"multipart/mixed; boundary=a; charset=utf-8",
                Err(ContentTypeError::UnknownParameter("charset".into())),
            ),
            ("form", b"application/x-www-form-urlencoded", Err(ContentTypeError::Unsupported)),
            ("text", b"text/plain", Err(ContentTypeError::Unsupported)),
            ("none", b"", Err(ContentTypeError::Unsupported)),
        ];
        for (rule, value, want) in table {
            assert_eq!(statement_body(value), want, "{rule}");
        }
        let b = StatementBody::Multipart { boundary: "a=b c".into() };
        assert_eq!(b.content_type(), r#"multipart/mixed; boundary="a=b c""#);
        assert_eq!(StatementBody::Multipart { boundary: "abc".into() }.content_type(), "multipart/mixed; boundary=abc");
    }

    #[test]
    fn document_content_types_are_rewritten() {
        assert_eq!(document_content_type(None), Ok(None));
        assert_eq!(
            document_content_type(Some(b"Application/JSON; charset=utf-8")),
            Ok(Some("application/json".into()))
        );
        assert_eq!(document_content_type(Some(b"application/json; charset=latin1")), Err(ContentTypeError::Charset));
        assert_eq!(
            document_content_type(Some(b"text/plain;Charset=\"us-ascii\"")),
            Ok(Some("text/plain; charset=us-ascii".into()))
        );
        assert!(document_content_type(Some(b"text/plain; a=1; A=2")).is_err());
    }
}
