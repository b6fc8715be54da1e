//! Session state beyond the token: one-time cmi5 fetch codes, cmi5 progress, and session ends
//! (`terminated` + grace, the LMS's abandon/end, revocation).
//!
//! Behind one interface, [`SessionStore`], so that a shared store (Postgres, with NOTIFY to
//! every instance) can replace the in-memory one of file mode. The edge's per-request reads are
//! synchronous and lock-free (a store keeps a local copy of what it must answer on the hot
//! path); writes that a shared store must make durable are async.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::claims::SessionClaims;
use crate::policy::{Progress, WriteDenial};

/// A tenant's session limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// The longest a cmi5 session (its token) lives. Default 28,800 s (8 h).
    pub max_seconds: u64,
    /// After `terminated`, how long the token still works (reads, state) before every request
    /// gets 401 `session_ended`. Default 60 s.
    pub terminated_grace_seconds: u64,
    /// How long an unused fetch URL stays valid. Default 300 s.
    pub fetch_ttl_seconds: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { max_seconds: 28_800, terminated_grace_seconds: 60, fetch_ttl_seconds: 300 }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The AU sent `terminated`, and the grace period is over.
    Terminated,
    /// The LMS abandoned it (cmi5 §9.3.6: nothing may be recorded after it).
    Abandoned,
    /// The LMS ended it.
    Ended,
    /// Revoked (a stolen or misused token).
    Revoked,
}

impl EndReason {
    const ALL: [EndReason; 4] = [EndReason::Terminated, EndReason::Abandoned, EndReason::Ended, EndReason::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Terminated => "terminated",
            EndReason::Abandoned => "abandoned",
            EndReason::Ended => "ended",
            EndReason::Revoked => "revoked",
        }
    }

    /// The reasons the LMS may give (`terminated` is the AU's).
    pub fn from_lms(text: &str) -> Option<EndReason> {
        [EndReason::Abandoned, EndReason::Ended, EndReason::Revoked].into_iter().find(|r| r.as_str() == text)
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<EndReason> {
        EndReason::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// One session's live state. Every field is an atomic: the edge reads and advances it without
/// a lock.
#[derive(Debug)]
pub struct SessionRecord {
    /// cmi5 progress bits (`policy::Progress`), including those reserved by requests in flight.
    progress: AtomicU32,
    /// Unix seconds at which the LRS accepted `terminated` (0: not yet).
    terminated_at: AtomicU64,
    /// An end the LMS set (`EndReason` code; 0: none).
    ended_by_lms: AtomicU8,
    /// Unix seconds after which the record may be forgotten (its token has expired by then).
    keep_until: AtomicU64,
}

impl SessionRecord {
    fn new(progress: Progress, keep_until: u64) -> Self {
        SessionRecord {
            progress: AtomicU32::new(progress.bits()),
            terminated_at: AtomicU64::new(0),
            ended_by_lms: AtomicU8::new(0),
            keep_until: AtomicU64::new(keep_until),
        }
    }

    /// `Err` with the reason once the session has ended at `now`.
    pub fn status(&self, now: u64, grace_seconds: u64) -> Result<(), EndReason> {
        if let Some(reason) = EndReason::from_code(self.ended_by_lms.load(Ordering::Acquire)) {
            return Err(reason);
        }
        let terminated_at = self.terminated_at.load(Ordering::Acquire);
        if terminated_at != 0 && now >= terminated_at.saturating_add(grace_seconds) {
            return Err(EndReason::Terminated);
        }
        Ok(())
    }

    pub fn progress(&self) -> Progress {
        Progress::from_bits(self.progress.load(Ordering::Acquire))
    }

    /// Advance the progress by `judge` (a pure rule from `policy::session`), atomically: two
    /// requests racing with `passed` and `failed` cannot both pass. The bits taken are held by
    /// the returned reservation until the LRS has answered.
    pub fn reserve(
        self: &Arc<Self>,
        judge: impl Fn(Progress) -> Result<Progress, WriteDenial>,
    ) -> Result<Reservation, WriteDenial> {
        let mut current = self.progress.load(Ordering::Acquire);
        loop {
            let next = judge(Progress::from_bits(current))?.bits();
            match self.progress.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return Ok(Reservation {
                        record: self.clone(),
                        added: next & !current,
                        settled: false,
                        shared: None,
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Merge progress learned from a shared store (bits are only ever added there, or given
    /// back by the request that took them).
    pub fn merge(&self, progress: Progress) {
        self.progress.fetch_or(progress.bits() & !Progress::RESUMED.bits(), Ordering::AcqRel);
    }

    /// The LRS stored this session's `terminated` at `at` (learned from the fleet).
    pub fn mark_terminated(&self, at: u64) {
        self.progress.fetch_or(Progress::TERMINATED.bits(), Ordering::AcqRel);
        let _ = self.terminated_at.compare_exchange(0, at.max(1), Ordering::AcqRel, Ordering::Acquire);
    }

    fn end(&self, reason: EndReason, keep_until: u64) {
        // The first end sticks: a later `revoked` does not rename an `abandoned` session.
        let _ = self.ended_by_lms.compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire);
        self.keep_until.fetch_max(keep_until, Ordering::AcqRel);
    }
}

/// Progress bits a statement write took, held until the LRS answers: kept when it stored the
/// statements ([`Reservation::commit`]), given back otherwise (dropped), so a statement the
/// LRS refused or never got can be sent again.
pub struct Reservation {
    record: Arc<SessionRecord>,
    added: u32,
    settled: bool,
    /// Where a shared store settles the same bits (fleet mode).
    shared: Option<Box<dyn SharedSettle>>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("added", &self.added).field("shared", &self.shared.is_some()).finish()
    }
}

/// How a shared store settles a reservation's bits: given back, or `terminated` recorded.
/// Called from the request's last phase, so it must hand the work off, never block.
pub trait SharedSettle: Send + Sync {
    fn give_back(&self, added: u32);
    fn terminated(&self, at: u64);
}

impl Reservation {
    /// A reservation whose bits a shared store took too.
    pub fn shared(record: Arc<SessionRecord>, added: u32, settle: Box<dyn SharedSettle>) -> Reservation {
        Reservation { record, added, settled: false, shared: Some(settle) }
    }

    /// The LRS stored the statements at `now`. A `terminated` among them starts the grace
    /// period; whether there was one is returned.
    pub fn commit(mut self, now: u64) -> bool {
        self.settled = true;
        let terminated = self.added & Progress::TERMINATED.bits() != 0;
        if terminated {
            self.record.terminated_at.store(now.max(1), Ordering::Release);
            if let Some(shared) = &self.shared {
                shared.terminated(now.max(1));
            }
        }
        terminated
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            // Only this request set these bits (a verb cannot be taken twice), so clearing them
            // undoes exactly its own reservation.
            self.record.progress.fetch_and(!self.added, Ordering::AcqRel);
            if let (Some(shared), true) = (&self.shared, self.added != 0) {
                shared.give_back(self.added);
            }
        }
    }
}

/// Why the progress of a statement write could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvanceError {
    /// The cmi5 session rules refuse it.
    Refused(WriteDenial),
    /// The shared store could not judge a transition (Postgres away): try again.
    Unavailable,
}

/// A pure judgement of a session's progress (`policy::session::advance` over one write).
pub type ProgressJudge<'a> = &'a (dyn Fn(Progress) -> Result<Progress, WriteDenial> + Sync);

/// A fetch URL's one-time code: 256 random bits, base64url. Stores keep only its hash.
pub struct FetchCode(String);

impl FetchCode {
    pub fn generate() -> FetchCode {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        FetchCode(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The length of a code's text.
const FETCH_CODE_CHARS: usize = 43;

/// The key a store keeps for a presented code; `None` when the text cannot be a code.
pub fn fetch_key(code: &str) -> Option<[u8; 32]> {
    let well_formed = code.len() == FETCH_CODE_CHARS && URL_SAFE_NO_PAD.decode(code).is_ok_and(|b| b.len() == 32);
    well_formed.then(|| Sha256::digest(code.as_bytes()).into())
}

/// What a fetch code stands for: the session token to sign when it is redeemed.
#[derive(Debug)]
pub struct FetchTicket {
    pub tenant_id: String,
    pub claims: SessionClaims,
    /// Unix seconds after which an unused code no longer works.
    pub unused_until: u64,
    redeemed: AtomicBool,
}

impl FetchTicket {
    pub fn new(tenant_id: String, claims: SessionClaims, unused_until: u64) -> Self {
        FetchTicket { tenant_id, claims, unused_until, redeemed: AtomicBool::new(false) }
    }
}

/// Why a fetch code gave no token (cmi5 §8.2.3 error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchRefusal {
    /// `"1"`: already used, or expired unused, or its session has ended.
    UsedOrExpired,
    /// `"2"`: not a code this tenant issued (or a request a browser origin may not make).
    Invalid,
    /// `"3"`: lrsgate could not answer.
    Internal,
}

impl FetchRefusal {
    pub fn error_code(self) -> &'static str {
        match self {
            FetchRefusal::UsedOrExpired => "1",
            FetchRefusal::Invalid => "2",
            FetchRefusal::Internal => "3",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FetchRefusal::UsedOrExpired => "used_or_expired",
            FetchRefusal::Invalid => "invalid",
            FetchRefusal::Internal => "internal",
        }
    }
}

/// A store could not do what was asked (a shared store's outage); the caller refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// What a sweep removed and what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepCounts {
    pub sessions_removed: usize,
    pub fetch_codes_removed: usize,
    pub sessions_tracked: usize,
}

/// Where session state lives. File mode: [`MemorySessions`].
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Hot path: the state of a session the edge has seen or the LMS ended; `None` when
    /// neither happened (then nothing has ended it). No I/O, no lock.
    fn lookup(&self, tenant_id: &str, session_id: &str) -> Option<Arc<SessionRecord>>;

    /// Hot path: the state of a session, created on first sight and kept until `keep_until`.
    /// `issued_at` (the token's `iat`) tells a session older than the store (its progress lost
    /// in a restart) from a new one.
    fn track(&self, tenant_id: &str, session_id: &str, issued_at: u64, keep_until: u64) -> Arc<SessionRecord>;

    /// Judge a statement write's cmi5 progress with `judge` and reserve it (see
    /// [`SessionRecord::reserve`]). This default judges on this process's state alone; a
    /// shared store judges transitions (a cmi5-defined verb) fleet-wide.
    async fn advance(
        &self,
        tenant_id: &str,
        claims: &SessionClaims,
        judge: ProgressJudge<'_>,
    ) -> Result<Reservation, AdvanceError> {
        let record = self.track(tenant_id, &claims.session_id, claims.iat, claims.exp);
        record.reserve(judge).map_err(AdvanceError::Refused)
    }

    /// Hot path: whether the token `jti` (issued at `issued_at`) is revoked, by its id or as
    /// one of its learner's (`learner_key`, computed only if some learner of the tenant is
    /// revoked). No I/O, no lock.
    fn token_revoked(&self, tenant_id: &str, jti: &str, issued_at: u64, learner_key: &dyn Fn() -> String) -> bool;

    /// Revoke one token (by `jti`) or every token a learner was issued until `at` (by learner
    /// key), kept until `keep_until`.
    async fn revoke(&self, tenant_id: &str, target: &Revocation, at: u64, keep_until: u64) -> Result<(), StoreError>;

    /// End a session (the LMS's abandon/end, or a revocation), kept until `keep_until`.
    async fn end(
        &self,
        tenant_id: &str,
        session_id: &str,
        reason: EndReason,
        keep_until: u64,
    ) -> Result<(), StoreError>;

    /// Keep a new fetch code until `keep_until` (after its use, so a second call is answered
    /// "already used" rather than "invalid" for the session's life).
    async fn put_fetch(&self, code: &FetchCode, ticket: FetchTicket, keep_until: u64) -> Result<(), StoreError>;

    /// Redeem a fetch code presented to `tenant_id` at `now`: its claims, exactly once. Atomic:
    /// of two racing calls one wins, the other is told "already used".
    async fn redeem_fetch(&self, code: &str, tenant_id: &str, now: u64) -> Result<SessionClaims, FetchRefusal>;

    /// Forget what has expired at `now`.
    fn sweep(&self, now: u64) -> SweepCounts;
}

/// File mode's store: lock-free concurrent maps in this process. State is lost on restart; a
/// session older than the process is treated as resumed (see `Progress::RESUMED`).
pub struct MemorySessions {
    sessions: papaya::HashMap<String, Arc<SessionRecord>>,
    fetch: papaya::HashMap<[u8; 32], FetchEntry>,
    /// Revoked tokens: tenant + jti → keep until.
    revoked_tokens: papaya::HashMap<String, u64>,
    /// Revoked learners: tenant + learner key → (tokens issued until, keep until).
    revoked_learners: papaya::HashMap<String, (u64, u64)>,
    /// Unix seconds when this store was made.
    started_at: u64,
}

impl MemorySessions {
    pub fn new(started_at: u64) -> Self {
        MemorySessions {
            sessions: papaya::HashMap::new(),
            fetch: papaya::HashMap::new(),
            revoked_tokens: papaya::HashMap::new(),
            revoked_learners: papaya::HashMap::new(),
            started_at,
        }
    }
}

/// What a revocation names beyond a session (that is [`SessionStore::end`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One token, by its `jti`.
    Token(String),
    /// Every token issued to a learner until the revocation (by [`learner_key`]).
    Learner(String),
}

impl Revocation {
    /// The event kind and subject as the fleet's log stores them.
    pub fn kind_and_subject(&self) -> (&'static str, &str) {
        match self {
            Revocation::Token(jti) => ("jti", jti),
            Revocation::Learner(key) => ("learner", key),
        }
    }
}

/// A learner's key for revocations: the hex SHA-256 of the learner's canonical identity, the
/// same on every instance (the log and the API never carry the identity itself).
pub fn learner_key(actor: &crate::xapi::agent::Ifi) -> String {
    let mut hash = Sha256::new();
    hash.update(b"lrsgate-learner\0");
    hash.update(actor.agent_json().to_string().as_bytes());
    hex::encode(hash.finalize())
}

/// A fetch code in memory: whole while it can still be redeemed, then only a tombstone (whose
/// it was), so a late call still answers "already used" for the session's life without holding
/// the claims (about 2.3 KB) that long.
#[derive(Clone)]
enum FetchEntry {
    Live { ticket: Arc<FetchTicket>, keep_until: u64 },
    Spent { tenant_id: Arc<str>, keep_until: u64 },
}

impl FetchEntry {
    fn keep_until(&self) -> u64 {
        match self {
            FetchEntry::Live { keep_until, .. } | FetchEntry::Spent { keep_until, .. } => *keep_until,
        }
    }

    fn spent(ticket: &FetchTicket, keep_until: u64) -> FetchEntry {
        FetchEntry::Spent { tenant_id: Arc::from(ticket.tenant_id.as_str()), keep_until }
    }
}

fn session_key(tenant_id: &str, session_id: &str) -> String {
    // Tenant ids are letters, digits, '-' and '_': the separator cannot occur in one.
    let mut key = String::with_capacity(tenant_id.len() + 1 + session_id.len());
    key.push_str(tenant_id);
    key.push('\u{0}');
    key.push_str(session_id);
    key
}

#[async_trait]
impl SessionStore for MemorySessions {
    fn lookup(&self, tenant_id: &str, session_id: &str) -> Option<Arc<SessionRecord>> {
        self.sessions.pin().get(&session_key(tenant_id, session_id)).cloned()
    }

    fn track(&self, tenant_id: &str, session_id: &str, issued_at: u64, keep_until: u64) -> Arc<SessionRecord> {
        let initial = if issued_at < self.started_at { Progress::RESUMED } else { Progress::default() };
        let sessions = self.sessions.pin();
        let record = sessions.get_or_insert_with(session_key(tenant_id, session_id), || {
            Arc::new(SessionRecord::new(initial, keep_until))
        });
        record.keep_until.fetch_max(keep_until, Ordering::AcqRel);
        record.clone()
    }

    fn token_revoked(&self, tenant_id: &str, jti: &str, issued_at: u64, learner_key: &dyn Fn() -> String) -> bool {
        // Nothing to look up (the common case) costs two loads.
        if !self.revoked_tokens.is_empty() && self.revoked_tokens.pin().contains_key(&session_key(tenant_id, jti)) {
            return true;
        }
        !self.revoked_learners.is_empty()
            && self
                .revoked_learners
                .pin()
                .get(&session_key(tenant_id, &learner_key()))
                .is_some_and(|(until, _)| issued_at <= *until)
    }

    async fn revoke(&self, tenant_id: &str, target: &Revocation, at: u64, keep_until: u64) -> Result<(), StoreError> {
        match target {
            Revocation::Token(jti) => {
                let tokens = self.revoked_tokens.pin();
                tokens.update_or_insert(session_key(tenant_id, jti), |k| (*k).max(keep_until), keep_until);
            }
            Revocation::Learner(key) => {
                let learners = self.revoked_learners.pin();
                learners.update_or_insert(
                    session_key(tenant_id, key),
                    |(until, keep)| ((*until).max(at), (*keep).max(keep_until)),
                    (at, keep_until),
                );
            }
        }
        Ok(())
    }

    async fn end(
        &self,
        tenant_id: &str,
        session_id: &str,
        reason: EndReason,
        keep_until: u64,
    ) -> Result<(), StoreError> {
        let sessions = self.sessions.pin();
        let record = sessions.get_or_insert_with(session_key(tenant_id, session_id), || {
            Arc::new(SessionRecord::new(Progress::RESUMED, keep_until))
        });
        record.end(reason, keep_until);
        Ok(())
    }

    async fn put_fetch(&self, code: &FetchCode, ticket: FetchTicket, keep_until: u64) -> Result<(), StoreError> {
        let key = fetch_key(code.as_str()).ok_or_else(|| StoreError("malformed fetch code".into()))?;
        self.fetch.pin().insert(key, FetchEntry::Live { ticket: Arc::new(ticket), keep_until });
        Ok(())
    }

    async fn redeem_fetch(&self, code: &str, tenant_id: &str, now: u64) -> Result<SessionClaims, FetchRefusal> {
        let key = fetch_key(code).ok_or(FetchRefusal::Invalid)?;
        let fetch = self.fetch.pin();
        let (ticket, keep_until) = match fetch.get(&key).ok_or(FetchRefusal::Invalid)? {
            FetchEntry::Spent { tenant_id: owner, .. } if **owner == *tenant_id => {
                return Err(FetchRefusal::UsedOrExpired)
            }
            FetchEntry::Spent { .. } => return Err(FetchRefusal::Invalid),
            FetchEntry::Live { ticket, keep_until } => (ticket.clone(), *keep_until),
        };
        if ticket.tenant_id != tenant_id {
            return Err(FetchRefusal::Invalid);
        }
        if now >= ticket.unused_until {
            return Err(FetchRefusal::UsedOrExpired);
        }
        // The single use: exactly one caller swaps `false` to `true`.
        if ticket.redeemed.swap(true, Ordering::AcqRel) {
            return Err(FetchRefusal::UsedOrExpired);
        }
        fetch.insert(key, FetchEntry::spent(&ticket, keep_until));
        Ok(ticket.claims.clone())
    }

    fn sweep(&self, now: u64) -> SweepCounts {
        let sessions = self.sessions.pin();
        let before = sessions.len();
        sessions.retain(|_, record| record.keep_until.load(Ordering::Acquire) > now);
        let tracked = sessions.len();
        let fetch = self.fetch.pin();
        let codes_before = fetch.len();
        fetch.retain(|_, entry| entry.keep_until() > now);
        // Codes past their fetch TTL can no longer be redeemed: keep only their tombstones.
        let stale: Vec<([u8; 32], FetchEntry)> = fetch
            .iter()
            .filter_map(|(key, entry)| match entry {
                FetchEntry::Live { ticket, keep_until } if now >= ticket.unused_until => {
                    Some((*key, FetchEntry::spent(ticket, *keep_until)))
                }
                _ => None,
            })
            .collect();
        for (key, tombstone) in stale {
            fetch.insert(key, tombstone);
        }
        self.revoked_tokens.pin().retain(|_, keep_until| *keep_until > now);
        self.revoked_learners.pin().retain(|_, (_, keep_until)| *keep_until > now);
        SweepCounts {
            sessions_removed: before.saturating_sub(tracked),
            fetch_codes_removed: codes_before.saturating_sub(fetch.len()),
            sessions_tracked: tracked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::Permissions;
    use crate::policy::PolicyDenial;

    fn claims() -> SessionClaims {
        SessionClaims {
            tenant_id: "acme".into(),
            actor: serde_json::json!({"mbox": "mailto:l@x.org"}),
            registration: "7f0f2a50-3c2c-4f55-9d1c-7a0a7f9b9e11".into(),
            activity_id: "https://a/1".into(),
            course_id: None,
            permissions: Permissions { write: "false".into(), read: "false".into() },
            group: None,
            session_id: "s-1".into(),
            publisher_id: None,
            course_activities: Vec::new(),
            launch_mode: Some("Normal".into()),
            jti: "j-1".into(),
            iat: 100,
            nbf: 100,
            exp: 1000,
            iss: "lrsgate".into(),
            aud: "acme".into(),
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn a_fetch_code_is_redeemed_once_for_its_tenant_while_fresh() {
        let store = MemorySessions::new(0);
        let code = FetchCode::generate();
        assert_eq!(code.as_str().len(), FETCH_CODE_CHARS);
        block_on(store.put_fetch(&code, FetchTicket::new("acme".into(), claims(), 200), 1000)).unwrap();
        assert_eq!(block_on(store.redeem_fetch(code.as_str(), "other", 150)), Err(FetchRefusal::Invalid));
        assert_eq!(block_on(store.redeem_fetch(code.as_str(), "acme", 150)).map(|c| c.jti), Ok("j-1".into()));
        assert_eq!(block_on(store.redeem_fetch(code.as_str(), "acme", 151)), Err(FetchRefusal::UsedOrExpired));
        let unknown = FetchCode::generate();
        assert_eq!(block_on(store.redeem_fetch(unknown.as_str(), "acme", 150)), Err(FetchRefusal::Invalid));
        assert_eq!(block_on(store.redeem_fetch("short", "acme", 150)), Err(FetchRefusal::Invalid));

        let stale = FetchCode::generate();
        block_on(store.put_fetch(&stale, FetchTicket::new("acme".into(), claims(), 200), 1000)).unwrap();
        assert_eq!(block_on(store.redeem_fetch(stale.as_str(), "acme", 200)), Err(FetchRefusal::UsedOrExpired));
    }

    #[test]
    fn racing_redeems_yield_exactly_one_token() {
        let store = Arc::new(MemorySessions::new(0));
        let code = FetchCode::generate();
        block_on(store.put_fetch(&code, FetchTicket::new("acme".into(), claims(), 200), 1000)).unwrap();
        let text = code.as_str().to_owned();
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let (store, text) = (store.clone(), text.clone());
                    s.spawn(move || block_on(store.redeem_fetch(&text, "acme", 150)).is_ok() as usize)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(winners, 1);
    }

    #[test]
    fn sessions_end_by_the_lms_or_after_terminated_and_grace() {
        let store = MemorySessions::new(0);
        assert!(store.lookup("acme", "s-1").is_none());
        let record = store.track("acme", "s-1", 10, 1000);
        assert_eq!(record.status(50, 5), Ok(()));
        let reservation = record
            .reserve(|p| Ok(Progress::from_bits(p.bits() | Progress::INITIALIZED.bits() | Progress::TERMINATED.bits())))
            .unwrap();
        assert_eq!(record.status(50, 5), Ok(()), "terminated in flight: not yet ended");
        reservation.commit(50);
        assert_eq!(record.status(54, 5), Ok(()), "within the grace period");
        assert_eq!(record.status(55, 5), Err(EndReason::Terminated));

        block_on(store.end("acme", "s-2", EndReason::Abandoned, 1000)).unwrap();
        block_on(store.end("acme", "s-2", EndReason::Revoked, 1000)).unwrap();
        assert_eq!(store.lookup("acme", "s-2").unwrap().status(0, 5), Err(EndReason::Abandoned));
        assert!(store.lookup("other", "s-2").is_none(), "sessions are per tenant");
    }

    #[test]
    fn a_reservation_not_committed_is_given_back() {
        let store = MemorySessions::new(0);
        let record = store.track("acme", "s-1", 10, 1000);
        let take_initialized = |p: Progress| {
            if p.has(Progress::INITIALIZED) {
                Err(WriteDenial { index: 0, denial: PolicyDenial::Cmi5VerbRepeated })
            } else {
                Ok(Progress::from_bits(p.bits() | Progress::INITIALIZED.bits()))
            }
        };
        let first = record.reserve(take_initialized).unwrap();
        assert!(record.reserve(take_initialized).is_err(), "held while in flight");
        drop(first);
        assert_eq!(record.progress(), Progress::default(), "the LRS did not store it: given back");
        record.reserve(take_initialized).unwrap().commit(20);
        assert!(record.progress().has(Progress::INITIALIZED));
    }

    #[test]
    fn a_session_older_than_the_store_is_resumed() {
        let store = MemorySessions::new(500);
        assert!(store.track("acme", "old", 400, 1000).progress().has(Progress::RESUMED));
        assert!(!store.track("acme", "new", 600, 1000).progress().has(Progress::RESUMED));
    }

    #[test]
    fn spent_and_stale_codes_are_kept_only_as_tombstones() {
        let store = MemorySessions::new(0);
        let is_tombstone = |code: &FetchCode| {
            matches!(store.fetch.pin().get(&fetch_key(code.as_str()).unwrap()), Some(FetchEntry::Spent { .. }))
        };
        let used = FetchCode::generate();
        block_on(store.put_fetch(&used, FetchTicket::new("acme".into(), claims(), 200), 1000)).unwrap();
        assert!(!is_tombstone(&used));
        assert!(block_on(store.redeem_fetch(used.as_str(), "acme", 150)).is_ok());
        assert!(is_tombstone(&used), "redeemed: a tombstone at once");
        let unused = FetchCode::generate();
        block_on(store.put_fetch(&unused, FetchTicket::new("acme".into(), claims(), 200), 1000)).unwrap();
        store.sweep(199);
        assert!(!is_tombstone(&unused), "still redeemable");
        store.sweep(200);
        assert!(is_tombstone(&unused), "past its fetch TTL: a tombstone");
        for code in [&used, &unused] {
            assert_eq!(block_on(store.redeem_fetch(code.as_str(), "acme", 300)), Err(FetchRefusal::UsedOrExpired));
            assert_eq!(block_on(store.redeem_fetch(code.as_str(), "other", 300)), Err(FetchRefusal::Invalid));
        }
        assert!(std::mem::size_of::<FetchEntry>() <= 32, "a tombstone is a few words");
    }

    #[test]
    fn tokens_and_learners_are_revoked() {
        let store = MemorySessions::new(0);
        let key = || "learner-key-1".to_owned();
        let never = || -> String { panic!("the learner key is computed only when a learner is revoked") };
        assert!(!store.token_revoked("acme", "j-1", 100, &never));
        block_on(store.revoke("acme", &Revocation::Token("j-1".into()), 150, 1000)).unwrap();
        assert!(store.token_revoked("acme", "j-1", 100, &never));
        assert!(!store.token_revoked("acme", "j-2", 100, &never), "another token");
        assert!(!store.token_revoked("other", "j-1", 100, &never), "another tenant");
        block_on(store.revoke("acme", &Revocation::Learner(key()), 150, 1000)).unwrap();
        assert!(store.token_revoked("acme", "j-3", 150, &key), "issued before the revocation");
        assert!(!store.token_revoked("acme", "j-4", 151, &key), "issued after it");
        assert!(!store.token_revoked("acme", "j-3", 100, &|| "someone-else".into()));
        store.sweep(1000);
        assert!(!store.token_revoked("acme", "j-1", 100, &key), "forgotten once no token can be presented");
    }

    #[test]
    fn sweep_forgets_what_expired() {
        let store = MemorySessions::new(0);
        store.track("acme", "a", 10, 100);
        store.track("acme", "b", 10, 300);
        let code = FetchCode::generate();
        block_on(store.put_fetch(&code, FetchTicket::new("acme".into(), claims(), 50), 100)).unwrap();
        let counts = store.sweep(200);
        assert_eq!(counts, SweepCounts { sessions_removed: 1, fetch_codes_removed: 1, sessions_tracked: 1 });
        assert!(store.lookup("acme", "a").is_none() && store.lookup("acme", "b").is_some());
    }
}
