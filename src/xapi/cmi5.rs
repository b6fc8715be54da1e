//! cmi5 vocabulary the policy reads (cmi5 §9; pre-Quartz content uses the `purl.org` IRIs).

use super::iri::comparison_form;

/// The category that makes a statement cmi5-defined (§9.6.2.1).
pub const CATEGORY_CMI5: &str = "https://w3id.org/xapi/cmi5/context/categories/cmi5";
const CATEGORY_CMI5_PRE_QUARTZ: &str = "http://purl.org/xapi/cmi5/context/categories/cmi5";

/// The context extension carrying the session id (§9.6.3.1).
pub const EXTENSION_SESSION_ID: &str = "https://w3id.org/xapi/cmi5/context/extensions/sessionid";
pub const EXTENSION_SESSION_ID_PRE_QUARTZ: &str = "http://purl.org/xapi/cmi5/context/extensions/sessionid";

pub const VERB_LAUNCHED: &str = "http://adlnet.gov/expapi/verbs/launched";
pub const VERB_INITIALIZED: &str = "http://adlnet.gov/expapi/verbs/initialized";
pub const VERB_COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
pub const VERB_PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
pub const VERB_FAILED: &str = "http://adlnet.gov/expapi/verbs/failed";
pub const VERB_TERMINATED: &str = "http://adlnet.gov/expapi/verbs/terminated";
pub const VERB_ABANDONED: &str = "https://w3id.org/xapi/adl/verbs/abandoned";
pub const VERB_WAIVED: &str = "https://w3id.org/xapi/adl/verbs/waived";
pub const VERB_SATISFIED: &str = "https://w3id.org/xapi/adl/verbs/satisfied";

/// Whether a category activity id marks a statement as cmi5-defined, in any spelling of the
/// IRI a consumer may take for the same (so such a statement is judged as cmi5-defined).
pub fn is_cmi5_category(id: &str) -> bool {
    let id = comparison_form(id);
    id == CATEGORY_CMI5 || id == CATEGORY_CMI5_PRE_QUARTZ
}

/// The verbs only the LMS sends (§9.3): an AU's token may not, whatever the statement's category
/// or the spelling of the IRI.
pub fn is_lms_only_verb(verb_id: &str) -> bool {
    matches!(comparison_form(verb_id).as_ref(), VERB_LAUNCHED | VERB_ABANDONED | VERB_WAIVED | VERB_SATISFIED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_iris_in_other_spellings() {
        assert!(is_lms_only_verb("HTTP://ADLNET.GOV/expapi/verbs/launched"));
        assert!(is_lms_only_verb("https://w3id.org:443/xapi/adl/verbs/waived"));
        assert!(is_cmi5_category("HTTPS://W3ID.org/xapi/cmi5/context/categories/cmi5"));
        assert!(is_cmi5_category("http://purl.org:80/xapi/cmi5/context/categories/cmi5"));
        assert!(!is_lms_only_verb("http://adlnet.gov/expapi/verbs/experienced"));
        assert!(!is_cmi5_category("https://w3id.org/xapi/cmi5/context/categories/moveon"));
    }
}
