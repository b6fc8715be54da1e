//! The tenants file: one or many tenants, validated whole. A bad file is refused whole.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::names::{HostName, LrsUserName, NodeWeight, TenantId};
use super::{read_toml, ConfigError};
use crate::auth::apikey::{self, ApiKey};
use crate::auth::keys::MIN_HS256_SECRET_BYTES;
use crate::policy::cors::{parse_origin, AllowedOrigins, CorsPolicy};
use crate::policy::{CourseActivities, CourseCatalog, TenantRules};
use crate::session::store::SessionLimits;
use crate::xapi::{course_structure, iri::is_absolute_iri};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    #[serde(default)]
    pub tenant: Vec<TenantEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    pub id: String,
    /// `active` (default) or `suspended` (every request refused, 403 `tenant_suspended`).
    pub status: Option<String>,
    pub hosts: Vec<String>,
    /// The edge's origin as content sees it (`https://lrs.example`): fetch URLs are built on it.
    pub public_origin: Option<String>,
    /// TLS certificates for the edge's TLS listener, chosen by SNI, one per host.
    #[serde(default)]
    pub tls: Vec<TlsEntry>,
    #[serde(default)]
    pub policy: PolicyEntry,
    #[serde(default)]
    pub sessions: SessionsEntry,
    #[serde(default)]
    pub cors: CorsEntry,
    /// Course structures for the course scope.
    #[serde(default)]
    pub course: Vec<CourseEntry>,
    pub max_body_bytes: Option<usize>,
    pub upstream: UpstreamEntry,
    pub signing: SigningEntry,
    #[serde(default)]
    pub tokens: TokensEntry,
    #[serde(default)]
    pub lms: LmsEntry,
    #[serde(default)]
    pub limits: RateLimitsEntry,
}

/// Per-tenant rate limits, in requests per second; absent: unlimited.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsEntry {
    /// Every authenticated edge request of the tenant.
    pub edge_requests_per_second: Option<u32>,
    /// Edge requests of one session token.
    pub edge_requests_per_second_per_token: Option<u32>,
    /// Token service requests of one LMS API key.
    pub token_requests_per_second_per_api_key: Option<u32>,
}

/// Per-tenant policy switches; each defaults to the safe reading (see `TenantRules`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// `decode` (default) or `refuse`.
    pub alternate_syntax: Option<String>,
    pub cmi5_other_objects: Option<bool>,
    pub require_session_id: Option<bool>,
    pub learner_preferences_writes: Option<bool>,
    pub activity_profile_writes: Option<bool>,
    pub cmi5_session_rules: Option<bool>,
}

/// One course: a cmi5 course structure file (`cmi5.xml`), or its activity ids listed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseEntry {
    /// A path to the course's `cmi5.xml`, relative to the tenants file.
    pub structure: Option<String>,
    /// Or: the course id and its activity ids.
    pub id: Option<String>,
    #[serde(default)]
    pub activities: Vec<String>,
}

/// A host's certificate chain and private key (PEM): as files beside the tenants file, or the
/// PEM text itself (as the Postgres source gives it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsEntry {
    pub host: String,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub cert_pem: Option<String>,
    pub key_pem: Option<String>,
}

/// An LRS node: its base URL, or the URL with a balancing weight.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum NodeEntry {
    Url(String),
    Weighted(WeightedNode),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedNode {
    pub url: String,
    /// Wide enough that an out-of-range value is refused by `NodeWeight` with its reason,
    /// not by the TOML number type.
    pub weight: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntry {
    /// LRS base URLs, each with its xAPI base path (`http://10.0.0.5:8080/xapi`), or
    /// `{ url = …, weight = 1..1000 }`.
    pub nodes: Vec<NodeEntry>,
    pub username: String,
    pub password: String,
    /// The active probe of these nodes: `tcp` (default) or `http` (`GET <base>/about`, 200).
    #[serde(default)]
    pub health_check: Option<String>,
    /// This tenant's timeouts, over the server's `[upstream]` ones.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Until the first response byte, and between later reads.
    #[serde(default)]
    pub read_timeout_ms: Option<u64>,
    /// From the first attempt to the last response byte, retries included.
    #[serde(default)]
    pub total_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningEntry {
    pub algorithms: Option<Vec<String>>,
    pub secret: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensEntry {
    pub default_ttl_seconds: Option<u64>,
    pub max_ttl_seconds: Option<u64>,
}

/// Session lifetime and the cmi5 fetch URL (defaults in `SessionLimits`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsEntry {
    pub max_seconds: Option<u64>,
    pub terminated_grace_seconds: Option<u64>,
    pub fetch_ttl_seconds: Option<u64>,
}

/// Browser origins allowed to call the edge (default: none).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsEntry {
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub max_age_seconds: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmsEntry {
    #[serde(default)]
    pub api_key_hashes: Vec<String>,
    /// Keys with an expiry: `{ hash = "sha256:…", expires_at = <Unix seconds> }`.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    pub hash: String,
    pub expires_at: Option<u64>,
}

/// One LRS node, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeSpec {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The base path without a trailing slash (`/xapi`, or empty).
    pub base_path: String,
    /// Share of requests relative to the other nodes (default 1).
    pub weight: NodeWeight,
    /// How the node is probed (the tenant's `upstream.health_check`).
    pub probe: crate::upstream::health::ProbeKind,
}

/// A tenant's own upstream timeouts; `None`: the server's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamOverrides {
    pub connect: Option<std::time::Duration>,
    pub read: Option<std::time::Duration>,
    pub total: Option<std::time::Duration>,
}

/// A host's certificate chain and key, PEM, checked to parse and to belong together.
#[derive(Clone)]
pub struct TlsSpec {
    pub host: HostName,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A tenant's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    Active,
    /// Every request refused (403 `tenant_suspended`), tokens included.
    Suspended,
}

/// A validated tenant, before runtime objects (keys, load balancer) are built from it.
#[derive(Clone)]
pub struct TenantSpec {
    pub id: TenantId,
    pub status: TenantStatus,
    pub hosts: Vec<HostName>,
    pub nodes: Vec<NodeSpec>,
    pub lrs_username: LrsUserName,
    pub lrs_password: String,
    pub secret: Vec<u8>,
    /// Default 3600 s.
    pub default_ttl_seconds: u64,
    /// Default 28800 s (8 h).
    pub max_ttl_seconds: u64,
    pub api_key_hashes: Vec<ApiKey>,
    /// Falls back to the server's `limits.max_body_bytes`.
    pub max_body_bytes: Option<usize>,
    pub rules: TenantRules,
    pub courses: CourseCatalog,
    /// `scheme://host[:port]`, normalised; `None`: no cmi5 delivery for this tenant.
    pub public_origin: Option<String>,
    pub sessions: SessionLimits,
    pub cors: CorsPolicy,
    pub tls: Vec<TlsSpec>,
    pub rate_limits: crate::rate_limit::RateLimits,
    pub upstream_timeouts: UpstreamOverrides,
}

impl std::fmt::Debug for TenantSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSpec").field("id", &self.id).field("hosts", &self.hosts).finish_non_exhaustive()
    }
}

/// Load and validate a tenants file.
pub fn load(file: &Path) -> Result<Vec<TenantSpec>, ConfigError> {
    let raw: TenantsFile = read_toml(file)?;
    validate(file, raw)
}

/// Validate one tenant from another source (Postgres) with the same rules as the file; `source`
/// names where it came from in errors.
pub fn validate_one(source: &Path, entry: TenantEntry) -> Result<TenantSpec, ConfigError> {
    let id = entry.id.clone();
    tenant_spec(source, &|key: &str| format!("tenant[{id}].{key}"), entry)
}

/// Validate a whole tenants file; the first problem refuses it.
pub fn validate(file: &Path, raw: TenantsFile) -> Result<Vec<TenantSpec>, ConfigError> {
    if raw.tenant.is_empty() {
        return Err(ConfigError::new(file, None, "no [[tenant]] defined"));
    }
    let mut ids = HashSet::new();
    let mut hosts: HashMap<HostName, TenantId> = HashMap::new();
    let mut specs = Vec::with_capacity(raw.tenant.len());
    for (i, entry) in raw.tenant.into_iter().enumerate() {
        let at = |key: &str| format!("tenant[{i}].{key}");
        // A file tenant without a host could never be reached; in Postgres a tenant may exist
        // before its hosts (or between moving them), so only the file insists.
        if entry.hosts.is_empty() {
            return Err(ConfigError::new(file, at("hosts"), "at least one host is required"));
        }
        let spec = tenant_spec(file, &at, entry)?;
        if !ids.insert(spec.id.clone()) {
            return Err(ConfigError::new(file, at("id"), format!("tenant id \"{}\" is used twice", spec.id)));
        }
        for host in &spec.hosts {
            if let Some(owner) = hosts.insert(host.clone(), spec.id.clone()) {
                return Err(ConfigError::new(
                    file,
                    at("hosts"),
                    format!("host \"{host}\" is already served by tenant \"{owner}\""),
                ));
            }
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn tenant_spec(file: &Path, at: &dyn Fn(&str) -> String, e: TenantEntry) -> Result<TenantSpec, ConfigError> {
    let err = |key: &str, msg: String| ConfigError::new(file, at(key), msg);
    let id = TenantId::parse(&e.id).map_err(|m| err("id", m.0))?;
    let defaults = TenantRules::default();
    let rules = TenantRules {
        alternate_syntax: match e.policy.alternate_syntax.as_deref() {
            None | Some("decode") => true,
            Some("refuse") => false,
            Some(other) => {
                return Err(err(
                    "policy.alternate_syntax",
                    format!("unknown value \"{other}\" (known: decode, refuse)"),
                ))
            }
        },
        cmi5_other_objects: e.policy.cmi5_other_objects.unwrap_or(defaults.cmi5_other_objects),
        require_session_id: e.policy.require_session_id.unwrap_or(defaults.require_session_id),
        learner_preferences_writes: e.policy.learner_preferences_writes.unwrap_or(defaults.learner_preferences_writes),
        activity_profile_writes: e.policy.activity_profile_writes.unwrap_or(defaults.activity_profile_writes),
        cmi5_session_rules: e.policy.cmi5_session_rules.unwrap_or(defaults.cmi5_session_rules),
    };
    let mut courses = CourseCatalog::new();
    for (n, course) in e.course.into_iter().enumerate() {
        let key = format!("course[{n}]");
        let (id, activities) = course_activities(file, course).map_err(|m| err(&key, m))?;
        if courses.insert(id.clone(), std::sync::Arc::new(CourseActivities::new(activities))).is_some() {
            return Err(err(&key, format!("course \"{id}\" is defined twice")));
        }
    }
    let mut hosts = Vec::with_capacity(e.hosts.len());
    for host in &e.hosts {
        let h = HostName::parse(host).map_err(|m| err("hosts", m.0))?;
        if hosts.contains(&h) {
            return Err(err("hosts", format!("host \"{host}\" is listed twice")));
        }
        hosts.push(h);
    }
    if e.upstream.nodes.is_empty() {
        return Err(err("upstream.nodes", "at least one LRS node is required".into()));
    }
    let probe = match e.upstream.health_check.as_deref() {
        None => crate::upstream::health::ProbeKind::Tcp,
        Some(text) => crate::upstream::health::ProbeKind::parse(text)
            .ok_or_else(|| err("upstream.health_check", format!("unknown value \"{text}\" (known: tcp, http)")))?,
    };
    let mut upstream_timeouts = UpstreamOverrides::default();
    for (key, value, slot) in [
        ("connect_timeout_ms", e.upstream.connect_timeout_ms, &mut upstream_timeouts.connect),
        ("read_timeout_ms", e.upstream.read_timeout_ms, &mut upstream_timeouts.read),
        ("total_timeout_ms", e.upstream.total_timeout_ms, &mut upstream_timeouts.total),
    ] {
        match value {
            None => {}
            Some(ms @ 1..=3_600_000) => *slot = Some(std::time::Duration::from_millis(ms)),
            Some(_) => return Err(err(&format!("upstream.{key}"), "must be between 1 and 3600000".into())),
        }
    }
    let nodes = e
        .upstream
        .nodes
        .iter()
        .enumerate()
        .map(|(n, node)| {
            let (url, weight) = match node {
                NodeEntry::Url(url) => (url, NodeWeight::ONE),
                NodeEntry::Weighted(w) => {
                    (&w.url, NodeWeight::new(w.weight).map_err(|m| err(&format!("upstream.nodes[{n}].weight"), m.0))?)
                }
            };
            parse_node(url, weight)
                .map(|node| NodeSpec { probe, ..node })
                .map_err(|m| err(&format!("upstream.nodes[{n}]"), m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let lrs_username = LrsUserName::parse(&e.upstream.username).map_err(|m| err("upstream.username", m.0))?;
    let algorithms = e.signing.algorithms.unwrap_or_else(|| vec!["HS256".into()]);
    if let Some(bad) = algorithms.iter().find(|a| a.as_str() != "HS256") {
        return Err(err("signing.algorithms", format!("algorithm \"{bad}\" is not supported (supported: HS256)")));
    }
    if algorithms.is_empty() {
        return Err(err("signing.algorithms", "at least one algorithm is required".into()));
    }
    let secret = e.signing.secret.into_bytes();
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(err(
            "signing.secret",
            format!("secret is {} bytes; HS256 needs at least {MIN_HS256_SECRET_BYTES}", secret.len()),
        ));
    }
    let default_ttl_seconds = e.tokens.default_ttl_seconds.unwrap_or(3600);
    let max_ttl_seconds = e.tokens.max_ttl_seconds.unwrap_or(28_800);
    if default_ttl_seconds == 0 || default_ttl_seconds > max_ttl_seconds {
        return Err(err(
            "tokens.default_ttl_seconds",
            format!("must be between 1 and max_ttl_seconds ({max_ttl_seconds})"),
        ));
    }
    let bad_hash = |key: String| err(&key, "expected \"sha256:<64 hex digits>\" (see `lrsgate apikey new`)".into());
    let mut api_key_hashes = Vec::with_capacity(e.lms.api_key_hashes.len() + e.lms.api_keys.len());
    for (n, h) in e.lms.api_key_hashes.iter().enumerate() {
        let hash = apikey::parse_hash(h).ok_or_else(|| bad_hash(format!("lms.api_key_hashes[{n}]")))?;
        api_key_hashes.push(ApiKey { hash, expires_at: None });
    }
    for (n, k) in e.lms.api_keys.iter().enumerate() {
        let hash = apikey::parse_hash(&k.hash).ok_or_else(|| bad_hash(format!("lms.api_keys[{n}].hash")))?;
        api_key_hashes.push(ApiKey { hash, expires_at: k.expires_at });
    }
    if e.max_body_bytes == Some(0) {
        return Err(err("max_body_bytes", "must be greater than 0".into()));
    }
    let l = &e.limits;
    for (key, value) in [
        ("edge_requests_per_second", l.edge_requests_per_second),
        ("edge_requests_per_second_per_token", l.edge_requests_per_second_per_token),
        ("token_requests_per_second_per_api_key", l.token_requests_per_second_per_api_key),
    ] {
        if value == Some(0) {
            return Err(err(&format!("limits.{key}"), "must be greater than 0 (leave it out for no limit)".into()));
        }
    }
    let rate_limits = crate::rate_limit::RateLimits {
        edge_per_tenant: l.edge_requests_per_second,
        edge_per_token: l.edge_requests_per_second_per_token,
        token_service_per_api_key: l.token_requests_per_second_per_api_key,
    };
    let public_origin = match &e.public_origin {
        None => None,
        Some(text) => Some(parse_origin(text).ok_or_else(|| {
            err("public_origin", format!("\"{text}\" is not an origin (http(s)://host[:port], no path)"))
        })?),
    };
    let sessions = session_limits(&e.sessions).map_err(|(key, msg)| err(&format!("sessions.{key}"), msg))?;
    let cors = cors_policy(&e.cors).map_err(|(key, msg)| err(&format!("cors.{key}"), msg))?;
    let status = match e.status.as_deref() {
        None | Some("active") => TenantStatus::Active,
        Some("suspended") => TenantStatus::Suspended,
        Some(other) => return Err(err("status", format!("unknown status \"{other}\" (known: active, suspended)"))),
    };
    let mut tls = Vec::with_capacity(e.tls.len());
    for (n, entry) in e.tls.into_iter().enumerate() {
        let spec = tls_spec(file, entry, &hosts).map_err(|m| err(&format!("tls[{n}]"), m))?;
        if tls.iter().any(|t: &TlsSpec| t.host == spec.host) {
            return Err(err(&format!("tls[{n}]"), format!("host \"{}\" has two certificates", spec.host)));
        }
        tls.push(spec);
    }
    Ok(TenantSpec {
        status,
        tls,
        id,
        hosts,
        nodes,
        lrs_username,
        lrs_password: e.upstream.password,
        secret,
        default_ttl_seconds,
        max_ttl_seconds,
        api_key_hashes,
        max_body_bytes: e.max_body_bytes,
        rules,
        courses,
        public_origin,
        sessions,
        cors,
        rate_limits,
        upstream_timeouts,
    })
}

/// A host's certificate and key, read from files (relative to the tenants file) or given as
/// PEM, and checked: the chain parses, the key parses and matches the leaf certificate.
fn tls_spec(tenants_file: &Path, e: TlsEntry, hosts: &[HostName]) -> Result<TlsSpec, String> {
    let host = HostName::parse(&e.host).map_err(|m| m.0)?;
    if !hosts.contains(&host) {
        return Err(format!("host \"{}\" is not one of the tenant's hosts", e.host));
    }
    let dir = tenants_file.parent().unwrap_or(Path::new("."));
    let read = |path: &str| std::fs::read_to_string(dir.join(path)).map_err(|err| format!("cannot read {path}: {err}"));
    let cert_pem = match (e.cert_pem, e.cert_file) {
        (Some(pem), None) => pem,
        (None, Some(path)) => read(&path)?,
        _ => return Err("give cert_file or cert_pem (one of them)".into()),
    };
    let key_pem = match (e.key_pem, e.key_file) {
        (Some(pem), None) => pem,
        (None, Some(path)) => read(&path)?,
        _ => return Err("give key_file or key_pem (one of them)".into()),
    };
    crate::tenant::tls::CertifiedKey::parse(&cert_pem, &key_pem).map_err(|e| e.to_string())?;
    Ok(TlsSpec { host, cert_pem, key_pem })
}

/// The longest session a tenant may configure: a week.
const MAX_SESSION_SECONDS: u64 = 7 * 24 * 3600;

fn session_limits(e: &SessionsEntry) -> Result<SessionLimits, (&'static str, String)> {
    let defaults = SessionLimits::default();
    let limits = SessionLimits {
        max_seconds: e.max_seconds.unwrap_or(defaults.max_seconds),
        terminated_grace_seconds: e.terminated_grace_seconds.unwrap_or(defaults.terminated_grace_seconds),
        fetch_ttl_seconds: e.fetch_ttl_seconds.unwrap_or(defaults.fetch_ttl_seconds),
    };
    if limits.max_seconds == 0 || limits.max_seconds > MAX_SESSION_SECONDS {
        return Err(("max_seconds", format!("must be between 1 and {MAX_SESSION_SECONDS}")));
    }
    if limits.terminated_grace_seconds > limits.max_seconds {
        return Err(("terminated_grace_seconds", "must not exceed max_seconds".into()));
    }
    if limits.fetch_ttl_seconds == 0 || limits.fetch_ttl_seconds > limits.max_seconds {
        return Err(("fetch_ttl_seconds", "must be between 1 and max_seconds".into()));
    }
    Ok(limits)
}

/// The longest preflight cache a tenant may configure (browsers cap it lower anyway).
const MAX_CORS_MAX_AGE: u32 = 86_400;

fn cors_policy(e: &CorsEntry) -> Result<CorsPolicy, (&'static str, String)> {
    let origins = match e.allowed_origins.as_slice() {
        [] => AllowedOrigins::None,
        [star] if star == "*" => AllowedOrigins::Any,
        list => {
            let mut origins = Vec::with_capacity(list.len());
            for text in list {
                let origin = parse_origin(text).ok_or_else(|| {
                    let why = if text == "*" {
                        "\"*\" must stand alone"
                    } else {
                        "not an origin (http(s)://host[:port], no path)"
                    };
                    ("allowed_origins", format!("\"{text}\": {why}"))
                })?;
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
            AllowedOrigins::List(origins)
        }
    };
    let max_age_seconds = e.max_age_seconds.unwrap_or(CorsPolicy::default().max_age_seconds);
    if max_age_seconds > MAX_CORS_MAX_AGE {
        return Err(("max_age_seconds", format!("must be at most {MAX_CORS_MAX_AGE}")));
    }
    Ok(CorsPolicy { origins, max_age_seconds })
}

/// A course's id and activity ids, from its structure file or as listed.
fn course_activities(tenants_file: &Path, course: CourseEntry) -> Result<(String, Vec<String>), String> {
    match (course.structure, course.id) {
        (Some(structure), None) if course.activities.is_empty() => {
            let path = tenants_file.parent().unwrap_or(Path::new(".")).join(&structure);
            let xml = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let parsed = course_structure::parse(&xml).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((parsed.course_id, parsed.activity_ids))
        }
        (None, Some(id)) if !course.activities.is_empty() => {
            if let Some(bad) = std::iter::once(&id).chain(&course.activities).find(|a| !is_absolute_iri(a)) {
                return Err(format!("\"{bad}\" is not an absolute IRI"));
            }
            let mut activities = course.activities;
            activities.push(id.clone());
            Ok((id, activities))
        }
        _ => Err("give either structure (a cmi5.xml path) or id with activities".into()),
    }
}

pub fn parse_node(text: &str, weight: NodeWeight) -> Result<NodeSpec, String> {
    let url = url::Url::parse(text).map_err(|e| format!("\"{text}\" is not a URL: {e}"))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(format!("scheme \"{other}\" is not http or https")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("put the LRS credential in upstream.username/password, not in the URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("an LRS base URL has no query or fragment".into());
    }
    let host = url.host_str().ok_or("the URL has no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    Ok(NodeSpec {
        tls,
        host,
        port,
        base_path: url.path().trim_end_matches('/').to_owned(),
        weight,
        probe: crate::upstream::health::ProbeKind::Tcp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn tenant(id: &str, host: &str) -> String {
        format!(
            "[[tenant]]\nid = '{id}'\nhosts = ['{host}']\n[tenant.upstream]\nnodes = ['http://127.0.0.1:9000/xapi/']\n\
             username = 'u'\npassword = '${{LRS_PASSWORD}}'\n[tenant.signing]\nsecret = '{SECRET}'\n"
        )
    }

    fn load_text(text: &str) -> Result<Vec<TenantSpec>, ConfigError> {
        let file = Path::new("tenants.toml");
        let raw: TenantsFile = parse_toml(file, text, &|n| (n == "LRS_PASSWORD").then(|| "pw".into()))?;
        validate(file, raw)
    }

    fn key_of(text: &str) -> Option<String> {
        load_text(text).unwrap_err().key
    }

    #[test]
    fn valid_file_with_defaults() {
        let specs = load_text(&tenant("acme", "LRS.Acme.example")).unwrap();
        assert_eq!(specs[0].hosts, vec!["lrs.acme.example"]);
        assert_eq!(specs[0].lrs_password, "pw");
        assert_eq!(
            specs[0].nodes[0],
            NodeSpec {
                tls: false,
                host: "127.0.0.1".into(),
                port: 9000,
                base_path: "/xapi".into(),
                weight: NodeWeight::ONE,
                probe: crate::upstream::health::ProbeKind::Tcp
            }
        );
        assert_eq!((specs[0].default_ttl_seconds, specs[0].max_ttl_seconds), (3600, 28_800));
    }

    #[test]
    fn refusal_rules_name_the_key() {
        let short = tenant("a", "h").replace(SECRET, "too-short");
        let unset = tenant("a", "h").replace("LRS_PASSWORD", "NOT_SET_ANYWHERE");
        let unknown = tenant("a", "h").replace("[tenant.signing]", "[tenant.signing]\nkid = 'x'");
        let dup_host = format!("{}{}", tenant("a", "h"), tenant("b", "H"));
        let dup_id = format!("{}{}", tenant("a", "h1"), tenant("a", "h2"));
        let bad_alg = tenant("a", "h").replace("[tenant.signing]", "[tenant.signing]\nalgorithms = ['HS256', 'none']");
        let bad_scheme = tenant("a", "h").replace("http://127", "ftp://127");
        let bad_hash = tenant("a", "h") + "[tenant.lms]\napi_key_hashes = ['abc']\n";
        let bad_policy = tenant("a", "h") + "[tenant.policy]\nalternate_syntax = 'maybe'\n";
        let unknown_switch = tenant("a", "h") + "[tenant.policy]\nlenient = true\n";
        let bad_course = tenant("a", "h") + "[[tenant.course]]\nid = 'https://c'\n";
        let missing_structure = tenant("a", "h") + "[[tenant.course]]\nstructure = 'no/such/cmi5.xml'\n";
        let host_with_port = tenant("a", "h:8080");
        let bad_origin = tenant("a", "h").replace("hosts = ['h']", "hosts = ['h']\npublic_origin = 'https://h/xapi'");
        let star_in_list = tenant("a", "h") + "[tenant.cors]\nallowed_origins = ['*', 'https://c.example']\n";
        let null_origin = tenant("a", "h") + "[tenant.cors]\nallowed_origins = ['null']\n";
        let long_grace = tenant("a", "h") + "[tenant.sessions]\nmax_seconds = 60\nterminated_grace_seconds = 61\n";
        let zero_fetch_ttl = tenant("a", "h") + "[tenant.sessions]\nfetch_ttl_seconds = 0\n";
        let unknown_session_key = tenant("a", "h") + "[tenant.sessions]\nidle_seconds = 5\n";
        let zero_weight = tenant("a", "h").replace(
            "nodes = ['http://127.0.0.1:9000/xapi/']",
            "nodes = [{ url = 'http://127.0.0.1:9000/xapi/', weight = 0 }]",
        );
        let colon_user = tenant("a", "h").replace("username = 'u'", "username = 'u:x'");
        let empty_user = tenant("a", "h").replace("username = 'u'", "username = ''");
        let long_id = tenant(&"a".repeat(65), "h");
        let spaced_host = tenant("a", " h");
        let bad_ipv6 = tenant("a", "[h]");
        let table = [
            ("short_secret", short, "tenant[0].signing.secret"),
            ("unset_env", unset, "tenant[0].upstream.password"),
            ("unknown_key", unknown, "tenant[0].signing.kid"),
            ("duplicate_host", dup_host, "tenant[1].hosts"),
            ("duplicate_id", dup_id, "tenant[1].id"),
            ("unknown_algorithm", bad_alg, "tenant[0].signing.algorithms"),
            ("bad_scheme", bad_scheme, "tenant[0].upstream.nodes[0]"),
            ("bad_api_key_hash", bad_hash, "tenant[0].lms.api_key_hashes[0]"),
            ("unknown_alternate_syntax_value", bad_policy, "tenant[0].policy.alternate_syntax"),
            ("unknown_policy_switch", unknown_switch, "tenant[0].policy.lenient"),
            ("course_without_activities", bad_course, "tenant[0].course[0]"),
            ("course_structure_missing", missing_structure, "tenant[0].course[0]"),
            ("host_with_port", host_with_port, "tenant[0].hosts"),
            ("public_origin_with_path", bad_origin, "tenant[0].public_origin"),
            ("star_not_alone", star_in_list, "tenant[0].cors.allowed_origins"),
            ("null_origin", null_origin, "tenant[0].cors.allowed_origins"),
            ("grace_longer_than_session", long_grace, "tenant[0].sessions.terminated_grace_seconds"),
            ("zero_fetch_ttl", zero_fetch_ttl, "tenant[0].sessions.fetch_ttl_seconds"),
            ("unknown_sessions_key", unknown_session_key, "tenant[0].sessions.idle_seconds"),
            ("zero_weight", zero_weight, "tenant[0].upstream.nodes[0].weight"),
            ("colon_in_lrs_user", colon_user, "tenant[0].upstream.username"),
            ("empty_lrs_user", empty_user, "tenant[0].upstream.username"),
            ("tenant_id_too_long", long_id, "tenant[0].id"),
            ("host_with_space", spaced_host, "tenant[0].hosts"),
            ("bracketed_non_ipv6", bad_ipv6, "tenant[0].hosts"),
        ];
        for (rule, text, key) in table {
            assert_eq!(key_of(&text).as_deref(), Some(key), "{rule}");
        }
    }

    #[test]
    fn hosts_are_lower_cased_and_ipv6_literals_allowed() {
        let text = tenant("a", "LRS.Acme.Example")
            .replace("hosts = ['LRS.Acme.Example']", "hosts = ['LRS.Acme.Example', '[::1]']");
        let spec = &load_text(&text).unwrap()[0];
        assert_eq!(spec.hosts, vec!["lrs.acme.example", "[::1]"]);
        let weighted = tenant("a", "h").replace(
            "nodes = ['http://127.0.0.1:9000/xapi/']",
            "nodes = [{ url = 'http://127.0.0.1:9000/xapi/', weight = 1000 }]",
        );
        assert_eq!(load_text(&weighted).unwrap()[0].nodes[0].weight.get(), 1000);
    }

    #[test]
    fn policy_switches_and_listed_courses() {
        let text = tenant("a", "h")
            + "[tenant.policy]\nalternate_syntax = 'refuse'\nlearner_preferences_writes = true\n\
               [[tenant.course]]\nid = 'https://c/1'\nactivities = ['https://c/1/au/1']\n";
        let spec = &load_text(&text).unwrap()[0];
        assert!(!spec.rules.alternate_syntax && spec.rules.learner_preferences_writes);
        assert!(spec.rules.require_session_id, "unset switches keep their defaults");
        let course = &spec.courses["https://c/1"];
        assert!(course.contains("https://c/1/au/1") && course.contains("https://c/1"));
        assert_eq!(load_text(&tenant("a", "h")).unwrap()[0].rules, TenantRules::default());
    }

    #[test]
    fn sessions_cors_and_public_origin() {
        let spec = &load_text(&tenant("a", "h")).unwrap()[0];
        assert_eq!(
            (spec.sessions, spec.cors.clone(), spec.public_origin.clone()),
            (SessionLimits::default(), CorsPolicy::default(), None)
        );
        let text = tenant("a", "h").replace("hosts = ['h']", "hosts = ['h']\npublic_origin = 'HTTPS://LRS.Example/'")
            + "[tenant.sessions]\nmax_seconds = 7200\nterminated_grace_seconds = 5\nfetch_ttl_seconds = 30\n\
               [tenant.cors]\nallowed_origins = ['https://Content.example', 'https://content.example']\nmax_age_seconds = 60\n";
        let spec = &load_text(&text).unwrap()[0];
        assert_eq!(spec.public_origin.as_deref(), Some("https://lrs.example"));
        assert_eq!(
            spec.sessions,
            SessionLimits { max_seconds: 7200, terminated_grace_seconds: 5, fetch_ttl_seconds: 30 }
        );
        assert_eq!(spec.cors.origins, AllowedOrigins::List(vec!["https://content.example".into()]));
        assert_eq!(spec.cors.max_age_seconds, 60);
        let any = tenant("a", "h") + "[tenant.cors]\nallowed_origins = ['*']\n";
        assert_eq!(load_text(&any).unwrap()[0].cors.origins, AllowedOrigins::Any);
    }

    #[test]
    fn empty_file_is_refused() {
        assert!(load_text("").is_err());
    }
}
