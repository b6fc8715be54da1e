//! The Alternate Request Syntax (xAPI 1.0.3 Comm §1.3): `POST ?method=<M>` with an
//! `application/x-www-form-urlencoded` body whose fields carry the headers, the parameters and
//! the `content` of the real request. Decoded here so the edge judges and forwards the normal
//! form: forwarding the form raw would let a request's real method, query and body bypass
//! every check made on the outer POST.

use std::fmt;

/// Form fields that are headers of the real request (Comm §1.3), matched case-insensitively.
pub const HEADER_FIELDS: [&str; 6] =
    ["Authorization", "X-Experience-API-Version", "Content-Type", "Content-Length", "If-Match", "If-None-Match"];

/// The real method of an alternate-syntax request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlternateMethod {
    Get,
    Put,
    Post,
    Delete,
}

impl AlternateMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AlternateMethod::Get => "GET",
            AlternateMethod::Put => "PUT",
            AlternateMethod::Post => "POST",
            AlternateMethod::Delete => "DELETE",
        }
    }
}

/// A decoded alternate-syntax request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternateRequest {
    pub method: AlternateMethod,
    /// Header fields, with their canonical names from [`HEADER_FIELDS`].
    pub headers: Vec<(&'static str, String)>,
    /// The remaining fields as a query string, re-encoded.
    pub query: String,
    /// The `content` field: the real request body (empty when absent).
    pub content: Vec<u8>,
}

impl AlternateRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The most form fields a request may have: six header fields, the longest resource's
/// parameters (14, `GET /statements`) and `content` fit with room to spare. The cap keeps the
/// decoder linear (the duplicate check is bounded by it) and refuses a hostile form early.
pub const MAX_FORM_FIELDS: usize = 32;

/// Why an alternate-syntax request is malformed (all 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlternateError {
    /// `method` missing, or not GET/PUT/POST/DELETE.
    BadMethod,
    /// The outer query has something besides `method`.
    ExtraQueryParameter(String),
    /// A form field occurs twice.
    DuplicateField(String),
    /// A header field's value is not a valid header value (control characters, line breaks).
    BadHeaderValue(&'static str),
    /// More than [`MAX_FORM_FIELDS`] form fields.
    TooManyFields,
}

impl fmt::Display for AlternateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlternateError::BadMethod => f.write_str("method must be GET, PUT, POST or DELETE"),
            AlternateError::ExtraQueryParameter(p) => {
                write!(f, "the Alternate Request Syntax allows no query parameter but method (found \"{p}\")")
            }
            AlternateError::DuplicateField(p) => write!(f, "form field \"{p}\" occurs more than once"),
            AlternateError::BadHeaderValue(h) => write!(f, "form field {h} is not a valid header value"),
            AlternateError::TooManyFields => write!(f, "the form has more than {MAX_FORM_FIELDS} fields"),
        }
    }
}

/// Decode `POST ?<raw_query>` with form body `form`.
pub fn decode(raw_query: Option<&str>, form: &[u8]) -> Result<AlternateRequest, AlternateError> {
    let mut method = None;
    for (name, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        if name != "method" || method.is_some() {
            return Err(AlternateError::ExtraQueryParameter(name.into_owned()));
        }
        method = Some(match value.as_ref() {
            "GET" => AlternateMethod::Get,
            "PUT" => AlternateMethod::Put,
            "POST" => AlternateMethod::Post,
            "DELETE" => AlternateMethod::Delete,
            _ => return Err(AlternateError::BadMethod),
        });
    }
    let method = method.ok_or(AlternateError::BadMethod)?;
    let mut headers: Vec<(&'static str, String)> = Vec::new();
    let mut params = form_urlencoded::Serializer::new(String::new());
    let mut seen: Vec<String> = Vec::with_capacity(MAX_FORM_FIELDS);
    let mut content = None;
    for (name, value) in form_urlencoded::parse(form) {
        if seen.len() == MAX_FORM_FIELDS {
            return Err(AlternateError::TooManyFields);
        }
        let header = HEADER_FIELDS.iter().find(|h| h.eq_ignore_ascii_case(&name));
        // Header names compare case-insensitively, so `authorization` and `Authorization` are
        // one field; parameter names are case-sensitive (the strict query parser judges them).
        let key = if header.is_some() { name.to_ascii_lowercase() } else { name.to_string() };
        if seen.contains(&key) {
            return Err(AlternateError::DuplicateField(name.into_owned()));
        }
        seen.push(key);
        match header {
            Some(canonical) => {
                // Visible ASCII, space and tab only: what a header value may carry here.
                if !value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
                    return Err(AlternateError::BadHeaderValue(canonical));
                }
                headers.push((canonical, value.into_owned()))
            }
            None if name == "content" => content = Some(value.into_owned().into_bytes()),
            None => {
                params.append_pair(&name, &value);
            }
        }
    }
    Ok(AlternateRequest { method, headers, query: params.finish(), content: content.unwrap_or_default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_tincan_style_get() {
        let form = b"Authorization=Basic+abc.def.ghi&X-Experience-API-Version=1.0.3&agent=%7B%22mbox%22%3A%22mailto%3Aa%40x%22%7D&limit=5";
        let r = decode(Some("method=GET"), form).unwrap();
        assert_eq!(r.method, AlternateMethod::Get);
        assert_eq!(r.header("authorization"), Some("Basic abc.def.ghi"));
        assert_eq!(r.header("X-Experience-API-Version"), Some("1.0.3"));
        let q: Vec<(String, String)> = form_urlencoded::parse(r.query.as_bytes()).into_owned().collect();
        assert_eq!(q, vec![("agent".into(), r#"{"mbox":"mailto:a@x"}"#.into()), ("limit".into(), "5".into())]);
        assert!(r.content.is_empty());
    }

    #[test]
    fn decodes_put_with_content() {
        let r = decode(Some("method=PUT"), b"statementId=x&Content-Type=application%2Fjson&content=%7B%22a%22%3A1%7D")
            .unwrap();
        assert_eq!(r.method, AlternateMethod::Put);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.content, br#"{"a":1}"#);
        assert_eq!(r.query, "statementId=x");
    }

    #[test]
    fn refusal_rules() {
        let table: Vec<(&str, Option<&str>, &[u8], AlternateError)> = vec![
            ("no_method", None, b"", AlternateError::BadMethod),
            ("head_is_not_an_alternate_method", Some("method=HEAD"), b"", AlternateError::BadMethod),
            ("lower_case_method_value", Some("method=get"), b"", AlternateError::BadMethod),
            (
                "other_query_parameter",
                Some("method=GET&limit=1"),
                b"",
                AlternateError::ExtraQueryParameter("limit".into()),
            ),
            ("method_twice", Some("method=GET&method=PUT"), b"", AlternateError::ExtraQueryParameter("method".into())),
            ("case_variant_method_name", Some("Method=GET"), b"", AlternateError::ExtraQueryParameter("Method".into())),
            (
                "duplicate_parameter",
                Some("method=GET"),
                b"limit=1&limit=2",
                AlternateError::DuplicateField("limit".into()),
            ),
            (
                "authorization_twice_in_two_cases",
                Some("method=GET"),
                b"Authorization=a&authorization=b",
                AlternateError::DuplicateField("authorization".into()),
            ),
            (
                "content_twice",
                Some("method=PUT"),
                b"content=a&content=b",
                AlternateError::DuplicateField("content".into()),
            ),
            (
                "header_with_line_break",
                Some("method=GET"),
                b"If-Match=%22a%22%0D%0AX-Injected%3A+1",
                AlternateError::BadHeaderValue("If-Match"),
            ),
        ];
        for (rule, query, form, want) in table {
            assert_eq!(decode(query, form), Err(want), "{rule}");
        }
    }

    #[test]
    fn a_hostile_form_is_refused_at_the_field_cap() {
        let fields: Vec<String> = (0..=MAX_FORM_FIELDS).map(|i| format!("f{i}=x")).collect();
        assert_eq!(decode(Some("method=GET"), fields.join("&").as_bytes()), Err(AlternateError::TooManyFields));
        let fields: Vec<String> = (0..MAX_FORM_FIELDS).map(|i| format!("f{i}=x")).collect();
        assert!(decode(Some("method=GET"), fields.join("&").as_bytes()).is_ok());
    }
}
