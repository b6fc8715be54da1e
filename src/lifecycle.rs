//! A graceful stop that ends as soon as the work is done.
//!
//! Pingora's stop (SIGTERM, or the old process of an upgrade once it handed its sockets over)
//! closes the listeners, then sleeps the whole `grace_period_seconds` even when nothing is in
//! flight. Here the grace period is a maximum: [`EarlyExit`] waits until no request is in
//! flight (every service's request holds an [`InFlight`]) and every background service with
//! work to finish at a stop (the audit writers, the fleet heartbeat) has released its
//! [`Finishing`], then exits the process. Idle keep-alive connections are not waited for:
//! an idle connection has nothing to lose.
//!
//! `/readyz` answers 503 from the moment a stop begins, so a load balancer stops sending.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use log::info;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static FINISHING: AtomicUsize = AtomicUsize::new(0);
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Set once a stop began and no request was left in flight.
static QUIET: tokio::sync::Notify = tokio::sync::Notify::const_new();
static IS_QUIET: AtomicBool = AtomicBool::new(false);

/// One unit of a counter, counted while it lives.
#[derive(Debug)]
struct Held(&'static AtomicUsize);

impl Held {
    fn on(counter: &'static AtomicUsize) -> Held {
        counter.fetch_add(1, Ordering::AcqRel);
        Held(counter)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One request being served.
#[derive(Debug)]
pub struct InFlight(#[allow(dead_code)] Held);

impl InFlight {
    pub fn enter() -> InFlight {
        InFlight(Held::on(&IN_FLIGHT))
    }
}

impl Default for InFlight {
    /// A request context made by `Default` is a request being served.
    fn default() -> Self {
        InFlight::enter()
    }
}

/// A background service's work at a stop (flushing, leaving the fleet), held until it is done.
#[derive(Debug)]
pub struct Finishing(#[allow(dead_code)] Held);

impl Finishing {
    pub fn hold() -> Finishing {
        Finishing(Held::on(&FINISHING))
    }
}

/// Whether a stop has begun (`/readyz` then answers 503).
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// Resolves once a stop began and no request is in flight: from then on nothing new is
/// recorded, so a writer may flush what it holds and finish.
pub async fn quiet() {
    loop {
        let notified = QUIET.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if IS_QUIET.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

/// Ends the process once a stop's work is done, before the grace period if it can.
pub struct EarlyExit {
    /// Pingora's grace period: past it, Pingora's own stop takes over.
    pub grace: Duration,
}

#[async_trait]
impl BackgroundService for EarlyExit {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        STOPPING.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + self.grace;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        // A request is counted from its context's creation: one accepted in the instant the
        // listeners closed shows up within a tick or two, so quiet must hold for a few ticks.
        let mut quiet_ticks = 0;
        while quiet_ticks < 5 {
            tick.tick().await;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            quiet_ticks = if IN_FLIGHT.load(Ordering::Acquire) == 0 { quiet_ticks + 1 } else { 0 };
        }
        IS_QUIET.store(true, Ordering::Release);
        QUIET.notify_waiters();
        while FINISHING.load(Ordering::Acquire) > 0 {
            tick.tick().await;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
        }
        info!("graceful stop: nothing left in flight, exiting before the grace period ends");
        log::logger().flush();
        std::process::exit(0);
    }
}
