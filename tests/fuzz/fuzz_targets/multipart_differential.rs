//! Differential: lrsgate's Content-Type and multipart parsing against independent, well-kept
//! parsers (`mime` from the hyper project for the media type; `mailparse` for MIME framing).
//! On every input lrsgate accepts, they must read the same media type, the same boundary and
//! the same parts, byte for byte: an LRS built on either would frame what lrsgate judged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::xapi::media_type::{self, StatementBody};
use lrsgate::xapi::multipart::parts;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (content_type, body) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let Ok(ours) = media_type::parse(content_type) else { return };
    // The media type. The LRS only ever receives the Content-Type lrsgate writes: `mime` must
    // read that exactly as lrsgate does. Where `mime` also reads the client's own text (it is
    // stricter than RFC 9110 about white space), it must read it the same way too.
    let text = std::str::from_utf8(content_type).expect("lrsgate accepts ASCII only");
    let rendered = ours.render();
    let theirs: mime::Mime = rendered.parse().unwrap_or_else(|e| panic!("mime refuses lrsgate's {rendered:?} ({e})"));
    same_media_type(&ours, &theirs, &rendered);
    if let Ok(theirs) = text.parse::<mime::Mime>() {
        same_media_type(&ours, &theirs, text);
    }
    let Ok(StatementBody::Multipart { boundary }) = media_type::statement_body(content_type) else { return };
    let Ok(our_parts) = parts(body, &boundary) else { return };
    // The framing: `mailparse` on the same body under lrsgate's own Content-Type.
    let mut message = format!("Content-Type: {}\r\n\r\n", StatementBody::Multipart { boundary: boundary.clone() }.content_type())
        .into_bytes();
    message.extend_from_slice(body);
    let mail = mailparse::parse_mail(&message).expect("mailparse reads a body lrsgate accepts");
    assert_eq!(mail.subparts.len(), our_parts.len(), "part count");
    for (i, (sub, ours)) in mail.subparts.iter().zip(&our_parts).enumerate() {
        assert_eq!(sub.raw_bytes.strip_prefix(b"\r\n").unwrap_or(sub.raw_bytes), head_and_content(ours).as_slice(), "part {i}");
    }
});

fn same_media_type(ours: &media_type::MediaType, theirs: &mime::Mime, text: &str) {
    assert_eq!(theirs.essence_str(), ours.essence, "essence of {text:?}");
    assert_eq!(theirs.params().count(), ours.params.len(), "parameters of {text:?}");
    for (name, value) in &ours.params {
        let got = theirs.get_param(name.as_str()).map(|v| v.as_str().to_owned());
        assert_eq!(got.as_deref(), Some(value.as_str()), "parameter {name} of {text:?}");
    }
}

/// A part as it stands in the body: its header block, the blank line, its content.
fn head_and_content(part: &lrsgate::xapi::multipart::Part<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    if !part.headers.is_empty() {
        out.extend_from_slice(part.headers.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(part.content);
    out
}
