//! What one edge request carries from phase to phase.

use std::sync::Arc;
use std::time::Instant;

use crate::admission::Admitted;
use crate::policy::cors::CorsReply;
use crate::request_id::RequestId;
use crate::session::store::Reservation;
use crate::tenant::Tenant;
use crate::upstream::UpstreamNode;
use crate::xapi::route::Resource;

/// When a request began and its id.
pub struct RequestStart {
    pub id: RequestId,
    pub at: Instant,
}

impl Default for RequestStart {
    fn default() -> Self {
        RequestStart { id: RequestId::next(), at: Instant::now() }
    }
}

/// Counts an open edge connection (`lrsgate_edge_open_connections`) while it lives: made on a
/// connection's first request and carried over keep-alive requests.
pub struct ConnectionGuard(());

impl ConnectionGuard {
    pub fn open() -> Arc<ConnectionGuard> {
        crate::metrics::OPEN_CONNECTIONS.inc();
        Arc::new(ConnectionGuard(()))
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        crate::metrics::OPEN_CONNECTIONS.dec();
    }
}

impl EdgeCtx {
    /// What every answer relayed from the LRS gets: this request's CORS headers and its id
    /// (our own answers get the id from `http_io::json_header`).
    pub fn finish_relayed(&self, header: &mut pingora::http::ResponseHeader) {
        super::respond::apply_cors(&self.cors, header);
        let _ = header.insert_header(crate::http_io::REQUEST_ID, self.start.id.as_str());
    }
}

/// Per-request state. Holds the tenant snapshot taken once in `request_filter`; what is known
/// before admission (tenant, resource, token) is kept for a refusal's audit and log line.
#[derive(Default)]
pub struct EdgeCtx {
    pub start: RequestStart,
    /// This request, counted while in flight (a graceful stop waits for it).
    pub in_flight: crate::lifecycle::InFlight,
    /// This request's connection (see `ConnectionGuard`).
    pub connection: Option<Arc<ConnectionGuard>>,
    /// The verified token (its `jti` seals `more` cursors; its learner and session are in
    /// the log line and the audit trail), shared with the tenant's verify cache.
    pub verified: Option<Arc<crate::auth::verify::Verified>>,
    /// When the upstream exchange began (Pingora's path), for its duration.
    pub upstream_started: Option<Instant>,
    pub tenant: Option<Arc<Tenant>>,
    pub resource: Option<Resource>,
    /// What the LRS receives for an admitted request (method, resource, query, headers, the
    /// judged body replayed byte for byte) and how a statement read's answer is judged.
    pub admitted: Option<Admitted>,
    /// The node chosen by `upstream_peer` (set again on each retry).
    pub node: Option<Arc<UpstreamNode>>,
    /// Our own refusal (status, reason code), when there was one.
    pub refused: Option<(u16, &'static str)>,
    /// The LRS nodes (slots) this request was sent to; a retry goes to another.
    pub tried: crate::upstream::health::Tried,
    /// The slot of the node the current attempt went to.
    pub slot: Option<usize>,
    /// A read was retried on another node (at most once per request).
    pub read_retried: bool,
    /// The status the LRS answered with (on every forwarding path).
    pub forwarded_status: Option<u16>,
    /// CORS headers every response to this request gets (own refusals included).
    pub cors: CorsReply,
    /// cmi5 progress a statement write reserved: committed if the LRS stores it, else given back.
    pub reservation: Option<Reservation>,
}
