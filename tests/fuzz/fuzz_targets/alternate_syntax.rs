//! The Alternate Request Syntax decoder: any query and form, no panic; a decoded request never
//! carries a header value with control characters (they could split headers upstream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::xapi::alternate::decode;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let Ok(query) = std::str::from_utf8(&data[..split]) else { return };
    let form = data.get(split + 1..).unwrap_or_default();
    if let Ok(request) = decode(Some(query), form) {
        for (name, value) in &request.headers {
            assert!(!value.bytes().any(|b| b.is_ascii_control() && b != b'\t'), "{name} carries a control character");
        }
    }
});
