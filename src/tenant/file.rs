//! File mode, the embedded default: the tenants file, reloaded on SIGHUP and when it changes.
//! A file that fails validation is refused whole; the running snapshot keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::upstream::Balancers;
use async_trait::async_trait;
use log::{error, info};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use super::{LoadError, TenantStore, TenantTable};
use crate::config::server::ServerConfig;
use crate::config::tenants;
use crate::metrics;

/// How often the file's modification time is looked at.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Load the tenants file into a new table (used at start, by `check-config`, and on reload).
pub async fn load_table(server: &ServerConfig, health: &Arc<Balancers>) -> Result<TenantTable, LoadError> {
    let path = server.tenants_file.clone();
    let specs = tokio::task::spawn_blocking(move || tenants::load(&path))
        .await
        .map_err(|e| LoadError::Task(e.to_string()))??;
    TenantTable::build(specs, server, health).await
}

/// Background service that swaps in a new table on SIGHUP or file change.
pub struct FileSource {
    pub server: ServerConfig,
    pub store: TenantStore,
    pub health: Arc<Balancers>,
    /// Reloads (applied, refused) go to the audit trail.
    pub audit: crate::audit::Audit,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl FileSource {
    async fn reload(&self, why: &str) {
        match load_table(&self.server, &self.health).await {
            Ok(table) => {
                let count = table.tenant_count();
                self.store.store(Arc::new(table));
                metrics::CONFIG_RELOADS.with_label_values(&["ok"]).inc();
                info!("tenants reloaded ({why}): {count} tenant(s) from {}", self.server.tenants_file.display());
                // One event for the whole file (one per tenant would flood the trail at scale).
                self.audit.record(
                    crate::audit::AuditEvent::new(
                        crate::audit::EventKind::ConfigApplied,
                        crate::audit::Service::Config,
                    )
                    .detail(format!("tenants file ({why}): {count} tenant(s)")),
                );
            }
            Err(e) => {
                metrics::CONFIG_RELOADS.with_label_values(&["rejected"]).inc();
                error!("tenants file refused ({why}); the running config stays: {e}");
                // The whole file is refused, so no one tenant is named.
                self.audit.record(
                    crate::audit::AuditEvent::new(
                        crate::audit::EventKind::ConfigRejected,
                        crate::audit::Service::Config,
                    )
                    .detail(format!("tenants file: {e}")),
                );
            }
        }
    }
}

#[async_trait]
impl BackgroundService for FileSource {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                error!("cannot listen for SIGHUP, reload on file change only: {e}");
                None
            }
        };
        let path: PathBuf = self.server.tenants_file.clone();
        let mut last_seen = modified(&path);
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    last_seen = modified(&path);
                    self.reload("SIGHUP").await;
                }
                _ = tick.tick() => {
                    let now = modified(&path);
                    if now != last_seen {
                        last_seen = now;
                        self.reload("file changed").await;
                    }
                }
            }
        }
    }
}
