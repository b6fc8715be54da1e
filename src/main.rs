//! The `lrsgate` command: wires config to the server; all logic lives in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pingora::server::configuration::Opt;

use lrsgate::auth::apikey;
use lrsgate::config::server::ServerConfig;
use lrsgate::server;
use lrsgate::tenant::file::load_table;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "lrsgate", version, about = "Session-scoped security at the edge for any xAPI LRS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the edge, the token service and /metrics.
    Serve {
        /// The server config file.
        #[arg(short, long, env = "LRSGATE_CONFIG", default_value = "conf/lrsgate.toml")]
        config: PathBuf,
        /// Detach and run in the background (writes the pid file).
        #[arg(short, long)]
        daemon: bool,
        /// Take over the listeners of a running instance (graceful upgrade).
        #[arg(short, long)]
        upgrade: bool,
    },
    /// Validate the config and tenants files (and resolve LRS nodes) without starting.
    CheckConfig {
        #[arg(short, long, env = "LRSGATE_CONFIG", default_value = "conf/lrsgate.toml")]
        config: PathBuf,
    },
    /// LMS API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Print a new LMS API key (shown once) and the hash to put in the tenants file.
    New,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Cli::parse().command {
        Command::Serve { config, daemon, upgrade } => serve(config, daemon, upgrade),
        Command::CheckConfig { config } => match load_all(&config) {
            Ok((_, count)) => {
                println!("{}: OK ({count} tenant(s))", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Apikey { command: ApikeyCommand::New } => {
            let (key, hash) = apikey::generate();
            println!("api key (give it to the LMS; it is not stored and cannot be shown again):\n  {key}");
            println!("hash (add it to the tenant's lms.api_key_hashes):\n  {hash}");
            ExitCode::SUCCESS
        }
    }
}

type Loaded = (ServerConfig, lrsgate::tenant::TenantTable, std::sync::Arc<pingora::lb::HealthRegistry>);

/// Load and validate everything before Pingora starts, so a bad config never takes over the
/// listeners of a running instance during an upgrade.
fn load(config: &Path) -> Result<Loaded, String> {
    let cfg = ServerConfig::load(config).map_err(|e| e.to_string())?;
    let health = server::health_registry();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let table = runtime.block_on(load_table(&cfg, &health))?;
    Ok((cfg, table, health))
}

fn load_all(config: &Path) -> Result<(Loaded, usize), String> {
    let loaded = load(config)?;
    let count = loaded.1.tenant_count();
    Ok((loaded, count))
}

fn serve(config: PathBuf, daemon: bool, upgrade: bool) -> ExitCode {
    let (cfg, table, health) = match load(&config) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    log::info!(
        "serving {} tenant(s): edge {}, token service {}, metrics {}",
        table.tenant_count(),
        cfg.edge_listen,
        cfg.token_listen,
        cfg.metrics_listen
    );
    let opt = Opt { daemon, upgrade, ..Opt::default() };
    server::build(cfg, opt, table, health).run_forever()
}
