//! The strict query parser and the canonical encoder: any bytes, no panic; what parses, written
//! again by `QueryBuilder`, parses to the same parameters (the LRS reads what lrsgate judged),
//! and the written query holds nothing but unreserved characters, `%XX`, `=` and `&`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::policy::documents::STATE_PARAMS;
use lrsgate::xapi::query::{parse, QueryBuilder, STATEMENT_GET_PARAMS};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    for known in [STATEMENT_GET_PARAMS, STATE_PARAMS] {
        let Ok(params) = parse(Some(raw), known) else { continue };
        let mut out = QueryBuilder::new();
        out.push_all(&params);
        let written = out.finish();
        assert!(
            written.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%=&".contains(&b)),
            "canonical form: {written}"
        );
        let again = parse(Some(&written), known).expect("the canonical form parses");
        assert_eq!(params, again, "round trip");
    }
});
