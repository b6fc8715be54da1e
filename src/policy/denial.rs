//! Why the policy refused a request. Status codes and reason codes are assigned in one place,
//! `crate::denial`; this enum only says what was wrong.

/// A policy refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDenial {
    /// The scope for this direction is `false`.
    ScopeDenies,
    /// A feature or scope this version does not judge yet: refused, never waved through.
    NotSupported(&'static str),
    ActorMismatch,
    ActivityMismatch,
    RegistrationMismatch,
    VoidingRefused,
    AuthorityRefused,
    /// A filter the scope forces was given another value by the client.
    QueryOutOfScope(&'static str),
    /// A query parameter's value is malformed.
    InvalidParameter(&'static str),
    MissingParameter(&'static str),
    /// `PUT ?statementId=` and the body's `id` differ, or the body is not one statement.
    StatementIdMismatch,
    NotOneStatement,
    /// A write or delete of `LMS.LaunchData`, which only the LMS writes.
    LaunchDataReadOnly,
    /// A State DELETE without `stateId` (deletes every document, LaunchData included).
    BulkDeleteRefused,
    /// An Agent Profile write.
    ProfileWriteRefused,
    /// A single-statement query (`statementId`) judged as a list read: internal routing only.
    NotOneStatementQuery,
    /// A returned statement outside the scope, answered as not found.
    StatementNotFound,
}

/// A refusal of one statement in a write, with its position in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteDenial {
    pub index: usize,
    pub denial: PolicyDenial,
}
