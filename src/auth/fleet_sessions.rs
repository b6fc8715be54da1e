//! Postgres mode's session store, shared by every lrsgate instance of a fleet.
//!
//! - **Fetch codes** live only in Postgres (`fetch_codes`, SHA-256 of the code). Redeeming is one
//!   conditional `UPDATE`, so of all the instances a code is presented to, exactly one hands out
//!   the token. When Postgres is away, redemption fails closed (cmi5 `"error-code": "3"`).
//! - **Session ends** are appended to `session_events` (one `INSERT`) and applied to this
//!   instance's in-memory copy at once; the other instances learn of them through
//!   [`SessionEventsFollower`], woken by `NOTIFY lrsgate_sessions` (sent in batches by the
//!   follower, never inside a request's statement: NOTIFY takes a database-wide lock at commit)
//!   and catching up by version at least every second, so a lost notification costs at most a
//!   second. The hot path reads only the in-memory copy: no database round trip, no lock.
//! - **cmi5 progress** stays per instance (not yet shared; see the README's "Fleet").

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use log::{debug, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio_postgres::{AsyncMessage, NoTls};

use super::claims::SessionClaims;
use super::sessions::{
    fetch_key, EndReason, FetchCode, FetchRefusal, FetchTicket, MemorySessions, SessionRecord, SessionStore,
    StoreError, SweepCounts,
};
use crate::metrics;

/// The channel the follower listens on and notifies.
pub const CHANNEL: &str = "lrsgate_sessions";
/// The longest a request waits for the database before it is refused (fetch, end).
const DATABASE_WAIT: Duration = Duration::from_secs(2);
/// Catch-up with the events table at least this often, notified or not.
pub const CATCH_UP_INTERVAL: Duration = Duration::from_secs(1);
/// Events this recent are read again on every catch-up: versions are taken before commit, so a
/// slower transaction can commit a lower version after a higher one was read.
const REREAD_WINDOW_SECONDS: i32 = 5;
/// How long notifications are gathered into one NOTIFY.
const NOTIFY_BATCH: Duration = Duration::from_millis(20);
/// Expired rows are deleted every this often, by one instance at a time, in bounded batches.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
const SWEEP_BATCH: i64 = 5_000;
/// Serialises the fleet's sweeps (an arbitrary, fixed advisory lock key).
const SWEEP_LOCK: i64 = 0x6c72_7367_6174_6502;

const REDEEM: &str = "WITH redeemed AS (
        UPDATE fetch_codes SET redeemed_at = $3
        WHERE code_hash = $1 AND tenant_id = $2 AND redeemed_at IS NULL AND unused_until > $3
        RETURNING claims)
    SELECT (SELECT claims FROM redeemed), (SELECT tenant_id FROM fetch_codes WHERE code_hash = $1)";

/// The fleet's session store: Postgres for what must hold fleet-wide, an in-memory copy for the
/// hot path.
pub struct FleetSessions {
    local: MemorySessions,
    pool: Pool,
    /// Woken when this instance appended an end, so the follower notifies the others.
    appended: tokio::sync::Notify,
    /// The highest event version applied here.
    applied_version: AtomicI64,
    /// Unix seconds of the last successful catch-up.
    synced_at: AtomicU64,
}

impl FleetSessions {
    pub fn new(pool: Pool, started_at: u64) -> Self {
        FleetSessions {
            local: MemorySessions::new(started_at),
            pool,
            appended: tokio::sync::Notify::new(),
            applied_version: AtomicI64::new(0),
            synced_at: AtomicU64::new(started_at),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, String> {
        match tokio::time::timeout(DATABASE_WAIT, self.pool.get()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no database connection in time".into()),
        }
    }

    /// Apply every event after the last one applied (and the recent ones again), in order.
    async fn catch_up(&self, client: &tokio_postgres::Client) -> Result<usize, tokio_postgres::Error> {
        let after = self.applied_version.load(Ordering::Acquire);
        let rows = client
            .query(
                "SELECT version, tenant_id, session_id, reason, keep_until FROM session_events
                 WHERE version > $1 OR created_at > now() - make_interval(secs => $2)
                 ORDER BY version",
                &[&after, &f64::from(REREAD_WINDOW_SECONDS)],
            )
            .await?;
        let mut newest = after;
        for row in &rows {
            let version: i64 = row.get(0);
            let (tenant_id, session_id, reason): (&str, &str, &str) = (row.get(1), row.get(2), row.get(3));
            let keep_until = u64::try_from(row.get::<_, i64>(4)).unwrap_or(0);
            // A reason the schema allows but this version does not know ends the session too.
            let reason = EndReason::from_lms(reason).unwrap_or(EndReason::Revoked);
            // Applying an end twice changes nothing.
            let _ = self.local.end(tenant_id, session_id, reason, keep_until).await;
            newest = newest.max(version);
        }
        self.applied_version.fetch_max(newest, Ordering::AcqRel);
        let now = crate::clock::unix_now();
        self.synced_at.store(now, Ordering::Release);
        metrics::SESSION_EVENTS_AGE.set(0);
        Ok(rows.len())
    }

    fn report_age(&self) {
        let age = crate::clock::unix_now().saturating_sub(self.synced_at.load(Ordering::Acquire));
        metrics::SESSION_EVENTS_AGE.set(i64::try_from(age).unwrap_or(i64::MAX));
    }
}

/// `query`, or an error if the database does not answer within [`DATABASE_WAIT`].
async fn within<T>(query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, String> {
    match tokio::time::timeout(DATABASE_WAIT, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the database did not answer in time".into()),
    }
}

fn failed(operation: &str, e: impl std::fmt::Display) -> StoreError {
    metrics::SESSION_STORE_ERRORS.with_label_values(&[operation]).inc();
    StoreError(format!("{operation}: {e}"))
}

fn seconds(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl SessionStore for FleetSessions {
    fn lookup(&self, tenant_id: &str, session_id: &str) -> Option<Arc<SessionRecord>> {
        self.local.lookup(tenant_id, session_id)
    }

    fn track(&self, tenant_id: &str, session_id: &str, issued_at: u64, keep_until: u64) -> Arc<SessionRecord> {
        self.local.track(tenant_id, session_id, issued_at, keep_until)
    }

    async fn end(
        &self,
        tenant_id: &str,
        session_id: &str,
        reason: EndReason,
        keep_until: u64,
    ) -> Result<(), StoreError> {
        let client = self.client().await.map_err(|e| failed("end", e))?;
        within(client.execute(
            "INSERT INTO session_events (tenant_id, session_id, reason, keep_until) VALUES ($1, $2, $3, $4)",
            &[&tenant_id, &session_id, &reason.as_str(), &seconds(keep_until)],
        ))
        .await
        .map_err(|e| failed("end", e))?;
        // Enforced here at once; the others within a second.
        self.local.end(tenant_id, session_id, reason, keep_until).await?;
        self.appended.notify_one();
        Ok(())
    }

    async fn put_fetch(&self, code: &FetchCode, ticket: FetchTicket, keep_until: u64) -> Result<(), StoreError> {
        let key = fetch_key(code.as_str()).ok_or_else(|| StoreError("malformed fetch code".into()))?;
        let claims = serde_json::to_string(&ticket.claims).map_err(|e| failed("put_fetch", e))?;
        let client = self.client().await.map_err(|e| failed("put_fetch", e))?;
        within(client.execute(
            "INSERT INTO fetch_codes (code_hash, tenant_id, claims, unused_until, keep_until) VALUES ($1, $2, $3, $4, $5)",
            &[&key.as_slice(), &ticket.tenant_id, &claims, &seconds(ticket.unused_until), &seconds(keep_until)],
        ))
        .await
        .map_err(|e| failed("put_fetch", e))?;
        Ok(())
    }

    async fn redeem_fetch(&self, code: &str, tenant_id: &str, now: u64) -> Result<SessionClaims, FetchRefusal> {
        let key = fetch_key(code).ok_or(FetchRefusal::Invalid)?;
        // Fails closed: without the database no token is handed out (cmi5 error-code 3).
        let internal = |e: &dyn std::fmt::Display| {
            warn!("fetch redemption failed: {e}");
            metrics::SESSION_STORE_ERRORS.with_label_values(&["redeem_fetch"]).inc();
            FetchRefusal::Internal
        };
        let client = self.client().await.map_err(|e| internal(&e))?;
        let row = within(client.query_one(REDEEM, &[&key.as_slice(), &tenant_id, &seconds(now)]))
            .await
            .map_err(|e| internal(&e))?;
        let (claims, owner): (Option<String>, Option<String>) = (row.get(0), row.get(1));
        match (claims, owner) {
            (Some(claims), _) => serde_json::from_str(&claims).map_err(|e| internal(&e)),
            (None, Some(owner)) if owner == tenant_id => Err(FetchRefusal::UsedOrExpired),
            _ => Err(FetchRefusal::Invalid),
        }
    }

    fn sweep(&self, now: u64) -> SweepCounts {
        // The in-memory copy; the tables are swept by the follower, one instance at a time.
        self.local.sweep(now)
    }
}

/// Why a follow cycle ended.
enum CycleEnd {
    Shutdown,
    /// The connection was lost; `followed`: it had been following (so retry at once).
    Lost {
        why: String,
        followed: bool,
    },
}

/// The background service that keeps this instance's copy of the fleet's session ends current
/// (LISTEN + catch-up by version every second), sends this instance's NOTIFYs in batches, and
/// sweeps expired rows when it holds the fleet's sweep lock.
pub struct SessionEventsFollower {
    pub store: Arc<FleetSessions>,
    pub url: String,
}

impl SessionEventsFollower {
    async fn cycle(&self, shutdown: &mut ShutdownWatch) -> CycleEnd {
        let (client, mut connection) = match tokio_postgres::connect(&self.url, NoTls).await {
            Ok(pair) => pair,
            Err(e) => return CycleEnd::Lost { why: format!("cannot connect: {e}"), followed: false },
        };
        // The connection is driven here (spawning it alone would drop notifications).
        let (wake, mut woken) = tokio::sync::mpsc::channel::<()>(1);
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        let _ = wake.try_send(());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        warn!("session events connection failed: {e}");
                        return;
                    }
                    None => return,
                }
            }
        });
        let _stop_driver = AbortOnDrop(driver);
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            return CycleEnd::Lost { why: format!("LISTEN failed: {e}"), followed: false };
        }
        // After every (re)connect: whatever was missed meanwhile.
        if let Err(e) = self.store.catch_up(&client).await {
            return CycleEnd::Lost { why: format!("catch-up failed: {e}"), followed: false };
        }
        info!("following the fleet's session events");
        let lost = |why: String| CycleEnd::Lost { why, followed: true };
        let mut tick = tokio::time::interval(CATCH_UP_INTERVAL);
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return CycleEnd::Shutdown,
                notified = woken.recv() => {
                    if notified.is_none() {
                        return lost("connection closed".into());
                    }
                    if let Err(e) = self.store.catch_up(&client).await {
                        return lost(format!("catch-up failed: {e}"));
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.store.catch_up(&client).await {
                        return lost(format!("catch-up failed: {e}"));
                    }
                }
                _ = self.store.appended.notified() => {
                    // Ends appended in the next moment share this one NOTIFY.
                    tokio::time::sleep(NOTIFY_BATCH).await;
                    if let Err(e) = client.batch_execute(&format!("NOTIFY {CHANNEL}")).await {
                        return lost(format!("NOTIFY failed: {e}"));
                    }
                }
                _ = sweep.tick() => {
                    if let Err(e) = sweep_tables(&client, crate::clock::unix_now()).await {
                        return lost(format!("sweep failed: {e}"));
                    }
                }
            }
        }
    }
}

/// Delete expired fetch codes and events, if no other instance is sweeping (advisory lock held
/// for the transaction), at most [`SWEEP_BATCH`] rows of each per sweep.
async fn sweep_tables(client: &tokio_postgres::Client, now: u64) -> Result<(), tokio_postgres::Error> {
    let row = client
        .query_one(
            "WITH lock AS (SELECT pg_try_advisory_xact_lock($1) AS held),
                  codes AS (DELETE FROM fetch_codes WHERE code_hash IN (
                      SELECT code_hash FROM fetch_codes, lock WHERE lock.held AND keep_until < $2 LIMIT $3)
                      RETURNING 1),
                  events AS (DELETE FROM session_events WHERE version IN (
                      SELECT version FROM session_events, lock WHERE lock.held AND keep_until < $2 LIMIT $3)
                      RETURNING 1)
             SELECT (SELECT count(*) FROM codes), (SELECT count(*) FROM events)",
            &[&SWEEP_LOCK, &seconds(now), &SWEEP_BATCH],
        )
        .await?;
    let (codes, events): (i64, i64) = (row.get(0), row.get(1));
    if codes + events > 0 {
        debug!("session tables swept: {codes} fetch code(s), {events} event(s)");
    }
    Ok(())
}

/// Stops the connection's driver when a cycle ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl BackgroundService for SessionEventsFollower {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        const BACKOFF_MIN: Duration = Duration::from_millis(250);
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.cycle(&mut shutdown).await {
                CycleEnd::Shutdown => return,
                CycleEnd::Lost { why, followed } => {
                    if followed {
                        backoff = BACKOFF_MIN;
                    }
                    warn!("session events: {why}; known ends stay enforced, retrying in {backoff:?}");
                }
            }
            let until = tokio::time::Instant::now() + backoff;
            while tokio::time::Instant::now() < until {
                self.store.report_age();
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep_until(until.min(tokio::time::Instant::now() + Duration::from_secs(1))) => {}
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
