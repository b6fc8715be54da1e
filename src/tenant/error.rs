//! Why a tenant, or a table of them, could not be loaded or built: one type that carries the
//! kind of failure and where it happened (the tenant, the host, the node), so the file source,
//! the Postgres source, `check-config` and the audit trail say the same thing, and callers and
//! tests tell kinds apart without reading messages.

use std::fmt;

use crate::config::ConfigError;
use crate::tenant::tls::CertificateError;
use crate::upstream::UpstreamError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The tenants file, or a tenant's rows, broke a validation rule: names the file (or
    /// source) and the key.
    Invalid(ConfigError),
    /// A row the tenant cannot do without is absent.
    Missing { tenant: String, what: &'static str },
    /// A sealed secret did not open, or opened to something that is not text.
    Secret { tenant: String, what: String, detail: String },
    /// An LRS node did not resolve, or its balancer could not be built.
    Upstream { tenant: String, error: UpstreamError },
    /// A host's certificate and key did not parse or do not belong together.
    Certificate { tenant: String, host: String, error: CertificateError },
    /// A host of the tenant is served by another tenant of the table.
    HostTaken { tenant: String, host: String },
    /// Two tenants of one table have the same id.
    DuplicateTenant { tenant: String },
    /// Postgres could not be read.
    Database(String),
    /// Postgres was unreachable, and the snapshot cache could not stand in for it.
    NoSnapshot { database: String, cache: String },
    /// The blocking task that reads the tenants file did not finish.
    Task(String),
}

impl LoadError {
    /// A stable word for the kind: the `kind` field of a refused tenant's log line.
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::Invalid(_) => "invalid",
            LoadError::Missing { .. } => "missing",
            LoadError::Secret { .. } => "secret",
            LoadError::Upstream { .. } => "upstream",
            LoadError::Certificate { .. } => "certificate",
            LoadError::HostTaken { .. } => "host_taken",
            LoadError::DuplicateTenant { .. } => "duplicate_tenant",
            LoadError::Database(_) => "database",
            LoadError::NoSnapshot { .. } => "no_snapshot",
            LoadError::Task(_) => "task",
        }
    }
}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> Self {
        LoadError::Invalid(e)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Invalid(e) => write!(f, "{e}"),
            LoadError::Missing { tenant, what } => write!(f, "tenant {tenant} has no {what}"),
            LoadError::Secret { tenant, what, detail } => write!(f, "tenant {tenant}: {what}: {detail}"),
            LoadError::Upstream { tenant, error } => write!(f, "tenant {tenant}: {error}"),
            LoadError::Certificate { tenant, host, error } => write!(f, "tenant {tenant}: TLS of {host}: {error}"),
            LoadError::HostTaken { tenant, host } => {
                write!(f, "host \"{host}\" of tenant \"{tenant}\" is served by another tenant")
            }
            LoadError::DuplicateTenant { tenant } => write!(f, "tenant \"{tenant}\" is defined twice"),
            LoadError::Database(detail) => write!(f, "loading tenants: {detail}"),
            LoadError::NoSnapshot { database, cache } => {
                write!(f, "{database}; and no snapshot cache to start from: {cache}")
            }
            LoadError::Task(detail) => write!(f, "loader task failed: {detail}"),
        }
    }
}

impl std::error::Error for LoadError {}
