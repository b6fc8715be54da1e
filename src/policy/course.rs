//! The activities that belong to a course, for the course scope.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The activity ids of one course: the course, its blocks and AUs (from a cmi5 course
/// structure), or the AU activity ids the LMS listed in the token request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CourseActivities {
    ids: HashSet<String>,
}

impl CourseActivities {
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        CourseActivities { ids: ids.into_iter().collect() }
    }

    /// Exact IRI equality; a prefix is not membership.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The course structures a tenant registered, by course id.
pub type CourseCatalog = HashMap<String, Arc<CourseActivities>>;
