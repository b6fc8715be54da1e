//! What one client connection may cost a listener, before any credential was seen.
//!
//! [`Guarded`] wraps a Pingora app (the edge's proxy, the token service, the admin API) and
//! sees each connection from its accept (after the TLS handshake on the TLS listener) to its
//! close:
//! - **Caps**: at most `max_connections` open connections in all and `max_connections_per_client`
//!   from one client address, per service; past one, the connection gets a 503 JSON refusal
//!   and is closed.
//!   Per-address counts come from pingora-limits' `Inflight` (a count-min sketch: lock-free, may
//!   over-count on collisions, never under-counts).
//! - **Head deadline**: an HTTP/1 request's head (its first byte to its blank line) must arrive
//!   within `request_head_timeout`, however slowly it trickles; past it the connection is
//!   closed (Pingora bounds only each read, not their sum). Idle keep-alive connections are
//!   bounded by `keepalive_timeout`, bodies by `body_read_timeout`.
//! - **Idle connections cost almost nothing**: an HTTP/1 connection waits for its next request
//!   here, before Pingora's session exists. Pingora's own keep-alive loop waits inside its
//!   request future, which is allocated at its largest size (every phase of a proxied request)
//!   for as long as the connection idles: about 20 KB per idle connection (bench/run.sh, idle).
//!   Here the first bytes are read onto the stack and stashed, and only then is the session
//!   made and handed to the app, which reads them from the stash.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::Stream;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, TimingDigest, UniqueID,
    UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use pingora_limits::inflight::Inflight;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;

use crate::denial::{ConnectionLimit, Denial};
use crate::metrics;
use crate::request_id::RequestId;

/// The per-connection limits (`[limits]` in the server file).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub request_head_timeout: Duration,
    /// How long a connection may wait for a request's first byte (a new one, or the next one on
    /// a kept-alive connection).
    pub keepalive_timeout: Duration,
}

/// An app behind the caps and the head deadline.
pub struct Guarded<A> {
    pub app: Arc<A>,
    pub limits: ConnectionLimits,
    open: AtomicUsize,
    per_client: Inflight,
    /// Set when the service stops: idle connections waiting here close at once.
    stopping: AtomicBool,
    stopped: Notify,
}

impl<A> Guarded<A> {
    pub fn new(app: A, limits: ConnectionLimits) -> Self {
        Guarded {
            app: Arc::new(app),
            limits,
            open: AtomicUsize::new(0),
            per_client: Inflight::new(),
            stopping: AtomicBool::new(false),
            stopped: Notify::new(),
        }
    }
}

/// How an idle connection's wait for its next request ended.
enum Waited {
    /// Its first bytes arrived (stashed in the stream).
    Request,
    /// Closed by the client, broken, timed out, or the service is stopping.
    Close,
}

impl<A> Guarded<A> {
    /// Wait for the next request's first bytes with no session, buffer or app future held.
    ///
    /// At a stop, as in Pingora's own keep-alive wait (`handle_new_request`), a kept-alive
    /// connection is closed unless its next request's bytes are already here (`biased`: read
    /// first). A new connection's first request is always read: the listener accepted it, and
    /// its client sent it or is about to (closing it unread resets a request in flight; seen in
    /// the systemd upgrade test). It is answered `Connection: close` once the stop began.
    async fn wait_for_request(&self, stream: &mut HeadDeadline, first: bool) -> Waited {
        let read = tokio::time::timeout(self.limits.keepalive_timeout, stream.read_first_bytes());
        let arrived = |r: Result<std::io::Result<bool>, tokio::time::error::Elapsed>| match r {
            Ok(Ok(true)) => Waited::Request,
            _ => Waited::Close,
        };
        if first {
            return arrived(read.await);
        }
        let stopped = self.stopped.notified();
        tokio::pin!(stopped);
        let stop = std::future::poll_fn(|cx| {
            if stopped.as_mut().poll(cx).is_ready() || self.stopping.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        tokio::select! {
            biased;
            r = read => arrived(r),
            () = stop => Waited::Close,
        }
    }
}

/// Counts an open connection while it lives.
struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let open = Open(&self.open);
        let total = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let client: Option<IpAddr> =
            stream.get_socket_digest().and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let (_client_guard, from_client) = match client {
            Some(ip) => {
                let (guard, n) = self.per_client.incr(ip, 1);
                (Some(guard), n.max(0) as usize)
            }
            None => (None, 0),
        };
        let refused = if total > self.limits.max_connections {
            Some(ConnectionLimit::Total)
        } else if from_client > self.limits.max_connections_per_client {
            Some(ConnectionLimit::PerClient)
        } else {
            None
        };
        if let Some(limit) = refused {
            metrics::CONNECTIONS_REFUSED.with_label_values(&[limit.label()]).inc();
            let _ = refuse(&mut stream, Denial::TooManyConnections(limit)).await;
            Shutdown::shutdown(stream.as_mut()).await;
            return None;
        }
        // HTTP/2 frames its own streams (and has its own limits); the head deadline and the
        // idle wait are HTTP/1's.
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            let reused = ServerApp::process_new(&self.app, stream, shutdown).await;
            drop(open);
            return reused;
        }
        let mut stream = Box::new(HeadDeadline::new(stream, self.limits.request_head_timeout));
        let mut persistent: Option<HttpPersistentSettings> = None;
        let mut first = true;
        // Pingora's HTTP/1 keep-alive loop (`impl ServerApp for HttpServerApp`), with the wait
        // for each request moved out of the app's future. lrsgate never turns HTTP/1
        // pipelining on, so a reused connection has no request bytes already read.
        while let Waited::Request = self.wait_for_request(&mut stream, first).await {
            let mut session = ServerSession::new_http1(stream);
            match persistent.take() {
                Some(settings) => settings.apply_to_session(&mut session),
                None if first => {
                    let stopping = *shutdown.borrow() || self.stopping.load(Ordering::Acquire);
                    session.set_keepalive((!stopping).then_some(self.limits.keepalive_timeout.as_secs()));
                    // Pingora counts reuses: a limit of N requests is N - 1 reuses.
                    session.set_keepalive_reuses_remaining(
                        self.app.server_options().and_then(|o| o.keepalive_request_limit).map(|n| n.saturating_sub(1)),
                    );
                }
                None => {}
            }
            first = false;
            let Some(reused) = self.app.process_new_http(session, shutdown).await else { break };
            let (next, settings) = reused.consume();
            persistent = settings;
            match next.into_any().downcast::<HeadDeadline>() {
                Ok(next) => stream = next,
                // Pingora hands back the stream it was given; anything else is a bug: close.
                Err(_) => break,
            }
        }
        drop(open);
        None
    }

    async fn cleanup(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stopped.notify_waiters();
        self.app.http_cleanup().await;
    }
}

/// A refusal written straight onto a connection no HTTP session exists for yet.
async fn refuse(stream: &mut Stream, denial: Denial) -> std::io::Result<()> {
    let (status, _) = denial.status_and_code();
    let id = RequestId::next();
    let body = denial.body(&id);
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         X-Experience-API-Version: 1.0.3\r\n{}: {}\r\n{}Connection: close\r\n\r\n",
        http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or(""),
        body.len(),
        crate::http_io::REQUEST_ID,
        id.as_str(),
        denial.retry_after().map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await
}

/// Where a connection is in reading a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Between requests (or before the first): Pingora's keep-alive timeout applies.
    Idle,
    /// A head began; the blank line that ends it not seen yet. `tail` holds the last bytes read
    /// (a `\r\n\r\n` may span reads).
    Reading { tail: u32, tail_len: u8 },
    /// The head is complete: the body, and the answer.
    Done,
}

/// Follows a connection's request heads through the bytes read and written (pure).
#[derive(Debug, Clone, Copy)]
struct HeadTracker {
    state: Head,
}

impl Default for HeadTracker {
    fn default() -> Self {
        HeadTracker { state: Head::Idle }
    }
}

impl HeadTracker {
    /// Bytes just read; whether they began a head (its deadline starts now).
    fn read(&mut self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        let (began, mut tail, mut tail_len) = match self.state {
            Head::Done => return false,
            Head::Idle => (true, 0u32, 0u8),
            Head::Reading { tail, tail_len } => (false, tail, tail_len),
        };
        for &b in bytes {
            tail = (tail << 8) | u32::from(b);
            tail_len = tail_len.saturating_add(1).min(4);
            if tail_len == 4 && tail == u32::from_be_bytes(*b"\r\n\r\n") {
                self.state = Head::Done;
                return began;
            }
        }
        self.state = Head::Reading { tail, tail_len };
        began
    }

    /// Bytes written: once a head was read, the answer; the next bytes read begin a new head.
    fn wrote(&mut self) {
        if self.state == Head::Done {
            self.state = Head::Idle;
        }
    }

    fn reading(&self) -> bool {
        matches!(self.state, Head::Reading { .. })
    }
}

/// A stream that closes a connection whose request head takes longer than its deadline.
///
/// The timer is armed only when a head is still incomplete and the socket has no more bytes
/// for now: a head that arrives in one read (nearly every one) never touches it. Resetting a
/// tokio timer per request re-registers it with the driver and may wake a parked worker; that
/// cost 20 µs of CPU per request in `bench/run.sh` (post_1kb), so it is paid only by slow heads.
#[derive(Debug)]
pub struct HeadDeadline {
    inner: Stream,
    timeout: Duration,
    head: HeadTracker,
    /// When the current head must be complete.
    due: Option<tokio::time::Instant>,
    /// The armed timer and the deadline it is armed for.
    timer: Option<(Pin<Box<tokio::time::Sleep>>, tokio::time::Instant)>,
    /// A request's first bytes, read while the connection waited for it (`read_first_bytes`),
    /// served before the socket's; empty otherwise.
    stash: bytes::Bytes,
}

/// How much of a request `read_first_bytes` takes in one read (on the stack while it waits).
const FIRST_READ_BYTES: usize = 4096;

impl HeadDeadline {
    fn new(inner: Stream, timeout: Duration) -> Self {
        HeadDeadline {
            inner,
            timeout,
            head: HeadTracker::default(),
            due: None,
            timer: None,
            stash: bytes::Bytes::new(),
        }
    }

    /// Wait for the connection's next bytes and stash them; false once it is closed. The buffer
    /// lives on the stack only while a read is tried, so a waiting connection holds none.
    async fn read_first_bytes(&mut self) -> std::io::Result<bool> {
        if !self.stash.is_empty() {
            return Ok(true);
        }
        std::future::poll_fn(|cx| {
            // Left uninitialised (ReadBuf tracks what the read filled): zeroing 4 KiB on every
            // poll was 12,000 of the 16,000 instructions this wait added per request (callgrind).
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); FIRST_READ_BYTES];
            let mut read = ReadBuf::uninit(&mut buf);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Ok(false)),
                Poll::Ready(Ok(())) => {
                    self.stash = bytes::Bytes::copy_from_slice(read.filled());
                    Poll::Ready(Ok(true))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Whether the current head's deadline passed; arms the timer to wake this task at it.
    fn past_due(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(due) = self.due.filter(|_| self.head.reading()) else { return false };
        if tokio::time::Instant::now() >= due {
            return true;
        }
        let timer = match &mut self.timer {
            Some((sleep, armed)) => {
                if *armed != due {
                    sleep.as_mut().reset(due);
                    *armed = due;
                }
                sleep
            }
            None => &mut self.timer.insert((Box::pin(tokio::time::sleep_until(due)), due)).0,
        };
        timer.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for HeadDeadline {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let from_stash = if this.stash.is_empty() {
            None
        } else {
            let n = this.stash.len().min(buf.remaining());
            buf.put_slice(&this.stash.split_to(n));
            Some(Poll::Ready(Ok(())))
        };
        match from_stash.unwrap_or_else(|| Pin::new(&mut this.inner).poll_read(cx, buf)) {
            Poll::Ready(Ok(())) => {
                if this.head.read(&buf.filled()[before..]) {
                    this.due = Some(tokio::time::Instant::now() + this.timeout);
                }
                if this.head.reading() && this.due.is_some_and(|due| tokio::time::Instant::now() >= due) {
                    return Poll::Ready(Err(head_timed_out()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.past_due(cx) => Poll::Ready(Err(head_timed_out())),
            other => other,
        }
    }
}

fn head_timed_out() -> std::io::Error {
    metrics::CONNECTIONS_REFUSED.with_label_values(&["head_timeout"]).inc();
    std::io::Error::new(std::io::ErrorKind::TimedOut, "request head deadline")
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.head.wrote();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.head.wrote();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        // Stashed bytes come first; a peek past them is not supported (Pingora peeks only for
        // the h2c preface, which lrsgate does not enable).
        if !self.stash.is_empty() {
            return Ok(false);
        }
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(reads: &[&[u8]]) -> HeadTracker {
        let mut t = HeadTracker::default();
        for r in reads {
            t.read(r);
        }
        t
    }

    #[test]
    fn a_head_ends_at_its_blank_line_even_across_reads() {
        assert_eq!(after(&[]).state, Head::Idle);
        assert!(matches!(after(&[b"GET / HTTP/1.1\r\n"]).state, Head::Reading { .. }));
        assert_eq!(after(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]).state, Head::Done);
        assert_eq!(after(&[b"GET / HTTP/1.1\r\nHost: a\r", b"\n", b"\r", b"\n"]).state, Head::Done);
        assert!(matches!(after(&[b"GET / HTTP/1.1\n\n\r\n"]).state, Head::Reading { .. }), "bare LFs do not end it");
        // Body bytes after the head change nothing; an answer starts the next head.
        let mut t = after(&[b"POST / HTTP/1.1\r\n\r\n", b"{\r\n\r\n"]);
        assert_eq!(t.state, Head::Done);
        t.wrote();
        assert_eq!(t.state, Head::Idle);
        assert!(t.read(b"G"), "the first byte of the next head starts its deadline");
        assert!(!t.read(b"ET"), "only the first");
    }
}
