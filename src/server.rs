//! Builds the one Pingora `Server`: the edge (plain, and TLS with per-tenant certificates by
//! SNI where configured), the token service, `/metrics`, the admin API (Postgres mode), and the
//! background services (the tenant source — file or Postgres —, LRS health checks, session
//! sweeper). `main.rs` only parses the command line.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::apps::http_app::HttpServer;
use pingora::lb::HealthCheckService;

use crate::upstream::Balancers;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::AdminService;
use crate::audit::file::FileAuditWriter;
use crate::audit::postgres::PostgresAuditWriter;
use crate::audit::Audit;
use crate::config::server::AuditSink;
use crate::config::server::ServerConfig;
use crate::edge::tls::SniCertificates;
use crate::edge::Edge;
use crate::heartbeat::FleetHeartbeat;
use crate::listener::Guarded;
use crate::metrics;
use crate::operations::Operations;
use crate::session::fleet::{FleetSessions, SessionEventsFollower};
use crate::session::store::{MemorySessions, SessionStore};
use crate::session::sweeper::SessionSweeper;
use crate::tenant::file::FileSource;
use crate::tenant::postgres::PostgresSource;
use crate::tenant::{TenantStore, TenantTable};
use crate::token_service::TokenService;

/// The balancers every tenant's LRS nodes come from, on one health registry; an active probe
/// gets the connect timeout (at least a second) to connect and, over HTTP, to answer.
pub fn balancers(cfg: &ServerConfig) -> Arc<Balancers> {
    Arc::new(Balancers::new(cfg.upstream.connect.max(std::time::Duration::from_secs(1))))
}

/// Pingora's own settings from our config file (shared with the bench's plain passthrough, so
/// its floor is measured with lrsgate's settings).
pub fn pingora_conf(cfg: &ServerConfig) -> ServerConf {
    let p = &cfg.pingora;
    ServerConf {
        threads: p.threads,
        pid_file: p.pid_file.clone(),
        upgrade_sock: p.upgrade_sock.clone(),
        error_log: p.error_log.clone(),
        grace_period_seconds: Some(p.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(p.graceful_shutdown_timeout_seconds),
        upstream_keepalive_pool_size: p.upstream_keepalive_pool_size,
        work_stealing: p.work_stealing,
        // Off: the parent of the daemon fork would wait for the daemon's SIGUSR1 through
        // tokio's signal pipe, which the config load's runtime created before the fork and
        // the daemon inherits; the daemon's runtimes then read the parent's wake-up byte
        // about half the time and the parent hangs (seen in tests/systemd_unit.rs). The
        // config is loaded and judged before the fork, so what can fail has failed by the
        // time the parent exits.
        daemon_wait_for_ready: false,
        ..ServerConf::default()
    }
}

/// A client-facing plain-TCP listener with lrsgate's buffer settings (shared with the bench's
/// plain passthrough).
pub fn edge_listener(addr: &str, cfg: &ServerConfig) -> pingora::listeners::ListenerConfig {
    let buffers = pingora::listeners::L4BufferSettings::default().read(cfg.pingora.listener_read_buffer_bytes);
    pingora::listeners::ListenerConfig::tcp(addr).l4_buffer(buffers)
}

/// The HTTP server options of the edge (shared with the bench's plain passthrough).
pub fn http_server_options(cfg: &ServerConfig) -> pingora::apps::HttpServerOptions {
    let mut options = pingora::apps::HttpServerOptions::default();
    options.keepalive_request_limit = Some(cfg.keepalive_requests);
    options
}

/// Everything `serve` starts. `table` is the first snapshot, already loaded and validated.
pub fn build(cfg: ServerConfig, opt: Opt, table: TenantTable, health: Arc<Balancers>) -> Result<Server, String> {
    metrics::init();
    let mut server = Server::new_with_opt_and_conf(opt, pingora_conf(&cfg));
    // Bootstrap (taking over the listeners of an old process) runs as a service after the
    // daemon fork, in the daemon: before the fork it would wait for sockets the old process
    // sends only once told to, and the command that tells it runs after this one returns.
    let bootstrap = server.bootstrap_as_a_service();
    let store: TenantStore = Arc::new(ArcSwap::from_pointee(table));
    let learner_salt = cfg.learner_hash_salt.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let started_at = crate::clock::unix_now();
    // The audit trail: a bounded queue every service hands events to, drained by one writer.
    let (audit, audit_writer) = match &cfg.audit {
        None => (Audit::disabled(), None),
        Some(settings) => {
            let (audit, queue) = Audit::channel(settings.queue_capacity);
            let queue = std::sync::Mutex::new(Some(queue));
            // Taken until just before Pingora's grace period ends and its runtimes stop.
            let drain_for =
                std::time::Duration::from_millis((cfg.pingora.grace_period_seconds * 1000).saturating_sub(250));
            let writer: Box<dyn pingora::services::ServiceWithDependents> = match (&settings.sink, &cfg.database) {
                (AuditSink::File(target), _) => Box::new(background_service(
                    "lrsgate audit file writer",
                    FileAuditWriter { target: target.clone(), queue, drain_for },
                )),
                (AuditSink::Postgres(pg), Some(db)) => Box::new(background_service(
                    "lrsgate audit Postgres writer",
                    PostgresAuditWriter {
                        pool: crate::db::pool(db)?,
                        settings: crate::audit::postgres::PostgresAuditSettings { drain_for, ..pg.clone() },
                        queue,
                    },
                )),
                (AuditSink::Postgres(_), None) => return Err("audit: Postgres sink without a database".into()),
            };
            (audit, Some(writer))
        }
    };
    let ops = Arc::new(Operations::new(audit.clone(), learner_salt, cfg.metric_tenants.clone()));
    // File mode keeps session state in this process; Postgres mode shares it across the fleet.
    let fleet = match &cfg.database {
        Some(db) => Some(FleetSessions::new(crate::db::pool(db)?, started_at)),
        None => None,
    };
    let sessions: Arc<dyn SessionStore> = match &fleet {
        Some(fleet) => fleet.clone(),
        None => Arc::new(MemorySessions::new(started_at)),
    };

    let mut proxy = pingora::proxy::http_proxy(
        &server.configuration,
        Edge::new(store.clone(), sessions.clone(), ops.clone(), cfg.body_read_timeout),
    );
    proxy.server_options = Some(http_server_options(&cfg));
    // Caps on open connections and the request head deadline, before Pingora reads a request.
    let mut edge = Service::new("lrsgate edge".to_owned(), Guarded::new(proxy, cfg.connections));
    edge.add_listener(edge_listener(&cfg.edge_listen.to_string(), &cfg));
    if let Some(addr) = cfg.edge_tls_listen {
        let mut tls =
            pingora::listeners::tls::TlsSettings::with_callbacks(Box::new(SniCertificates { store: store.clone() }))
                .map_err(|e| format!("TLS listener: {e}"))?;
        tls.enable_h2();
        edge.add_tls_with_settings(&addr.to_string(), None, tls);
    }

    let token_app = TokenService {
        store: store.clone(),
        sessions: sessions.clone(),
        max_request_bytes: cfg.token_request_max_bytes,
        body_read_timeout: cfg.body_read_timeout,
        ops: ops.clone(),
    };
    let mut token =
        Service::new("lrsgate token service".to_owned(), Guarded::new(HttpServer::new_app(token_app), cfg.connections));
    token.add_tcp(&cfg.token_listen.to_string());

    let mut prometheus = pingora_prometheus::prometheus_http_service();
    prometheus.add_tcp(&cfg.metrics_listen.to_string());

    let mut health_service = HealthCheckService::new(health.registry().clone());
    health_service.health_check_frequency = Some(cfg.upstream.health_check_interval);
    health_service.parallel_health_check = true;

    // Listeners start only after the bootstrap: with inherited sockets on an upgrade.
    server.add_service(edge).add_dependency(&bootstrap);
    server.add_service(token).add_dependency(&bootstrap);
    server.add_service(prometheus).add_dependency(&bootstrap);
    server.add_service(background_service(
        "lrsgate early exit",
        crate::lifecycle::EarlyExit { grace: std::time::Duration::from_secs(cfg.pingora.grace_period_seconds) },
    ));
    match cfg.database.clone() {
        None => {
            let source = FileSource { server: cfg, store, health: health.clone(), audit: audit.clone() };
            server.add_service(background_service("lrsgate tenant file source", source));
        }
        Some(db) => {
            let url = db.url.clone();
            let cache = db.snapshot_cache.as_ref().map(|_| crate::tenant::postgres::SnapshotCacheWriter::default());
            let admin_app = AdminService {
                pool: crate::db::pool(&db)?,
                master: db.master_keys.clone(),
                body_read_timeout: cfg.body_read_timeout,
                audit: audit.clone(),
            };
            let mut admin =
                Service::new("lrsgate admin".to_owned(), Guarded::new(HttpServer::new_app(admin_app), cfg.connections));
            admin.add_tcp(&cfg.admin_listen.to_string());
            server.add_service(admin).add_dependency(&bootstrap);
            let heartbeat = FleetHeartbeat {
                pool: crate::db::pool(&crate::config::server::DatabaseSettings { pool_size: 1, ..db.clone() })?,
                instance: uuid::Uuid::new_v4().to_string(),
                instances: ops.instances.clone(),
            };
            server.add_service(background_service("lrsgate fleet heartbeat", heartbeat));
            let source = PostgresSource {
                pool: crate::db::pool(&crate::config::server::DatabaseSettings { pool_size: 2, ..db.clone() })?,
                server: cfg,
                db,
                store,
                health: health.clone(),
                // Started from the snapshot cache: as old as the rows in it.
                synced_at: Arc::new(std::sync::atomic::AtomicU64::new(
                    match crate::tenant::postgres::STARTED_FROM_CACHE.load(std::sync::atomic::Ordering::Acquire) {
                        0 => crate::clock::unix_now(),
                        read_at => read_at,
                    },
                )),
                cache,
                audit: audit.clone(),
            };
            server.add_service(background_service("lrsgate tenant Postgres source", source));

            if let Some(store) = fleet {
                let follower = SessionEventsFollower { store, url };
                server.add_service(background_service("lrsgate session events follower", follower));
            }
        }
    }
    server.add_service(background_service("lrsgate LRS health checks", health_service));
    server.add_service(background_service("lrsgate session sweeper", SessionSweeper { sessions }));
    if let Some(writer) = audit_writer {
        server.add_boxed_service(writer);
    }
    Ok(server)
}
