//! Postgres mode's tenant source: a full load at start, then `LISTEN lrsgate_config`; each
//! notification names a tenant, and only that tenant is reloaded and published (the table is a
//! persistent map, so the other tenants are shared, not copied). After a lost connection it
//! reconnects with backoff and resyncs everything, because notifications were missed. While
//! Postgres is away the last snapshot keeps serving; `lrsgate_config_snapshot_age_seconds`
//! says for how long it has not been known current.
//!
//! Rows become the same external `TenantEntry` the tenants file gives, checked by the same
//! validator, so both sources build identical `Tenant`s. A tenant whose rows do not validate is
//! refused (logged, counted) and its running version keeps serving.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::upstream::Balancers;
use async_trait::async_trait;
use deadpool_postgres::Pool;
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio_postgres::GenericClient;

use super::{LoadError, Tenant, TenantStore, TenantTable};
use crate::clock::unix_now;
use crate::config::server::{DatabaseSettings, ServerConfig};
use crate::config::tenants::{
    self, ApiKeyEntry, CorsEntry, CourseEntry, LmsEntry, NodeEntry, PolicyEntry, RateLimitsEntry, SessionsEntry,
    SigningEntry, TenantEntry, TlsEntry, TokensEntry, UpstreamEntry, WeightedNode,
};
use crate::metrics;
use crate::secrets::{place, MasterKeys};

/// The NOTIFY channel the schema's triggers use.
pub const CHANNEL: &str = "lrsgate_config";
/// How long notifications are gathered before one reload (a burst of row changes to one tenant
/// is one reload).
const COALESCE: Duration = Duration::from_millis(20);
/// How often the LISTEN connection is probed while no notification arrives.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Where errors about rows are said to come from.
const SOURCE: &str = "postgres";

/// One tenant as loaded: its rows as the file's entry, and a fingerprint of those rows (an
/// unchanged tenant is not rebuilt on a resync).
pub struct LoadedTenant {
    pub id: String,
    pub entry: Result<TenantEntry, LoadError>,
    pub fingerprint: u64,
    /// The rows as read, for the snapshot cache.
    pub(crate) rows: Rows,
}

impl LoadedTenant {
    fn new(id: String, rows: Rows, master: &MasterKeys) -> LoadedTenant {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        rows.hash(&mut hasher);
        let entry = to_entry(&id, rows.clone(), master);
        LoadedTenant { id, entry, fingerprint: hasher.finish(), rows }
    }
}

/// When this process started from the snapshot cache, the Unix seconds its rows were read
/// from Postgres (0: it started from Postgres itself).
pub static STARTED_FROM_CACHE: AtomicU64 = AtomicU64::new(0);

/// The rows of one tenant, as read (secrets still sealed).
#[derive(Debug, Clone, Default, Hash, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Rows {
    status: String,
    public_origin: Option<String>,
    limits: [Option<i64>; 6],
    cors_max_age: Option<i32>,
    alternate_syntax: Option<String>,
    switches: [Option<bool>; 5],
    rate_limits: [Option<i64>; 3],
    #[serde(default)]
    upstream_health_check: Option<String>,
    /// Connect, read, total (ms).
    #[serde(default)]
    upstream_timeouts: [Option<i64>; 3],
    hosts: Vec<String>,
    nodes: Vec<(String, i32)>,
    credential: Option<(String, Vec<u8>, String)>,
    signing: Option<(Vec<u8>, String)>,
    api_keys: Vec<(Vec<u8>, Option<i64>)>,
    cors: Vec<String>,
    courses: Vec<(String, Vec<String>)>,
    certificates: Vec<(String, String, Vec<u8>, String)>,
}

/// Read tenants: all of them (`ids` = `None`) or these. A tenant that does not exist is absent
/// from the result.
pub async fn load_tenants(
    client: &impl GenericClient,
    master: &MasterKeys,
    ids: Option<&[String]>,
) -> Result<Vec<LoadedTenant>, LoadError> {
    let filter: Option<Vec<String>> = ids.map(<[String]>::to_vec);
    let q = |sql: &str| sql.replace("$FILTER", "($1::text[] IS NULL OR tenant_id = ANY($1))");
    let db = |e: tokio_postgres::Error| LoadError::Database(e.to_string());
    let mut rows: HashMap<String, Rows> = HashMap::new();
    for r in client
        .query(
            &q("SELECT id, status, public_origin, max_body_bytes, default_ttl_seconds, max_ttl_seconds,
                       session_max_seconds, terminated_grace_seconds, fetch_ttl_seconds, cors_max_age_seconds,
                       policy_alternate_syntax, policy_cmi5_other_objects, policy_require_session_id,
                       policy_learner_preferences_writes, policy_activity_profile_writes, policy_cmi5_session_rules,
                       edge_requests_per_second, edge_requests_per_second_per_token,
                       token_requests_per_second_per_api_key, upstream_health_check,
                       upstream_connect_timeout_ms, upstream_read_timeout_ms, upstream_total_timeout_ms
                FROM tenants WHERE ($1::text[] IS NULL OR id = ANY($1))"),
            &[&filter],
        )
        .await
        .map_err(db)?
    {
        let t = Rows {
            status: r.get(1),
            public_origin: r.get(2),
            limits: [r.get(3), r.get(4), r.get(5), r.get(6), r.get(7), r.get(8)],
            cors_max_age: r.get(9),
            alternate_syntax: r.get(10),
            switches: [r.get(11), r.get(12), r.get(13), r.get(14), r.get(15)],
            rate_limits: [r.get(16), r.get(17), r.get(18)],
            upstream_health_check: r.get(19),
            upstream_timeouts: [r.get(20), r.get(21), r.get(22)],
            ..Rows::default()
        };
        rows.insert(r.get(0), t);
    }
    let each = |sql: &str| {
        let sql = q(sql);
        let filter = filter.clone();
        async move { client.query(&sql, &[&filter]).await.map_err(db) }
    };
    for r in each("SELECT tenant_id, host FROM tenant_hosts WHERE $FILTER ORDER BY host").await? {
        if let Some(t) = rows.get_mut(r.get::<_, &str>(0)) {
            t.hosts.push(r.get(1));
        }
    }
    for r in each("SELECT tenant_id, url, weight FROM upstream_nodes WHERE $FILTER ORDER BY id").await? {
        if let Some(t) = rows.get_mut(r.get::<_, &str>(0)) {
            t.nodes.push((r.get(1), r.get(2)));
        }
    }
    for r in each("SELECT tenant_id, username, password_enc, key_id FROM lrs_credentials WHERE $FILTER").await? {
        if let Some(t) = rows.get_mut(r.get::<_, &str>(0)) {
            t.credential = Some((r.get(1), r.get(2), r.get(3)));
        }
    }
    // The newest active secret signs (and, being the only one, verifies).
    for r in each(
        "SELECT DISTINCT ON (tenant_id) tenant_id, secret_enc, key_id FROM signing_keys
         WHERE active AND $FILTER ORDER BY tenant_id, created_at DESC, id DESC",
    )
    .await?
    {
        if let Some(t) = rows.get_mut(r.get::<_, &str>(0)) {
            t.signing = Some((r.get(1), r.get(2)));
        }
    }
    for r in each(
        "SELECT tenant_id, key_hash, extract(epoch FROM expires_at)::bigint FROM lms_api_keys
         WHERE revoked_at IS NULL AND $FILTER ORDER BY id",
    )
    .await?
    {
        if let Some(t) = rows.get_mut(r.get::<_, &str>(0)) {
            t.api_keys.push((r.get(1), r.get(2)));
        }
    }
    for r in each("SELECT tenant_id, origin FROM cors_origins WHERE $FILTER ORDER BY origin").await? {
        if let Some(t) = rows.get_mut(r.get::<_, &str>(0)) {
            t.cors.push(r.get(1));
        }
    }
    for r in each("SELECT tenant_id, course_id, activities FROM courses WHERE $FILTER ORDER BY course_id").await? {
        if let Some(t) = rows.get_mut(r.get::<_, &str>(0)) {
            t.courses.push((r.get(1), r.get(2)));
        }
    }
    for r in each("SELECT tenant_id, host, cert_pem, key_enc, key_id FROM tls_certificates WHERE $FILTER ORDER BY host")
        .await?
    {
        if let Some(t) = rows.get_mut(r.get::<_, &str>(0)) {
            t.certificates.push((r.get(1), r.get(2), r.get(3), r.get(4)));
        }
    }
    Ok(rows.into_iter().map(|(id, rows)| LoadedTenant::new(id, rows, master)).collect())
}

#[cfg(test)]
impl Rows {
    pub(crate) fn sample() -> Rows {
        Rows {
            status: "active".into(),
            hosts: vec!["acme.test".into()],
            nodes: vec![("http://127.0.0.1:9/xapi".into(), 1)],
            credential: Some(("lrs".into(), vec![1, 2, 3], "k1".into())),
            ..Rows::default()
        }
    }
}

/// A tenant's rows as the tenants file's entry, its secrets opened.
fn to_entry(id: &str, t: Rows, master: &MasterKeys) -> Result<TenantEntry, LoadError> {
    let missing = |what| LoadError::Missing { tenant: id.to_owned(), what };
    // Opens a sealed secret that must be text; `what` names it in the error.
    let open_text = |what: String, place: &str, kid: &str, sealed: &[u8]| {
        let secret = |detail: String| LoadError::Secret { tenant: id.to_owned(), what: what.clone(), detail };
        let plain = master.open(place, kid, sealed).map_err(|e| secret(e.0))?;
        String::from_utf8(plain).map_err(|_| secret("not UTF-8".into()))
    };
    let (username, password_enc, password_kid) =
        t.credential.ok_or_else(|| missing("LRS credential (lrs_credentials)"))?;
    let password = open_text("the LRS password".into(), &place::lrs_password(id), &password_kid, &password_enc)?;
    let (secret_enc, secret_kid) = t.signing.ok_or_else(|| missing("active signing key"))?;
    let secret = open_text("the signing secret".into(), &place::signing_secret(id), &secret_kid, &secret_enc)?;
    let mut tls = Vec::with_capacity(t.certificates.len());
    for (host, cert_pem, key_enc, key_kid) in t.certificates {
        let key_pem = open_text(format!("the TLS key of {host}"), &place::tls_key(id, &host), &key_kid, &key_enc)?;
        tls.push(TlsEntry { host, cert_pem: Some(cert_pem), key_pem: Some(key_pem), ..TlsEntry::default() });
    }
    let seconds = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    let millis = seconds;
    let [max_body, default_ttl, max_ttl, session_max, grace, fetch_ttl] = t.limits;
    let [other_objects, session_id, preferences, activity_profile, session_rules] = t.switches;
    Ok(TenantEntry {
        id: id.to_owned(),
        status: Some(t.status),
        hosts: t.hosts,
        public_origin: t.public_origin,
        tls,
        policy: PolicyEntry {
            alternate_syntax: t.alternate_syntax,
            cmi5_other_objects: other_objects,
            require_session_id: session_id,
            learner_preferences_writes: preferences,
            activity_profile_writes: activity_profile,
            cmi5_session_rules: session_rules,
        },
        sessions: SessionsEntry {
            max_seconds: seconds(session_max),
            terminated_grace_seconds: seconds(grace),
            fetch_ttl_seconds: seconds(fetch_ttl),
        },
        cors: CorsEntry {
            allowed_origins: t.cors,
            max_age_seconds: t.cors_max_age.and_then(|v| u32::try_from(v).ok()),
        },
        course: t
            .courses
            .into_iter()
            .map(|(course_id, activities)| CourseEntry { structure: None, id: Some(course_id), activities })
            .collect(),
        max_body_bytes: max_body.and_then(|v| usize::try_from(v).ok()),
        upstream: UpstreamEntry {
            nodes: t
                .nodes
                .into_iter()
                .map(|(url, weight)| NodeEntry::Weighted(WeightedNode { url, weight: i64::from(weight) }))
                .collect(),
            username,
            password,
            health_check: t.upstream_health_check,
            connect_timeout_ms: millis(t.upstream_timeouts[0]),
            read_timeout_ms: millis(t.upstream_timeouts[1]),
            total_timeout_ms: millis(t.upstream_timeouts[2]),
        },
        signing: SigningEntry { algorithms: None, secret },
        limits: {
            let per_second = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
            let [tenant, token, api_key] = t.rate_limits;
            RateLimitsEntry {
                edge_requests_per_second: per_second(tenant),
                edge_requests_per_second_per_token: per_second(token),
                token_requests_per_second_per_api_key: per_second(api_key),
            }
        },
        tokens: TokensEntry { default_ttl_seconds: seconds(default_ttl), max_ttl_seconds: seconds(max_ttl) },
        lms: LmsEntry {
            api_key_hashes: Vec::new(),
            api_keys: t
                .api_keys
                .into_iter()
                .map(|(hash, expires)| ApiKeyEntry {
                    hash: format!("sha256:{}", hex::encode(hash)),
                    expires_at: expires.and_then(|e| u64::try_from(e).ok()),
                })
                .collect(),
        },
    })
}

/// Validate and build a loaded tenant.
async fn build(loaded: LoadedTenant, server: &ServerConfig, health: &Arc<Balancers>) -> Result<Tenant, LoadError> {
    let entry = loaded.entry?;
    let spec = tenants::validate_one(Path::new(SOURCE), entry)?;
    let mut tenant = Tenant::build(spec, server, health).await?;
    tenant.fingerprint = loaded.fingerprint;
    Ok(tenant)
}

/// Apply loaded tenants to `table`: changed ones rebuilt, unchanged ones kept, refused ones
/// left as they were. `reloaded`: the ids that were asked for (any not loaded was deleted);
/// `None`: a full resync (any tenant not loaded was deleted). Returns the new table and which
/// tenants were applied and refused.
pub async fn apply(
    table: &TenantTable,
    loaded: Vec<LoadedTenant>,
    reloaded: Option<&[String]>,
    server: &ServerConfig,
    health: &Arc<Balancers>,
) -> (TenantTable, ConfigOutcome) {
    let mut next = table.clone();
    let present: std::collections::HashSet<String> = loaded.iter().map(|t| t.id.clone()).collect();
    let gone: Vec<String> = match reloaded {
        Some(ids) => ids.iter().filter(|id| !present.contains(*id)).cloned().collect(),
        None => table.ids().filter(|id| !present.contains(*id)).cloned().collect(),
    };
    for id in gone {
        info!("tenant {id} removed");
        next = next.without_tenant(&id);
    }
    let mut outcome = ConfigOutcome::default();
    let mut built = Vec::new();
    for tenant in loaded {
        if table.get(&tenant.id).is_some_and(|t| t.fingerprint == tenant.fingerprint) {
            continue;
        }
        let id = tenant.id.clone();
        match build(tenant, server, health).await {
            Ok(t) => built.push(Arc::new(t)),
            Err(e) => {
                metrics::CONFIG_RELOADS.with_label_values(&["rejected"]).inc();
                error!(tenant = id.as_str(), kind = e.kind(); "tenant {id} refused; its running version stays: {e}");
                outcome.refused.push((id, e));
            }
        }
    }
    // Every changed tenant leaves before any comes back, so a host moved between two tenants in
    // one transaction is free when its new tenant is inserted, whatever the order.
    for tenant in &built {
        next = next.without_tenant(&tenant.id);
    }
    for tenant in built {
        match next.with_tenant(tenant.clone()) {
            Ok(with) => {
                next = with;
                outcome.applied.push(tenant.id.clone());
            }
            Err(e) => {
                metrics::CONFIG_RELOADS.with_label_values(&["rejected"]).inc();
                error!(tenant = tenant.id.as_str(), kind = e.kind(); "tenant {} refused; its running version stays: {e}", tenant.id);
                if let Some(old) = table.get(&tenant.id) {
                    next = next.with_tenant(old.clone()).unwrap_or(next);
                }
                outcome.refused.push((tenant.id.clone(), e));
            }
        }
    }
    (next, outcome)
}

/// Which tenants a reload applied, and which it refused (with why).
#[derive(Debug, Default)]
pub struct ConfigOutcome {
    pub applied: Vec<String>,
    pub refused: Vec<(String, LoadError)>,
}

/// Load every tenant into a new table (start-up, `check-config`).
pub async fn load_table(
    server: &ServerConfig,
    db: &DatabaseSettings,
    health: &Arc<Balancers>,
) -> Result<TenantTable, LoadError> {
    let loaded = match crate::db::connect(&db.url).await {
        Ok(client) => load_tenants(&client, &db.master_keys, None).await?,
        // Without the database, the sealed copy of the last good snapshot serves until it
        // returns; without a usable copy, starting is an error.
        Err(e) => {
            let Some(path) = &db.snapshot_cache else { return Err(LoadError::Database(e)) };
            let (read_at, rows) = super::snapshot_cache::read(path, &db.master_keys)
                .map_err(|cache| LoadError::NoSnapshot { database: e.clone(), cache })?;
            warn!(
                "Postgres is unreachable ({e}): serving {} tenant(s) from the snapshot cache read {} s ago",
                rows.len(),
                unix_now().saturating_sub(read_at)
            );
            STARTED_FROM_CACHE.store(read_at.max(1), Ordering::Release);
            rows.into_iter().map(|(id, rows)| LoadedTenant::new(id, rows, &db.master_keys)).collect()
        }
    };
    let (table, outcome) = apply(&TenantTable::default(), loaded, None, server, health).await;
    let refused = outcome.refused.len();
    if refused > 0 {
        warn!("{refused} tenant(s) refused at start (see above); the others serve");
    }
    Ok(table)
}

/// The background service that keeps the snapshot in step with Postgres.
pub struct PostgresSource {
    pub server: ServerConfig,
    pub db: DatabaseSettings,
    pub store: TenantStore,
    pub health: Arc<Balancers>,
    /// Its own pool, on its own runtime.
    pub pool: Pool,
    /// Unix seconds at which the snapshot was last known to match the database.
    pub synced_at: Arc<AtomicU64>,
    /// The rows Postgres last gave, kept only where a snapshot cache is written.
    pub cache: Option<SnapshotCacheWriter>,
    /// Applied and refused tenant configs go to the audit trail.
    pub audit: crate::audit::Audit,
}

/// What the snapshot cache is written from: every tenant's rows as Postgres last gave them.
#[derive(Default)]
pub struct SnapshotCacheWriter {
    rows: std::sync::Mutex<HashMap<String, Rows>>,
    /// Rows changed since the file was last written (and when they were read).
    dirty_since: AtomicU64,
}

/// How long after a change the cache is written (changes in between share one write).
const CACHE_WRITE_DELAY: Duration = Duration::from_secs(2);

impl SnapshotCacheWriter {
    /// Record what a reload read: `reloaded` ids (`None`: everything) now hold `loaded`.
    fn record(&self, loaded: &[LoadedTenant], reloaded: Option<&[String]>) {
        let Ok(mut rows) = self.rows.lock() else { return };
        match reloaded {
            None => rows.clear(),
            Some(ids) => {
                for id in ids {
                    rows.remove(id);
                }
            }
        }
        for t in loaded {
            rows.insert(t.id.clone(), t.rows.clone());
        }
        self.dirty_since.store(unix_now().max(1), Ordering::Release);
    }

    /// Write the file if rows changed; off the async runtime's threads.
    async fn flush(&self, path: &Path, master: &MasterKeys) {
        let read_at = self.dirty_since.swap(0, Ordering::AcqRel);
        if read_at == 0 {
            return;
        }
        let rows: Vec<(String, Rows)> = match self.rows.lock() {
            Ok(rows) => rows.iter().map(|(id, r)| (id.clone(), r.clone())).collect(),
            Err(_) => return,
        };
        let (path, master) = (path.to_owned(), master.clone());
        let written = tokio::task::spawn_blocking(move || super::snapshot_cache::write(&path, &master, read_at, &rows))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = written {
            // Tried again after the next change; the running snapshot is unaffected.
            error!("{e}");
        }
    }
}

/// Why a LISTEN cycle ended.
enum CycleEnd {
    Shutdown,
    Lost(String),
}

impl PostgresSource {
    fn report_age(&self) {
        let age = unix_now().saturating_sub(self.synced_at.load(Ordering::Acquire));
        metrics::SNAPSHOT_AGE.set(i64::try_from(age).unwrap_or(i64::MAX));
    }

    fn mark_synced(&self) {
        self.synced_at.store(unix_now(), Ordering::Release);
        self.report_age();
    }

    /// Reload `ids` (`None`: everything) and publish the result.
    async fn reload(&self, ids: Option<&[String]>) -> Result<(), String> {
        let client = self.pool.get().await.map_err(|e| format!("database pool: {e}"))?;
        let client: &tokio_postgres::Client = &client;
        let loaded = load_tenants(client, &self.db.master_keys, ids).await.map_err(|e| e.to_string())?;
        if let Some(cache) = &self.cache {
            cache.record(&loaded, ids);
        }
        let current = self.store.load_full();
        let (next, outcome) = apply(&current, loaded, ids, &self.server, &self.health).await;
        let count = next.tenant_count();
        self.store.store(Arc::new(next));
        if outcome.refused.is_empty() {
            metrics::CONFIG_RELOADS.with_label_values(&["ok"]).inc();
        }
        crate::audit::config_outcome(&self.audit, &outcome.applied, &outcome.refused);
        match ids {
            None => info!("tenants resynced from Postgres: {count} tenant(s)"),
            Some(ids) => info!("tenant(s) reloaded from Postgres: {}", ids.join(", ")),
        }
        Ok(())
    }

    /// Connect, LISTEN, resync, then reload each notified tenant until the connection is lost.
    async fn cycle(&self, shutdown: &mut ShutdownWatch) -> CycleEnd {
        let (client, mut notified, _listening) = match crate::db::listen(&self.db.url, CHANNEL).await {
            Ok(listening) => listening,
            Err(e) => return CycleEnd::Lost(e),
        };
        // Listening now; what changed before (or while disconnected) is caught by a resync.
        if let Err(e) = self.reload(None).await {
            return CycleEnd::Lost(e);
        }
        self.mark_synced();
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.tick().await;
        let mut cache_tick = tokio::time::interval(CACHE_WRITE_DELAY);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return CycleEnd::Shutdown,
                _ = cache_tick.tick() => {
                    if let (Some(cache), Some(path)) = (&self.cache, &self.db.snapshot_cache) {
                        cache.flush(path, &self.db.master_keys).await;
                    }
                }
                id = notified.recv() => {
                    let Some(id) = id else { return CycleEnd::Lost("LISTEN connection closed".into()) };
                    let mut ids = vec![id];
                    tokio::time::sleep(COALESCE).await;
                    while let Ok(more) = notified.try_recv() {
                        if !ids.contains(&more) {
                            ids.push(more);
                        }
                    }
                    if let Err(e) = self.reload(Some(&ids)).await {
                        return CycleEnd::Lost(e);
                    }
                    self.mark_synced();
                }
                _ = probe.tick() => {
                    match tokio::time::timeout(PROBE_TIMEOUT, client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => self.mark_synced(),
                        Ok(Err(e)) => return CycleEnd::Lost(format!("probe failed: {e}")),
                        Err(_) => return CycleEnd::Lost("probe timed out".into()),
                    }
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for PostgresSource {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // From the first moment: a snapshot served from the cache is as old as its rows.
        self.report_age();
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = std::time::Instant::now();
            match self.cycle(&mut shutdown).await {
                CycleEnd::Shutdown => return,
                CycleEnd::Lost(why) => {
                    metrics::CONFIG_SOURCE_ERRORS.inc();
                    if started.elapsed() > BACKOFF_MAX {
                        backoff = BACKOFF_MIN;
                    }
                    warn!("Postgres tenant source: {why}; the last snapshot keeps serving, retrying in {backoff:?}");
                }
            }
            // Wait out the backoff, reporting the snapshot's growing age.
            let until = tokio::time::Instant::now() + backoff;
            while tokio::time::Instant::now() < until {
                self.report_age();
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(250).min(until - tokio::time::Instant::now())) => {}
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}
