//! The strict multipart parser: any bytes, no panic; what parses reassembles into a body that
//! parses to the same parts (what the edge forwards is what it judged).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::xapi::multipart::{assemble, boundary, parts};

fuzz_target!(|data: &[u8]| {
    // The first line is the Content-Type, the rest the body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(content_type) = std::str::from_utf8(&data[..split]) else { return };
    let body = data.get(split + 1..).unwrap_or_default();
    let Some(boundary) = boundary(content_type) else { return };
    let Ok(first) = parts(body, boundary) else { return };
    let again = assemble(boundary, &first);
    let second = parts(&again, boundary).expect("a reassembled body parses");
    assert_eq!(first, second, "reassembly keeps every part");
});
