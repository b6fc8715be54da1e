//! Pure decisions: from a grant and a request to Allow or a typed denial. No I/O, no clock,
//! no Pingora types; tables of rules in the tests.

pub mod denial;
pub mod documents;
pub mod grant;
pub mod scope;
pub mod statements;

pub use denial::{PolicyDenial, WriteDenial};
pub use grant::Grant;
pub use scope::Scope;
