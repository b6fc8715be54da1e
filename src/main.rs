//! The `lrsgate` command: wires config to the server; all logic lives in the library.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pingora::server::configuration::Opt;

use lrsgate::admin::ops::{self, NewTenant, NewUpstream, OpsError};
use lrsgate::audit::file::AuditFileTarget;
use lrsgate::auth::apikey;
use lrsgate::config::server::{AuditSink, DatabaseSettings, ServerConfig};
use lrsgate::secrets::MasterKeys;
use lrsgate::server;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "lrsgate", version, about = "Session-scoped security at the edge for any xAPI LRS")]
struct Cli {
    /// The server config file (its `[database]` section names the database for the commands
    /// that manage tenants).
    #[arg(short, long, global = true, env = "LRSGATE_CONFIG", default_value = "conf/lrsgate.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the edge, the token service, /metrics, and in Postgres mode the admin API.
    Serve {
        /// Detach and run in the background (writes the pid file).
        #[arg(short, long)]
        daemon: bool,
        /// Take over the listeners of a running instance (graceful upgrade).
        #[arg(short, long)]
        upgrade: bool,
    },
    /// Validate the config and every tenant (file or database) without starting.
    CheckConfig,
    /// Apply the database migrations (idempotent).
    Migrate,
    /// Tenants (Postgres mode).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// A tenant's hosts (Postgres mode).
    Host {
        #[command(subcommand)]
        command: HostCommand,
    },
    /// End or revoke sessions fleet-wide (Postgres mode).
    Session {
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// A tenant's LRS nodes (Postgres mode).
    Upstream {
        #[command(subcommand)]
        command: UpstreamCommand,
    },
    /// LMS API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// A tenant's allowed browser origins (Postgres mode).
    Cors {
        #[command(subcommand)]
        command: CorsCommand,
    },
    /// Set a host's TLS certificate chain and private key, PEM files (Postgres mode).
    Cert {
        tenant: String,
        host: String,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Admin API keys (Postgres mode).
    AdminKey {
        #[command(subcommand)]
        command: AdminKeyCommand,
    },
    /// Print a new random master key entry (`<id>:<base64>`) for `[database] master_keys`.
    MasterKey {
        /// Its id (say, the date you rotate).
        id: String,
    },
    /// Re-seal every stored secret with the first master key (after putting a new one first).
    ResealSecrets,
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Events matching every filter given, oldest first (Postgres mode: `audit_events`; file
    /// mode: the audit file and its rotations).
    Query {
        #[arg(long)]
        tenant: Option<String>,
        /// Unix seconds or RFC 3339 UTC (`2026-12-02T10:00:00Z`), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// Exclusive.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        session: Option<String>,
        /// The learner's hash as the audit trail shows it.
        #[arg(long)]
        learner: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

impl AuditCommand {
    fn filter(&self) -> Result<lrsgate::audit::query::AuditQuery, String> {
        let AuditCommand::Query { tenant, from, to, session, learner, reason, kind, limit } = self;
        let limit = limit.to_string();
        let pairs = [
            ("tenant", tenant.as_deref()),
            ("from", from.as_deref()),
            ("to", to.as_deref()),
            ("session", session.as_deref()),
            ("learner", learner.as_deref()),
            ("reason", reason.as_deref()),
            ("kind", kind.as_deref()),
            ("limit", Some(limit.as_str())),
        ];
        lrsgate::audit::query::AuditQuery::from_pairs(pairs.into_iter().filter_map(|(n, v)| v.map(|v| (n, v))))
    }
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant (a random signing secret is made for it).
    Create {
        id: String,
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// An LRS base URL with its xAPI path (repeatable).
        #[arg(long = "upstream")]
        upstreams: Vec<String>,
        #[arg(long)]
        lrs_username: String,
        /// The environment variable holding the LRS password (never on the command line).
        #[arg(long, default_value = "LRSGATE_LRS_PASSWORD")]
        lrs_password_env: String,
        #[arg(long)]
        public_origin: Option<String>,
    },
    List,
    Show {
        id: String,
    },
    Suspend {
        id: String,
    },
    Resume {
        id: String,
    },
    Delete {
        id: String,
    },
    /// Change limits and policy switches: `name=value` pairs (`max_body_bytes=1048576`,
    /// `policy_cmi5_session_rules=false`, `fetch_ttl_seconds=null` for the default).
    Set {
        id: String,
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Set (or with no value, clear) the edge's public origin for cmi5 fetch URLs.
    SetPublicOrigin {
        id: String,
        origin: Option<String>,
    },
    /// Replace the LRS credential (password from an environment variable).
    SetLrsCredential {
        id: String,
        username: String,
        #[arg(long, default_value = "LRSGATE_LRS_PASSWORD")]
        password_env: String,
    },
}

#[derive(Subcommand)]
enum SessionCommand {
    /// Refuse a session's tokens, one token, or every token a learner was issued so far, on
    /// every instance within about a second.
    Revoke {
        tenant: String,
        #[arg(long, conflicts_with_all = ["jti", "learner"], required_unless_present_any = ["jti", "learner"])]
        session: Option<String>,
        #[arg(long, conflicts_with = "learner")]
        jti: Option<String>,
        /// The learner as an xAPI Agent (JSON).
        #[arg(long)]
        learner: Option<String>,
        /// `revoked`, or for a session also `abandoned` or `ended`.
        #[arg(long, default_value = "revoked")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum HostCommand {
    Add { tenant: String, host: String },
    Remove { tenant: String, host: String },
}

#[derive(Subcommand)]
enum UpstreamCommand {
    Add {
        tenant: String,
        url: String,
        #[arg(long, default_value_t = 1)]
        weight: i32,
    },
    /// Remove by the node id `tenant show` lists.
    Remove { tenant: String, id: i64 },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// File mode: print a new LMS API key (shown once) and the hash to put in the tenants file.
    New,
    /// Postgres mode: create a key for a tenant (shown once; only its hash is stored).
    Create {
        tenant: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Postgres mode: revoke a key by the id `tenant show` lists.
    Revoke { tenant: String, id: i64 },
}

#[derive(Subcommand)]
enum CorsCommand {
    Add { tenant: String, origin: String },
    Remove { tenant: String, origin: String },
}

#[derive(Subcommand)]
enum AdminKeyCommand {
    /// Create an admin API key (shown once).
    New {
        #[arg(long, default_value = "")]
        description: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    // `LRSGATE_LOG_FORMAT` wins; else the server file's `[logging] format`; else text.
    let format = std::env::var("LRSGATE_LOG_FORMAT")
        .ok()
        .and_then(|f| lrsgate::logging::LogFormat::parse(&f))
        .or_else(|| ServerConfig::load(&config).ok().map(|c| c.log_format))
        .unwrap_or_default();
    lrsgate::logging::init(format);
    match cli.command {
        Command::Serve { daemon, upgrade } => serve(&config, daemon, upgrade),
        Command::CheckConfig => match load(&config) {
            Ok((_, table, _)) => {
                println!("{}: OK ({} tenant(s))", config.display(), table.tenant_count());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Apikey { command: ApikeyCommand::New } => {
            let (key, hash) = apikey::generate();
            println!("api key (give it to the LMS; it is not stored and cannot be shown again):\n  {key}");
            println!("hash (add it to the tenant's lms.api_key_hashes):\n  {hash}");
            ExitCode::SUCCESS
        }
        Command::MasterKey { id } => {
            println!("{}", MasterKeys::generate_entry(&id));
            ExitCode::SUCCESS
        }
        Command::Audit { command } => audit_query(&config, &command),
        command => manage(&config, command),
    }
}

/// `lrsgate audit query`: from `audit_events` in Postgres mode, else from the audit file.
fn audit_query(config: &Path, command: &AuditCommand) -> ExitCode {
    let cfg = match ServerConfig::load(config) {
        Ok(cfg) => cfg,
        Err(e) => return fail(e.to_string()),
    };
    let filter = match command.filter() {
        Ok(filter) => filter,
        Err(e) => return fail(e),
    };
    let events = match (&cfg.database, cfg.audit.as_ref().map(|a| &a.sink)) {
        (Some(db), _) => runtime().and_then(|rt| {
            rt.block_on(async {
                let client = lrsgate::db::connect(&db.url).await?;
                filter.run(&client).await.map_err(|e| format!("audit query: {e}"))
            })
        }),
        (None, Some(AuditSink::File(AuditFileTarget::File { path, keep, .. }))) => {
            read_audit_files(path, *keep, &filter)
        }
        (None, _) => Err(format!("{}: no audit file is configured ([audit] file)", config.display())),
    };
    match events {
        Ok(events) => {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "events": events })).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// The matching events of an audit file and its rotations, oldest first.
fn read_audit_files(
    path: &Path,
    keep: u32,
    filter: &lrsgate::audit::query::AuditQuery,
) -> Result<Vec<serde_json::Value>, String> {
    let mut files: Vec<PathBuf> = (1..=keep).rev().map(|n| PathBuf::from(format!("{}.{n}", path.display()))).collect();
    files.push(path.to_owned());
    let mut events = Vec::new();
    for file in files.iter().filter(|f| f.exists()) {
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Some(event) = lrsgate::audit::AuditEvent::from_json(line) else { continue };
            if filter.matches(&event) {
                events.push(serde_json::to_value(&event).map_err(|e| e.to_string())?);
                if events.len() as i64 >= filter.limit {
                    return Ok(events);
                }
            }
        }
    }
    Ok(events)
}

fn fail(message: String) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

type Loaded = (ServerConfig, lrsgate::tenant::TenantTable, std::sync::Arc<lrsgate::upstream::Balancers>);

/// Load and validate everything before Pingora starts, so a bad config never takes over the
/// listeners of a running instance during an upgrade.
fn load(config: &Path) -> Result<Loaded, String> {
    let cfg = ServerConfig::load(config).map_err(|e| e.to_string())?;
    let health = server::balancers(&cfg);
    let table = runtime()?
        .block_on(async {
            match &cfg.database {
                None => lrsgate::tenant::file::load_table(&cfg, &health).await,
                Some(db) => lrsgate::tenant::postgres::load_table(&cfg, db, &health).await,
            }
        })
        .map_err(|e| e.to_string())?;
    Ok((cfg, table, health))
}

fn serve(config: &Path, daemon: bool, upgrade: bool) -> ExitCode {
    let (cfg, table, health) = match load(config) {
        Ok(loaded) => loaded,
        // Before any socket is touched: the running process was not told to hand them over.
        Err(e) if upgrade => return fail(format!("upgrade refused, the running process keeps serving: {e}")),
        Err(e) => return fail(e),
    };
    log::info!(
        "serving {} tenant(s) from {}: edge {}{}, token service {}, metrics {}{}",
        table.tenant_count(),
        if cfg.database.is_some() { "Postgres" } else { "the tenants file" },
        cfg.edge_listen,
        cfg.edge_tls_listen.map(|a| format!(" (TLS {a})")).unwrap_or_default(),
        cfg.token_listen,
        cfg.metrics_listen,
        if cfg.database.is_some() { format!(", admin {}", cfg.admin_listen) } else { String::new() },
    );
    let opt = Opt { daemon, upgrade, ..Opt::default() };
    match server::build(cfg, opt, table, health) {
        Ok(server) => server.run_forever(),
        Err(e) => fail(e),
    }
}

/// The commands that manage tenants in the database: each prints JSON (or a clear error).
fn manage(config: &Path, command: Command) -> ExitCode {
    let db = match ServerConfig::load(config).map_err(|e| e.to_string()).and_then(|cfg| {
        cfg.database
            .ok_or_else(|| format!("{}: this command needs a [database] section (Postgres mode)", config.display()))
    }) {
        Ok(db) => db,
        Err(e) => return fail(e),
    };
    let change = cli_change(&command);
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let output = run(&db, command).await?;
            if let Some((detail, tenant)) = change {
                record_cli_change(&db, detail, tenant).await;
            }
            Ok(output)
        })
    });
    match result {
        Ok(output) => {
            println!("{}", serde_json::to_string_pretty(&output).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// What a changing CLI command is in the audit trail: its command words (never its arguments,
/// which may name a learner) and its tenant. `None` for commands that change nothing.
fn cli_change(command: &Command) -> Option<(String, Option<String>)> {
    let (words, tenant): (&str, Option<&String>) = match command {
        Command::Tenant { command } => match command {
            TenantCommand::List | TenantCommand::Show { .. } => return None,
            TenantCommand::Create { id, .. } => ("tenant create", Some(id)),
            TenantCommand::Suspend { id } => ("tenant suspend", Some(id)),
            TenantCommand::Resume { id } => ("tenant resume", Some(id)),
            TenantCommand::Delete { id } => ("tenant delete", Some(id)),
            TenantCommand::Set { id, .. } => ("tenant set", Some(id)),
            TenantCommand::SetPublicOrigin { id, .. } => ("tenant set-public-origin", Some(id)),
            _ => ("tenant", None),
        },
        Command::Host { .. } => ("host", None),
        Command::Session { command: SessionCommand::Revoke { tenant, .. } } => ("session revoke", Some(tenant)),
        Command::Upstream { .. } => ("upstream", None),
        Command::Apikey { .. } => ("apikey", None),
        Command::Cors { .. } => ("cors", None),
        Command::Cert { tenant, .. } => ("cert", Some(tenant)),
        Command::AdminKey { .. } => ("admin-key", None),
        Command::ResealSecrets => ("reseal-secrets", None),
        _ => return None,
    };
    Some((format!("cli: {words}"), tenant.cloned()))
}

/// Record a CLI change in `audit_events` (when the table exists: after `migrate`).
async fn record_cli_change(db: &DatabaseSettings, detail: String, tenant: Option<String>) {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let mut event =
        lrsgate::audit::AuditEvent::new(lrsgate::audit::EventKind::AdminChange, lrsgate::audit::Service::Admin)
            .actor(format!("cli:{user}"))
            .detail(detail);
    event.tenant = tenant;
    if let Ok(client) = lrsgate::db::connect(&db.url).await {
        if let Err(e) = lrsgate::audit::postgres::insert_events(&client, &[event]).await {
            eprintln!("warning: the change was made but not recorded in the audit trail: {e}");
        }
    }
}

fn env_secret(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set the environment variable {name} (secrets are not taken as arguments)"))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

async fn with<T: serde::Serialize, F: Future<Output = Result<T, OpsError>>>(f: F) -> Result<serde_json::Value, String> {
    f.await.map(|v| serde_json::json!(v)).map_err(|e| e.to_string())
}

async fn run(db: &DatabaseSettings, command: Command) -> Result<serde_json::Value, String> {
    let mut client = lrsgate::db::connect(&db.url).await?;
    let m = &db.master_keys;
    let c = &client;
    let done = |v: Result<(), OpsError>| v.map(|()| serde_json::json!({"ok": true})).map_err(|e| e.to_string());
    match command {
        Command::Migrate => {
            let applied = lrsgate::db::migrate(&mut client).await?;
            Ok(serde_json::json!({"applied": applied}))
        }
        Command::Tenant { command } => match command {
            TenantCommand::Create { id, hosts, upstreams, lrs_username, lrs_password_env, public_origin } => {
                let new = NewTenant {
                    id,
                    hosts,
                    upstreams: upstreams.into_iter().map(|url| NewUpstream { url, weight: 1 }).collect(),
                    lrs_username,
                    lrs_password: env_secret(&lrs_password_env)?,
                    public_origin,
                };
                with(ops::create_tenant(&mut client, m, &new)).await
            }
            TenantCommand::List => with(ops::list_tenants(c)).await,
            TenantCommand::Set { id, settings } => {
                let mut fields = serde_json::Map::new();
                for pair in &settings {
                    let (name, value) = pair.split_once('=').ok_or_else(|| format!("\"{pair}\" is not name=value"))?;
                    // Numbers, booleans and null as JSON; anything else as a string.
                    let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::from(value));
                    fields.insert(name.to_owned(), value);
                }
                let settings: ops::TenantSettings =
                    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| e.to_string())?;
                with(ops::update_settings(&mut client, m, &id, &settings)).await
            }
            TenantCommand::Show { id } => with(ops::show_tenant(c, &id)).await,
            TenantCommand::Suspend { id } => done(ops::set_status(c, &id, "suspended").await),
            TenantCommand::Resume { id } => done(ops::set_status(c, &id, "active").await),
            TenantCommand::Delete { id } => done(ops::delete_tenant(c, &id).await),
            TenantCommand::SetPublicOrigin { id, origin } => {
                done(ops::set_public_origin(c, &id, origin.as_deref()).await)
            }
            TenantCommand::SetLrsCredential { id, username, password_env } => {
                let password = env_secret(&password_env)?;
                done(ops::set_lrs_credential(c, m, &id, &username, &password).await)
            }
        },
        Command::Host { command } => match command {
            HostCommand::Add { tenant, host } => with(ops::add_host(c, &tenant, &host)).await,
            HostCommand::Remove { tenant, host } => done(ops::remove_host(c, &tenant, &host).await),
        },
        Command::Session { command: SessionCommand::Revoke { tenant, session, jti, learner, reason } } => {
            let learner = match learner.as_deref().map(serde_json::from_str::<serde_json::Value>) {
                Some(Ok(agent)) => Some(agent),
                Some(Err(e)) => return Err(format!("--learner is not JSON: {e}")),
                None => None,
            };
            let mut body = serde_json::json!({ "reason": reason });
            for (name, value) in
                [("session_id", session.map(Into::into)), ("jti", jti.map(Into::into)), ("learner", learner)]
            {
                if let Some(value) = value {
                    body[name] = value;
                }
            }
            let request = lrsgate::token_service::request::EndRequest::parse(body.to_string().as_bytes())
                .map_err(|e| e.to_string())?;
            with(ops::revoke(c, &tenant, &request, lrsgate::clock::unix_now())).await
        }
        Command::Upstream { command } => match command {
            UpstreamCommand::Add { tenant, url, weight } => with(ops::add_upstream(c, &tenant, &url, weight)).await,
            UpstreamCommand::Remove { tenant, id } => done(ops::remove_upstream(c, &tenant, id).await),
        },
        Command::Apikey { command } => match command {
            ApikeyCommand::New => unreachable!("handled without a database"),
            ApikeyCommand::Create { tenant, description, expires_in_days } => {
                let (id, key) =
                    ops::create_api_key(c, &tenant, &description, expires_in_days).await.map_err(|e| e.to_string())?;
                Ok(serde_json::json!({"id": id, "key": key, "note": "shown once: only its hash is stored"}))
            }
            ApikeyCommand::Revoke { tenant, id } => done(ops::revoke_api_key(c, &tenant, id).await),
        },
        Command::Cors { command } => match command {
            CorsCommand::Add { tenant, origin } => with(ops::add_cors_origin(c, &tenant, &origin)).await,
            CorsCommand::Remove { tenant, origin } => done(ops::remove_cors_origin(c, &tenant, &origin).await),
        },
        Command::Cert { tenant, host, cert, key } => {
            let (cert, key) = (read(&cert)?, read(&key)?);
            done(ops::put_certificate(c, m, &tenant, &host, &cert, &key).await)
        }
        Command::AdminKey { command: AdminKeyCommand::New { description } } => {
            let (id, key) = ops::create_admin_key(c, &description).await.map_err(|e| e.to_string())?;
            Ok(serde_json::json!({"id": id, "key": key, "note": "shown once: only its hash is stored"}))
        }
        Command::ResealSecrets => {
            let count = ops::reseal_secrets(&mut client, m).await.map_err(|e| e.to_string())?;
            Ok(serde_json::json!({"resealed": count, "with": m.sealing_id()}))
        }
        Command::Serve { .. } | Command::CheckConfig | Command::MasterKey { .. } | Command::Audit { .. } => {
            unreachable!("handled without a database")
        }
    }
}
