//! `multipart/mixed` statement requests (xAPI Comm §1.5.2, RFC 2046): the first part is the
//! statement JSON, every later part an attachment with `X-Experience-API-Hash` and
//! `Content-Transfer-Encoding: binary`. Parsed strictly so the proxy and the LRS cannot see
//! different first parts; the body itself is forwarded untouched.

use std::fmt;

/// Why a multipart body is refused (all 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// No usable `boundary` parameter in the Content-Type.
    NoBoundary,
    /// Not framed as RFC 2046 multipart with that boundary.
    Malformed,
    /// The first part is not `application/json`.
    FirstPartNotJson,
    /// Attachment part `index` (1-based, as parts after the statement part) has no hash header.
    MissingHash(usize),
    /// Attachment part `index` is not `Content-Transfer-Encoding: binary`.
    NotBinary(usize),
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::NoBoundary => f.write_str("multipart/mixed needs a boundary parameter"),
            MultipartError::Malformed => f.write_str("the multipart body is not well framed"),
            MultipartError::FirstPartNotJson => {
                f.write_str("the first part must be the statements as application/json")
            }
            MultipartError::MissingHash(i) => write!(f, "attachment part {i} has no X-Experience-API-Hash header"),
            MultipartError::NotBinary(i) => write!(f, "attachment part {i} must use Content-Transfer-Encoding: binary"),
        }
    }
}

/// The boundary from a `multipart/mixed; boundary=…` Content-Type (quoted or not).
pub fn boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        // RFC 2046: 1 to 70 characters.
        (!value.is_empty() && value.len() <= 70).then_some(value)
    })
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

/// Check the framing and the attachment headers; return the first part's body (the statements).
pub fn statement_part<'a>(body: &'a [u8], boundary: &str) -> Result<&'a [u8], MultipartError> {
    Ok(parts(body, boundary)?[0].content)
}

/// Split a statement multipart body into its parts: the statements (`application/json`) first,
/// then attachments, each with a hash and binary transfer encoding. Strict framing: no preamble,
/// a close delimiter, nothing but an epilogue after it.
pub fn parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    let delimiter = format!("--{boundary}");
    let mut rest = body.strip_prefix(delimiter.as_bytes()).ok_or(MultipartError::Malformed)?;
    let next_delimiter = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    loop {
        rest = rest.strip_prefix(b"\r\n").ok_or(MultipartError::Malformed)?;
        let head_end = find(rest, b"\r\n\r\n").ok_or(MultipartError::Malformed)?;
        let headers = std::str::from_utf8(&rest[..head_end]).map_err(|_| MultipartError::Malformed)?;
        let content = &rest[head_end + 4..];
        let end = find(content, next_delimiter.as_bytes()).ok_or(MultipartError::Malformed)?;
        let part = &content[..end];
        let header = |name: &str| {
            headers.split("\r\n").find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        };
        if headers.split("\r\n").any(|line| !line.contains(':')) {
            return Err(MultipartError::Malformed);
        }
        let index = parts.len();
        let hash = if index == 0 {
            let media = header("Content-Type").unwrap_or("").split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("application/json") {
                return Err(MultipartError::FirstPartNotJson);
            }
            None
        } else {
            let hash = header("X-Experience-API-Hash").filter(|h| !h.is_empty());
            if hash.is_none() {
                return Err(MultipartError::MissingHash(index));
            }
            if !header("Content-Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("binary")) {
                return Err(MultipartError::NotBinary(index));
            }
            hash
        };
        parts.push(Part { headers, hash, content: part });
        rest = &content[end + next_delimiter.len()..];
        if let Some(after) = rest.strip_prefix(b"--") {
            // Only white space or an epilogue after CRLF may follow the close delimiter.
            if !(after.is_empty() || after.starts_with(b"\r\n")) {
                return Err(MultipartError::Malformed);
            }
            return Ok(parts);
        }
    }
}

/// Build a multipart body from parts (the inverse of [`parts`], byte for byte for what it keeps).
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

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATEMENT: &str = r#"{"actor":{"mbox":"mailto:a@x"}}"#;

    fn body(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (headers, content) in parts {
            b.extend_from_slice(format!("--xyz\r\n{headers}\r\n\r\n{content}\r\n").as_bytes());
        }
        b.extend_from_slice(b"--xyz--\r\n");
        b
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary("multipart/mixed; boundary=xyz"), Some("xyz"));
        assert_eq!(boundary("multipart/mixed; charset=x; Boundary=\"a b\""), Some("a b"));
        assert_eq!(boundary("multipart/mixed"), None);
        assert_eq!(boundary("multipart/mixed; boundary="), None);
        assert_eq!(boundary(&format!("multipart/mixed; boundary={}", "x".repeat(71))), None);
    }

    #[test]
    fn statement_with_attachment() {
        let b = body(&[
            ("Content-Type: application/json", STATEMENT),
            (
                "Content-Type: text/plain\r\nX-Experience-API-Hash: abc\r\nContent-Transfer-Encoding: binary",
                "hello\r\n--not-the-boundary",
            ),
        ]);
        assert_eq!(statement_part(&b, "xyz"), Ok(STATEMENT.as_bytes()));
        let parts = parts(&b, "xyz").unwrap();
        assert_eq!(parts[1].hash, Some("abc"));
        assert_eq!(parts[1].content, b"hello\r\n--not-the-boundary");
        assert_eq!(assemble("xyz", &parts), b, "reassembled byte for byte");
    }

    #[test]
    fn refusal_rules() {
        let json = ("Content-Type: application/json", STATEMENT);
        let table: Vec<(&str, Vec<u8>, MultipartError)> = vec![
            (
                "attachment_without_hash",
                body(&[json, ("Content-Type: text/plain\r\nContent-Transfer-Encoding: binary", "x")]),
                MultipartError::MissingHash(1),
            ),
            (
                "attachment_not_binary",
                body(&[json, ("X-Experience-API-Hash: abc\r\nContent-Transfer-Encoding: base64", "eA==")]),
                MultipartError::NotBinary(1),
            ),
            ("first_part_not_json", body(&[("Content-Type: text/plain", STATEMENT)]), MultipartError::FirstPartNotJson),
            ("preamble", [b"preamble\r\n".as_slice(), &body(&[json])].concat(), MultipartError::Malformed),
            (
                "no_close_delimiter",
                b"--xyz\r\nContent-Type: application/json\r\n\r\n{}".to_vec(),
                MultipartError::Malformed,
            ),
            (
                "header_line_without_colon",
                body(&[("Content-Type application/json", STATEMENT)]),
                MultipartError::Malformed,
            ),
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
        ];
        for (rule, b, want) in table {
            assert_eq!(statement_part(&b, "xyz"), Err(want), "{rule}");
        }
    }
}
