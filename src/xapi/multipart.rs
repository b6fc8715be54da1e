//! `multipart/mixed` statement bodies (xAPI Comm §1.5.2, RFC 2046 §5.1): the first part is the
//! statement JSON, every later part an attachment with `X-Experience-API-Hash` and
//! `Content-Transfer-Encoding: binary`.
//!
//! Parsed so that no other multipart parser can frame the body differently: the boundary may
//! occur only as a delimiter (RFC 2046 forbids it inside a part, and a parser that splits on
//! any occurrence would otherwise see other parts), part headers are strict `name: value`
//! lines without folding or repeats, and the statement part must be UTF-8 JSON in an identity
//! transfer encoding. A preamble and an epilogue are allowed, as RFC 2046 and real LRSs have
//! them. Linear in the body (one `memmem` pass), capped in parts and header size.

use std::fmt;

use memchr::memmem;

use super::media_type::{self, is_tchar};

/// The most parts a body may have (statements + attachments).
pub const MAX_PARTS: usize = 256;
/// The largest header block of one part.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// Why a multipart body is refused (all 400 but a statement part in another charset: 415).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// Not framed as RFC 2046 multipart with that boundary (or the boundary occurs in a part).
    Malformed,
    /// A part's header block is not strict `name: value` lines (folding, a repeated header,
    /// control characters, too large).
    BadPartHeader,
    /// The first part is not `application/json`.
    FirstPartNotJson,
    /// The statement part is declared in a charset other than UTF-8.
    FirstPartCharset,
    /// The statement part has a transfer encoding other than 7bit, 8bit or binary.
    FirstPartEncoding,
    /// Attachment part `index` (1-based, as parts after the statement part) has no hash header.
    MissingHash(usize),
    /// Attachment part `index` is not `Content-Transfer-Encoding: binary`.
    NotBinary(usize),
    /// More than [`MAX_PARTS`] parts.
    TooManyParts,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::Malformed => f.write_str("the multipart body is not well framed with its boundary"),
            MultipartError::BadPartHeader => {
                f.write_str("a part's headers must be single name: value lines, each header at most once")
            }
            MultipartError::FirstPartNotJson => {
                f.write_str("the first part must be the statements as application/json")
            }
            MultipartError::FirstPartCharset => f.write_str("the statements part must be UTF-8"),
            MultipartError::FirstPartEncoding => {
                f.write_str("the statements part's Content-Transfer-Encoding must be 7bit, 8bit or binary")
            }
            MultipartError::MissingHash(i) => {
                write!(f, "attachment part {i} has no valid X-Experience-API-Hash header")
            }
            MultipartError::NotBinary(i) => write!(f, "attachment part {i} must use Content-Transfer-Encoding: binary"),
            MultipartError::TooManyParts => write!(f, "a multipart body has at most {MAX_PARTS} parts"),
        }
    }
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The header block as sent (lines separated by CRLF, without the blank line).
    pub headers: &'a str,
    /// `X-Experience-API-Hash` of an attachment part.
    pub hash: Option<&'a str>,
    pub content: &'a [u8],
}

/// Check the framing and the part headers; return the first part's body (the statements).
pub fn statement_part<'a>(body: &'a [u8], boundary: &str) -> Result<&'a [u8], MultipartError> {
    Ok(parts(body, boundary)?[0].content)
}

/// Split a statement multipart body into its parts: the statements first, then attachments.
pub fn parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    let sections = sections(body, boundary)?;
    let mut parts = Vec::with_capacity(sections.len());
    for (index, section) in sections.into_iter().enumerate() {
        parts.push(part(section, index)?);
    }
    Ok(parts)
}

/// The byte ranges between delimiters (each still with its header block), after checking
/// that every occurrence of `--boundary` in the body is a delimiter: at the very start or
/// right after CRLF, followed by CRLF (another part) or `--` (the end, then nothing or CRLF
/// and an epilogue).
fn sections<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, MultipartError> {
    if !media_type::is_valid_boundary(boundary) {
        return Err(MultipartError::Malformed);
    }
    let dash_boundary = format!("--{boundary}");
    let finder = memmem::Finder::new(dash_boundary.as_bytes());
    let mut sections = Vec::new();
    // Where the current part's bytes began (after its delimiter line).
    let mut open: Option<usize> = None;
    for at in finder.find_iter(body) {
        let is_delimiter = at == 0 || body[..at].ends_with(b"\r\n");
        if !is_delimiter {
            return Err(MultipartError::Malformed);
        }
        if let Some(start) = open {
            // The CRLF before the delimiter belongs to the delimiter, not the part.
            let end = at.checked_sub(2).filter(|end| *end >= start).ok_or(MultipartError::Malformed)?;
            if sections.len() == MAX_PARTS {
                return Err(MultipartError::TooManyParts);
            }
            sections.push(&body[start..end]);
        }
        let after = &body[at + dash_boundary.len()..];
        if let Some(epilogue) = after.strip_prefix(b"--") {
            if open.is_none() || !(epilogue.is_empty() || epilogue.starts_with(b"\r\n")) {
                return Err(MultipartError::Malformed);
            }
            // Nor in the epilogue: a parser that ignores the close delimiter would frame it.
            if finder.find(epilogue).is_some() {
                return Err(MultipartError::Malformed);
            }
            return Ok(sections);
        }
        if !after.starts_with(b"\r\n") {
            return Err(MultipartError::Malformed);
        }
        open = Some(at + dash_boundary.len() + 2);
    }
    // No close delimiter.
    Err(MultipartError::Malformed)
}

/// One section: its header block, checked, and its content.
fn part(section: &[u8], index: usize) -> Result<Part<'_>, MultipartError> {
    // A part with no headers starts with the blank line at once.
    let (head, content) = if let Some(content) = section.strip_prefix(b"\r\n") {
        (&section[..0], content)
    } else {
        let end = memmem::find(section, b"\r\n\r\n").ok_or(MultipartError::Malformed)?;
        (&section[..end], &section[end + 4..])
    };
    if head.len() > MAX_PART_HEADER_BYTES {
        return Err(MultipartError::BadPartHeader);
    }
    let headers = std::str::from_utf8(head).map_err(|_| MultipartError::BadPartHeader)?;
    let fields = header_fields(headers)?;
    let field = |name: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
    let hash = if index == 0 {
        let content_type = field("Content-Type").ok_or(MultipartError::FirstPartNotJson)?;
        match media_type::statement_body(content_type.as_bytes()) {
            Ok(media_type::StatementBody::Json) => {}
            Err(media_type::ContentTypeError::Charset) => return Err(MultipartError::FirstPartCharset),
            _ => return Err(MultipartError::FirstPartNotJson),
        }
        let identity = ["7bit", "8bit", "binary"];
        if field("Content-Transfer-Encoding").is_some_and(|e| !identity.iter().any(|i| e.eq_ignore_ascii_case(i))) {
            return Err(MultipartError::FirstPartEncoding);
        }
        None
    } else {
        // A SHA-2 digest in hex (Data §2.4.11: `sha2`).
        let hash = field("X-Experience-API-Hash")
            .filter(|h| (1..=128).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if hash.is_none() {
            return Err(MultipartError::MissingHash(index));
        }
        if !field("Content-Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("binary")) {
            return Err(MultipartError::NotBinary(index));
        }
        hash
    };
    Ok(Part { headers, hash, content })
}

/// `name: value` lines: a token name, no folding (a line starting with white space), no
/// control characters but tab, no header twice.
fn header_fields(headers: &str) -> Result<Vec<(&str, &str)>, MultipartError> {
    let mut fields: Vec<(&str, &str)> = Vec::new();
    if headers.is_empty() {
        return Ok(fields);
    }
    for line in headers.split("\r\n") {
        let (name, value) = line.split_once(':').ok_or(MultipartError::BadPartHeader)?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(MultipartError::BadPartHeader);
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(MultipartError::BadPartHeader);
        }
        // Bounded by MAX_PART_HEADER_BYTES, so this stays linear in the body.
        if fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(MultipartError::BadPartHeader);
        }
        fields.push((name, value.trim_matches([' ', '\t'])));
    }
    Ok(fields)
}

/// Build a multipart body from parts (the inverse of [`parts`], byte for byte for what it
/// keeps: preamble and epilogue are not kept).
pub fn assemble(boundary: &str, parts: &[Part<'_>]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(parts.iter().map(|p| p.headers.len() + p.content.len() + boundary.len() + 10).sum());
    for part in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part.headers.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(part.content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATEMENT: &str = r#"{"actor":{"mbox":"mailto:a@x"}}"#;
    const ATTACHMENT_HEADERS: &str =
        "Content-Type: text/plain\r\nX-Experience-API-Hash: abc123\r\nContent-Transfer-Encoding: binary";

    fn body(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (headers, content) in parts {
            b.extend_from_slice(format!("--xyz\r\n{headers}\r\n\r\n{content}\r\n").as_bytes());
        }
        b.extend_from_slice(b"--xyz--\r\n");
        b
    }

    #[test]
    fn statement_with_attachment() {
        let b = body(&[("Content-Type: application/json", STATEMENT), (ATTACHMENT_HEADERS, "hello\r\n-- not it")]);
        assert_eq!(statement_part(&b, "xyz"), Ok(STATEMENT.as_bytes()));
        let parts = parts(&b, "xyz").unwrap();
        assert_eq!(parts[1].hash, Some("abc123"));
        assert_eq!(parts[1].content, b"hello\r\n-- not it");
        assert_eq!(assemble("xyz", &parts), b, "reassembled byte for byte");
    }

    #[test]
    fn accepted_framings() {
        let json = ("Content-Type: application/json", STATEMENT);
        let table: Vec<(&str, Vec<u8>)> = vec![
            ("crlf_preamble_as_adl_lrs_sends", [b"\r\n".as_slice(), &body(&[json])].concat()),
            ("text_preamble", [b"This is a preamble\r\n".as_slice(), &body(&[json])].concat()),
            ("epilogue", [body(&[json]).as_slice(), b"an epilogue"].concat()),
            ("no_crlf_after_close", body(&[json]).strip_suffix(b"\r\n").unwrap().to_vec()),
            ("statement_part_utf8", body(&[("Content-Type: application/json; charset=utf-8", STATEMENT)])),
            (
                "statement_part_binary",
                body(&[("Content-Type: application/json\r\nContent-Transfer-Encoding: 8bit", STATEMENT)]),
            ),
        ];
        for (rule, b) in table {
            assert_eq!(statement_part(&b, "xyz"), Ok(STATEMENT.as_bytes()), "{rule}");
        }
    }

    #[test]
    fn refusal_rules() {
        let json = ("Content-Type: application/json", STATEMENT);
        let many: Vec<(&str, &str)> =
            std::iter::once(json).chain(std::iter::repeat_n((ATTACHMENT_HEADERS, "x"), MAX_PARTS)).collect();
        let table: Vec<(&str, Vec<u8>, MultipartError)> = vec![
            (
                "attachment_without_hash",
                body(&[json, ("Content-Type: text/plain\r\nContent-Transfer-Encoding: binary", "x")]),
                MultipartError::MissingHash(1),
            ),
            (
                "attachment_hash_not_hex",
                body(&[json, ("X-Experience-API-Hash: zz\r\nContent-Transfer-Encoding: binary", "x")]),
                MultipartError::MissingHash(1),
            ),
            (
                "attachment_not_binary",
                body(&[json, ("X-Experience-API-Hash: abc\r\nContent-Transfer-Encoding: base64", "eA==")]),
                MultipartError::NotBinary(1),
            ),
            ("first_part_not_json", body(&[("Content-Type: text/plain", STATEMENT)]), MultipartError::FirstPartNotJson),
            ("first_part_without_type", body(&[("X-Other: 1", STATEMENT)]), MultipartError::FirstPartNotJson),
            (
                "first_part_latin1",
                body(&[("Content-Type: application/json; charset=iso-8859-1", STATEMENT)]),
                MultipartError::FirstPartCharset,
            ),
            (
                "first_part_base64",
                body(&[("Content-Type: application/json\r\nContent-Transfer-Encoding: base64", "e30=")]),
                MultipartError::FirstPartEncoding,
            ),
            (
                "first_part_quoted_printable",
                body(&[("Content-Type: application/json\r\nContent-Transfer-Encoding: quoted-printable", "{}")]),
                MultipartError::FirstPartEncoding,
            ),
            (
                "first_part_two_content_types",
                body(&[("Content-Type: application/json\r\nContent-Type: text/plain", STATEMENT)]),
                MultipartError::BadPartHeader,
            ),
            (
                "folded_header",
                body(&[("Content-Type:\r\n application/json", STATEMENT)]),
                MultipartError::BadPartHeader,
            ),
            (
                "header_line_without_colon",
                body(&[("Content-Type application/json", STATEMENT)]),
                MultipartError::BadPartHeader,
            ),
            (
                "header_name_with_space",
                body(&[("Content Type: application/json", STATEMENT)]),
                MultipartError::BadPartHeader,
            ),
            (
                "boundary_inside_statement_part",
                body(&[("Content-Type: application/json", r#"{"a":"--xyz"}"#)]),
                MultipartError::Malformed,
            ),
            (
                "boundary_inside_preamble",
                [b"x--xyz\r\n".as_slice(), &body(&[json])].concat(),
                MultipartError::Malformed,
            ),
            (
                "boundary_in_epilogue",
                [body(&[json]).as_slice(), b"--xyz\r\nContent-Type: application/json\r\n\r\n{}"].concat(),
                MultipartError::Malformed,
            ),
            (
                "transport_padding_after_delimiter",
                body(&[json])
                    .iter()
                    .copied()
                    .enumerate()
                    .flat_map(|(i, b)| if i == 5 { vec![b' ', b] } else { vec![b] })
                    .collect(),
                MultipartError::Malformed,
            ),
            (
                "no_close_delimiter",
                b"--xyz\r\nContent-Type: application/json\r\n\r\n{}".to_vec(),
                MultipartError::Malformed,
            ),
            ("close_without_parts", b"--xyz--\r\n".to_vec(), MultipartError::Malformed),
            (
                "other_boundary",
                body(&[json]).iter().map(|b| if *b == b'x' { b'q' } else { *b }).collect(),
                MultipartError::Malformed,
            ),
            (
                "garbage_after_close",
                [body(&[json]).strip_suffix(b"\r\n").unwrap(), b"junk"].concat(),
                MultipartError::Malformed,
            ),
            ("too_many_parts", body(&many), MultipartError::TooManyParts),
        ];
        for (rule, b, want) in table {
            assert_eq!(statement_part(&b, "xyz"), Err(want), "{rule}");
        }
    }
}
