//! How far each scope reaches: which actors, registrations and activities it covers. Every
//! resource's judgement asks these questions, so a scope means the same thing everywhere.

use uuid::Uuid;

use super::denial::PolicyDenial;
use super::grant::Grant;
use super::scope::Scope;
use crate::xapi::agent::{Actor, Ifi};

/// Whether a request reads or writes; the token's read or write scope applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

impl Grant {
    /// The scope for this direction, if it can be used at all: `false` refuses everything, and
    /// the course scope refuses everything while the course's activities are unknown.
    pub fn usable_scope(&self, direction: Direction) -> Result<Scope, PolicyDenial> {
        let scope = match direction {
            Direction::Read => self.read,
            Direction::Write => self.write,
        };
        match scope {
            Scope::Nothing => Err(PolicyDenial::ScopeDenies),
            Scope::ActorCourseRegistration if self.course.is_none() => Err(PolicyDenial::CourseUnknown),
            Scope::GroupActivityRegistration if self.group.is_none() => Err(PolicyDenial::ScopeDenies),
            scope => Ok(scope),
        }
    }

    /// Whether `actor` may appear as a statement's actor. Writes: the learner, or under the group
    /// scope the team itself (by its IFI, never its name or member list). Reads under the group
    /// scope also see teammates' statements made as that team (`context.team`).
    pub fn actor_in_scope(&self, scope: Scope, direction: Direction, actor: &Actor, team: Option<&Ifi>) -> bool {
        let own = matches!(actor, Actor::Agent(ifi) if *ifi == self.actor);
        if scope != Scope::GroupActivityRegistration {
            return own;
        }
        let Some(group) = &self.group else { return false };
        let as_team = matches!(actor, Actor::Group { ifi: Some(ifi), .. } if ifi == group);
        own || as_team || (direction == Direction::Read && team == Some(group))
    }

    /// Whether a statement's `context.registration` is covered. Writes always need one (cmi5
    /// §9.6.1); only the all-registrations and certification scopes accept another.
    pub fn registration_in_scope(&self, scope: Scope, direction: Direction, registration: Option<Uuid>) -> bool {
        match scope {
            Scope::ActorActivityAllRegistrations | Scope::ActorCrossCourseCertification => {
                direction == Direction::Read || registration.is_some()
            }
            _ => registration == Some(self.registration),
        }
    }

    /// Whether the activity `id` is covered. Under the course scope an activity belongs to the
    /// course when the course lists it, or when the statement's grouping names one of the
    /// course's AUs (cmi5 puts the publisher AU id there, §9.6.2.3, while the launch activity
    /// id is the LMS's own).
    pub fn activity_in_scope(&self, scope: Scope, id: &str, grouping: &[String]) -> bool {
        match scope {
            Scope::ActorCrossCourseCertification => true,
            Scope::ActorCourseRegistration => {
                id == self.activity_id
                    || self.course.as_ref().is_some_and(|c| c.contains(id) || grouping.iter().any(|g| c.contains(g)))
            }
            Scope::Nothing => false,
            _ => id == self.activity_id,
        }
    }
}
