//! Judging what the LRS returns for a statement read, before the client sees any of it: a
//! single statement is shown only if it lies in the token's scope, a list keeps only the
//! statements that do (each byte for byte). The scope rule itself is `policy::statements`.

use crate::denial::Denial;
use crate::policy::{self, Grant, PolicyDenial};
use crate::xapi::statement::parse_body;
use crate::xapi::{media_type, multipart};

/// Which statement read an admitted GET/HEAD is, for judging what the LRS returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Single,
    List,
}

/// What the client may see of a 200 the LRS returned for a statement read. `seal` turns the
/// LRS's `more` path into lrsgate's continuation for the same token.
pub fn judge_statement_read(
    grant: &Grant,
    kind: ReadKind,
    content_type: &[u8],
    body: Vec<u8>,
    seal: &dyn Fn(&str) -> String,
) -> Result<Vec<u8>, Denial> {
    match kind {
        ReadKind::Single if returned_statement_in_scope(grant, content_type, &body)? => Ok(body),
        ReadKind::Single => Err(Denial::Policy(PolicyDenial::StatementNotFound)),
        ReadKind::List => match answer_format(content_type)? {
            Answer::Multipart(boundary) => filter_multipart_list(grant, &body, &boundary, seal),
            Answer::Json => filter_statement_list(grant, &body, seal, false).map(|(list, _)| list),
        }
        .ok_or(Denial::UpstreamInvalid),
    }
}

/// How the LRS framed a statement-list answer.
enum Answer {
    Json,
    /// `multipart/mixed` (`attachments=true`) with this boundary.
    Multipart(String),
}

/// The answer's framing from its Content-Type, parsed like a request's: an answer lrsgate
/// cannot read in exactly one way is not judged, so not relayed (502).
fn answer_format(content_type: &[u8]) -> Result<Answer, Denial> {
    if content_type.is_empty() {
        return Ok(Answer::Json);
    }
    let media = media_type::parse(content_type).map_err(|_| Denial::UpstreamInvalid)?;
    if media.essence == "multipart/mixed" {
        let boundary = media.param("boundary").filter(|b| media_type::is_valid_boundary(b));
        return boundary.map(|b| Answer::Multipart(b.to_owned())).ok_or(Denial::UpstreamInvalid);
    }
    Ok(Answer::Json)
}

/// A statement list with attachments (`attachments=true`): the statements part filtered like a
/// JSON list, and only the attachment parts that a statement still shown refers to (by
/// `sha2`), each byte for byte. A multipart answer without a boundary is not judged: `None`.
fn filter_multipart_list(grant: &Grant, body: &[u8], boundary: &str, seal: &dyn Fn(&str) -> String) -> Option<Vec<u8>> {
    let parts = multipart::parts(body, boundary).ok()?;
    let (first, attachments) = parts.split_first()?;
    let (list, kept_hashes) = filter_statement_list(grant, first.content, seal, true)?;
    let mut out = vec![multipart::Part { headers: first.headers, hash: None, content: &list }];
    out.extend(attachments.iter().filter(|p| p.hash.is_some_and(|h| kept_hashes.iter().any(|k| k == h))).cloned());
    Some(multipart::assemble(boundary, &out))
}

/// The public path of a `more` continuation, for a sealed cursor.
pub fn more_link(cursor: &str) -> String {
    format!("{}statements/more/{cursor}", crate::xapi::route::XAPI_PREFIX)
}

/// The request target of the LRS's `more` value: a relative IRL (path and query, Data §2.5),
/// or, from LRSs that send one, the path and query of an absolute http(s) URL. `None` for
/// anything else, which the client never sees.
pub fn upstream_more_target(more: &str) -> Option<String> {
    let target = if more.starts_with("http://") || more.starts_with("https://") {
        let url = url::Url::parse(more).ok()?;
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    } else {
        more.to_owned()
    };
    let well_formed = target.starts_with('/')
        && !target.starts_with("//")
        && target.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    well_formed.then_some(target)
}

#[derive(serde::Deserialize)]
struct StatementList<'a> {
    #[serde(borrow)]
    statements: Vec<&'a serde_json::value::RawValue>,
    #[serde(default)]
    more: Option<String>,
}

#[derive(serde::Deserialize)]
struct AttachmentRefs<'a> {
    #[serde(borrow, default)]
    attachments: Vec<AttachmentRef<'a>>,
}

#[derive(serde::Deserialize)]
struct AttachmentRef<'a> {
    #[serde(borrow)]
    sha2: std::borrow::Cow<'a, str>,
}

/// A statement list with only the statements in `grant`'s scope, each kept byte for byte (they
/// may be signed), and `more` pointing at lrsgate; with `attachment_hashes`, also the `sha2` of
/// every attachment those statements carry. `None` when the LRS's answer is not a statement list.
fn filter_statement_list(
    grant: &Grant,
    body: &[u8],
    seal: &dyn Fn(&str) -> String,
    attachment_hashes: bool,
) -> Option<(Vec<u8>, Vec<String>)> {
    let list: StatementList<'_> = serde_json::from_slice(body).ok()?;
    let more = match list.more.as_deref() {
        None | Some("") => String::new(),
        Some(more) => more_link(&seal(&upstream_more_target(more)?)),
    };
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(b"{\"statements\":[");
    let mut first = true;
    let mut hashes = Vec::new();
    for raw in list.statements {
        let in_scope = match parse_body(raw.get().as_bytes()) {
            Ok(statements) => statements.len() == 1 && policy::statements::returned_in_scope(grant, &statements[0]),
            Err(_) => false,
        };
        if in_scope {
            if attachment_hashes {
                if let Ok(refs) = serde_json::from_str::<AttachmentRefs<'_>>(raw.get()) {
                    hashes.extend(refs.attachments.into_iter().map(|a| a.sha2.into_owned()));
                }
            }
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(raw.get().as_bytes());
            first = false;
        }
    }
    out.extend_from_slice(b"],\"more\":");
    // The link is lrsgate's own path: ASCII without quotes or backslashes.
    out.push(b'"');
    out.extend_from_slice(more.as_bytes());
    out.push(b'"');
    out.push(b'}');
    Some((out, hashes))
}

/// Whether a single statement the LRS returned (JSON, or multipart with attachments) is
/// within `grant`'s read scope; an answer lrsgate cannot read strictly is `UpstreamInvalid`.
fn returned_statement_in_scope(grant: &Grant, content_type: &[u8], body: &[u8]) -> Result<bool, Denial> {
    let json = match answer_format(content_type)? {
        Answer::Multipart(boundary) => {
            multipart::statement_part(body, &boundary).map_err(|_| Denial::UpstreamInvalid)?
        }
        Answer::Json => body,
    };
    let is_object = json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match parse_body(json) {
        Ok(statements) if is_object && statements.len() == 1 => {
            Ok(policy::statements::returned_in_scope(grant, &statements[0]))
        }
        // Not one statement: an answer lrsgate cannot judge.
        _ => Err(Denial::UpstreamInvalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Scope;
    use crate::xapi::agent::Ifi;

    fn grant() -> Grant {
        Grant {
            actor: Ifi::Mbox("mailto:l@x.org".into()),
            activity_id: "https://a/1".into(),
            registration: "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11".parse().unwrap(),
            session_id: "s-1".into(),
            publisher_id: None,
            group: None,
            course: None,
            write: Scope::ActorActivityRegistration,
            read: Scope::ActorActivityRegistration,
            launch_mode: None,
        }
    }

    const OWN: &str = r#"{"actor": {"mbox":"mailto:l@x.org"},"verb":{"id":"https://v"},"object":{"id":"https://a/1"},"context":{"registration":"7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11"}}"#;

    fn list(body: String) -> Result<String, Denial> {
        judge_statement_read(&grant(), ReadKind::List, b"application/json", body.into_bytes(), &|m| {
            format!("sealed:{m}")
        })
        .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn list_filter_keeps_in_scope_statements_byte_for_byte() {
        let other = OWN.replace("mailto:l@x.org", "mailto:other@x.org");
        let dup = OWN.replacen("{", r#"{"id":"x","id":"y","#, 1);
        let got =
            list(format!(r#"{{"statements":[{OWN},{other},{dup},42],"more":"/lrs/xapi/statements?page=2"}}"#)).unwrap();
        assert_eq!(
            got,
            format!(r#"{{"statements":[{OWN}],"more":"/xapi/statements/more/sealed:/lrs/xapi/statements?page=2"}}"#)
        );
        assert_eq!(list(r#"{"statements":[]}"#.into()).unwrap(), r#"{"statements":[],"more":""}"#);
        assert_eq!(list(r#"{"statements":[],"more":""}"#.into()).unwrap(), r#"{"statements":[],"more":""}"#);
    }

    #[test]
    fn answers_that_are_not_lists_are_refused() {
        for body in [
            r#"{"nope":1}"#,
            "[]",
            r#"{"statements":[],"statements":[]}"#,
            "{",
            r#"{"statements":[],"more":"javascript:alert(1)"}"#,
            r#"{"statements":[],"more":"//evil.example/x"}"#,
            r#"{"statements":[],"more":42}"#,
        ] {
            assert_eq!(list(body.into()), Err(Denial::UpstreamInvalid), "{body}");
        }
    }

    #[test]
    fn multipart_lists_keep_only_the_attachments_of_statements_shown() {
        let with_attachment = |s: &str, sha2: &str| {
            s.replacen(
                '{',
                &format!(r#"{{"attachments":[{{"usageType":"https://u","display":{{}},"contentType":"text/plain","length":1,"sha2":"{sha2}"}}],"#),
                1,
            )
        };
        let own = with_attachment(OWN, "aaa");
        let other = with_attachment(&OWN.replace("mailto:l@x.org", "mailto:other@x.org"), "bbb");
        let part = |hash: &str, content: &str| {
            format!("--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {hash}\r\n\r\n{content}\r\n")
        };
        let body: String = format!(
            "--b1\r\nContent-Type: application/json\r\n\r\n{{\"statements\":[{own},{other}],\"more\":\"\"}}\r\n{}{}--b1--\r\n",
            part("aaa", "mine"),
            part("bbb", "secret of someone else")
        );
        let got = judge_statement_read(
            &grant(),
            ReadKind::List,
            b"multipart/mixed; boundary=b1",
            body.clone().into_bytes(),
            &|m| m.into(),
        )
        .unwrap();
        let got = String::from_utf8(got).unwrap();
        let want = format!(
            "--b1\r\nContent-Type: application/json\r\n\r\n{{\"statements\":[{own}],\"more\":\"\"}}\r\n{}--b1--\r\n",
            part("aaa", "mine")
        );
        assert_eq!(got, want);
        // ADL's LRS puts a CRLF before the first boundary (a preamble, RFC 2046 5.1.1).
        let with_preamble = format!("\r\n{body}");
        let got = judge_statement_read(
            &grant(),
            ReadKind::List,
            b"multipart/mixed; boundary=b1",
            with_preamble.into_bytes(),
            &|m| m.into(),
        )
        .unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want, "the preamble is read and not relayed");
        let broken = judge_statement_read(
            &grant(),
            ReadKind::List,
            b"multipart/mixed; boundary=b1",
            b"--b1\r\n".to_vec(),
            &|m| m.into(),
        );
        assert_eq!(broken, Err(Denial::UpstreamInvalid));
    }

    #[test]
    fn more_targets() {
        assert_eq!(upstream_more_target("/xapi/statements?more=1").as_deref(), Some("/xapi/statements?more=1"));
        assert_eq!(upstream_more_target("https://lrs.internal:8080/x/more/7?a=b").as_deref(), Some("/x/more/7?a=b"));
        for bad in ["more/1", "//host/x", "/a b", "/a#frag", "ftp://x/y", ""] {
            assert_eq!(upstream_more_target(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn single_reads_hide_what_is_out_of_scope() {
        let single = |b: &str| {
            judge_statement_read(&grant(), ReadKind::Single, b"application/json", b.as_bytes().to_vec(), &|m| m.into())
        };
        assert!(single(OWN).is_ok());
        assert_eq!(
            single(&OWN.replace("https://a/1", "https://a/2")),
            Err(Denial::Policy(PolicyDenial::StatementNotFound))
        );
        // Not one statement: not judged, so not relayed.
        assert_eq!(single(&format!("[{OWN}]")), Err(Denial::UpstreamInvalid));
    }
}
