//! The Postgres audit writer: batches into `audit_events`, the disk spool while Postgres is
//! away or slow, replay oldest-first on reconnect, and the retention sweep.
//!
//! Order: while anything is spooled, new batches are spooled behind it, so events reach the
//! table in the order they were spooled and replay is one ordered pass. Each insert is one
//! statement with `ON CONFLICT (id) DO NOTHING`: a segment replayed twice (a crash between its
//! insert and its deletion) still stores each event once.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;

use super::event::AuditEvent;
use super::spool::{Appended, Spool};
use crate::metrics;

/// How long one insert may take before the batch goes to the spool instead.
const INSERT_TIMEOUT: Duration = Duration::from_secs(5);
/// Events per insert statement.
const BATCH: usize = 1000;
/// How often the retention sweep runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The writer's settings.
#[derive(Debug, Clone)]
pub struct PostgresAuditSettings {
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// Events older than this many days are deleted; 0 keeps them forever.
    pub retention_days: u32,
    /// Events per replay statement (smaller: a replay interrupted sooner; tests use it).
    pub replay_batch: usize,
    /// After a graceful stop begins, how long events are still taken (requests in flight during
    /// Pingora's grace period still record theirs).
    pub drain_for: Duration,
}

pub struct PostgresAuditWriter {
    pub pool: Pool,
    pub settings: PostgresAuditSettings,
    /// Taken once by `start`.
    pub queue: Mutex<Option<mpsc::Receiver<AuditEvent>>>,
}

/// The writer's state between batches.
struct State {
    spool: Spool,
    /// Postgres failed: no insert is tried before this moment (back-off).
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl State {
    fn failed(&mut self) {
        self.backoff = (self.backoff * 2).clamp(Duration::from_millis(500), Duration::from_secs(10));
        self.retry_at = Some(Instant::now() + self.backoff);
    }

    fn recovered(&mut self) {
        self.backoff = Duration::ZERO;
        self.retry_at = None;
    }

    fn may_try(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
    }
}

#[async_trait]
impl BackgroundService for PostgresAuditWriter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.queue.lock().ok().and_then(|mut q| q.take()) else { return };
        let _finishing = crate::lifecycle::Finishing::hold();
        let spool = match Spool::open(&self.settings.spool_dir, self.settings.spool_max_bytes) {
            Ok(spool) => spool,
            Err(e) => {
                // Without a spool an outage would lose events; say so loudly, keep writing.
                error!(dir:? = self.settings.spool_dir; "audit: cannot open the spool: {e}");
                return self.without_spool(rx, shutdown).await;
            }
        };
        if !spool.is_empty() {
            info!(events = spool.events(); "audit: spooled events from an earlier run will be replayed");
        }
        let mut state = State { spool, retry_at: None, backoff: Duration::ZERO };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_retention: Option<Instant> = None;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                // Cancel-safe: events are taken only when this branch completes.
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    super::fill(&mut rx, &mut batch, BATCH).await;
                    self.write(&mut state, std::mem::take(&mut batch)).await;
                }
                _ = tick.tick() => {
                    // Take stock first: another process (a graceful upgrade) may have spooled.
                    if let Err(e) = state.spool.rescan() {
                        warn!("audit: cannot read the spool directory: {e}");
                    }
                    self.replay(&mut state).await;
                    if self.settings.retention_days > 0
                        && state.retry_at.is_none()
                        && last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY)
                    {
                        last_retention = Some(Instant::now());
                        self.retention().await;
                    }
                }
            }
        }
        // Graceful stop: requests in flight during the grace period still record; then what
        // is queued is written or spooled, never dropped.
        let until = tokio::time::Instant::now() + self.settings.drain_for;
        while let Some(n) = super::drain_step(until, &mut rx, &mut batch, BATCH).await {
            if n == 0 {
                break;
            }
            self.write(&mut state, std::mem::take(&mut batch)).await;
        }
        let rest = super::drain(&mut rx);
        if !rest.is_empty() {
            self.write(&mut state, rest).await;
        }
    }
}

impl PostgresAuditWriter {
    /// Insert `batch`, or spool it (behind what is already spooled, or when Postgres fails).
    async fn write(&self, state: &mut State, batch: Vec<AuditEvent>) {
        if state.spool.is_empty() && state.may_try() {
            match self.insert(&batch).await {
                Ok(()) => {
                    metrics::AUDIT_EVENTS.with_label_values(&["written"]).inc_by(batch.len() as u64);
                    return;
                }
                Err(e) => {
                    warn!("audit: Postgres unavailable, spooling to disk: {e}");
                    state.failed();
                }
            }
        }
        match state.spool.append(&batch) {
            Ok(Appended::Spooled) => metrics::AUDIT_EVENTS.with_label_values(&["spooled"]).inc_by(batch.len() as u64),
            Ok(Appended::Full) => {
                metrics::AUDIT_DROPPED.with_label_values(&["spool_full"]).inc_by(batch.len() as u64);
                warn!(events = batch.len(); "audit: spool full, events dropped");
            }
            Err(e) => {
                metrics::AUDIT_DROPPED.with_label_values(&["spool_error"]).inc_by(batch.len() as u64);
                error!(events = batch.len(); "audit: cannot write the spool, events dropped: {e}");
            }
        }
    }

    /// Replay spooled segments oldest-first while Postgres takes them.
    async fn replay(&self, state: &mut State) {
        while !state.spool.is_empty() && state.may_try() {
            let replay = match state.spool.oldest() {
                Ok(Some(oldest)) => oldest,
                // Only segments another process is still writing: theirs to replay.
                Ok(None) => return,
                Err(e) => {
                    error!("audit: cannot read the spool: {e}");
                    state.failed();
                    return;
                }
            };
            for chunk in replay.events.chunks(self.settings.replay_batch.max(1)) {
                if let Err(e) = self.insert(chunk).await {
                    warn!("audit: replay paused, Postgres unavailable: {e}");
                    state.failed();
                    return;
                }
                metrics::AUDIT_EVENTS.with_label_values(&["replayed"]).inc_by(chunk.len() as u64);
            }
            state.recovered();
            let seq = replay.seq;
            if let Err(e) = state.spool.remove(replay) {
                error!(segment = seq; "audit: cannot delete a replayed segment: {e}");
                state.failed();
                return;
            }
            if state.spool.is_empty() {
                info!("audit: spool replayed; writing to Postgres again");
            }
        }
    }

    /// One statement for the whole batch.
    async fn insert(&self, batch: &[AuditEvent]) -> Result<(), String> {
        let work = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            insert_events(&**client, batch).await.map(|_| ()).map_err(|e| e.to_string())
        };
        tokio::time::timeout(INSERT_TIMEOUT, work).await.unwrap_or_else(|_| Err("insert timed out".into()))
    }

    /// Delete events past the retention period, a bounded number per statement.
    async fn retention(&self) {
        let Ok(client) = self.pool.get().await else { return };
        let days = i32::try_from(self.settings.retention_days).unwrap_or(i32::MAX);
        loop {
            let deleted = client
                .execute(
                    "DELETE FROM audit_events WHERE id IN (
                         SELECT id FROM audit_events WHERE at < now() - make_interval(days => $1)
                         LIMIT 10000)",
                    &[&days],
                )
                .await;
            match deleted {
                Ok(10_000) => continue,
                Ok(n) => {
                    if n > 0 {
                        info!(deleted = n; "audit: retention sweep");
                    }
                    return;
                }
                Err(e) => {
                    warn!("audit: retention sweep failed: {e}");
                    return;
                }
            }
        }
    }

    /// No spool could be opened: insert directly, counting what is lost while Postgres is away.
    async fn without_spool(&self, mut rx: mpsc::Receiver<AuditEvent>, mut shutdown: ShutdownWatch) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
            }
            super::fill(&mut rx, &mut batch, BATCH).await;
            let batch = std::mem::take(&mut batch);
            match self.insert(&batch).await {
                Ok(()) => metrics::AUDIT_EVENTS.with_label_values(&["written"]).inc_by(batch.len() as u64),
                Err(_) => metrics::AUDIT_DROPPED.with_label_values(&["spool_error"]).inc_by(batch.len() as u64),
            }
        }
    }
}

/// Insert events, each once (`ON CONFLICT (id) DO NOTHING`), in one statement.
pub async fn insert_events(
    client: &impl tokio_postgres::GenericClient,
    batch: &[AuditEvent],
) -> Result<u64, tokio_postgres::Error> {
    let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
    let at: Vec<i64> = batch.iter().map(|e| e.at_ms).collect();
    let kind: Vec<&str> = batch.iter().map(|e| e.kind.as_str()).collect();
    let service: Vec<&str> = batch.iter().map(|e| e.service.as_str()).collect();
    let text = |f: fn(&AuditEvent) -> &Option<String>| -> Vec<Option<&str>> {
        batch.iter().map(|e| f(e).as_deref()).collect()
    };
    let status: Vec<Option<i16>> = batch.iter().map(|e| e.status.and_then(|s| i16::try_from(s).ok())).collect();
    client
        .execute(
            "INSERT INTO audit_events
                 (id, at, kind, service, tenant_id, reason, resource, status, session_id, learner_hash,
                  actor, request_id, detail)
             SELECT u.id::uuid, to_timestamp(u.at_ms / 1000.0), u.kind, u.service, u.tenant, u.reason,
                    u.resource, u.status, u.session_id, u.learner, u.actor, u.request_id, u.detail
             FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::int2[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
                  AS u(id, at_ms, kind, service, tenant, reason, resource, status, session_id, learner, actor,
                       request_id, detail)
             ON CONFLICT (id) DO NOTHING",
            &[
                &ids,
                &at,
                &kind,
                &service,
                &text(|e| &e.tenant),
                &text(|e| &e.reason),
                &text(|e| &e.resource),
                &status,
                &text(|e| &e.session_id),
                &text(|e| &e.learner),
                &text(|e| &e.actor),
                &text(|e| &e.request_id),
                &text(|e| &e.detail),
            ],
        )
        .await
}
