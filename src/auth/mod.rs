//! Tokens and credentials: session claims, tenant keys, verification, issuance, LMS API keys,
//! `more` cursors. Session state (fetch codes, cmi5 progress, ends) is `crate::session`.

pub mod apikey;
pub mod claims;
pub mod cursor;
pub mod issue;
pub mod keys;
pub mod verify;

#[cfg(test)]
mod tests;
