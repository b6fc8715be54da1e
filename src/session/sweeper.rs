//! The background service that forgets expired session state (fetch codes, ended sessions),
//! so memory stays bounded by the sessions that can still present a token.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::debug;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::store::SessionStore;
use crate::metrics;

/// How often expired state is swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Sweeps a session store every [`SWEEP_INTERVAL`].
pub struct SessionSweeper {
    pub sessions: Arc<dyn SessionStore>,
}

#[async_trait]
impl BackgroundService for SessionSweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    let now = crate::clock::unix_now();
                    let counts = self.sessions.sweep(now);
                    metrics::SESSIONS_TRACKED.set(i64::try_from(counts.sessions_tracked).unwrap_or(i64::MAX));
                    debug!(
                        "session sweep: {} session(s) and {} fetch code(s) forgotten, {} tracked",
                        counts.sessions_removed, counts.fetch_codes_removed, counts.sessions_tracked
                    );
                }
            }
        }
    }
}
