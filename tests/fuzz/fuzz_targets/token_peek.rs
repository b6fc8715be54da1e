//! What the edge reads of a token before its signature is checked (the Authorization scheme, the
//! header's `alg`, the payload's `aud`), then the verification: any bytes, no panic, and no
//! input that lrsgate did not sign is ever accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lrsgate::auth::keys::TenantKeys;
use lrsgate::auth::verify::{token_from_authorization, verify};
use lrsgate::policy::CourseCatalog;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static KEYS: TenantKeys = TenantKeys::hs256("acme", b"fuzz-signing-secret-0123456789abcdef", "lrsgate", 30);
    }
    let Ok(token) = token_from_authorization(Some(data)) else { return };
    KEYS.with(|keys| {
        let verified = verify(token, "acme", keys, &CourseCatalog::default());
        assert!(verified.is_err(), "an unsigned token verified");
    });
});
