//! What operators do to tenants in Postgres mode, in one place: the admin API and the CLI both
//! call these. Each checks its input (so the error says what to fix) and writes rows; the
//! schema's triggers then NOTIFY every instance, which reloads the tenant.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::GenericClient;

use crate::auth::apikey;
use crate::config::names::{HostName, LrsUserName, NodeWeight, TenantId};
use crate::config::tenants::parse_node;
use crate::policy::cors::parse_origin;
use crate::secrets::{place, MasterKeys};
use crate::session::store::learner_key;
use crate::tenant::tls::CertifiedKey;
use crate::token_service::request::{EndRequest, EndTarget};
use serde_json::json;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpsError {
    NotFound(String),
    Conflict(String),
    Invalid(String),
    Database(String),
}

impl fmt::Display for OpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpsError::NotFound(m) | OpsError::Conflict(m) | OpsError::Invalid(m) => f.write_str(m),
            OpsError::Database(m) => write!(f, "database: {m}"),
        }
    }
}

impl From<tokio_postgres::Error> for OpsError {
    fn from(e: tokio_postgres::Error) -> Self {
        let detail = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string());
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => OpsError::Conflict(format!("already exists: {detail}")),
            Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => OpsError::NotFound(format!("no such tenant: {detail}")),
            Some(c) if *c == SqlState::CHECK_VIOLATION => OpsError::Invalid(format!("not allowed: {detail}")),
            _ => OpsError::Database(detail),
        }
    }
}

type Result<T> = std::result::Result<T, OpsError>;

fn invalid(msg: impl Into<String>) -> OpsError {
    OpsError::Invalid(msg.into())
}

// Each check is the one rule of `config::names`, shared with the tenants file and the Postgres
// source, so the admin API never stores what a reload would refuse.

fn check_tenant_id(id: &str) -> Result<()> {
    TenantId::parse(id).map(drop).map_err(|e| invalid(e.0))
}

fn check_host(host: &str) -> Result<String> {
    HostName::parse(host).map(HostName::into_string).map_err(|e| invalid(e.0))
}

fn check_upstream(url: &str, weight: i32) -> Result<()> {
    let weight = NodeWeight::new(i64::from(weight)).map_err(|e| invalid(e.0))?;
    parse_node(url, weight).map(drop).map_err(|e| invalid(format!("upstream url: {e}")))
}

fn check_lrs_username(name: &str) -> Result<()> {
    LrsUserName::parse(name).map(drop).map_err(|e| invalid(e.0))
}

fn random_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn require_tenant(client: &impl GenericClient, id: &str) -> Result<()> {
    let found = client.query_opt("SELECT 1 FROM tenants WHERE id = $1", &[&id]).await?;
    found.map(|_| ()).ok_or_else(|| OpsError::NotFound(format!("no tenant \"{id}\"")))
}

/// A new tenant: its id, where it is served, its LRS, and the edge's public origin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub id: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub upstreams: Vec<NewUpstream>,
    pub lrs_username: String,
    pub lrs_password: String,
    pub public_origin: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpstream {
    pub url: String,
    #[serde(default = "one")]
    pub weight: i32,
}

fn one() -> i32 {
    1
}

/// Create a tenant with a fresh random signing secret, in one transaction.
pub async fn create_tenant(
    client: &mut tokio_postgres::Client,
    master: &MasterKeys,
    t: &NewTenant,
) -> Result<TenantView> {
    check_tenant_id(&t.id)?;
    let hosts = t.hosts.iter().map(|h| check_host(h)).collect::<Result<Vec<_>>>()?;
    for u in &t.upstreams {
        check_upstream(&u.url, u.weight)?;
    }
    let origin = t.public_origin.as_deref().map(normalise_origin).transpose()?;
    check_lrs_username(&t.lrs_username)?;
    let tx = client.transaction().await?;
    tx.execute("INSERT INTO tenants (id, public_origin) VALUES ($1, $2)", &[&t.id, &origin]).await?;
    for host in &hosts {
        tx.execute("INSERT INTO tenant_hosts (host, tenant_id) VALUES ($1, $2)", &[host, &t.id]).await?;
    }
    for u in &t.upstreams {
        tx.execute(
            "INSERT INTO upstream_nodes (tenant_id, url, weight) VALUES ($1, $2, $3)",
            &[&t.id, &u.url, &u.weight],
        )
        .await?;
    }
    let (password, kid) = master.seal(&place::lrs_password(&t.id), t.lrs_password.as_bytes());
    tx.execute(
        "INSERT INTO lrs_credentials (tenant_id, username, password_enc, key_id) VALUES ($1, $2, $3, $4)",
        &[&t.id, &t.lrs_username, &password, &kid],
    )
    .await?;
    let (secret, kid) = master.seal(&place::signing_secret(&t.id), random_secret().as_bytes());
    tx.execute("INSERT INTO signing_keys (tenant_id, secret_enc, key_id) VALUES ($1, $2, $3)", &[&t.id, &secret, &kid])
        .await?;
    tx.commit().await?;
    show_tenant(&*client, &t.id).await
}

fn normalise_origin(text: &str) -> Result<String> {
    parse_origin(text).ok_or_else(|| invalid(format!("\"{text}\" is not an origin (http(s)://host[:port], no path)")))
}

/// A tenant as operators see it (no secret, no key hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TenantView {
    pub id: String,
    pub status: String,
    pub public_origin: Option<String>,
    pub hosts: Vec<String>,
    pub upstreams: Vec<UpstreamView>,
    pub lrs_username: Option<String>,
    pub api_keys: Vec<ApiKeyView>,
    pub cors_origins: Vec<String>,
    pub certificates: Vec<String>,
    /// Requests per second (`null`: unlimited), as `PATCH /tenants/{id}` names them.
    pub rate_limits: RateLimitsView,
    /// The active probe and timeouts (`null`: the server's), as `PATCH /tenants/{id}` names them.
    pub upstream: UpstreamSettingsView,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UpstreamSettingsView {
    pub upstream_health_check: Option<String>,
    pub upstream_connect_timeout_ms: Option<i64>,
    pub upstream_read_timeout_ms: Option<i64>,
    pub upstream_total_timeout_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RateLimitsView {
    pub edge_requests_per_second: Option<i64>,
    pub edge_requests_per_second_per_token: Option<i64>,
    pub token_requests_per_second_per_api_key: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UpstreamView {
    pub id: i64,
    pub url: String,
    pub weight: i32,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ApiKeyView {
    pub id: i64,
    pub description: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

/// Tenants with their status and hosts.
pub async fn list_tenants(client: &impl GenericClient) -> Result<Vec<serde_json::Value>> {
    let rows = client
        .query(
            "SELECT t.id, t.status, coalesce(array_agg(h.host ORDER BY h.host) FILTER (WHERE h.host IS NOT NULL), '{}')
             FROM tenants t LEFT JOIN tenant_hosts h ON h.tenant_id = t.id GROUP BY t.id ORDER BY t.id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let hosts: Vec<String> = r.get(2);
            serde_json::json!({"id": r.get::<_, String>(0), "status": r.get::<_, String>(1), "hosts": hosts})
        })
        .collect())
}

pub async fn show_tenant(client: &impl GenericClient, id: &str) -> Result<TenantView> {
    let row = client
        .query_opt(
            "SELECT status, public_origin, edge_requests_per_second, edge_requests_per_second_per_token,
                    token_requests_per_second_per_api_key, upstream_health_check, upstream_connect_timeout_ms,
                    upstream_read_timeout_ms, upstream_total_timeout_ms
             FROM tenants WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| OpsError::NotFound(format!("no tenant \"{id}\"")))?;
    let strings = |sql: &'static str| async move {
        Ok::<Vec<String>, OpsError>(client.query(sql, &[&id]).await?.iter().map(|r| r.get(0)).collect())
    };
    let upstreams = client
        .query("SELECT id, url, weight FROM upstream_nodes WHERE tenant_id = $1 ORDER BY id", &[&id])
        .await?
        .iter()
        .map(|r| UpstreamView { id: r.get(0), url: r.get(1), weight: r.get(2) })
        .collect();
    let api_keys = client
        .query(
            "SELECT id, description, extract(epoch FROM created_at)::bigint, extract(epoch FROM expires_at)::bigint,
                    revoked_at IS NOT NULL
             FROM lms_api_keys WHERE tenant_id = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| ApiKeyView {
            id: r.get(0),
            description: r.get(1),
            created_at: r.get(2),
            expires_at: r.get(3),
            revoked: r.get(4),
        })
        .collect();
    let lrs_username =
        client.query_opt("SELECT username FROM lrs_credentials WHERE tenant_id = $1", &[&id]).await?.map(|r| r.get(0));
    Ok(TenantView {
        id: id.to_owned(),
        status: row.get(0),
        public_origin: row.get(1),
        hosts: strings("SELECT host FROM tenant_hosts WHERE tenant_id = $1 ORDER BY host").await?,
        upstreams,
        lrs_username,
        api_keys,
        cors_origins: strings("SELECT origin FROM cors_origins WHERE tenant_id = $1 ORDER BY origin").await?,
        certificates: strings("SELECT host FROM tls_certificates WHERE tenant_id = $1 ORDER BY host").await?,
        rate_limits: RateLimitsView {
            edge_requests_per_second: row.get(2),
            edge_requests_per_second_per_token: row.get(3),
            token_requests_per_second_per_api_key: row.get(4),
        },
        upstream: UpstreamSettingsView {
            upstream_health_check: row.get(5),
            upstream_connect_timeout_ms: row.get(6),
            upstream_read_timeout_ms: row.get(7),
            upstream_total_timeout_ms: row.get(8),
        },
    })
}

/// Suspend (`suspended`) or resume (`active`) a tenant.
pub async fn set_status(client: &impl GenericClient, id: &str, status: &str) -> Result<()> {
    if !matches!(status, "active" | "suspended") {
        return Err(invalid(format!("unknown status \"{status}\" (known: active, suspended)")));
    }
    let n = client.execute("UPDATE tenants SET status = $2, updated_at = now() WHERE id = $1", &[&id, &status]).await?;
    (n == 1).then_some(()).ok_or_else(|| OpsError::NotFound(format!("no tenant \"{id}\"")))
}

pub async fn set_public_origin(client: &impl GenericClient, id: &str, origin: Option<&str>) -> Result<()> {
    let origin = origin.map(normalise_origin).transpose()?;
    let n = client
        .execute("UPDATE tenants SET public_origin = $2, updated_at = now() WHERE id = $1", &[&id, &origin])
        .await?;
    (n == 1).then_some(()).ok_or_else(|| OpsError::NotFound(format!("no tenant \"{id}\"")))
}

pub async fn delete_tenant(client: &impl GenericClient, id: &str) -> Result<()> {
    let n = client.execute("DELETE FROM tenants WHERE id = $1", &[&id]).await?;
    (n == 1).then_some(()).ok_or_else(|| OpsError::NotFound(format!("no tenant \"{id}\"")))
}

pub async fn add_host(client: &impl GenericClient, tenant: &str, host: &str) -> Result<String> {
    let host = check_host(host)?;
    require_tenant(client, tenant).await?;
    client.execute("INSERT INTO tenant_hosts (host, tenant_id) VALUES ($1, $2)", &[&host, &tenant]).await?;
    Ok(host)
}

pub async fn remove_host(client: &impl GenericClient, tenant: &str, host: &str) -> Result<()> {
    let host = check_host(host)?;
    let n = client.execute("DELETE FROM tenant_hosts WHERE host = $1 AND tenant_id = $2", &[&host, &tenant]).await?;
    (n == 1).then_some(()).ok_or_else(|| OpsError::NotFound(format!("tenant \"{tenant}\" has no host \"{host}\"")))
}

pub async fn add_upstream(client: &impl GenericClient, tenant: &str, url: &str, weight: i32) -> Result<i64> {
    check_upstream(url, weight)?;
    require_tenant(client, tenant).await?;
    let row = client
        .query_one(
            "INSERT INTO upstream_nodes (tenant_id, url, weight) VALUES ($1, $2, $3) RETURNING id",
            &[&tenant, &url, &weight],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn remove_upstream(client: &impl GenericClient, tenant: &str, node_id: i64) -> Result<()> {
    let n = client.execute("DELETE FROM upstream_nodes WHERE id = $1 AND tenant_id = $2", &[&node_id, &tenant]).await?;
    (n == 1).then_some(()).ok_or_else(|| OpsError::NotFound(format!("tenant \"{tenant}\" has no upstream {node_id}")))
}

pub async fn set_lrs_credential(
    client: &impl GenericClient,
    master: &MasterKeys,
    tenant: &str,
    username: &str,
    password: &str,
) -> Result<()> {
    check_lrs_username(username)?;
    require_tenant(client, tenant).await?;
    let (sealed, kid) = master.seal(&place::lrs_password(tenant), password.as_bytes());
    client
        .execute(
            "INSERT INTO lrs_credentials (tenant_id, username, password_enc, key_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id) DO UPDATE SET username = $2, password_enc = $3, key_id = $4",
            &[&tenant, &username, &sealed, &kid],
        )
        .await?;
    Ok(())
}

/// A new LMS API key: (id, key). The key is returned once; only its hash is stored.
pub async fn create_api_key(
    client: &impl GenericClient,
    tenant: &str,
    description: &str,
    expires_in_days: Option<u32>,
) -> Result<(i64, String)> {
    require_tenant(client, tenant).await?;
    let (key, _) = apikey::generate();
    let hash = apikey::hash_key(&key).to_vec();
    let days = expires_in_days.map(i64::from);
    let row = client
        .query_one(
            "INSERT INTO lms_api_keys (tenant_id, key_hash, description, expires_at)
             VALUES ($1, $2, $3, CASE WHEN $4::bigint IS NULL THEN NULL ELSE now() + make_interval(days => $4::bigint::int) END)
             RETURNING id",
            &[&tenant, &hash, &description, &days],
        )
        .await?;
    Ok((row.get(0), key))
}

pub async fn revoke_api_key(client: &impl GenericClient, tenant: &str, key_id: i64) -> Result<()> {
    let n = client
        .execute(
            "UPDATE lms_api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND tenant_id = $2",
            &[&key_id, &tenant],
        )
        .await?;
    (n == 1).then_some(()).ok_or_else(|| OpsError::NotFound(format!("tenant \"{tenant}\" has no API key {key_id}")))
}

pub async fn add_cors_origin(client: &impl GenericClient, tenant: &str, origin: &str) -> Result<String> {
    let origin = if origin == "*" { "*".to_owned() } else { normalise_origin(origin)? };
    require_tenant(client, tenant).await?;
    client.execute("INSERT INTO cors_origins (tenant_id, origin) VALUES ($1, $2)", &[&tenant, &origin]).await?;
    Ok(origin)
}

pub async fn remove_cors_origin(client: &impl GenericClient, tenant: &str, origin: &str) -> Result<()> {
    let n =
        client.execute("DELETE FROM cors_origins WHERE tenant_id = $1 AND origin = $2", &[&tenant, &origin]).await?;
    (n == 1).then_some(()).ok_or_else(|| OpsError::NotFound(format!("tenant \"{tenant}\" does not allow \"{origin}\"")))
}

/// Set a host's certificate chain and private key (PEM); the key is sealed at rest.
pub async fn put_certificate(
    client: &impl GenericClient,
    master: &MasterKeys,
    tenant: &str,
    host: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<()> {
    let host = check_host(host)?;
    CertifiedKey::parse(cert_pem, key_pem).map_err(|e| invalid(e.to_string()))?;
    let owner = client.query_opt("SELECT tenant_id FROM tenant_hosts WHERE host = $1", &[&host]).await?;
    if owner.map(|r| r.get::<_, String>(0)).as_deref() != Some(tenant) {
        return Err(OpsError::NotFound(format!("tenant \"{tenant}\" has no host \"{host}\"")));
    }
    let (sealed, kid) = master.seal(&place::tls_key(tenant, &host), key_pem.as_bytes());
    client
        .execute(
            "INSERT INTO tls_certificates (host, tenant_id, cert_pem, key_enc, key_id) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (host) DO UPDATE SET cert_pem = $3, key_enc = $4, key_id = $5, updated_at = now()",
            &[&host, &tenant, &cert_pem, &sealed, &kid],
        )
        .await?;
    Ok(())
}

/// A new admin API key: (id, key), the key shown once.
/// End or revoke, fleet-wide, for an operator (admin API, `lrsgate session revoke`): a session,
/// one token or a learner's tokens, as the LMS's `POST /auth/sessions/end` does. Appended to the
/// fleet's log without a NOTIFY (every instance catches up within about a second).
pub async fn revoke(
    client: &impl GenericClient,
    tenant: &str,
    request: &EndRequest,
    now: u64,
) -> Result<serde_json::Value> {
    require_tenant(client, tenant).await?;
    let row = client
        .query_one(
            "SELECT GREATEST(COALESCE(session_max_seconds, 28800), COALESCE(max_ttl_seconds, 28800)) FROM tenants WHERE id = $1",
            &[&tenant],
        )
        .await?;
    let longest: i64 = row.get(0);
    let keep_until = i64::try_from(now).unwrap_or(i64::MAX).saturating_add(longest);
    let (kind, subject, answer) = match &request.target {
        EndTarget::Session(id) => ("session", id.clone(), json!({"session_id": id})),
        EndTarget::Token(jti) => ("jti", jti.clone(), json!({"jti": jti})),
        EndTarget::Learner(actor) => {
            let key = learner_key(actor);
            ("learner", key.clone(), json!({"learner_key": key}))
        }
    };
    client
        .execute(
            "INSERT INTO session_events (tenant_id, kind, subject, reason, at, keep_until) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&tenant, &kind, &subject, &request.reason.as_str(), &i64::try_from(now).unwrap_or(i64::MAX), &keep_until],
        )
        .await?;
    let mut answer = answer;
    answer["ended"] = json!(request.reason.as_str());
    Ok(answer)
}

pub async fn create_admin_key(client: &impl GenericClient, description: &str) -> Result<(i64, String)> {
    let (key, _) = apikey::generate();
    let key = key.replacen("lrsk_", "lrsa_", 1);
    let hash = apikey::hash_key(&key).to_vec();
    let row = client
        .query_one(
            "INSERT INTO admin_keys (key_hash, description) VALUES ($1, $2) RETURNING id",
            &[&hash, &description],
        )
        .await?;
    Ok((row.get(0), key))
}

/// The id of `presented` if it is a live admin key (looked up by its hash).
pub async fn admin_key_id(client: &impl GenericClient, presented: &str) -> Result<Option<i64>> {
    let hash = apikey::hash_key(presented).to_vec();
    Ok(client
        .query_opt("SELECT id FROM admin_keys WHERE key_hash = $1 AND revoked_at IS NULL", &[&hash])
        .await?
        .map(|r| r.get(0)))
}

/// Re-seal every secret with the sealing master key (after adding a new one first).
pub async fn reseal_secrets(client: &mut tokio_postgres::Client, master: &MasterKeys) -> Result<usize> {
    let reseal = |place: &str, kid: &str, sealed: &[u8]| master.reseal(place, kid, sealed).map_err(|e| invalid(e.0));
    let tx = client.transaction().await?;
    let mut count = 0;
    for r in tx.query("SELECT tenant_id, password_enc, key_id FROM lrs_credentials FOR UPDATE", &[]).await? {
        let (tenant, sealed, kid): (String, Vec<u8>, String) = (r.get(0), r.get(1), r.get(2));
        let (sealed, kid) = reseal(&place::lrs_password(&tenant), &kid, &sealed)?;
        tx.execute(
            "UPDATE lrs_credentials SET password_enc = $2, key_id = $3 WHERE tenant_id = $1",
            &[&tenant, &sealed, &kid],
        )
        .await?;
        count += 1;
    }
    for r in tx.query("SELECT id, tenant_id, secret_enc, key_id FROM signing_keys FOR UPDATE", &[]).await? {
        let (id, tenant, sealed, kid): (i64, String, Vec<u8>, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let (sealed, kid) = reseal(&place::signing_secret(&tenant), &kid, &sealed)?;
        tx.execute("UPDATE signing_keys SET secret_enc = $2, key_id = $3 WHERE id = $1", &[&id, &sealed, &kid]).await?;
        count += 1;
    }
    for r in tx.query("SELECT host, tenant_id, key_enc, key_id FROM tls_certificates FOR UPDATE", &[]).await? {
        let (host, tenant, sealed, kid): (String, String, Vec<u8>, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let (sealed, kid) = reseal(&place::tls_key(&tenant, &host), &kid, &sealed)?;
        tx.execute("UPDATE tls_certificates SET key_enc = $2, key_id = $3 WHERE host = $1", &[&host, &sealed, &kid])
            .await?;
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}

/// A tenant's limits and policy switches; `null` restores lrsgate's default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    #[serde(default, with = "nullable")]
    pub max_body_bytes: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub default_ttl_seconds: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub max_ttl_seconds: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub session_max_seconds: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub terminated_grace_seconds: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub fetch_ttl_seconds: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub cors_max_age_seconds: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub policy_alternate_syntax: Option<Option<String>>,
    #[serde(default, with = "nullable")]
    pub policy_cmi5_other_objects: Option<Option<bool>>,
    #[serde(default, with = "nullable")]
    pub policy_require_session_id: Option<Option<bool>>,
    #[serde(default, with = "nullable")]
    pub policy_learner_preferences_writes: Option<Option<bool>>,
    #[serde(default, with = "nullable")]
    pub policy_activity_profile_writes: Option<Option<bool>>,
    #[serde(default, with = "nullable")]
    pub policy_cmi5_session_rules: Option<Option<bool>>,
    #[serde(default, with = "nullable")]
    pub edge_requests_per_second: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub edge_requests_per_second_per_token: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub token_requests_per_second_per_api_key: Option<Option<i64>>,
    /// `tcp` or `http`.
    #[serde(default, with = "nullable")]
    pub upstream_health_check: Option<Option<String>>,
    #[serde(default, with = "nullable")]
    pub upstream_connect_timeout_ms: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub upstream_read_timeout_ms: Option<Option<i64>>,
    #[serde(default, with = "nullable")]
    pub upstream_total_timeout_ms: Option<Option<i64>>,
}

/// Absent → `None` (unchanged); `null` → `Some(None)` (back to the default).
mod nullable {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Change a tenant's limits and switches. The result is checked with the same rules a reload
/// applies before anything is committed, so a bad value is refused here with what to fix,
/// instead of being refused later by every instance.
pub async fn update_settings(
    client: &mut tokio_postgres::Client,
    master: &MasterKeys,
    id: &str,
    s: &TenantSettings,
) -> Result<TenantView> {
    let tx = client.transaction().await?;
    require_tenant(&tx, id).await?;
    // Column names come from this fixed list, never from the request.
    let numbers = [
        ("max_body_bytes", &s.max_body_bytes),
        ("default_ttl_seconds", &s.default_ttl_seconds),
        ("max_ttl_seconds", &s.max_ttl_seconds),
        ("session_max_seconds", &s.session_max_seconds),
        ("terminated_grace_seconds", &s.terminated_grace_seconds),
        ("fetch_ttl_seconds", &s.fetch_ttl_seconds),
        ("edge_requests_per_second", &s.edge_requests_per_second),
        ("edge_requests_per_second_per_token", &s.edge_requests_per_second_per_token),
        ("token_requests_per_second_per_api_key", &s.token_requests_per_second_per_api_key),
        ("upstream_connect_timeout_ms", &s.upstream_connect_timeout_ms),
        ("upstream_read_timeout_ms", &s.upstream_read_timeout_ms),
        ("upstream_total_timeout_ms", &s.upstream_total_timeout_ms),
    ];
    for (column, value) in numbers {
        if let Some(value) = value {
            tx.execute(&format!("UPDATE tenants SET {column} = $2 WHERE id = $1"), &[&id, value]).await?;
        }
    }
    if let Some(value) = &s.cors_max_age_seconds {
        let value =
            value.map(|v| i32::try_from(v).map_err(|_| invalid("cors_max_age_seconds is too large"))).transpose()?;
        tx.execute("UPDATE tenants SET cors_max_age_seconds = $2 WHERE id = $1", &[&id, &value]).await?;
    }
    if let Some(value) = &s.policy_alternate_syntax {
        tx.execute("UPDATE tenants SET policy_alternate_syntax = $2 WHERE id = $1", &[&id, value]).await?;
    }
    if let Some(value) = &s.upstream_health_check {
        if value.as_deref().is_some_and(|v| crate::upstream::health::ProbeKind::parse(v).is_none()) {
            return Err(invalid("upstream_health_check: unknown value (known: tcp, http)"));
        }
        tx.execute("UPDATE tenants SET upstream_health_check = $2 WHERE id = $1", &[&id, value]).await?;
    }
    let switches = [
        ("policy_cmi5_other_objects", &s.policy_cmi5_other_objects),
        ("policy_require_session_id", &s.policy_require_session_id),
        ("policy_learner_preferences_writes", &s.policy_learner_preferences_writes),
        ("policy_activity_profile_writes", &s.policy_activity_profile_writes),
        ("policy_cmi5_session_rules", &s.policy_cmi5_session_rules),
    ];
    for (column, value) in switches {
        if let Some(value) = value {
            tx.execute(&format!("UPDATE tenants SET {column} = $2 WHERE id = $1"), &[&id, value]).await?;
        }
    }
    tx.execute("UPDATE tenants SET updated_at = now() WHERE id = $1", &[&id]).await?;
    let ids = [id.to_owned()];
    let loaded = crate::tenant::postgres::load_tenants(&tx, master, Some(&ids))
        .await
        .map_err(|e| OpsError::Database(e.to_string()))?;
    for tenant in loaded {
        let entry = tenant.entry.map_err(|e| invalid(e.to_string()))?;
        crate::config::tenants::validate_one(std::path::Path::new("postgres"), entry)
            .map_err(|e| invalid(e.to_string()))?;
    }
    tx.commit().await?;
    show_tenant(&*client, id).await
}
