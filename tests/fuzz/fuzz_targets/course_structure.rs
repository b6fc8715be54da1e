//! cmi5 course structures (cmi5.xml) an operator registers: any text, no panic, no entity
//! expansion (DTDs refused), and every activity id of a parsed course is an absolute IRI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::xapi::course_structure::parse;
use lrsgate::xapi::iri::is_absolute_iri;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else { return };
    if let Ok(course) = parse(xml) {
        assert!(is_absolute_iri(&course.course_id));
        for id in &course.activity_ids {
            assert!(is_absolute_iri(id), "{id}");
        }
    }
});
