//! The strict multipart parser and the Content-Type parser before it: any bytes, no panic; what
//! parses reassembles into a body that parses to the same parts (what the edge forwards is what
//! it judged), and the Content-Type lrsgate writes parses back to the same framing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::xapi::media_type::{statement_body, StatementBody};
use lrsgate::xapi::multipart::{assemble, parts};

fuzz_target!(|data: &[u8]| {
    // The first line is the Content-Type, the rest the body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let body = data.get(split + 1..).unwrap_or_default();
    let Ok(format) = statement_body(&data[..split]) else { return };
    assert_eq!(statement_body(format.content_type().as_bytes()).as_ref(), Ok(&format), "written Content-Type reads back");
    let StatementBody::Multipart { boundary } = format else { return };
    let Ok(first) = parts(body, &boundary) else { return };
    let again = assemble(&boundary, &first);
    let second = parts(&again, &boundary).expect("a reassembled body parses");
    assert_eq!(first, second, "reassembly keeps every part");
});
