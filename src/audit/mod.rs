//! The audit trail: who did what, kept without a request ever waiting for it.
//!
//! A request hands its event to [`Audit::record`], a non-blocking send into a bounded queue.
//! One background writer drains the queue in batches: in Postgres mode into the append-only
//! `audit_events` table (falling back to the disk [`spool`] while Postgres is away or slow, and
//! replaying it oldest-first afterwards), in file mode as JSON lines to a file (rotated by
//! size) or stdout. Past the queue's bound an event is dropped and counted
//! (`lrsgate_audit_dropped_total{reason="queue_full"}`): the request is never slowed for it.

pub mod event;
pub mod file;
pub mod postgres;
pub mod query;
pub mod spool;

use tokio::sync::mpsc;

pub use self::event::{AuditEvent, EventKind, Service};
use crate::metrics;

/// Where requests hand their audit events. Cheap to clone; disabled when audit is off.
#[derive(Clone, Default)]
pub struct Audit {
    queue: Option<mpsc::Sender<AuditEvent>>,
}

impl Audit {
    /// A handle that records nothing (audit off).
    pub fn disabled() -> Audit {
        Audit { queue: None }
    }

    /// A handle and the receiving end its writer drains.
    pub fn channel(capacity: usize) -> (Audit, mpsc::Receiver<AuditEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Audit { queue: Some(tx) }, rx)
    }

    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Hand `event` to the writer; never waits.
    pub fn record(&self, event: AuditEvent) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::AUDIT_DROPPED.with_label_values(&["queue_full"]).inc();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::AUDIT_DROPPED.with_label_values(&["writer_stopped"]).inc();
            }
        }
    }
}

/// Record a config reload: one `config_applied` per tenant applied, one `config_rejected` (with
/// why) per tenant refused.
pub fn config_outcome(audit: &Audit, applied: &[String], refused: &[(String, crate::tenant::LoadError)]) {
    for tenant in applied {
        audit.record(AuditEvent::new(EventKind::ConfigApplied, Service::Config).tenant(tenant));
    }
    for (tenant, why) in refused {
        audit
            .record(AuditEvent::new(EventKind::ConfigRejected, Service::Config).tenant(tenant).detail(why.to_string()));
    }
}

/// How long the writer lets a batch fill after its first event: fewer, larger writes (and
/// fsyncs) under load, for at most this much delay in the trail.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(20);

/// Let a batch that has its first events fill for up to [`COALESCE`]. Called after a
/// `recv_many` completed, never inside a `select!` or a timeout: events it has taken must not
/// be dropped with a cancelled future (`recv_many` alone is cancel-safe, this is not).
pub(crate) async fn fill(rx: &mut mpsc::Receiver<AuditEvent>, batch: &mut Vec<AuditEvent>, max: usize) {
    if batch.len() >= max {
        return;
    }
    tokio::time::sleep(COALESCE).await;
    while batch.len() < max {
        match rx.try_recv() {
            Ok(event) => batch.push(event),
            Err(_) => break,
        }
    }
}

/// One step of a writer's drain at a stop: the next events (`Some(n)`), or `None` once the
/// drain deadline passed or the stop is quiet (no request in flight: nothing more will be
/// recorded; what is still queued is taken by `drain`).
pub async fn drain_step(
    until: tokio::time::Instant,
    rx: &mut mpsc::Receiver<AuditEvent>,
    batch: &mut Vec<AuditEvent>,
    limit: usize,
) -> Option<usize> {
    tokio::select! {
        biased;
        // Cancel-safe: events are taken only when this branch completes.
        n = rx.recv_many(batch, limit) => Some(n),
        _ = crate::lifecycle::quiet() => None,
        _ = tokio::time::sleep_until(until) => None,
    }
}

/// Whatever is queued right now, without waiting (at shutdown).
pub(crate) fn drain(rx: &mut mpsc::Receiver<AuditEvent>) -> Vec<AuditEvent> {
    let mut batch = Vec::new();
    while let Ok(event) = rx.try_recv() {
        batch.push(event);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_and_never_waits() {
        let (audit, mut rx) = Audit::channel(2);
        let before = metrics::AUDIT_DROPPED.with_label_values(&["queue_full"]).get();
        for _ in 0..3 {
            audit.record(AuditEvent::new(EventKind::RequestRefused, Service::Edge));
        }
        assert_eq!(metrics::AUDIT_DROPPED.with_label_values(&["queue_full"]).get(), before + 1);
        let mut batch = Vec::new();
        assert_eq!(rx.recv_many(&mut batch, 10).await, 2);
        Audit::disabled().record(AuditEvent::new(EventKind::RequestRefused, Service::Edge));
        assert!(!Audit::disabled().enabled());
    }
}
