//! lrsgate: session-scoped security at the edge for any xAPI Learning Record Store.
//!
//! Layout (see `ARCHITECTURE.md`): `xapi`, `policy` and `admission` (the edge's whole
//! decision) are pure and take no Pingora types;
//! `auth` verifies and issues tokens; `config` and `tenant` build immutable snapshots; `edge`
//! and `token_service` are the Pingora services; `upstream` reaches the LRS. Operating it:
//! `audit` (the trail and its writers), `rate_limit`, `heartbeat` (fleet size), `metrics`,
//! `logging`, `request_id`, bundled for the services by `operations`; `lifecycle` ends a
//! graceful stop once nothing is in flight; `listener` caps what one connection may cost.

pub mod admin;
pub mod admission;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod denial;
pub mod edge;
pub mod heartbeat;
pub mod http_io;
pub mod lifecycle;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod operations;
pub mod policy;
pub mod rate_limit;
pub mod request_id;
pub mod secrets;
pub mod server;
pub mod session;
pub mod tenant;
pub mod token_service;
pub mod upstream;
pub mod xapi;
