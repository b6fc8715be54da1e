//! `more` cursors: any cursor text, no panic; only a cursor this key sealed opens, and a sealed
//! one opens to exactly what was sealed, for that token only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::auth::cursor::{CursorError, CursorKey};

fuzz_target!(|data: &[u8]| {
    let key = CursorKey::derive(b"fuzz-signing-secret-0123456789abcdef");
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Forged input: never opens (a forgery would need the HMAC key).
    assert!(key.open(text).is_err(), "a cursor lrsgate did not seal opened");
    // Sealed input: opens to itself, for its token only.
    let (jti, more) = text.split_once('\n').unwrap_or(("jti-1", text));
    if jti.len() > 255 {
        return;
    }
    let sealed = key.seal(jti, more);
    assert_eq!(key.open_for(&sealed, jti).as_deref(), Ok(more));
    assert_eq!(key.open_for(&sealed, &format!("{jti}x")), Err(CursorError::OtherToken));
});
