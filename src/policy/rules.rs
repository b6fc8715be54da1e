//! Per-tenant policy switches. Defaults are the safe reading of cmi5 and xAPI.

/// What a tenant allows beyond the scopes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantRules {
    /// Alternate Request Syntax (`POST ?method=`): decoded, judged and forwarded in normal form
    /// (`true`, default: xAPI 1.0.3 requires LRSs to accept it), or refused with 400.
    pub alternate_syntax: bool,
    /// cmi5-allowed statements (without the cmi5 category) may have another Activity as their
    /// object, such as a quiz question (cmi5 §7.1.3, best practice #16). Default `true`.
    pub cmi5_other_objects: bool,
    /// Every statement must carry the cmi5 session id extension equal to the token's session
    /// (cmi5 §9.6.3.1). Default `true`; off only for plain xAPI content.
    pub require_session_id: bool,
    /// AU writes of the `cmi5LearnerPreferences` agent profile (cmi5 §11: the LMS may refuse
    /// them with 403). Default `false`.
    pub learner_preferences_writes: bool,
    /// Activity Profile writes within the write scope (the document is shared by every learner
    /// of the activity). Default `false`.
    pub activity_profile_writes: bool,
    /// cmi5 session rules for cmi5 launches (`policy::session`): nothing before `initialized`,
    /// nothing after `terminated`, no cmi5-defined verb twice, never both `passed` and
    /// `failed`, launch mode respected. Default `true`.
    pub cmi5_session_rules: bool,
}

impl Default for TenantRules {
    fn default() -> Self {
        TenantRules {
            alternate_syntax: true,
            cmi5_other_objects: true,
            require_session_id: true,
            learner_preferences_writes: false,
            activity_profile_writes: false,
            cmi5_session_rules: true,
        }
    }
}
