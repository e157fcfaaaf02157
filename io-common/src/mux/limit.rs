//! The cap on connections a request-plane server holds at once.
//!
//! Every accepted socket counts from `accept` until it closes, in every phase: sniffing its
//! first bytes, the handshake, serving. At the cap a new connection is **accepted and closed at
//! once**, rather than left unaccepted: a caller learns in one round trip that this instance
//! is full (its connection closes before the request is written, which a dynrt client treats
//! as a refusal and retries on another instance), instead of waiting out its connect timeout in
//! a backlog that the flood also fills. Connections already open are untouched either way, so
//! a flood of new sockets cannot stall existing callers; it only costs the flooder's own
//! connections, each closed as it arrives.
//!
//! A warning is logged once per burst: when the cap is hit, and again only if connections are
//! still being closed [`WARN_INTERVAL`] later, each time with how many were closed since the
//! last warning — a flood makes a few lines, not one per socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The default cap on connections per server (normally one server per process).
pub const DEFAULT_MAX_CONNECTIONS: usize = dynrt_core::config::DEFAULT_TCP_MAX_CONNECTIONS;

/// At most one warning about the cap per this interval.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Counts a server's open connections against its cap. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max: usize,
    open: AtomicUsize,
    /// Connections closed at the cap since the last warning.
    refused: AtomicU64,
    /// When the last warning was logged.
    last_warning: Mutex<Option<Instant>>,
}

impl ConnectionLimit {
    /// A cap of `max` connections (0 is raised to 1: a server that accepts nothing is a
    /// misconfiguration nobody wants silently).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                max: max.max(1),
                open: AtomicUsize::new(0),
                refused: AtomicU64::new(0),
                last_warning: Mutex::new(None),
            }),
        }
    }

    /// A permit for one more connection, or `None` at the cap (the caller closes the socket;
    /// the refusal is counted and logged once per burst, timed by `now`: the runtime's clock,
    /// read only at the cap).
    pub(crate) fn try_acquire(
        &self,
        peer: SocketAddr,
        now: impl FnOnce() -> Instant,
    ) -> Option<Permit> {
        let inner = &self.inner;
        let acquired = inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < inner.max).then_some(open + 1)
            })
            .is_ok();
        if acquired {
            return Some(Permit {
                limit: self.clone(),
            });
        }
        inner.refused.fetch_add(1, Ordering::AcqRel);
        let now = now();
        let mut last = inner.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| now.duration_since(at) >= WARN_INTERVAL) {
            *last = Some(now);
            let closed = inner.refused.swap(0, Ordering::AcqRel);
            tracing::warn!(
                max = inner.max,
                closed,
                %peer,
                "request-plane connection cap reached: new connections are closed at once until \
                 one ends"
            );
        }
        None
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }
}

/// One open connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Permit {
    limit: ConnectionLimit,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limit.inner.open.fetch_sub(1, Ordering::AcqRel);
    }
}
