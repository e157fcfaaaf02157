//! The status server's accept loop and connection tasks: the cap with shedding
//! ([`ConnectionTable`] decides), hyper's limits, and graceful and abrupt stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use dynrt_core::status::connections::{Admission, ConnectionId, ConnectionTable};
use futures_lite::future::or;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol_hyper::rt::FuturesIo;

use super::{Limits, RuntimeTimer, Service, Signals, to_http};
use crate::runtime::{self, Runtime};

/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// hyper refuses a read buffer smaller than this.
const MIN_READ_BUFFER: usize = 8 * 1024;
/// Refused connections answered at once at most; beyond, a refused connection is just closed.
const MAX_REFUSING: usize = 64;
/// How long a refused connection has to send its request head for its 503.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Log a shed or a refusal on the first one and then every this many.
const LOG_EVERY: u64 = 1024;

/// The open connections: the table, and how to close each (closing its sender wakes its task).
pub(super) struct Connections {
    inner: Mutex<Table>,
}

struct Table {
    table: ConnectionTable,
    close: HashMap<ConnectionId, Sender<()>>,
}

impl Connections {
    pub(super) fn new(limits: &Limits) -> Self {
        Self {
            inner: Mutex::new(Table {
                table: ConnectionTable::new(limits.max_connections),
                close: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn open(&self) -> usize {
        self.lock().table.open()
    }

    /// Admits a new connection: its id and the receiver that ends when it must close, or
    /// `None` when it is refused. Closes the connection shed for it, if any.
    fn admit(&self) -> Option<(ConnectionId, Receiver<()>)> {
        let mut inner = self.lock();
        let id = match inner.table.admit() {
            Admission::Serve { id } => id,
            Admission::ServeShedding { id, shed } => {
                if let Some(close) = inner.close.remove(&shed) {
                    close.close();
                }
                let total = inner.table.shed_total();
                if total % LOG_EVERY == 1 {
                    tracing::warn!(
                        cap = inner.table.cap(),
                        shed_total = total,
                        "system status server: at the connection cap; closing the connection \
                         idle longest for each new one"
                    );
                }
                id
            }
            Admission::Refuse => {
                let total = inner.table.refused_total();
                if total % LOG_EVERY == 1 {
                    tracing::warn!(
                        cap = inner.table.cap(),
                        refused_total = total,
                        "system status server: every connection is busy; refusing new ones \
                         with 503"
                    );
                }
                return None;
            }
        };
        let (close, closed) = async_channel::bounded(1);
        inner.close.insert(id, close);
        Some((id, closed))
    }

    fn request_started(&self, id: ConnectionId) {
        self.lock().table.request_started(id);
    }

    fn request_finished(&self, id: ConnectionId) {
        self.lock().table.request_finished(id);
    }

    fn closed(&self, id: ConnectionId) {
        let mut inner = self.lock();
        inner.table.closed(id);
        inner.close.remove(&id);
    }
}

/// One admitted connection; reports it closed when its task ends (or is dropped).
#[derive(Clone)]
pub(super) struct Conn {
    connections: Arc<Connections>,
    id: ConnectionId,
}

impl Conn {
    /// Marks the connection busy until the guard drops (a handler runs for it).
    pub(super) fn busy(&self) -> Busy {
        self.connections.request_started(self.id);
        Busy(self.clone())
    }
}

/// A connection is busy while this lives.
pub(super) struct Busy(Conn);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.connections.request_finished(self.0.id);
    }
}

/// Reports the connection closed when its task ends.
struct Admitted(Conn);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.connections.closed(self.0.id);
    }
}

pub(super) async fn accept_loop<R: Runtime>(
    runtime: R,
    listener: R::Listener,
    service: Arc<Service>,
    signals: Signals,
    connections: Arc<Connections>,
    limits: Limits,
) {
    let refusing = Arc::new(AtomicUsize::new(0));
    // Every connection task holds a clone of `open`: `closed` ends when the last one is gone.
    let (open, closed) = async_channel::bounded::<()>(1);
    loop {
        // Accept whatever the table says: a probe must get through at the cap.
        let next = or(
            async {
                or(signals.stopped(), signals.aborted()).await;
                None
            },
            async { Some(runtime::accept::<R>(&listener).await) },
        )
        .await;
        let Some(accepted) = next else {
            break;
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::warn!(%error, "system status server: accept failed");
                runtime::sleep_until(&runtime, runtime.now() + ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Some((id, shed)) = connections.admit() else {
            refuse(&runtime, stream, &refusing, &signals, &open, &limits);
            continue;
        };
        let conn = Conn {
            connections: connections.clone(),
            id,
        };
        let (service, signals, open, rt) = (
            service.clone(),
            signals.clone(),
            open.clone(),
            runtime.clone(),
        );
        runtime.spawn(async move {
            let _open = open;
            let admitted = Admitted(conn.clone());
            or(
                serve_connection(&rt, stream, service, &signals, conn, &limits),
                or(signals.aborted(), async {
                    let _ = shed.recv().await;
                }),
            )
            .await;
            drop(admitted);
        });
    }
    drop(listener);
    drop(open);
    let busy = connections.open();
    let drained = or(
        async {
            let _ = closed.recv().await;
            true
        },
        async {
            let deadline = runtime.now() + limits.drain_timeout;
            or(runtime::sleep_until(&runtime, deadline), signals.aborted()).await;
            false
        },
    )
    .await;
    if !drained {
        if !signals.abort.0.is_closed() {
            tracing::warn!(
                busy,
                drain_timeout = ?limits.drain_timeout,
                "system status server: closing connections still busy after the drain timeout"
            );
        }
        signals.abort.0.close();
        let _ = closed.recv().await;
    }
}

/// Every connection is busy: read the request head (for at most [`REFUSE_TIMEOUT`]), answer
/// 503 and close — at most [`MAX_REFUSING`] at a time; beyond that, close at once. Reading the
/// head first matters: closing a socket with unread input resets it, and the client would see
/// the reset instead of the 503.
fn refuse<R: Runtime>(
    runtime: &R,
    stream: R::Tcp,
    refusing: &Arc<AtomicUsize>,
    signals: &Signals,
    open: &Sender<()>,
    limits: &Limits,
) {
    if refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let guard = Refusing(refusing.clone());
    let (rt, signals, open) = (runtime.clone(), signals.clone(), open.clone());
    let head = limits.max_header_bytes;
    runtime.spawn(async move {
        let (_open, _guard) = (open, guard);
        let answer = service_fn(|_request| async {
            Ok::<_, Infallible>(to_http(dynrt_core::status::Response {
                status: 503,
                content_type: Some(dynrt_core::status::TEXT),
                allow: None,
                body: bytes::Bytes::from_static(b"Too many busy connections to the status server"),
            }))
        });
        let connection = http1::Builder::new()
            .timer(RuntimeTimer(rt.clone()))
            .keep_alive(false)
            .header_read_timeout(REFUSE_TIMEOUT)
            .max_header_size(head)
            .max_buf_size(head.max(MIN_READ_BUFFER))
            .serve_connection(FuturesIo::new(stream), answer);
        let deadline = rt.now() + 2 * REFUSE_TIMEOUT;
        or(
            async {
                let _ = connection.await;
            },
            or(signals.aborted(), runtime::sleep_until(&rt, deadline)),
        )
        .await;
    });
}

/// Counts a refused connection being answered.
struct Refusing(Arc<AtomicUsize>);

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_connection<R: Runtime>(
    runtime: &R,
    stream: R::Tcp,
    service: Arc<Service>,
    signals: &Signals,
    conn: Conn,
    limits: &Limits,
) {
    let (rt, body_timeout) = (runtime.clone(), limits.body_read_timeout);
    let handler = service_fn(move |request| {
        let (service, conn, rt) = (service.clone(), conn.clone(), rt.clone());
        async move { Ok::<_, Infallible>(service.respond(&rt, request, &conn, body_timeout).await) }
    });
    let connection = http1::Builder::new()
        .timer(RuntimeTimer(runtime.clone()))
        // Counted from the accept or the end of the previous answer: also the keep-alive idle
        // timeout.
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        // Bounds what a partial head (and each body read) can make the connection buffer.
        .max_buf_size(limits.max_header_bytes.max(MIN_READ_BUFFER))
        .serve_connection(FuturesIo::new(stream), handler);
    let mut connection = pin!(connection);
    let finished = or(
        async {
            if let Err(error) = connection.as_mut().await {
                tracing::debug!(%error, "system status server: connection ended with an error");
            }
            true
        },
        async {
            signals.stopped().await;
            false
        },
    )
    .await;
    if finished {
        return;
    }
    // Shutting down: finish the request in progress (if any), then close.
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}
