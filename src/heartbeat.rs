//! The fleet heartbeat (Postgres mode): every instance upserts its row in `lrsgate_instances`
//! every few seconds and counts the rows seen recently, so each instance enforces its share of a
//! tenant's rate limits (`limit / live instances`). While Postgres is away the last count stays.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use log::{debug, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::metrics;

/// How often an instance says it is alive.
pub const BEAT_EVERY: Duration = Duration::from_secs(5);
/// An instance not seen for this long is no longer counted.
pub const LIVE_FOR_SECONDS: f64 = 15.0;

pub struct FleetHeartbeat {
    pub pool: Pool,
    /// This process's id in `lrsgate_instances`.
    pub instance: String,
    /// Where the count is published (read by the rate limiter).
    pub instances: Arc<AtomicU32>,
}

#[async_trait]
impl BackgroundService for FleetHeartbeat {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Leaving the fleet is this service's work at a stop.
        let _finishing = crate::lifecycle::Finishing::hold();
        let mut tick = tokio::time::interval(BEAT_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => match self.beat().await {
                    Ok(n) => {
                        self.instances.store(n, Ordering::Relaxed);
                        metrics::FLEET_INSTANCES.set(i64::from(n));
                        debug!(instances = n; "fleet heartbeat");
                    }
                    Err(e) => warn!("fleet heartbeat failed; rate limits keep the last instance count: {e}"),
                },
            }
        }
        // Leave at once, so the others take over this instance's share without waiting.
        if let Ok(client) = self.pool.get().await {
            let _ = client.execute("DELETE FROM lrsgate_instances WHERE id = $1", &[&self.instance]).await;
        }
    }
}

impl FleetHeartbeat {
    /// Upsert this instance and count the live ones (itself included), in one statement.
    async fn beat(&self) -> Result<u32, String> {
        let client = self.pool.get().await.map_err(|e| e.to_string())?;
        let row = client
            .query_one(
                "WITH me AS (
                     INSERT INTO lrsgate_instances (id) VALUES ($1)
                     ON CONFLICT (id) DO UPDATE SET last_seen = now()
                     RETURNING id),
                 gone AS (
                     DELETE FROM lrsgate_instances WHERE last_seen < now() - interval '1 day' RETURNING id)
                 SELECT 1 + count(*) FROM lrsgate_instances
                 WHERE id <> $1 AND last_seen > now() - make_interval(secs => $2)",
                &[&self.instance, &LIVE_FOR_SECONDS],
            )
            .await
            .map_err(|e| e.to_string())?;
        let n: i64 = row.get(0);
        Ok(u32::try_from(n).unwrap_or(u32::MAX).max(1))
    }
}
