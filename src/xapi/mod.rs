//! The xAPI wire model: resources and routes, query strings, Agents/Groups and IFI identity,
//! strict statement parsing. Depends on nothing else in the crate and takes no Pingora types.

pub mod agent;
pub mod alternate;
pub mod cmi5;
pub mod course_structure;
pub mod document_id;
pub mod headers;
pub mod iri;
pub mod media_type;
pub mod multipart;
pub mod query;
pub mod route;
pub mod statement;
pub mod strict_json;

/// The xAPI version lrsgate speaks on its own responses.
pub const XAPI_VERSION: &str = "1.0.3";
