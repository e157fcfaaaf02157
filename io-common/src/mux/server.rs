//! The serving side: accept connections, sniff the protocol, run handlers per request.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::{Conn, ConnConfig, FRAME_OVERHEAD, SendError};
use dynrt_core::wire::mux::{self, ErrorKind, Request, Sniff, StreamError, StreamId};
use futures_lite::StreamExt;
use futures_lite::future;

use super::budget::OutputBudget;
use super::driver::Driver;
use super::handler::{BoxItemStream, HandlerError, Handlers, RequestContext};
use super::limit::{ConnectionLimit, DEFAULT_MAX_CONNECTIONS, Permit};
use super::state::{CancelState, ServeSlot, Shared, State};
use crate::runtime::{self, Runtime};

/// How a server behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Settings of each accepted mux connection.
    pub conn: ConnConfig,
    /// How long a new connection may take to send its first three bytes.
    pub sniff_timeout: Duration,
    /// Connections held at once, in every phase from accept to close; at the cap a new
    /// connection is accepted and closed at once (see [`super::limit`] for why). Default
    /// [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// The limit on output held across connections (default: the process-wide
    /// [`OutputBudget::process`]); each connection is further held to
    /// `conn.max_queued_bytes`.
    pub output_budget: OutputBudget,
    /// How connections speaking Dynamo's protocol are served.
    pub dynamo: crate::dynamo::DynamoServeConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            conn: ConnConfig::default(),
            sniff_timeout: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            output_budget: OutputBudget::process(),
            dynamo: crate::dynamo::DynamoServeConfig::default(),
        }
    }
}

/// A listening request-plane server: accepts connections and serves every request stream with
/// the handler registered for its route.
pub struct MuxServer {
    local_addr: SocketAddr,
    stopped: Arc<AtomicBool>,
    handlers: Handlers,
    connections: Connections,
    limit: ConnectionLimit,
    output_budget: OutputBudget,
}

/// The connections a server accepted, so it can close them all.
type Connections = Arc<Mutex<Vec<Weak<Shared>>>>;

impl MuxServer {
    /// Binds `addr` (port 0: any free port) and starts accepting in the background.
    pub async fn bind<R: Runtime>(
        rt: &R,
        addr: SocketAddr,
        handlers: Handlers,
        config: ServerConfig,
    ) -> io::Result<Self> {
        let listener = rt
            .bind(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let local_addr = R::local_addr(&listener)?;
        let stopped = Arc::new(AtomicBool::new(false));
        let connections = Connections::default();
        let limit = ConnectionLimit::new(config.max_connections);
        let output_budget = config.output_budget.clone();
        rt.spawn(accept_loop(
            rt.clone(),
            listener,
            handlers.clone(),
            config,
            stopped.clone(),
            (connections.clone(), limit.clone()),
        ));
        Ok(Self {
            local_addr,
            stopped,
            handlers,
            connections,
            limit,
            output_budget,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The handler registry (add or remove routes while serving).
    pub fn handlers(&self) -> &Handlers {
        &self.handlers
    }

    /// Stops accepting new connections (existing ones keep serving until they close).
    pub fn stop_accepting(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Sends GOAWAY on every connection: requests in flight finish, no new ones start, then
    /// the connections close. (Phase 1 of a graceful shutdown.)
    pub fn goaway(&self) {
        self.stop_accepting();
        for shared in self.live_connections() {
            let mut state = shared.lock();
            state.conn.start_goaway();
            state.wake_driver();
        }
    }

    /// Requests being served right now, over all connections: handlers running, and answers
    /// complete but not yet written to the socket.
    pub fn in_flight(&self) -> usize {
        self.live_connections()
            .iter()
            .map(|shared| {
                let state = shared.lock();
                state.serving.len() + state.delivery.len()
            })
            .sum()
    }

    /// The budget its connections' output counts against ([`ServerConfig::output_budget`]).
    pub fn output_budget(&self) -> &OutputBudget {
        &self.output_budget
    }

    /// Sockets held right now in any phase (sniffing, handshake, serving): what
    /// [`ServerConfig::max_connections`] caps.
    pub fn held_connections(&self) -> usize {
        self.limit.open()
    }

    /// Bytes of output the server's connections hold right now (queued frames at their cost
    /// plus bytes their sockets have not taken): what callers that stop reading cost it.
    pub fn held_output_bytes(&self) -> u64 {
        self.live_connections()
            .iter()
            .map(|shared| shared.lock().conn.held_bytes())
            .sum()
    }

    /// Connections open right now. After a GOAWAY exchange a connection closes by itself once
    /// its last stream has ended and its last frames are written.
    pub fn open_connections(&self) -> usize {
        self.live_connections().len()
    }

    /// Drops every connection at once without GOAWAY, as a crashed process would: callers see
    /// their streams fail with `Disconnected`. Stops accepting too.
    pub fn abort(&self) {
        self.stop_accepting();
        for shared in self.live_connections() {
            shared.abort();
        }
    }

    fn live_connections(&self) -> Vec<Arc<Shared>> {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        connections.retain(|weak| weak.strong_count() > 0);
        connections.iter().filter_map(Weak::upgrade).collect()
    }
}

impl Drop for MuxServer {
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

async fn accept_loop<R: Runtime>(
    rt: R,
    listener: R::Listener,
    handlers: Handlers,
    config: ServerConfig,
    stopped: Arc<AtomicBool>,
    (connections, limit): (Connections, ConnectionLimit),
) {
    loop {
        // Poll the stop flag at least every 100 ms while idle.
        let accepted = future::or(
            async { Some(runtime::accept::<R>(&listener).await) },
            async {
                runtime::sleep_until(&rt, rt.now() + Duration::from_millis(100)).await;
                None
            },
        )
        .await;
        if stopped.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            Some(Ok((tcp, peer))) => match limit.try_acquire(peer, || rt.now()) {
                Some(permit) => rt.spawn(serve_connection(
                    rt.clone(),
                    tcp,
                    handlers.clone(),
                    config.clone(),
                    connections.clone(),
                    permit,
                )),
                // At the cap: closed at once (dropped), see `limit`.
                None => drop(tcp),
            },
            // Out of file descriptors and the like: back off briefly instead of spinning.
            Some(Err(_)) => runtime::sleep_until(&rt, rt.now() + Duration::from_millis(50)).await,
            None => {}
        }
    }
}

/// Reads the first bytes, then runs the connection as mux (or refuses a Dynamo peer).
async fn serve_connection<R: Runtime>(
    rt: R,
    mut tcp: R::Tcp,
    handlers: Handlers,
    config: ServerConfig,
    connections: Connections,
    // Held until the connection ends, in every phase.
    _permit: Permit,
) {
    let mut buf = BytesMut::new();
    let deadline = rt.now() + config.sniff_timeout;
    let sniffed = loop {
        match mux::sniff(&buf) {
            Sniff::NeedMore => {}
            decided => break Some(decided),
        }
        let read = future::or(
            async { Some(future::poll_fn(|cx| R::poll_read_buf(&mut tcp, cx, &mut buf)).await) },
            async {
                runtime::sleep_until(&rt, deadline).await;
                None
            },
        )
        .await;
        match read {
            Some(Ok(n)) if n > 0 => {}
            _ => break None,
        }
    };
    match sniffed {
        Some(Sniff::Mux) => {}
        Some(Sniff::Dynamo) => {
            let in_flight = dynamo_in_flight(&handlers);
            crate::dynamo::serve_connection(rt, tcp, buf, handlers, config.dynamo, in_flight).await;
            return;
        }
        _ => return,
    }
    let Ok(conn) = Conn::server(config.conn, rt.now()) else {
        return;
    };
    let shared = Shared::with_budget(conn, Some(config.output_budget.clone()));
    connections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Arc::downgrade(&shared));
    Driver::new(rt, shared, tcp, buf, Some(handlers)).await;
}

/// The count of Dynamo requests in flight, shared by every connection of one server (the
/// handler registry is per server, so it keys the counter).
fn dynamo_in_flight(handlers: &Handlers) -> Arc<std::sync::atomic::AtomicUsize> {
    handlers.dynamo_in_flight()
}

/// Starts the handler for a request that opened on a server connection.
///
/// The handler's stream is first polled right here, in the driver's turn: a handler whose
/// items are ready at once (a cache hit, an echo, an error) is answered without a task spawn or
/// a wake-up. Only when it has to wait, or runs out of credit, does it move to a task of its
/// own. (The driver's waker may be registered by that first poll; the task polls again on
/// start, so the handler always ends up registered with the task's waker too.) Returns whether
/// it spawned that task.
pub(crate) fn start_request<R: Runtime>(
    rt: &R,
    shared: &Arc<Shared>,
    handlers: Option<&Handlers>,
    request: Request,
    cx: &mut Context<'_>,
) -> bool {
    let id = request.stream;
    let handler = handlers.and_then(|h| h.get(request.route.as_str()));
    let Some(handler) = handler else {
        let error = StreamError::new(
            ErrorKind::NOT_FOUND,
            format!("no handler for route '{}'", request.route),
        );
        let mut state = shared.lock();
        let _ = state.conn.send_error(id, error);
        state.wake_driver();
        return false;
    };
    let cancel = Arc::new(CancelState::default());
    let (budget, mut room) = {
        let mut state = shared.lock();
        state.serving.insert(
            id,
            ServeSlot {
                cancel: cancel.clone(),
                waker: None,
            },
        );
        (state.budget.clone(), Room::of(&state.conn, id))
    };
    let context = RequestContext {
        stream: id,
        header: request.header,
        cancel: cancel.clone(),
    };
    let mut items = handler.handle(request.payload, context);
    // Items ready at once are taken a batch at a time and handed to the core under one lock,
    // with the budget brought up to date once per batch: a stream of small items paid a lock,
    // an unlock and an atomic budget update per item. A batch takes no more than the core has
    // room for, and one item more (the one that waits for room, as a lone item would).
    let mut batch: [Bytes; BATCH] = Default::default();
    loop {
        let (taken, ended) = take_ready(&mut items, &mut batch, budget.as_ref(), room, cx);
        let mut state = shared.lock();
        let sent = match state.conn.send_items(id, &mut batch[..taken]) {
            Ok(sent) => sent,
            Err(SendError::Blocked { .. }) => 0,
            Err(_) => {
                state.sync_budget();
                state.serving.remove(&id);
                return false;
            }
        };
        state.sync_budget();
        room = Room::of(&state.conn, id);
        if sent < taken {
            // The core is full: the rest waits in a task for room.
            drop(state);
            let rest = batch[sent..taken].iter_mut().map(std::mem::take).collect();
            spawn_serving(rt, shared, id, items, cancel, rest, ended);
            return true;
        }
        match ended {
            Some(result) => {
                state.serving.remove(&id);
                end_stream(&mut state, id, result, items, &cancel);
                return false;
            }
            None if taken == BATCH => {}
            None => break, // the handler has to wait, or the budget is spent
        }
    }
    spawn_serving(rt, shared, id, items, cancel, Vec::new(), None);
    true
}

/// Items taken from a handler in one go before they are handed to the core.
const BATCH: usize = 16;
/// Bytes of items taken in one go: a batch holds at most about this much besides its last item.
const BATCH_BYTES: usize = 64 * 1024;

/// How a handler's stream ended: `Ok` after its last item, or with its error.
type Ended = Result<(), HandlerError>;

/// What a stream may still hand the core: payload bytes within its credit, and output bytes
/// (each item counted as the core counts a frame) within the connection's output limit.
#[derive(Clone, Copy)]
struct Room {
    payload: u64,
    output: u64,
}

impl Room {
    fn of(conn: &Conn, id: StreamId) -> Self {
        Self {
            payload: conn.send_capacity(id).unwrap_or(0),
            output: conn.output_limit().saturating_sub(conn.held_bytes()),
        }
    }

    /// Whether items of `payload` bytes in `frames` frames fill it.
    fn filled_by(self, payload: u64, frames: u64) -> bool {
        let per_frame = (mux::HEADER_LEN + FRAME_OVERHEAD) as u64;
        payload >= self.payload || payload + frames * per_frame >= self.output
    }
}

/// Fills `batch` with the items `items` has ready (while the budget has room, and until the
/// items fill `room`), stopping at the stream's end. Returns how many it took, and the end if
/// it was reached (the stream is then never polled again).
fn take_ready(
    items: &mut BoxItemStream,
    batch: &mut [Bytes; BATCH],
    budget: Option<&OutputBudget>,
    room: Room,
    cx: &mut Context<'_>,
) -> (usize, Option<Ended>) {
    let (mut taken, mut bytes) = (0, 0);
    while taken < BATCH && bytes < BATCH_BYTES {
        if budget.is_some_and(|b| !b.has_room()) {
            break; // the task waits for room before it takes the next item
        }
        match items.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(item))) => {
                bytes += item.len();
                batch[taken] = item;
                taken += 1;
                if room.filled_by(bytes as u64, taken as u64) {
                    break; // the core takes no more now: this item is the one that waits
                }
            }
            Poll::Ready(Some(Err(error))) => return (taken, Some(Err(error))),
            Poll::Ready(None) => return (taken, Some(Ok(()))),
            Poll::Pending => break,
        }
    }
    (taken, None)
}

/// Ends stream `id` after its last item (`finish`) or with the handler's error, and holds its
/// items until the end is written (see `delivery`).
fn end_stream(
    state: &mut State,
    id: StreamId,
    result: Ended,
    items: BoxItemStream,
    cancel: &Arc<CancelState>,
) {
    let queued = match result {
        Ok(()) => state.conn.finish(id),
        Err(error) => state.conn.send_error(id, error.into_stream_error()),
    };
    if queued.is_ok() {
        state.delivery.hold(id, items, cancel.clone());
    }
}

/// Moves the rest of a request to a task of its own: the items already taken (`rest`), then
/// the end if the handler already gave it, else the handler's further items.
fn spawn_serving<R: Runtime>(
    rt: &R,
    shared: &Arc<Shared>,
    id: StreamId,
    items: BoxItemStream,
    cancel: Arc<CancelState>,
    rest: Vec<Bytes>,
    ended: Option<Ended>,
) {
    let shared = shared.clone();
    rt.spawn(async move {
        let mut sent = true;
        for item in rest {
            sent = send(&shared, id, item).await;
            if !sent {
                break;
            }
        }
        match (sent, ended) {
            (false, _) => {}
            (true, Some(result)) => {
                let mut state = shared.lock();
                state.serving.remove(&id);
                end_stream(&mut state, id, result, items, &cancel);
                state.wake_driver();
                return;
            }
            (true, None) => serve(&shared, id, items, &cancel).await,
        }
        shared.lock().serving.remove(&id);
    });
}

/// Sends the handler's items in order, then the end; stops at once on kill. Once the end is
/// queued the items are held until it is written to the socket (see `delivery`): the request
/// counts as in flight until then.
async fn serve(shared: &Shared, id: StreamId, mut items: BoxItemStream, cancel: &Arc<CancelState>) {
    loop {
        let next = future::or(async { Some(items.next().await) }, async {
            killed(cancel).await;
            None
        })
        .await;
        let Some(next) = next else { return };
        let mut state = shared.lock();
        match next {
            Some(Ok(item)) => {
                drop(state);
                if !send(shared, id, item).await {
                    return;
                }
            }
            None => {
                end_stream(&mut state, id, Ok(()), items, cancel);
                state.wake_driver();
                return;
            }
            Some(Err(error)) => {
                end_stream(&mut state, id, Err(error), items, cancel);
                state.wake_driver();
                return;
            }
        }
    }
}

async fn killed(cancel: &CancelState) {
    loop {
        let listener = cancel.changed.listen();
        if cancel.is_killed() {
            return;
        }
        listener.await;
    }
}

/// Hands `item` to the core as credit, the connection's output limit and the process-wide
/// budget allow. Returns false if the stream is gone.
async fn send(shared: &Shared, id: StreamId, mut item: Bytes) -> bool {
    let budget = shared.lock().budget.clone();
    let mut waiting = None;
    future::poll_fn(|cx| {
        let mut state = shared.lock();
        if state.conn.send_capacity(id).is_none() {
            return Poll::Ready(false); // ended, killed, or the connection closed
        }
        if let Some(budget) = &budget
            && budget.poll_room(cx, &mut waiting).is_pending()
        {
            // A kill or close wakes this waker too.
            if let Some(slot) = state.serving.get_mut(&id) {
                slot.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let result = state.conn.send_data(id, &mut item);
        state.sync_budget();
        state.wake_driver();
        match result {
            Ok(_) if item.is_empty() => Poll::Ready(true),
            Ok(_) | Err(SendError::Blocked { .. }) => {
                if let Some(slot) = state.serving.get_mut(&id) {
                    slot.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Err(_) => Poll::Ready(false),
        }
    })
    .await
}
