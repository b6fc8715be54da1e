//! Why the policy refused a request. Status codes and reason codes are assigned in one place,
//! `crate::denial`; this enum only says what was wrong.

/// A policy refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDenial {
    /// The scope for this direction is `false`.
    ScopeDenies,
    /// A feature or scope this version does not judge yet: refused, never waved through.
    NotSupported(&'static str),
    /// The course scope, but the course's activities are unknown to this tenant.
    CourseUnknown,
    ActorMismatch,
    /// The object is not an activity the scope reaches (or, for a cmi5-defined statement,
    /// not the token's own activity).
    ActivityMismatch,
    RegistrationMismatch,
    /// A missing or different cmi5 session id extension.
    SessionIdMismatch,
    /// The publisher AU id is missing from `contextActivities.grouping`.
    PublisherIdMissing,
    /// `launched`, `abandoned`, `waived` or `satisfied`: only the LMS sends these.
    LmsOnlyVerb,
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
    /// An Agent Profile or Activity Profile write the tenant's policy does not allow.
    ProfileWriteRefused,
    /// `related_agents`/`related_activities` beyond what the read scope allows.
    RelatedNotAllowed(&'static str),
    /// A single-statement query (`statementId`) judged as a list read: internal routing only.
    NotOneStatementQuery,
    /// A returned statement outside the scope, answered as not found.
    StatementNotFound,
    /// cmi5 session rules (`policy::session`): a statement before the session's `initialized`.
    Cmi5NotInitialized,
    /// A statement after the session's `terminated`.
    Cmi5AfterTerminated,
    /// A cmi5-defined verb the session already sent.
    Cmi5VerbRepeated,
    /// `passed` and `failed` in one session.
    Cmi5PassedAndFailed,
    /// A cmi5-defined statement the launch mode (Browse, Review) does not allow.
    Cmi5LaunchMode,
    /// The cmi5 category on a verb that is not one of the AU's cmi5 verbs.
    Cmi5VerbUnknown,
}

/// A refusal of one statement in a write, with its position in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteDenial {
    pub index: usize,
    pub denial: PolicyDenial,
}
