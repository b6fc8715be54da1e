//! The edge's whole decision, as pure functions over plain data (no Pingora type, no I/O).
//!
//! The edge's `request_filter` reads the request once into a [`RequestView`] and asks two
//! questions here:
//! 1. [`front`]: before any credential, what is this? A health answer, a CORS preflight, a
//!    cmi5 fetch URL, `/about`, or an xAPI request that needs a token. It also resolves the
//!    tenant (SNI, then Host) and the request's CORS reply, which every answer carries.
//! 2. [`decide`]: with the token verified, the resource × method × scope judgement. It returns
//!    [`Step::ReadBody`] when the route needs the body it does not have yet (everything that
//!    can be refused without it was refused first), and then, called again with the body, an
//!    [`Admitted`] request: exactly what the LRS receives, what the LRS's answer is judged by,
//!    and the statements whose cmi5 progress must be reserved.
//!
//! The edge performs what lies between (verifying the token, rate limits, reading the body,
//! reserving cmi5 progress) and what comes after (forwarding, answering).

pub mod decide;
pub mod front;
pub mod reads;

pub use self::decide::{decide, forward_headers, Admitted, Judged, JudgedRead, Step};
pub use self::front::{front, Front, FrontFacts, RequestView};
pub use self::reads::ReadKind;

/// Pingora's request-body replay buffer (`BODY_BUF_LIMIT` in pingora-core 0.9, not configurable):
/// a judged body up to this size goes through Pingora's proxy path, a larger one is forwarded
/// directly.
pub const REPLAY_BUFFER_BYTES: usize = 64 * 1024;
