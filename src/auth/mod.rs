//! Tokens and credentials: session claims, tenant keys, verification, issuance, LMS API keys,
//! and session state (fetch codes, cmi5 progress, session ends).

pub mod apikey;
pub mod claims;
pub mod cursor;
pub mod fleet_sessions;
pub mod issue;
pub mod keys;
pub mod sessions;
pub mod sweeper;
pub mod verify;

#[cfg(test)]
mod tests;
