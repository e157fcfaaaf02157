//! One dynrt mux connection (client or server role) as a pure state machine.
//!
//! The wire format is [`crate::wire::mux`], specified in `docs/wire.md` §2; this module owns
//! its rules: the handshake, stream lifecycles, credit-based flow control, cancellation,
//! keep-alive, idle timeout and GOAWAY.
//!
//! ## Driving it
//!
//! ```text
//! loop {
//!     // inputs
//!     on socket bytes:  conn.handle_input(&mut read_buf, now)
//!     on socket EOF/error: conn.handle_transport_closed(now)
//!     on timer:         conn.handle_timeout(now)
//!     on user commands: conn.open / send_data / finish / send_error / cancel / release / …
//!     on a write attempt: conn.handle_written(out.len(), now)  // what the socket left
//!     // outputs, each drained until empty
//!     while conn.poll_transmit(&mut out) {}   // then write `out` (vectored) to the socket
//!     while let Some(event) = conn.poll_event() { deliver(event) }
//!     arm the timer at conn.poll_timeout()     // None: no timer
//! }
//! ```
//!
//! A whole exchange, with the two sockets replaced by byte buffers:
//!
//! ```
//! use std::time::Instant;
//! use bytes::{Bytes, BytesMut};
//! use dynrt_core::conn::{Conn, ConnConfig, Event};
//! use dynrt_core::wire::OutBuf;
//! use dynrt_core::names::{InstanceId, TcpRoute};
//! use dynrt_core::wire::mux::WireStr;
//!
//! let now = Instant::now(); // a driver's clock; the core never reads one
//! let mut client = Conn::client(ConnConfig::default(), now)?;
//! let mut server = Conn::server(ConnConfig::default(), now)?;
//! // Moves everything `from` wants to send into `to`, as a socket pair would.
//! let pump = |from: &mut Conn, to: &mut Conn| {
//!     let mut out = OutBuf::new();
//!     if from.poll_transmit(&mut out) {
//!         to.handle_input(&mut BytesMut::from(&out.take_contiguous()[..]), now);
//!     }
//! };
//! pump(&mut client, &mut server); // preface + HELLO
//! pump(&mut server, &mut client); // preface + HELLO
//! assert!(matches!(client.poll_event(), Some(Event::HandshakeDone(_))));
//!
//! // The route names the instance that serves the endpoint (see "Contracts" below).
//! let route = TcpRoute::new(InstanceId(0x2a), "dyn://ns.comp.generate".parse()?);
//! let id = client.open(WireStr::from(route.to_string()), Bytes::new(), Bytes::from_static(b"hi"))?;
//! pump(&mut client, &mut server);
//! assert!(matches!(server.poll_event(), Some(Event::HandshakeDone(_))));
//! let Some(Event::StreamOpened(request)) = server.poll_event() else { unreachable!() };
//! server.send_data(request.stream, &mut Bytes::from_static(b"hello"))?;
//! server.finish(request.stream)?;
//! pump(&mut server, &mut client);
//! assert!(matches!(client.poll_event(), Some(Event::Data { more: false, .. })));
//! client.release(id, 5)?; // the application consumed the 5 bytes
//! assert!(matches!(client.poll_event(), Some(Event::End { result: Ok(()), .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! After [`Event::Closed`] the driver writes what `poll_transmit` still produces (a final
//! GOAWAY) and closes the socket, or drops it at once when [`Conn::is_flush_abandoned`] says
//! the peer does not read. `handle_input` should be called only when bytes arrived: each
//! call counts as a sign of life for the keep-alive.
//!
//! ## Contracts a driver relies on
//!
//! - **Route.** A REQUEST's route is the *instance route* `{instance_id:x}/{ns}/{comp}/{ep}`
//!   ([`crate::names::TcpRoute`], printed with `Display`), the same text that follows the address
//!   in the instance's discovery record (`transport.tcp = "host:port/route"`). dynrt's server
//!   ends a stream whose route is not one of its own instances' with `NOT_FOUND`, so a client
//!   takes the route from the record it dials, or builds it with `TcpRoute::new`. `Conn` itself
//!   does not check routes: matching a route to a handler is the server driver's job.
//! - **Payload and items are bytes.** The REQUEST payload and every DATA piece are the
//!   application's bytes, untouched: no framing, no codec, no `Annotated` wrapper. An item is
//!   one `Data` with `more: false`, or a run of `Data` with `more: true` ended by one without;
//!   concatenate the pieces. An empty item is one empty `Data`.
//! - **`payload_codec` is a label, not a transformation.** The REQUEST header
//!   ([`crate::wire::mux::RequestHeader`]) may name `"json"` or `"msgpack"`; nothing on the mux
//!   converts anything. Absent means *unlabelled*: the bytes are whatever the endpoint and its
//!   callers agree on. `dynrt call` sends its JSON text unlabelled and `dynrt serve` reads the
//!   payload as JSON; dynrt's typed client calls label `msgpack`, its health canaries `json`.
//!   Only when a dynrt client calls a *Dynamo* worker (not over the mux) is a codec applied: the
//!   payload must then be JSON text, and goes out in the codec the worker's record names.
//! - **Deadlines.** [`Conn::poll_timeout`] may return an instant at or before the `now` last
//!   given: output is waiting or a deadline is due. Do not sleep then (a blocking socket would
//!   refuse a zero read timeout: `set_read_timeout(Some(Duration::ZERO))` is an error in std):
//!   call [`Conn::handle_timeout`] with the current time, drain `poll_transmit` and
//!   `poll_event`, and ask again. After `handle_timeout(now)` the next deadline is later than
//!   `now` unless output is waiting, so this never spins. `None` means no timer: block on the
//!   socket alone.
//! - **Credit.** A client calls [`Conn::release`] with a piece's length once the application
//!   has consumed it or moved it into its own bounded buffer (`release(id, 0)` is a no-op, so
//!   release every piece, empty ones too). Releasing only at the end of an item stalls an item
//!   larger than the stream credit (1 MiB by default) forever.
//! - **Resuming a send.** [`Conn::send_data`] may take only part of an item (the rest stays in
//!   the caller's `Bytes`) or refuse with [`SendError::Blocked`]; the server keeps what is left
//!   and retries on [`Event::Writable`] for that stream. [`SendQueue`] is that bookkeeping for
//!   one stream: push items, call `flush` after each `Writable`.
//!
//! ## Who does what
//!
//! The client opens streams with [`Conn::open`] (a REQUEST: route, msgpack header, payload)
//! and receives [`Event::Data`] pieces and one [`Event::End`] per stream; it may
//! [`Conn::cancel`] (stop or kill). The server receives [`Event::StreamOpened`] and answers with
//! [`Conn::send_data`] and then [`Conn::finish`] or [`Conn::send_error`]; it learns of
//! cancellation from [`Event::Cancelled`]. Either side may [`Conn::start_goaway`] (graceful) or
//! [`Conn::close`] (abrupt).
//!
//! ## Flow control: refuse, never buffer beyond the credit
//!
//! A send that exceeds the credit is cut to the credit, never queued beyond it:
//! [`Conn::send_data`] takes as much of the item as the stream and connection credit allow
//! (splitting it into DATA frames with MORE), leaves the rest in the caller's `Bytes`, and
//! refuses with [`SendError::Blocked`] when it can take nothing; [`Event::Writable`] says when
//! to continue. [`Conn::open`] refuses with [`OpenError::Blocked`] or
//! [`OpenError::TooManyStreams`] and raises [`Event::CanOpen`] later. So the bytes queued
//! inside a connection never exceed the credit the peer granted.
//!
//! On the receiving side credit goes back only when the application says it consumed data:
//! [`Conn::release`] (client, per stream). A client that stops releasing stops the server after
//! at most the stream credit per stream and the connection credit overall; that is the memory
//! bound. Release pieces as you take them out of the events (an item larger than the stream
//! credit can only arrive if its pieces are released before it is complete). The server returns
//! a REQUEST's connection credit when the stream ends.
//!
//! Credit counts payload bytes; memory is also spent per frame. So a sender's output is held to
//! [`Conn::output_limit`] in bytes, each queued frame counted with its header and
//! [`FRAME_OVERHEAD`], plus what the driver reports unwritten ([`Conn::held_bytes`]);
//! `send_data` cuts or refuses beyond it whatever credit the peer granted, and raises
//! `Writable` once half of it is free. PING and CREDIT overtake queued data. Output that waits
//! with nothing written for `stall_timeout` closes the connection
//! ([`CloseReason::Stalled`]); a server stream that gets no room for that long is ended with a
//! `CANCELLED` error (the handler sees `Cancelled(Kill)` with cause `Stalled`). A frame must arrive whole within
//! `frame_timeout` of its first byte ([`CloseReason::FrameTimeout`]); before the peer's HELLO
//! frames are at most 16 KiB.
//!
//! ## Connection states
//!
//! | state | input | next state | output |
//! |---|---|---|---|
//! | `Handshake` (no preface yet) | peer preface | `Handshake` (preface seen) | server: preface + HELLO |
//! | `Handshake` | bad preface | `Closed` | (client: GOAWAY `FRAME_ERROR`) |
//! | `Handshake` (preface seen) | HELLO, version ≥ 1 | `Open` | `HandshakeDone` |
//! | `Handshake` (preface seen) | other frame, bad HELLO | `Closed` | GOAWAY (error code) |
//! | `Handshake` | any GOAWAY | `Closed` | — |
//! | `Handshake` | handshake deadline | `Closed` | GOAWAY `TIMEOUT` if our preface went out |
//! | `Open` | `start_goaway`, idle deadline, peer's graceful GOAWAY | `Open` (draining) | GOAWAY |
//! | `Open` (GOAWAY sent and received) | last open stream ends | `Closed` (`Drained`) | — |
//! | `Open` | protocol violation | `Closed` | GOAWAY with the violation's code |
//! | `Open` | GOAWAY with an error code | `Closed` | — |
//! | `Open` | keep-alive deadline | `Open` | PING |
//! | `Open` | ping deadline (nothing received) | `Closed` (`PeerSilent`) | GOAWAY `TIMEOUT` |
//! | `Handshake`, `Open` | frame deadline (a frame started, not complete) | `Closed` (`FrameTimeout`) | GOAWAY `TIMEOUT` |
//! | `Open` | stall deadline (output waiting, none written) | `Closed` (`Stalled`), flush abandoned | — |
//! | `Closed` | stall deadline | `Closed`, flush abandoned | — |
//! | any but `Closed` | `close` | `Closed` (`Local`) | GOAWAY `CLOSED` |
//! | any but `Closed` | `handle_transport_closed` | `Closed` (`TransportClosed`) | — |
//! | `Closed` | anything | `Closed` | — |
//!
//! Entering `Closed` ends every open stream (client: `End` with `Disconnected`, or
//! `WorkerUnavailable` if its REQUEST was still queued — never handed to the driver, so the
//! peer cannot have seen it and a caller may send it elsewhere —, or `BackendProtocol` when
//! the peer broke the protocol, or `Cancelled` after a local `close`;
//! server: `Cancelled(Kill)` with cause `ConnectionClosed`), then raises `Closed`, always the
//! last event.
//!
//! ## Client stream states
//!
//! | state | input | next state | output |
//! |---|---|---|---|
//! | — | `open` | `Receiving` | REQUEST |
//! | `Receiving` | DATA (within credit) | `Receiving` | `Data` |
//! | `Receiving` | END (not after MORE, unless an error) | `Ended`/gone | `End` |
//! | `Receiving` | `cancel(Stop)` | `Receiving` (stop sent) | CANCEL |
//! | `Receiving` | `cancel(Kill)` | `Killed` | CANCEL kill, `End(Cancelled)` |
//! | `Receiving` | server GOAWAY below its id | `Ended`/gone | `End(WorkerUnavailable)` |
//! | `Receiving` | `release` | `Receiving` | CREDIT once half the credit is released |
//! | `Killed` | DATA | `Killed` | connection credit returned |
//! | `Killed` | END, or server GOAWAY below its id | `Ended`/gone | — |
//! | `Ended` | `release` of the last byte | gone | — |
//! | `Ended`/gone | DATA, END | — | protocol violation |
//!
//! (`Ended` holds a stream only while the application has unreleased data of it.)
//!
//! ## Server stream states
//!
//! | state | input | next state | output |
//! |---|---|---|---|
//! | — | REQUEST (ids increasing, under `max_streams`, within credit) | `Serving` | `StreamOpened` |
//! | — | REQUEST above our GOAWAY's last stream | — | connection credit returned |
//! | `Serving` | `send_data` | `Serving` | DATA… (up to the credit) |
//! | `Serving` | `finish` (no half-sent item) | gone | END |
//! | `Serving` | `send_error` | gone | END with ERROR |
//! | `Serving` | CANCEL stop | `Serving` (stop requested) | `Cancelled(Stop)` once (cause `Client`) |
//! | `Serving` | CANCEL kill | gone | `Cancelled(Kill)` (cause `Client`), END `Cancelled` |
//! | `Serving` | CREDIT | `Serving` | `Writable` if a send was refused or cut |
//! | `Serving` | output below half the limit | `Serving` | `Writable` if a send was refused by it |
//! | `Serving` | no room to send for `stall_timeout` | gone | `Cancelled(Kill)` (cause `Stalled`), END `Cancelled` |
//! | gone (END queued) | `poll_transmit` writes the END | gone | `EndTransmitted` |
//! | gone | CANCEL, CREDIT | gone | ignored |
//!
//! ## Errors
//!
//! Peer violations are [`ProtocolViolation`]s: fatal, sticky (the state stays `Closed`),
//! reported in [`CloseReason::Violation`]. Illegal or premature calls return a typed error
//! ([`OpenError`], [`SendError`], [`CancelError`], [`ReleaseError`]) and change nothing.
//! Per-stream errors travel in END as a [`StreamError`] (a Dynamo error class and a message).

mod config;
mod error;
mod event;
mod output;
mod queue;
mod recv;
mod send;
mod stream;

#[doc(hidden)]
pub mod fuzzing;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Instant;

use bytes::BytesMut;

pub use config::{ConfigError, ConnConfig};
pub use error::{CancelError, CloseReason, OpenError, ProtocolViolation, ReleaseError, SendError};
pub use event::{CancelCause, Event, PeerSettings};
pub use output::FRAME_OVERHEAD;
pub use queue::{Flushed, QueueFull, SendQueue};

use output::{Queued, clear_queue, reset_encoded};
use stream::Stream;

use crate::wire::OutBuf;
use crate::wire::mux::{
    ErrorKind, Frame, GoAway, GoAwayCode, Hello, MIN_MAX_FRAME_SIZE, MuxDecoder, StreamError,
    StreamId, VERSION, WireStr, decode_preface, encode_preface, whole_frames_len,
};

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opened the connection; opens streams.
    Client,
    /// Accepted the connection; answers streams.
    Server,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Client => "client",
            Self::Server => "server",
        })
    }
}

/// The connection's state (see the table in the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's preface (`preface_seen: false`), then its HELLO.
    Handshake {
        preface_seen: bool,
        deadline: Instant,
    },
    /// Handshake done. `goaway_sent` holds the last stream id our GOAWAY accepted.
    Open {
        goaway_sent: Option<StreamId>,
        goaway_received: bool,
    },
    /// Done; nothing more is read or produced (but queued output may still be written).
    Closed(CloseReason),
}

/// One mux connection. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Conn {
    role: Role,
    config: ConnConfig,
    state: State,
    peer: Option<PeerSettings>,
    decoder: MuxDecoder,
    /// The latest time seen by any `handle_*` call.
    now: Instant,

    /// Our preface has been queued (so a GOAWAY may follow it).
    preface_queued: bool,
    /// Our preface and HELLO are still to be written.
    hello_pending: bool,
    /// Frames to write, in order.
    queue: VecDeque<Queued>,
    /// The bytes of the `Queued::Encoded` entries of `queue`, in order.
    encoded: Vec<u8>,
    /// PING and CREDIT frames: written before `queue`, so they never wait behind data.
    control: VecDeque<Frame>,
    /// What `queue` and `control` cost (see `output.rs`).
    queued_cost: u64,
    /// Bytes `poll_transmit` produced that the socket has not taken (driver-reported).
    unwritten: u64,
    /// The driver reports unwritten output with `handle_written`.
    writes_reported: bool,
    /// Since when output has waited without any of it being written.
    last_write_progress: Instant,
    /// A send was cut or refused by the output limit.
    output_blocked: bool,
    /// Closed with output the peer would not take: stop writing.
    flush_abandoned: bool,
    /// Server streams waiting for room to send, by the time they started waiting.
    blocked: BTreeSet<(Instant, StreamId)>,
    /// Since when a frame has been partly received.
    frame_started: Option<Instant>,
    /// The value of the latest PING not yet answered.
    pong: Option<u64>,
    events: VecDeque<Event>,

    /// Connection credit for what we send.
    send_credit: u64,
    /// Connection credit the peer has left for what it sends us.
    recv_window: u64,
    /// Connection credit released and not yet granted back.
    conn_grant: u64,

    streams: BTreeMap<StreamId, Stream>,
    /// Streams counting against the open limit.
    open: u32,
    /// Client: highest id opened. Server: highest id received.
    highest: StreamId,
    /// Client: an `open` was refused; raise `CanOpen` when that may change.
    open_blocked: bool,

    last_recv: Instant,
    ping_deadline: Option<Instant>,
    pings_sent: u64,
    idle_since: Option<Instant>,
}

impl Conn {
    /// A client connection: its preface and HELLO are queued at once.
    pub fn client(config: ConnConfig, now: Instant) -> Result<Self, ConfigError> {
        let mut conn = Self::new(Role::Client, config, now)?;
        conn.queue_hello();
        Ok(conn)
    }

    /// A server connection for a socket whose first bytes sniffed as mux
    /// ([`crate::wire::mux::sniff`]). Pass those bytes to `handle_input`: the server answers
    /// with its preface and HELLO once it has seen the client's preface.
    pub fn server(config: ConnConfig, now: Instant) -> Result<Self, ConfigError> {
        Self::new(Role::Server, config, now)
    }

    fn new(role: Role, config: ConnConfig, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            role,
            // Until the peer's HELLO, frames are at most 16 KiB (docs/wire.md §2.3): a peer
            // cannot make this side buffer more before it has even said hello.
            decoder: MuxDecoder::new(MIN_MAX_FRAME_SIZE),
            state: State::Handshake {
                preface_seen: false,
                deadline: now + config.handshake_timeout,
            },
            peer: None,
            now,
            preface_queued: false,
            hello_pending: false,
            queue: VecDeque::new(),
            encoded: Vec::new(),
            control: VecDeque::new(),
            queued_cost: 0,
            unwritten: 0,
            writes_reported: false,
            last_write_progress: now,
            output_blocked: false,
            flush_abandoned: false,
            blocked: BTreeSet::new(),
            frame_started: None,
            pong: None,
            events: VecDeque::new(),
            send_credit: 0,
            recv_window: u64::from(config.conn_credit),
            conn_grant: 0,
            streams: BTreeMap::new(),
            open: 0,
            highest: StreamId(0),
            open_blocked: false,
            last_recv: now,
            ping_deadline: None,
            pings_sent: 0,
            idle_since: None,
            config,
        })
    }

    // ---------- getters ----------

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's settings, once its HELLO arrived.
    pub fn peer_settings(&self) -> Option<&PeerSettings> {
        self.peer.as_ref()
    }

    /// Whether the handshake is done and the connection not closed.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Whether a GOAWAY was sent or received (no new streams), or the connection is closed.
    pub fn is_going_away(&self) -> bool {
        match &self.state {
            State::Open {
                goaway_sent,
                goaway_received,
            } => goaway_sent.is_some() || *goaway_received,
            State::Handshake { .. } => false,
            State::Closed(_) => true,
        }
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Streams open (client: REQUEST sent, END not yet received; server: REQUEST received,
    /// END not yet sent).
    pub fn open_streams(&self) -> u32 {
        self.open
    }

    /// Bytes this side may send right now on stream `id` (server), the lesser of its stream
    /// credit and the connection credit; `None` if the stream is not open for sending.
    pub fn send_capacity(&self, id: StreamId) -> Option<u64> {
        match self.streams.get(&id) {
            Some(Stream::Serving { credit, .. }) => Some((*credit).min(self.send_credit)),
            _ => None,
        }
    }

    /// Connection credit left for what this side sends.
    pub fn conn_send_credit(&self) -> u64 {
        self.send_credit
    }

    /// Bytes of stream `id`'s data delivered and not yet released (client).
    pub fn unreleased(&self, id: StreamId) -> Option<u64> {
        self.streams.get(&id).map(Stream::unreleased)
    }

    /// Whether `poll_transmit` would write something.
    pub fn wants_transmit(&self) -> bool {
        !self.flush_abandoned
            && (self.hello_pending
                || self.pong.is_some()
                || !self.control.is_empty()
                || !self.queue.is_empty())
    }

    // ---------- outputs ----------

    /// Appends every queued frame to `out`: control frames (PONG, PING, CREDIT) first, then the
    /// rest in order. Returns whether anything was written.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut OutBuf) -> bool {
        if self.flush_abandoned {
            return false;
        }
        let before = out.len();
        if self.hello_pending {
            self.hello_pending = false;
            encode_preface(out);
            Frame::Hello(self.our_hello())
                .encode(out, MIN_MAX_FRAME_SIZE)
                .expect("HELLO is 18 bytes");
        }
        let limit = self.frame_limit();
        if let Some(value) = self.pong.take() {
            Frame::Pong(value)
                .encode(out, limit)
                .expect("PONG is 8 bytes");
        }
        let moved = !self.queue.is_empty();
        // A server learns when each stream's END leaves (the last frame of its answer): a
        // driver counts the request in flight until the socket has taken it. Not after
        // `Closed`, which stays the last event (a driver flushes what is left, then stops).
        let report_ends = self.role == Role::Server && !self.is_closed();
        for frame in self.control.drain(..) {
            frame
                .encode(out, limit)
                .expect("control frames are sized for the peer's limit when queued");
        }
        let mut encoded_at = 0;
        for entry in self.queue.drain(..) {
            match entry {
                Queued::Encoded { len, .. } => {
                    out.put_slice(&self.encoded[encoded_at..encoded_at + len]);
                    encoded_at += len;
                }
                Queued::Frame(frame) => {
                    if let (true, Frame::End(end)) = (report_ends, &frame) {
                        self.events
                            .push_back(Event::EndTransmitted { id: end.stream });
                    }
                    frame
                        .encode(out, limit)
                        .expect("queued frames are sized for the peer's limit when queued");
                }
            }
        }
        reset_encoded(&mut self.encoded);
        self.queued_cost = 0;
        if moved {
            self.last_write_progress = self.now;
        }
        if self.writes_reported {
            self.unwritten = out.len() as u64;
        }
        self.maybe_unblock_output();
        out.len() > before
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call `handle_timeout` next: the earliest deadline, the last `now` seen while
    /// output is waiting, `None` when there is nothing to wait for (closed, with no unwritten
    /// output to give up on).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.wants_transmit() {
            return Some(self.now);
        }
        let stall = self.stall_deadline();
        let frame = self.frame_started.map(|t| t + self.config.frame_timeout);
        let state = match &self.state {
            State::Closed(_) => return stall,
            State::Handshake { deadline, .. } => Some(*deadline),
            State::Open { .. } => {
                let keepalive = match (self.silence_deadline(), self.config.keepalive_interval) {
                    (Some(deadline), _) => Some(deadline),
                    (None, Some(interval)) => Some(self.last_recv + interval),
                    (None, None) => None,
                };
                [
                    keepalive,
                    self.idle_deadline(),
                    self.stream_stall_deadline(),
                ]
                .into_iter()
                .flatten()
                .min()
            }
        };
        [state, stall, frame].into_iter().flatten().min()
    }

    // ---------- inputs ----------

    /// Consumes every whole frame at the front of `input` (bytes the socket delivered); a
    /// partial frame is left for the next call.
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) {
        self.tick(now);
        if self.is_closed() {
            return;
        }
        self.last_recv = self.now;
        self.ping_deadline = None;
        let decoded = self.decode_input(input);
        // A partial frame left in `input` must complete within the frame timeout: bytes that
        // trickle in count as signs of life, so this is what closes a trickling peer.
        self.frame_started = if input.is_empty() || self.is_closed() {
            None
        } else if decoded {
            Some(self.now)
        } else {
            self.frame_started.or(Some(self.now))
        };
    }

    /// Consumes the preface and whole frames; returns whether any frame was decoded.
    fn decode_input(&mut self, input: &mut BytesMut) -> bool {
        let mut decoded = false;
        while !self.is_closed() {
            if let State::Handshake {
                preface_seen: false,
                deadline,
            } = self.state
            {
                match decode_preface(input) {
                    Ok(false) => return decoded,
                    Ok(true) => {
                        self.state = State::Handshake {
                            preface_seen: true,
                            deadline,
                        };
                        if self.role == Role::Server {
                            self.queue_hello();
                        }
                        continue;
                    }
                    Err(e) => {
                        self.violation(e.into());
                        return decoded;
                    }
                }
            }
            if let State::Open { .. } = self.state {
                decoded |= self.decode_whole_frames(input);
                if self.is_closed() {
                    return decoded;
                }
            }
            match self.decoder.decode(input) {
                Ok(Some(frame)) => {
                    decoded = true;
                    self.on_frame(frame);
                }
                Ok(None) => return decoded,
                Err(e) => {
                    self.violation(e.into());
                    return decoded;
                }
            }
        }
        decoded
    }

    /// Open: cuts the whole frames at the front of `input` off in one piece and acts on each;
    /// returns whether there was any. (What is left, a partial frame, goes to the decoder's
    /// `decode`, which checks its header at once and reserves room for the rest.)
    fn decode_whole_frames(&mut self, input: &mut BytesMut) -> bool {
        let len = whole_frames_len(input);
        if len == 0 {
            return false;
        }
        let mut whole = input.split_to(len).freeze();
        // After a violation the connection is closed and the rest is never looked at.
        while !whole.is_empty() && !self.is_closed() {
            // DATA to a client, nearly every frame it receives, goes straight to its handler
            // (the general frame value and its dispatch cost a third of a frame's handling).
            if self.role == Role::Client
                && let Some(data) = self.decoder.decode_whole_data(&mut whole)
            {
                if let Err(violation) = self.on_data(data) {
                    self.violation(violation);
                }
                continue;
            }
            match self.decoder.decode_whole(&mut whole) {
                Ok(frame) => self.on_frame(frame),
                Err(e) => self.violation(e.into()),
            }
        }
        true
    }

    /// Acts on every deadline that has passed: handshake timeout, keep-alive PING, ping
    /// timeout, idle timeout, frame timeout, stalled output and streams. Afterwards the next
    /// deadline is later than `now`, or output is waiting.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let now = self.now;
        self.check_stalls(now);
        if !self.is_closed()
            && let Some(started) = self.frame_started
            && now >= started + self.config.frame_timeout
        {
            self.frame_started = None;
            let timeout = self.config.frame_timeout;
            return self.close_with(
                CloseReason::FrameTimeout(timeout),
                Some(GoAwayCode::TIMEOUT),
            );
        }
        match self.state {
            State::Closed(_) => {}
            State::Handshake { deadline, .. } => {
                if now >= deadline {
                    let timeout = self.config.handshake_timeout;
                    self.close_with(
                        CloseReason::HandshakeTimeout(timeout),
                        Some(GoAwayCode::TIMEOUT),
                    );
                }
            }
            State::Open { .. } => {
                if let Some(deadline) = self.silence_deadline() {
                    if now >= deadline {
                        let timeout = self.config.ping_timeout;
                        return self.close_with(
                            CloseReason::PeerSilent(timeout),
                            Some(GoAwayCode::TIMEOUT),
                        );
                    }
                } else if let Some(interval) = self.config.keepalive_interval
                    && now >= self.last_recv + interval
                {
                    self.pings_sent += 1;
                    self.push_control(Frame::Ping(self.pings_sent));
                    self.ping_deadline = Some(now + self.config.ping_timeout);
                }
                if self.idle_deadline().is_some_and(|d| now >= d) {
                    self.send_goaway(GoAwayCode::IDLE, WireStr::from_static("idle"));
                }
            }
        }
    }

    /// The transport ended: end of stream, or an IO error. Every open stream ends with
    /// `Disconnected`.
    pub fn handle_transport_closed(&mut self, now: Instant) {
        self.tick(now);
        self.close_with(CloseReason::TransportClosed, None);
    }

    // ---------- internals shared by recv.rs and send.rs ----------

    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn our_hello(&self) -> Hello {
        Hello {
            version: VERSION,
            max_frame_size: self.config.max_frame_size,
            max_streams: self.config.max_streams,
            stream_credit: self.config.stream_credit,
            conn_credit: self.config.conn_credit,
            extensions: bytes::Bytes::new(),
        }
    }

    fn queue_hello(&mut self) {
        self.preface_queued = true;
        self.hello_pending = true;
    }

    /// The largest frame body the peer accepts (16 KiB until its HELLO is known).
    fn frame_limit(&self) -> u32 {
        self.peer.map_or(MIN_MAX_FRAME_SIZE, |p| p.max_frame_size)
    }

    /// When an unanswered PING means the peer is gone. A peer whose socket keeps taking our
    /// output (as the driver reports) is alive even if our PING still waits behind that
    /// output, so write progress moves the deadline.
    fn silence_deadline(&self) -> Option<Instant> {
        let deadline = self.ping_deadline?;
        Some(if self.writes_reported {
            deadline.max(self.last_write_progress + self.config.ping_timeout)
        } else {
            deadline
        })
    }

    fn idle_deadline(&self) -> Option<Instant> {
        match (self.config.idle_timeout, self.idle_since, &self.state) {
            (
                Some(timeout),
                Some(since),
                State::Open {
                    goaway_sent: None,
                    goaway_received: false,
                },
            ) if self.open == 0 => Some(since + timeout),
            _ => None,
        }
    }

    /// The last stream id this side accepted, for its GOAWAY.
    fn last_accepted(&self) -> StreamId {
        match self.role {
            Role::Client => StreamId(0),
            Role::Server => self.highest,
        }
    }

    /// Queues a GOAWAY and enters draining (no-op if one was sent already or not open).
    fn send_goaway(&mut self, code: GoAwayCode, reason: WireStr) {
        let last = self.last_accepted();
        let limit = self.frame_limit() as usize;
        let State::Open { goaway_sent, .. } = &mut self.state else {
            return;
        };
        if goaway_sent.is_some() {
            return;
        }
        *goaway_sent = Some(last);
        self.push_frame(Frame::GoAway(GoAway {
            last_stream: last,
            code,
            reason: reason.truncated(limit - 6),
        }));
        self.maybe_drained();
    }

    /// Closes once GOAWAY went both ways and no stream is open.
    fn maybe_drained(&mut self) {
        if let State::Open {
            goaway_sent: Some(_),
            goaway_received: true,
        } = self.state
            && self.open == 0
        {
            self.close_with(CloseReason::Drained, None);
        }
    }

    /// A stream stopped counting as open.
    fn stream_closed(&mut self) {
        self.open -= 1;
        if self.open == 0 {
            self.idle_since = Some(self.now);
        }
        if self.open_blocked && !self.is_going_away() {
            self.open_blocked = false;
            self.events.push_back(Event::CanOpen);
        }
        self.maybe_drained();
    }

    fn violation(&mut self, violation: ProtocolViolation) {
        let code = violation.goaway_code();
        self.close_with(CloseReason::Violation(violation), Some(code));
    }

    /// Enters `Closed`: ends every stream, raises `Closed`. `goaway`: abort, dropping queued
    /// output, and send a GOAWAY with this code (if our preface went out). Without it the
    /// close is either graceful (`Drained`: queued output is kept) or the transport is gone.
    fn close_with(&mut self, reason: CloseReason, goaway: Option<GoAwayCode>) {
        if self.is_closed() {
            return;
        }
        // REQUESTs still queued never reached the driver, so the peer cannot have seen them:
        // their streams end as refusals (WorkerUnavailable), which a caller may retry
        // elsewhere, not as Disconnected, which it may not.
        let unsent: Vec<StreamId> = self
            .queue
            .iter()
            .filter_map(|entry| match entry {
                Queued::Frame(Frame::Request(request)) => Some(request.stream),
                _ => None,
            })
            .collect();
        if !matches!(reason, CloseReason::Drained) {
            clear_queue(&mut self.queue, &mut self.encoded);
            self.control.clear();
            self.queued_cost = 0;
            self.pong = None;
        }
        if matches!(reason, CloseReason::TransportClosed) {
            self.hello_pending = false;
            self.unwritten = 0;
        }
        if let Some(code) = goaway
            && self.preface_queued
        {
            let limit = self.frame_limit() as usize;
            let goaway = Frame::GoAway(GoAway {
                last_stream: self.last_accepted(),
                code,
                reason: WireStr::from(reason.to_string()).truncated(limit - 6),
            });
            self.push_frame(goaway);
        }
        let kind = match reason {
            CloseReason::Violation(_) => ErrorKind::BACKEND_PROTOCOL,
            CloseReason::Local(_) => ErrorKind::CANCELLED,
            _ => ErrorKind::DISCONNECTED,
        };
        let message = WireStr::from(format!("connection closed: {reason}"));
        let unsent_message = WireStr::from(format!(
            "connection closed before the request was sent: {reason}"
        ));
        for (id, stream) in std::mem::take(&mut self.streams) {
            match stream {
                Stream::Receiving { .. }
                    if kind == ErrorKind::DISCONNECTED && unsent.contains(&id) =>
                {
                    self.events.push_back(Event::End {
                        id,
                        result: Err(StreamError {
                            kind: ErrorKind::WORKER_UNAVAILABLE,
                            message: unsent_message.clone(),
                        }),
                    });
                }
                Stream::Receiving { .. } => self.events.push_back(Event::End {
                    id,
                    result: Err(StreamError {
                        kind,
                        message: message.clone(),
                    }),
                }),
                Stream::Serving { .. } => self.events.push_back(Event::Cancelled {
                    id,
                    mode: crate::wire::mux::CancelMode::Kill,
                    cause: CancelCause::ConnectionClosed,
                }),
                Stream::Killed { .. } | Stream::Ended { .. } => {}
            }
        }
        self.open = 0;
        self.ping_deadline = None;
        self.blocked.clear();
        self.frame_started = None;
        self.events.push_back(Event::Closed(reason.clone()));
        self.state = State::Closed(reason);
    }
}
