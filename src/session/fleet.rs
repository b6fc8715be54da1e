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
//! - **cmi5 progress**: a statement write that sends a cmi5-defined verb (a transition) is
//!   judged against `session_progress` and advances it with one conditional `UPDATE` (a handful
//!   per session), so the order rules hold across the fleet. Ordinary statements are judged on
//!   this instance's view without the database; where that view refuses one (it may not have
//!   seen an `initialized` another instance took), the shared row is read once before the
//!   refusal stands. `terminated` reaches every instance as a session event.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use log::{debug, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::store::{
    fetch_key, AdvanceError, EndReason, FetchCode, FetchRefusal, FetchTicket, MemorySessions, ProgressJudge,
    Reservation, Revocation, SessionRecord, SessionStore, SharedSettle, StoreError, SweepCounts,
};
use crate::auth::claims::SessionClaims;
use crate::metrics;
use crate::policy::Progress;

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
    pool: Arc<Pool>,
    /// Woken when this instance appended an end, so the follower notifies the others.
    appended: tokio::sync::Notify,
    /// The highest event version applied here.
    applied_version: AtomicI64,
    /// Unix seconds of the last successful catch-up.
    synced_at: AtomicU64,
    /// Itself, for the settle hooks of reservations (which outlive a call).
    me: std::sync::Weak<FleetSessions>,
}

impl FleetSessions {
    pub fn new(pool: Pool, started_at: u64) -> Arc<Self> {
        Arc::new_cyclic(|me| FleetSessions {
            me: me.clone(),
            // The shared rows know every session's progress: none is ever "resumed".
            local: MemorySessions::new(0),
            pool: Arc::new(pool),
            appended: tokio::sync::Notify::new(),
            applied_version: AtomicI64::new(0),
            synced_at: AtomicU64::new(started_at),
        })
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
                "SELECT version, tenant_id, kind, subject, reason, keep_until, at FROM session_events
                 WHERE version > $1 OR created_at > now() - make_interval(secs => $2)
                 ORDER BY version",
                &[&after, &f64::from(REREAD_WINDOW_SECONDS)],
            )
            .await?;
        let mut newest = after;
        for row in &rows {
            let version: i64 = row.get(0);
            let (tenant_id, kind, subject, reason): (&str, &str, &str, &str) =
                (row.get(1), row.get(2), row.get(3), row.get(4));
            let keep_until = u64::try_from(row.get::<_, i64>(5)).unwrap_or(0);
            let at = row.get::<_, Option<i64>>(6).and_then(|t| u64::try_from(t).ok()).unwrap_or(u64::MAX);
            // Applying an event twice changes nothing.
            match (kind, reason) {
                ("session", "terminated") => self.local.track(tenant_id, subject, 0, keep_until).mark_terminated(at),
                ("jti", _) => {
                    let _ = self.local.revoke(tenant_id, &Revocation::Token(subject.into()), at, keep_until).await;
                }
                ("learner", _) => {
                    let _ = self.local.revoke(tenant_id, &Revocation::Learner(subject.into()), at, keep_until).await;
                }
                _ => {
                    // A reason the schema allows but this version does not know ends it too.
                    let reason = EndReason::from_lms(reason).unwrap_or(EndReason::Revoked);
                    let _ = self.local.end(tenant_id, subject, reason, keep_until).await;
                }
            }
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

impl FleetSessions {
    /// The session's progress in the shared row (none yet: nothing sent).
    async fn read_progress(&self, tenant_id: &str, session_id: &str) -> Result<Progress, String> {
        let client = self.client().await?;
        let row = within(client.query_opt(
            "SELECT bits FROM session_progress WHERE tenant_id = $1 AND session_id = $2",
            &[&tenant_id, &session_id],
        ))
        .await?;
        Ok(Progress::from_bits(row.map_or(0, |r| u32::try_from(r.get::<_, i32>(0)).unwrap_or(0))))
    }

    /// Move the shared row from `expected` to `next` in one statement: `None` when it did,
    /// otherwise what it holds instead.
    async fn swap_progress(
        &self,
        tenant_id: &str,
        session_id: &str,
        expected: Progress,
        next: Progress,
        keep_until: u64,
    ) -> Result<Option<Progress>, String> {
        let client = self.client().await?;
        let (expected_bits, next_bits) = (bits(expected), bits(next));
        let row = within(client.query_one(
            "WITH moved AS (
                 INSERT INTO session_progress AS p (tenant_id, session_id, bits, keep_until)
                 SELECT $1, $2, $4, $5 WHERE $3 = 0
                 ON CONFLICT (tenant_id, session_id) DO UPDATE SET bits = $4 WHERE p.bits = $3
                 RETURNING bits),
             updated AS (
                 UPDATE session_progress SET bits = $4, keep_until = GREATEST(keep_until, $5)
                 WHERE tenant_id = $1 AND session_id = $2 AND bits = $3 AND $3 <> 0 AND NOT EXISTS (SELECT 1 FROM moved)
                 RETURNING bits)
             SELECT EXISTS (SELECT 1 FROM moved) OR EXISTS (SELECT 1 FROM updated),
                    (SELECT bits FROM session_progress WHERE tenant_id = $1 AND session_id = $2)",
            &[&tenant_id, &session_id, &expected_bits, &next_bits, &seconds(keep_until)],
        ))
        .await?;
        let (moved, held): (bool, Option<i32>) = (row.get(0), row.get(1));
        Ok(if moved { None } else { Some(Progress::from_bits(held.map_or(0, |b| u32::try_from(b).unwrap_or(0)))) })
    }
}

fn bits(p: Progress) -> i32 {
    // Progress holds six bits.
    i32::try_from(p.bits() & !Progress::RESUMED.bits()).unwrap_or(0)
}

/// Settles a fleet reservation in Postgres, off the request (a spawned task).
struct FleetSettle {
    store: std::sync::Weak<FleetSessions>,
    tenant_id: String,
    session_id: String,
    keep_until: u64,
}

impl FleetSettle {
    fn spawn<F>(&self, work: impl FnOnce(Arc<FleetSessions>, String, String, u64) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let Some(store) = self.store.upgrade() else { return };
        let (tenant_id, session_id, keep_until) = (self.tenant_id.clone(), self.session_id.clone(), self.keep_until);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(work(store, tenant_id, session_id, keep_until));
        }
    }
}

impl SharedSettle for FleetSettle {
    fn give_back(&self, added: u32) {
        self.spawn(move |store, tenant_id, session_id, _| async move {
            let mask = !i32::try_from(added).unwrap_or(0);
            let given = async {
                let client = store.client().await?;
                within(client.execute(
                    "UPDATE session_progress SET bits = bits & $3 WHERE tenant_id = $1 AND session_id = $2",
                    &[&tenant_id, &session_id, &mask],
                ))
                .await
            };
            if let Err(e) = given.await {
                // The bits stay taken: the AU's resend of that verb is refused as repeated.
                failed("give_back", e);
            }
        });
    }

    fn terminated(&self, at: u64) {
        self.spawn(move |store, tenant_id, session_id, keep_until| async move {
            let recorded = async {
                let client = store.client().await?;
                within(client.execute(
                    "INSERT INTO session_events (tenant_id, kind, subject, reason, at, keep_until)
                         VALUES ($1, 'session', $2, 'terminated', $3, $4)",
                    &[&tenant_id, &session_id, &seconds(at), &seconds(keep_until)],
                ))
                .await
            };
            match recorded.await {
                Ok(_) => store.appended.notify_one(),
                Err(e) => {
                    failed("terminated", e);
                }
            }
        });
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

    async fn advance(
        &self,
        tenant_id: &str,
        claims: &SessionClaims,
        judge: ProgressJudge<'_>,
    ) -> Result<Reservation, AdvanceError> {
        let record = self.local.track(tenant_id, &claims.session_id, claims.iat, claims.exp);
        let mut view = record.progress();
        let mut verdict = judge(view);
        if verdict.is_err() {
            // This instance may not have seen what another one took (an `initialized`): the
            // shared row decides before a refusal stands.
            let shared = self.read_progress(tenant_id, &claims.session_id).await.map_err(|e| {
                failed("read_progress", e);
                AdvanceError::Unavailable
            })?;
            record.merge(shared);
            view = record.progress();
            verdict = judge(view);
        }
        let next = verdict.map_err(AdvanceError::Refused)?;
        if next == view {
            // No cmi5-defined verb: judged on this instance's view, no database.
            return record.reserve(judge).map_err(AdvanceError::Refused);
        }
        // A transition: judged against the shared row and taken with one conditional UPDATE;
        // on a conflict (another instance moved it), judged again from what it holds now.
        let mut expected = view;
        for _ in 0..8 {
            let next = judge(expected).map_err(AdvanceError::Refused)?;
            let swapped =
                self.swap_progress(tenant_id, &claims.session_id, expected, next, claims.exp).await.map_err(|e| {
                    failed("advance", e);
                    AdvanceError::Unavailable
                })?;
            match swapped {
                None => {
                    // Taken fleet-wide; the reservation gives the bits back here and there if
                    // the LRS does not store the statements.
                    let added = next.bits() & !expected.bits();
                    let settle = Box::new(FleetSettle {
                        store: self.me.clone(),
                        tenant_id: tenant_id.to_owned(),
                        session_id: claims.session_id.clone(),
                        keep_until: claims.exp,
                    });
                    record.merge(next);
                    return Ok(Reservation::shared(record, added, settle));
                }
                Some(actual) => {
                    record.merge(actual);
                    expected = actual;
                }
            }
        }
        Err(AdvanceError::Unavailable)
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
            "INSERT INTO session_events (tenant_id, kind, subject, reason, keep_until) VALUES ($1, 'session', $2, $3, $4)",
            &[&tenant_id, &session_id, &reason.as_str(), &seconds(keep_until)],
        ))
        .await
        .map_err(|e| failed("end", e))?;
        // Enforced here at once; the others within a second.
        self.local.end(tenant_id, session_id, reason, keep_until).await?;
        self.appended.notify_one();
        Ok(())
    }

    fn token_revoked(&self, tenant_id: &str, jti: &str, issued_at: u64, learner_key: &dyn Fn() -> String) -> bool {
        self.local.token_revoked(tenant_id, jti, issued_at, learner_key)
    }

    async fn revoke(&self, tenant_id: &str, target: &Revocation, at: u64, keep_until: u64) -> Result<(), StoreError> {
        let client = self.client().await.map_err(|e| failed("revoke", e))?;
        let (kind, subject) = target.kind_and_subject();
        within(client.execute(
            "INSERT INTO session_events (tenant_id, kind, subject, reason, at, keep_until)
             VALUES ($1, $2, $3, 'revoked', $4, $5)",
            &[&tenant_id, &kind, &subject, &seconds(at), &seconds(keep_until)],
        ))
        .await
        .map_err(|e| failed("revoke", e))?;
        self.local.revoke(tenant_id, target, at, keep_until).await?;
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
        let (client, mut woken, _listening) = match crate::db::listen(&self.url, CHANNEL).await {
            Ok(listening) => listening,
            Err(why) => return CycleEnd::Lost { why, followed: false },
        };
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

/// Delete expired fetch codes, events and progress rows, if no other instance is sweeping (advisory lock held
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
                      RETURNING 1),
                  progress AS (DELETE FROM session_progress WHERE (tenant_id, session_id) IN (
                      SELECT tenant_id, session_id FROM session_progress, lock
                      WHERE lock.held AND keep_until < $2 LIMIT $3)
                      RETURNING 1)
             SELECT (SELECT count(*) FROM codes), (SELECT count(*) FROM events) + (SELECT count(*) FROM progress)",
            &[&SWEEP_LOCK, &seconds(now), &SWEEP_BATCH],
        )
        .await?;
    let (codes, events): (i64, i64) = (row.get(0), row.get(1));
    if codes + events > 0 {
        debug!("session tables swept: {codes} fetch code(s), {events} event(s)");
    }
    Ok(())
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
