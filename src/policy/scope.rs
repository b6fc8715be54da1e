//! Read and write scopes a session token can carry.

use std::fmt;
use std::str::FromStr;

/// A scope, for reads or for writes. Unknown names are refused where tokens are issued and
/// where they are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One actor, one activity, one registration: the default.
    ActorActivityRegistration,
    /// Any AU of the course, this registration.
    ActorCourseRegistration,
    /// One actor and activity, every registration.
    ActorActivityAllRegistrations,
    /// A team: a Group identified by IFI that the actor belongs to.
    GroupActivityRegistration,
    /// The actor's own statements in any course; read only.
    ActorCrossCourseCertification,
    /// Nothing at all (`false`).
    Nothing,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::ActorActivityRegistration,
        Scope::ActorCourseRegistration,
        Scope::ActorActivityAllRegistrations,
        Scope::GroupActivityRegistration,
        Scope::ActorCrossCourseCertification,
        Scope::Nothing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ActorActivityRegistration => "actor-activity-registration-scoped",
            Scope::ActorCourseRegistration => "actor-course-registration-scoped",
            Scope::ActorActivityAllRegistrations => "actor-activity-all-registrations",
            Scope::GroupActivityRegistration => "group-activity-registration-scoped",
            Scope::ActorCrossCourseCertification => "actor-cross-course-certification",
            Scope::Nothing => "false",
        }
    }

    /// Whether this scope pins the registration to the token's (it is forced onto queries).
    pub fn pins_registration(self) -> bool {
        !matches!(self, Scope::ActorActivityAllRegistrations | Scope::ActorCrossCourseCertification)
    }

    /// Whether this scope may be granted for writes (certification reads only).
    pub fn allows_writes(self) -> bool {
        self != Scope::ActorCrossCourseCertification
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown scope name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert!("actor-activity-registration-scoped ".parse::<Scope>().is_err());
        assert!("all".parse::<Scope>().is_err());
        assert!("FALSE".parse::<Scope>().is_err());
    }
}
