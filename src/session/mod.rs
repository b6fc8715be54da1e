//! Session state beyond the token: one-time cmi5 fetch codes, cmi5 progress, session ends and
//! revocations. `store` has the `SessionStore` trait and the in-memory store of file mode;
//! `fleet` the Postgres-backed store a fleet shares (its events followed into the same kind of
//! in-memory snapshot, so the hot path reads memory); `sweeper` expires what outlived its TTL.

pub mod fleet;
pub mod store;
pub mod sweeper;
