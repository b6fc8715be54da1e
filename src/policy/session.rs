//! cmi5 session rules (cmi5 §9.3, §10.2.2): what an AU may send, given what its session has
//! already sent. Pure: the caller holds the session's progress and applies the result
//! atomically (`session::store`); this file only says whether a batch fits and what follows.
//!
//! Judged in arrival order, statement by statement (a batch is judged in its own order). cmi5
//! orders by `timestamp`; an edge that cannot see statements the LRS got by other paths judges
//! arrival, which for one AU session is the same order in practice.

use std::fmt;
use std::str::FromStr;

use super::denial::{PolicyDenial, WriteDenial};
use crate::xapi::cmi5;
use crate::xapi::statement::Statement;

/// The launch mode the LMS launched the AU in (cmi5 §10.2.2), carried in the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LaunchMode {
    Normal,
    Browse,
    Review,
}

impl LaunchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchMode::Normal => "Normal",
            LaunchMode::Browse => "Browse",
            LaunchMode::Review => "Review",
        }
    }
}

impl fmt::Display for LaunchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LaunchMode {
    type Err = ();
    /// The exact spellings cmi5 uses in LaunchData (`launchMode`).
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "Normal" => Ok(LaunchMode::Normal),
            "Browse" => Ok(LaunchMode::Browse),
            "Review" => Ok(LaunchMode::Review),
            _ => Err(()),
        }
    }
}

/// The cmi5-defined verbs a session has sent, as bits (so the caller can swap them atomically).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress(u32);

impl Progress {
    pub const INITIALIZED: Progress = Progress(1);
    pub const COMPLETED: Progress = Progress(1 << 1);
    pub const PASSED: Progress = Progress(1 << 2);
    pub const FAILED: Progress = Progress(1 << 3);
    pub const TERMINATED: Progress = Progress(1 << 4);
    /// The session began before this process knew it (a restart lost its progress): whether
    /// `initialized` was sent is unknown, so "nothing before initialized" is not judged. Every
    /// other rule still holds for what arrives from now on.
    pub const RESUMED: Progress = Progress(1 << 5);

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn from_bits(bits: u32) -> Progress {
        Progress(bits)
    }

    pub const fn has(self, other: Progress) -> bool {
        self.0 & other.0 == other.0
    }

    const fn with(self, other: Progress) -> Progress {
        Progress(self.0 | other.0)
    }
}

/// The progress bit of an AU's cmi5-defined verb; `None` for any other verb.
fn verb_bit(verb_id: &str) -> Option<Progress> {
    Some(match verb_id {
        cmi5::VERB_INITIALIZED => Progress::INITIALIZED,
        cmi5::VERB_COMPLETED => Progress::COMPLETED,
        cmi5::VERB_PASSED => Progress::PASSED,
        cmi5::VERB_FAILED => Progress::FAILED,
        cmi5::VERB_TERMINATED => Progress::TERMINATED,
        _ => return None,
    })
}

/// Judge `statements` against a session at `progress` in `mode`: the progress after them, or
/// the first statement that breaks a rule. One refused statement refuses the whole batch.
pub fn advance(progress: Progress, mode: LaunchMode, statements: &[Statement]) -> Result<Progress, WriteDenial> {
    let mut now = progress;
    for (index, s) in statements.iter().enumerate() {
        now = advance_one(now, mode, s).map_err(|denial| WriteDenial { index, denial })?;
    }
    Ok(now)
}

fn advance_one(progress: Progress, mode: LaunchMode, s: &Statement) -> Result<Progress, PolicyDenial> {
    if progress.has(Progress::TERMINATED) {
        return Err(PolicyDenial::Cmi5AfterTerminated);
    }
    let bit = if s.cmi5_defined {
        // The cmi5 category on a verb that is not an AU's cmi5 verb is not a cmi5 statement
        // the LMS can read; the LMS-only verbs were refused before this.
        Some(verb_bit(&s.verb_id).ok_or(PolicyDenial::Cmi5VerbUnknown)?)
    } else {
        None
    };
    let initialized = progress.has(Progress::INITIALIZED) || progress.has(Progress::RESUMED);
    if !initialized && bit != Some(Progress::INITIALIZED) {
        return Err(PolicyDenial::Cmi5NotInitialized);
    }
    let Some(bit) = bit else {
        // cmi5-allowed statements may come any time between initialized and terminated.
        return Ok(progress);
    };
    if mode != LaunchMode::Normal && bit != Progress::INITIALIZED && bit != Progress::TERMINATED {
        return Err(PolicyDenial::Cmi5LaunchMode);
    }
    if progress.has(bit) {
        return Err(PolicyDenial::Cmi5VerbRepeated);
    }
    let judged_twice = (bit == Progress::PASSED && progress.has(Progress::FAILED))
        || (bit == Progress::FAILED && progress.has(Progress::PASSED));
    if judged_twice {
        return Err(PolicyDenial::Cmi5PassedAndFailed);
    }
    Ok(progress.with(bit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xapi::statement::parse_body;
    use serde_json::json;

    fn statement(verb: &str, cmi5_category: bool) -> Statement {
        let mut context = json!({"registration": "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11"});
        if cmi5_category {
            context["contextActivities"] = json!({"category": [{"id": cmi5::CATEGORY_CMI5}]});
        }
        let body = json!({
            "actor": {"mbox": "mailto:l@x.org"},
            "verb": {"id": verb},
            "object": {"id": "https://a/1"},
            "context": context,
        });
        parse_body(body.to_string().as_bytes()).unwrap().remove(0)
    }

    fn defined(verb: &str) -> Statement {
        statement(verb, true)
    }

    const I: Progress = Progress::INITIALIZED;
    const EXPERIENCED: &str = "http://adlnet.gov/expapi/verbs/experienced";

    #[test]
    fn session_rules() {
        use LaunchMode::{Browse, Normal, Review};
        use PolicyDenial as D;
        let p = |bits: &[Progress]| bits.iter().fold(Progress::default(), |acc, b| acc.with(*b));
        type Row = (&'static str, Progress, LaunchMode, Vec<Statement>, Result<Progress, (usize, D)>);
        let table: Vec<Row> = vec![
            ("initialized_opens_the_session", p(&[]), Normal, vec![defined(cmi5::VERB_INITIALIZED)], Ok(I)),
            (
                "nothing_before_initialized",
                p(&[]),
                Normal,
                vec![defined(cmi5::VERB_COMPLETED)],
                Err((0, D::Cmi5NotInitialized)),
            ),
            (
                "no_cmi5_allowed_statement_before_initialized",
                p(&[]),
                Normal,
                vec![statement(EXPERIENCED, false)],
                Err((0, D::Cmi5NotInitialized)),
            ),
            (
                "initialized_without_the_category_does_not_open_the_session",
                p(&[]),
                Normal,
                vec![statement(cmi5::VERB_INITIALIZED, false)],
                Err((0, D::Cmi5NotInitialized)),
            ),
            (
                "a_batch_may_open_the_session_itself",
                p(&[]),
                Normal,
                vec![defined(cmi5::VERB_INITIALIZED), statement(EXPERIENCED, false), defined(cmi5::VERB_COMPLETED)],
                Ok(p(&[I, Progress::COMPLETED])),
            ),
            (
                "initialized_only_once",
                p(&[I]),
                Normal,
                vec![defined(cmi5::VERB_INITIALIZED)],
                Err((0, D::Cmi5VerbRepeated)),
            ),
            (
                "completed_only_once",
                p(&[I, Progress::COMPLETED]),
                Normal,
                vec![statement(EXPERIENCED, false), defined(cmi5::VERB_COMPLETED)],
                Err((1, D::Cmi5VerbRepeated)),
            ),
            (
                "never_failed_after_passed",
                p(&[I, Progress::PASSED]),
                Normal,
                vec![defined(cmi5::VERB_FAILED)],
                Err((0, D::Cmi5PassedAndFailed)),
            ),
            (
                "never_passed_after_failed",
                p(&[I, Progress::FAILED]),
                Normal,
                vec![defined(cmi5::VERB_PASSED)],
                Err((0, D::Cmi5PassedAndFailed)),
            ),
            (
                "passed_and_failed_in_one_batch",
                p(&[I]),
                Normal,
                vec![defined(cmi5::VERB_PASSED), defined(cmi5::VERB_FAILED)],
                Err((1, D::Cmi5PassedAndFailed)),
            ),
            (
                "terminated_closes_the_session",
                p(&[I, Progress::COMPLETED]),
                Normal,
                vec![defined(cmi5::VERB_TERMINATED)],
                Ok(p(&[I, Progress::COMPLETED, Progress::TERMINATED])),
            ),
            (
                "nothing_after_terminated",
                p(&[I, Progress::TERMINATED]),
                Normal,
                vec![statement(EXPERIENCED, false)],
                Err((0, D::Cmi5AfterTerminated)),
            ),
            (
                "nothing_after_terminated_in_the_same_batch",
                p(&[I]),
                Normal,
                vec![defined(cmi5::VERB_TERMINATED), statement(EXPERIENCED, false)],
                Err((1, D::Cmi5AfterTerminated)),
            ),
            (
                "cmi5_allowed_statements_between",
                p(&[I]),
                Normal,
                vec![statement(EXPERIENCED, false), statement(cmi5::VERB_COMPLETED, false)],
                Ok(I),
            ),
            (
                "cmi5_category_on_another_verb_is_refused",
                p(&[I]),
                Normal,
                vec![defined(EXPERIENCED)],
                Err((0, D::Cmi5VerbUnknown)),
            ),
            (
                "browse_mode_allows_initialized_and_terminated",
                p(&[]),
                Browse,
                vec![defined(cmi5::VERB_INITIALIZED), statement(EXPERIENCED, false), defined(cmi5::VERB_TERMINATED)],
                Ok(p(&[I, Progress::TERMINATED])),
            ),
            (
                "browse_mode_refuses_completed",
                p(&[I]),
                Browse,
                vec![defined(cmi5::VERB_COMPLETED)],
                Err((0, D::Cmi5LaunchMode)),
            ),
            (
                "review_mode_refuses_passed",
                p(&[I]),
                Review,
                vec![defined(cmi5::VERB_PASSED)],
                Err((0, D::Cmi5LaunchMode)),
            ),
            (
                "a_resumed_session_is_not_judged_for_initialized",
                p(&[Progress::RESUMED]),
                Normal,
                vec![defined(cmi5::VERB_PASSED)],
                Ok(p(&[Progress::RESUMED, Progress::PASSED])),
            ),
            (
                "a_resumed_session_still_ends_at_terminated",
                p(&[Progress::RESUMED, Progress::TERMINATED]),
                Normal,
                vec![statement(EXPERIENCED, false)],
                Err((0, D::Cmi5AfterTerminated)),
            ),
        ];
        for (rule, progress, mode, statements, want) in table {
            let got = advance(progress, mode, &statements).map_err(|w| (w.index, w.denial));
            assert_eq!(got, want, "{rule}");
        }
    }

    #[test]
    fn launch_mode_spellings_are_exact() {
        for mode in [LaunchMode::Normal, LaunchMode::Browse, LaunchMode::Review] {
            assert_eq!(mode.as_str().parse::<LaunchMode>(), Ok(mode));
        }
        assert!("normal".parse::<LaunchMode>().is_err());
        assert!("Normal ".parse::<LaunchMode>().is_err());
    }
}
