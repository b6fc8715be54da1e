//! xAPI resources under the edge's `/xapi/` prefix, and the one normalisation of their paths.

/// The public prefix every xAPI resource lives under at the edge.
pub const XAPI_PREFIX: &str = "/xapi/";

/// An xAPI resource (Comm §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    About,
    Statements,
    /// A `more` continuation (`statements/more/...`): not judged yet, so refused.
    StatementsMore,
    ActivitiesState,
    ActivitiesProfile,
    Activities,
    AgentsProfile,
    Agents,
}

impl Resource {
    pub const ALL: [Resource; 8] = [
        Resource::About,
        Resource::Statements,
        Resource::StatementsMore,
        Resource::ActivitiesState,
        Resource::ActivitiesProfile,
        Resource::Activities,
        Resource::AgentsProfile,
        Resource::Agents,
    ];

    /// The path below the upstream base path. Rebuilt from the resource, never copied from
    /// the client, so the LRS sees exactly the resource that was judged.
    pub fn upstream_suffix(self) -> &'static str {
        match self {
            Resource::About => "about",
            Resource::Statements | Resource::StatementsMore => "statements",
            Resource::ActivitiesState => "activities/state",
            Resource::ActivitiesProfile => "activities/profile",
            Resource::Activities => "activities",
            Resource::AgentsProfile => "agents/profile",
            Resource::Agents => "agents",
        }
    }

    /// A short stable name for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Resource::About => "about",
            Resource::Statements => "statements",
            Resource::StatementsMore => "statements_more",
            Resource::ActivitiesState => "state",
            Resource::ActivitiesProfile => "activity_profile",
            Resource::Activities => "activities",
            Resource::AgentsProfile => "agent_profile",
            Resource::Agents => "agents",
        }
    }
}

/// Why a path does not name an xAPI resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// Percent-encoding, dot segments or empty inner segments: ambiguous between us and the LRS.
    BadPath,
    /// Well-formed, but no xAPI resource.
    Unknown,
}

/// Resolve a request path (no query) to a resource.
///
/// The slashes right after the prefix are collapsed once (`/xapi//statements`, seen from AUs
/// whose endpoint ends in `/`); anything else that a server might read two ways is refused.
pub fn resolve(path: &str) -> Result<Resource, RouteError> {
    let rest = path.strip_prefix(XAPI_PREFIX).ok_or(RouteError::Unknown)?.trim_start_matches('/');
    if path.contains('%') || path.contains('\\') {
        return Err(RouteError::BadPath);
    }
    if rest.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(RouteError::BadPath);
    }
    Ok(match rest {
        "about" => Resource::About,
        "statements" => Resource::Statements,
        "activities/state" => Resource::ActivitiesState,
        "activities/profile" => Resource::ActivitiesProfile,
        "activities" => Resource::Activities,
        "agents/profile" => Resource::AgentsProfile,
        "agents" => Resource::Agents,
        more if more.starts_with("statements/more/") => Resource::StatementsMore,
        _ if rest.contains("//") => return Err(RouteError::BadPath),
        _ => return Err(RouteError::Unknown),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_resources() {
        let table = [
            ("/xapi/statements", Ok(Resource::Statements)),
            ("/xapi//statements", Ok(Resource::Statements)),
            ("/xapi/about", Ok(Resource::About)),
            ("/xapi/activities/state", Ok(Resource::ActivitiesState)),
            ("/xapi/agents/profile", Ok(Resource::AgentsProfile)),
            ("/xapi/statements/more/abc", Ok(Resource::StatementsMore)),
            ("/xapi/statements/", Err(RouteError::Unknown)),
            ("/xapi/Statements", Err(RouteError::Unknown)),
            ("/statements", Err(RouteError::Unknown)),
            ("/xapi/%73tatements", Err(RouteError::BadPath)),
            ("/xapi/./statements", Err(RouteError::BadPath)),
            ("/xapi/activities/../statements", Err(RouteError::BadPath)),
            ("/xapi/activities//state", Err(RouteError::BadPath)),
        ];
        for (path, want) in table {
            assert_eq!(resolve(path), want, "{path}");
        }
    }
}
