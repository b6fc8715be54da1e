//! The server file: listeners, limits, token rules, upstream timeouts and Pingora's own settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{read_toml, ConfigError};

/// `conf/lrsgate.toml` as written. Every section and key is optional; defaults are documented
/// on the internal type.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub tenants_file: Option<PathBuf>,
    #[serde(default)]
    pub listen: ListenFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub tokens: TokensFile,
    #[serde(default)]
    pub upstream: UpstreamFile,
    #[serde(default)]
    pub server: PingoraFile,
    #[serde(default)]
    pub logging: LoggingFile,
    #[serde(default)]
    pub metrics: MetricsFile,
    /// The audit trail; without this section, none is kept.
    pub audit: Option<AuditFile>,
    /// Postgres mode: tenants from the database instead of the tenants file.
    pub database: Option<DatabaseFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    pub url: String,
    pub pool_size: Option<usize>,
    /// Master keys as text (`<id>:<base64>`, comma-separated), usually `${LRSGATE_MASTER_KEYS}`.
    pub master_keys: Option<String>,
    /// Or a file of them, one per line, relative to this file.
    pub master_key_file: Option<PathBuf>,
    /// Where the sealed copy of the last good tenant snapshot is kept (relative to this file),
    /// so an instance can start while Postgres is away. Default: none.
    pub snapshot_cache: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    pub edge: Option<String>,
    pub edge_tls: Option<String>,
    pub token_service: Option<String>,
    pub metrics: Option<String>,
    pub admin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_body_bytes: Option<usize>,
    pub token_request_max_bytes: Option<usize>,
    pub body_read_timeout_seconds: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub request_head_timeout_seconds: Option<u64>,
    pub keepalive_timeout_seconds: Option<u64>,
    pub keepalive_requests: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    pub issuer: Option<String>,
    pub clock_skew_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    pub connect_timeout_ms: Option<u64>,
    pub read_timeout_ms: Option<u64>,
    pub write_timeout_ms: Option<u64>,
    pub idle_timeout_seconds: Option<u64>,
    pub total_timeout_ms: Option<u64>,
    pub health_check_interval_seconds: Option<u64>,
    pub eject_after_failures: Option<u32>,
    pub ejection_ms: Option<u64>,
    pub max_ejection_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingoraFile {
    pub threads: Option<usize>,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    pub error_log: Option<String>,
    pub grace_period_seconds: Option<u64>,
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    pub upstream_keepalive_pool_size: Option<usize>,
    pub listener_read_buffer_bytes: Option<usize>,
    pub work_stealing: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingFile {
    pub learner_hash_salt: Option<String>,
    /// `text` (default) or `json` (one object per line).
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// Tenants whose id is a metric label (bounded cardinality; default none).
    #[serde(default)]
    pub tenant_labels: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// File mode: a path (relative to this file) or `-` for stdout. Default `audit.jsonl`.
    pub file: Option<String>,
    pub rotate_bytes: Option<u64>,
    pub keep: Option<u32>,
    /// Postgres mode: where events wait while Postgres is away (relative to this file).
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: Option<u64>,
    pub retention_days: Option<u32>,
    pub queue_capacity: Option<usize>,
    pub replay_batch: Option<usize>,
}

/// Validated server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the tenants file is (default `tenants.toml` beside the server file).
    pub tenants_file: PathBuf,
    /// Edge listener, default `0.0.0.0:8080` (plain HTTP; tenant by Host).
    pub edge_listen: SocketAddr,
    /// Edge TLS listener (tenant certificates chosen by SNI); none unless set.
    pub edge_tls_listen: Option<SocketAddr>,
    /// Admin API listener (Postgres mode), default `127.0.0.1:8082`.
    pub admin_listen: SocketAddr,
    /// Postgres mode; `None`: file mode.
    pub database: Option<DatabaseSettings>,
    /// Token service listener, default `0.0.0.0:8081`.
    pub token_listen: SocketAddr,
    /// Prometheus listener, default `127.0.0.1:9090`.
    pub metrics_listen: SocketAddr,
    /// Default request body limit for tenants that set none, default 4 MiB.
    pub max_body_bytes: usize,
    /// Token request body limit, default 64 KiB.
    pub token_request_max_bytes: usize,
    /// Total time a client may take to send a request body that lrsgate reads before deciding,
    /// default 30 s (Pingora's own limit is per read, so a trickled body could last far longer).
    pub body_read_timeout: Duration,
    /// Caps on open connections, the request head deadline and the keep-alive timeout (60 s).
    pub connections: crate::listener::ConnectionLimits,
    /// Requests one client connection may carry before it is closed, default 10,000.
    pub keepalive_requests: u32,
    /// `iss` of issued tokens and the only one accepted, default `lrsgate`.
    pub issuer: String,
    /// Leeway for `exp`/`nbf`, default 30 s.
    pub clock_skew_seconds: u64,
    pub upstream: UpstreamTimeouts,
    pub pingora: PingoraSettings,
    /// Salt for the learner hash in logs and the audit trail; random per process when unset
    /// (then hashes do not correlate across instances or restarts, so the audit trail needs it).
    pub learner_hash_salt: Option<String>,
    pub log_format: crate::logging::LogFormat,
    /// Tenants whose id labels the per-tenant metrics; every other tenant is `""`.
    pub metric_tenants: std::collections::HashSet<String>,
    /// `None`: no audit trail.
    pub audit: Option<AuditSettings>,
}

/// Where the audit trail goes, and how much may wait.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Events waiting for the writer, default 65,536; past it events are dropped and counted.
    pub queue_capacity: usize,
    pub sink: AuditSink,
}

#[derive(Debug, Clone)]
pub enum AuditSink {
    /// File mode.
    File(crate::audit::file::AuditFileTarget),
    /// Postgres mode (`audit_events`, with the disk spool).
    Postgres(crate::audit::postgres::PostgresAuditSettings),
}

/// Where Postgres mode finds its database and master keys.
#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: String,
    /// Connections in the pool for loads and admin work, default 4 (LISTEN has its own).
    pub pool_size: usize,
    pub master_keys: crate::secrets::MasterKeys,
    /// The sealed copy of the last good snapshot (`tenant::snapshot_cache`); `None`: none kept.
    pub snapshot_cache: Option<PathBuf>,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("DatabaseSettings").field("pool_size", &self.pool_size).finish_non_exhaustive()
    }
}

/// Timeouts towards the LRS.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTimeouts {
    /// TCP (+TLS) connect, default 2 s.
    pub connect: Duration,
    /// Per read, default 30 s.
    pub read: Duration,
    /// Per write, default 30 s.
    pub write: Duration,
    /// How long an idle pooled connection is kept, default 55 s: keep it below the LRS's own
    /// keep-alive timeout, or a reused stale connection fails a POST.
    pub idle: Duration,
    /// From the first attempt to the LRS's last response byte, retries included, default 60 s.
    pub total: Duration,
    /// Active health check period, default 5 s.
    pub health_check_interval: Duration,
    /// When real requests take a node out of rotation.
    pub passive: crate::upstream::health::PassivePolicy,
}

impl UpstreamTimeouts {
    /// These timeouts with a tenant's own over them.
    pub fn with(self, tenant: crate::config::tenants::UpstreamOverrides) -> UpstreamTimeouts {
        UpstreamTimeouts {
            connect: tenant.connect.unwrap_or(self.connect),
            read: tenant.read.unwrap_or(self.read),
            write: tenant.read.unwrap_or(self.write),
            total: tenant.total.unwrap_or(self.total),
            ..self
        }
    }
}

/// Default edge read buffer per client connection: none. Pingora's own is 64 KiB, held by every
/// idle connection (69 KB RSS each with it, 7 KB without, at 10,000; bench/run.sh idle), for no
/// measurable gain on 1 KB to 100 KB bodies (post_1kb, post_batch100 in the same run).
const DEFAULT_READ_BUFFER: usize = 0;
/// Default runtime flavour (Pingora's own: work stealing).
const DEFAULT_WORK_STEALING: bool = true;

/// Pingora's own server settings, passed to its `ServerConf`.
#[derive(Debug, Clone)]
pub struct PingoraSettings {
    /// Worker threads per service, default 2.
    pub threads: usize,
    /// Default `/tmp/lrsgate.pid`.
    pub pid_file: String,
    /// Socket used to hand listeners to a new process on upgrade, default `/tmp/lrsgate_upgrade.sock`.
    pub upgrade_sock: String,
    pub error_log: Option<String>,
    /// How long an old process keeps serving after a graceful stop or upgrade, default 30 s
    /// (Pingora's own default is 300 s, which makes every reload take five minutes).
    pub grace_period_seconds: u64,
    /// Default 10 s.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Pooled upstream connections in total, default 256.
    pub upstream_keepalive_pool_size: usize,
    /// Each client connection's read buffer on the edge, allocated at accept and held while
    /// the connection idles; 0 reads straight into the request's own buffers.
    pub listener_read_buffer_bytes: usize,
    /// Pingora's work-stealing runtime (true) or one thread-local runtime per thread (false).
    pub work_stealing: bool,
}

impl ServerConfig {
    /// Load and validate the server file.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let raw: ServerFile = read_toml(file)?;
        Self::from_file(file, raw)
    }

    pub fn from_file(file: &Path, raw: ServerFile) -> Result<Self, ConfigError> {
        let addr = |key: &str, value: Option<String>, default: &str| -> Result<SocketAddr, ConfigError> {
            let text = value.unwrap_or_else(|| default.to_owned());
            text.parse().map_err(|_| {
                ConfigError::new(file, format!("listen.{key}"), format!("\"{text}\" is not an address:port"))
            })
        };
        let dir = file.parent().unwrap_or(Path::new("."));
        let tenants_file = dir.join(raw.tenants_file.unwrap_or_else(|| PathBuf::from("tenants.toml")));
        let positive = |key: &str, v: Option<u64>, default: u64| -> Result<u64, ConfigError> {
            match v.unwrap_or(default) {
                0 => Err(ConfigError::new(file, key.to_owned(), "must be greater than 0")),
                n => Ok(n),
            }
        };
        let u = raw.upstream;
        let p = raw.server;
        let threads = p.threads.unwrap_or(2);
        if threads == 0 {
            return Err(ConfigError::new(file, "server.threads".to_owned(), "must be greater than 0"));
        }
        let database = match raw.database {
            None => None,
            Some(db) => Some(database_settings(file, dir, db)?),
        };
        let edge_tls_listen = match raw.listen.edge_tls {
            None => None,
            Some(text) => Some(addr("edge_tls", Some(text), "")?),
        };
        let max_body_bytes = raw.limits.max_body_bytes.unwrap_or(4 * 1024 * 1024);
        if max_body_bytes == 0 {
            return Err(ConfigError::new(file, "limits.max_body_bytes".to_owned(), "must be greater than 0"));
        }
        Ok(ServerConfig {
            tenants_file,
            edge_listen: addr("edge", raw.listen.edge, "0.0.0.0:8080")?,
            edge_tls_listen,
            admin_listen: addr("admin", raw.listen.admin, "127.0.0.1:8082")?,
            token_listen: addr("token_service", raw.listen.token_service, "0.0.0.0:8081")?,
            metrics_listen: addr("metrics", raw.listen.metrics, "127.0.0.1:9090")?,
            max_body_bytes,
            token_request_max_bytes: raw.limits.token_request_max_bytes.unwrap_or(64 * 1024),
            body_read_timeout: Duration::from_secs(positive(
                "limits.body_read_timeout_seconds",
                raw.limits.body_read_timeout_seconds,
                30,
            )?),
            connections: crate::listener::ConnectionLimits {
                max_connections: positive(
                    "limits.max_connections",
                    raw.limits.max_connections.map(|n| n as u64),
                    100_000,
                )? as usize,
                max_connections_per_client: positive(
                    "limits.max_connections_per_client",
                    raw.limits.max_connections_per_client.map(|n| n as u64),
                    1_000,
                )? as usize,
                request_head_timeout: Duration::from_secs(positive(
                    "limits.request_head_timeout_seconds",
                    raw.limits.request_head_timeout_seconds,
                    10,
                )?),
                keepalive_timeout: Duration::from_secs(positive(
                    "limits.keepalive_timeout_seconds",
                    raw.limits.keepalive_timeout_seconds,
                    60,
                )?),
            },
            keepalive_requests: positive(
                "limits.keepalive_requests",
                raw.limits.keepalive_requests.map(u64::from),
                10_000,
            )?
            .min(u64::from(u32::MAX)) as u32,
            issuer: raw.tokens.issuer.unwrap_or_else(|| "lrsgate".to_owned()),
            clock_skew_seconds: raw.tokens.clock_skew_seconds.unwrap_or(30),
            upstream: UpstreamTimeouts {
                connect: Duration::from_millis(positive("upstream.connect_timeout_ms", u.connect_timeout_ms, 2_000)?),
                read: Duration::from_millis(positive("upstream.read_timeout_ms", u.read_timeout_ms, 30_000)?),
                write: Duration::from_millis(positive("upstream.write_timeout_ms", u.write_timeout_ms, 30_000)?),
                idle: Duration::from_secs(positive("upstream.idle_timeout_seconds", u.idle_timeout_seconds, 55)?),
                total: Duration::from_millis(positive("upstream.total_timeout_ms", u.total_timeout_ms, 60_000)?),
                health_check_interval: Duration::from_secs(positive(
                    "upstream.health_check_interval_seconds",
                    u.health_check_interval_seconds,
                    5,
                )?),
                passive: crate::upstream::health::PassivePolicy {
                    failures: positive("upstream.eject_after_failures", u.eject_after_failures.map(u64::from), 3)?
                        .min(1000) as u32,
                    ejection: Duration::from_millis(positive("upstream.ejection_ms", u.ejection_ms, 5_000)?),
                    max_ejection: Duration::from_millis(positive(
                        "upstream.max_ejection_ms",
                        u.max_ejection_ms,
                        60_000,
                    )?),
                },
            },
            pingora: PingoraSettings {
                threads,
                pid_file: p.pid_file.unwrap_or_else(|| "/tmp/lrsgate.pid".to_owned()),
                upgrade_sock: p.upgrade_sock.unwrap_or_else(|| "/tmp/lrsgate_upgrade.sock".to_owned()),
                error_log: p.error_log,
                grace_period_seconds: p.grace_period_seconds.unwrap_or(30),
                graceful_shutdown_timeout_seconds: p.graceful_shutdown_timeout_seconds.unwrap_or(10),
                upstream_keepalive_pool_size: p.upstream_keepalive_pool_size.unwrap_or(256),
                listener_read_buffer_bytes: match p.listener_read_buffer_bytes.unwrap_or(DEFAULT_READ_BUFFER) {
                    n if n > 1024 * 1024 => {
                        return Err(ConfigError::new(
                            file,
                            "server.listener_read_buffer_bytes".to_owned(),
                            "must be at most 1048576",
                        ))
                    }
                    n => n,
                },
                work_stealing: p.work_stealing.unwrap_or(DEFAULT_WORK_STEALING),
            },
            log_format: match raw.logging.format.as_deref() {
                None => crate::logging::LogFormat::Text,
                Some(text) => crate::logging::LogFormat::parse(text).ok_or_else(|| {
                    ConfigError::new(file, "logging.format".to_owned(), format!("\"{text}\" is not text or json"))
                })?,
            },
            audit: match raw.audit {
                None => None,
                Some(audit) => {
                    if raw.logging.learner_hash_salt.is_none() {
                        return Err(ConfigError::new(
                            file,
                            "logging.learner_hash_salt".to_owned(),
                            "the audit trail needs it, so a learner's hash is the same on every instance and after a restart",
                        ));
                    }
                    Some(audit_settings(file, dir, audit, database.is_some())?)
                }
            },
            database,
            metric_tenants: raw.metrics.tenant_labels.into_iter().collect(),
            learner_hash_salt: raw.logging.learner_hash_salt,
        })
    }
}

fn audit_settings(file: &Path, dir: &Path, a: AuditFile, postgres: bool) -> Result<AuditSettings, ConfigError> {
    let err = |key: &str, msg: &str| ConfigError::new(file, format!("audit.{key}"), msg.to_owned());
    let queue_capacity = a.queue_capacity.unwrap_or(65_536);
    if queue_capacity == 0 {
        return Err(err("queue_capacity", "must be greater than 0"));
    }
    let sink = if postgres {
        if a.file.is_some() || a.rotate_bytes.is_some() || a.keep.is_some() {
            return Err(err("file", "Postgres mode writes the audit trail to audit_events; give spool_dir instead"));
        }
        let spool_dir = a.spool_dir.ok_or_else(|| {
            err("spool_dir", "Postgres mode needs a spool directory for events written while Postgres is away")
        })?;
        AuditSink::Postgres(crate::audit::postgres::PostgresAuditSettings {
            spool_dir: dir.join(spool_dir),
            spool_max_bytes: a.spool_max_bytes.unwrap_or(256 * 1024 * 1024),
            retention_days: a.retention_days.unwrap_or(90),
            replay_batch: a.replay_batch.filter(|n| *n > 0).unwrap_or(1000),
            // Set from the grace period by `server::build`.
            drain_for: Duration::ZERO,
        })
    } else {
        if a.spool_dir.is_some() || a.spool_max_bytes.is_some() || a.retention_days.is_some() {
            return Err(err("spool_dir", "only Postgres mode spools; file mode writes `file`"));
        }
        let target = match a.file.as_deref().unwrap_or("audit.jsonl") {
            "-" => crate::audit::file::AuditFileTarget::Stdout,
            path => crate::audit::file::AuditFileTarget::File {
                path: dir.join(path),
                rotate_bytes: a.rotate_bytes.filter(|n| *n > 0).unwrap_or(64 * 1024 * 1024),
                keep: a.keep.unwrap_or(7),
            },
        };
        AuditSink::File(target)
    };
    Ok(AuditSettings { queue_capacity, sink })
}

fn database_settings(file: &Path, dir: &Path, db: DatabaseFile) -> Result<DatabaseSettings, ConfigError> {
    let err = |key: &str, msg: String| ConfigError::new(file, format!("database.{key}"), msg);
    if !(db.url.starts_with("postgres://") || db.url.starts_with("postgresql://")) {
        return Err(err("url", "must be a postgres:// URL".into()));
    }
    let text = match (db.master_keys, db.master_key_file) {
        (Some(text), None) => text,
        (None, Some(path)) => {
            let path = dir.join(path);
            std::fs::read_to_string(&path)
                .map_err(|e| err("master_key_file", format!("cannot read {}: {e}", path.display())))?
        }
        _ => return Err(err("master_keys", "give master_keys or master_key_file (one of them)".into())),
    };
    let master_keys = crate::secrets::MasterKeys::parse(&text).map_err(|e| err("master_keys", e.0))?;
    let pool_size = db.pool_size.unwrap_or(4);
    if pool_size == 0 {
        return Err(err("pool_size", "must be greater than 0".into()));
    }
    let snapshot_cache = db.snapshot_cache.map(|path| dir.join(path));
    Ok(DatabaseSettings { url: db.url, pool_size, master_keys, snapshot_cache })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_toml;

    fn load(text: &str) -> Result<ServerConfig, ConfigError> {
        let file = Path::new("/etc/lrsgate/lrsgate.toml");
        let raw: ServerFile = parse_toml(file, text, &|_| None)?;
        ServerConfig::from_file(file, raw)
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.edge_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.tenants_file, PathBuf::from("/etc/lrsgate/tenants.toml"));
        assert_eq!(c.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.pingora.grace_period_seconds, 30);
    }

    #[test]
    fn database_section_is_checked() {
        assert!(load("").unwrap().database.is_none(), "file mode by default");
        let key = crate::secrets::MasterKeys::generate_entry("k1");
        let ok = load(&format!("[database]\nurl = 'postgres://u@h/db'\nmaster_keys = '{key}'\n")).unwrap();
        assert_eq!(ok.database.unwrap().master_keys.sealing_id(), "k1");
        let key_of = |text: &str| load(text).unwrap_err().key;
        assert_eq!(key_of("[database]\nurl = 'mysql://h'\nmaster_keys = 'x'\n").as_deref(), Some("database.url"));
        assert_eq!(key_of("[database]\nurl = 'postgres://h'\n").as_deref(), Some("database.master_keys"));
        assert_eq!(
            key_of("[database]\nurl = 'postgres://h'\nmaster_keys = 'k1:AAAA'\n").as_deref(),
            Some("database.master_keys")
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load("[limits]\nmax_body_byte = 10\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("limits.max_body_byte"));
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn bad_address_and_zero_values_are_named() {
        assert_eq!(load("[listen]\nedge = 'nowhere'\n").unwrap_err().key.as_deref(), Some("listen.edge"));
        assert_eq!(load("[server]\nthreads = 0\n").unwrap_err().key.as_deref(), Some("server.threads"));
        assert_eq!(
            load("[server]\nlistener_read_buffer_bytes = 2000000\n").unwrap_err().key.as_deref(),
            Some("server.listener_read_buffer_bytes")
        );
        let tuned = load("[server]\nlistener_read_buffer_bytes = 16384\nwork_stealing = false\n").unwrap();
        assert_eq!((tuned.pingora.listener_read_buffer_bytes, tuned.pingora.work_stealing), (16384, false));
        let defaults = load("").unwrap();
        assert_eq!((defaults.pingora.listener_read_buffer_bytes, defaults.pingora.work_stealing), (0, true));
        assert_eq!(
            load("[upstream]\nread_timeout_ms = 0\n").unwrap_err().key.as_deref(),
            Some("upstream.read_timeout_ms")
        );
    }
}
