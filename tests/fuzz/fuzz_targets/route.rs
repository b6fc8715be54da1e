//! The route resolver: any path, no panic; a resolved path never carries what a server could
//! read two ways (escapes, backslashes, dot segments), and the upstream path is one of the fixed
//! resource suffixes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::xapi::route::resolve;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    if let Ok(resource) = resolve(path) {
        assert!(!path.contains('%') && !path.contains('\\'), "{path}");
        assert!(!path.split('/').any(|s| s == "." || s == ".."), "{path}");
        assert!(!resource.upstream_suffix().contains(".."));
    }
});
