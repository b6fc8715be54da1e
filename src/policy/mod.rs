//! Pure decisions: from a grant and a request to Allow or a typed denial. No I/O, no clock,
//! no Pingora types; tables of rules in the tests.

pub mod cors;
pub mod course;
pub mod denial;
pub mod documents;
pub mod grant;
pub mod reach;
pub mod rules;
pub mod scope;
pub mod session;
pub mod statements;

pub use course::{CourseActivities, CourseCatalog};
pub use denial::{PolicyDenial, WriteDenial};
pub use grant::Grant;
pub use reach::Direction;
pub use rules::TenantRules;
pub use scope::Scope;
pub use session::{LaunchMode, Progress};
