//! Test and fuzz support, not a stable API: [`Pair`] wires a client and a server [`Conn`]
//! through an in-memory network on a virtual clock (quinn's `Pair`, str0m's `progress`), and
//! [`conn_ops`] runs an operation sequence decoded from fuzzer bytes against a reference model,
//! checking the invariants after every step.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{Conn, ConnConfig, Event, Stream};
use crate::wire::OutBuf;
use crate::wire::mux::{CancelMode, ErrorKind, StreamError, StreamId, WireStr};

/// A client and a server connection joined by an in-memory network.
#[derive(Debug)]
pub struct Pair {
    /// The client end.
    pub client: Conn,
    /// The server end.
    pub server: Conn,
    /// The virtual clock.
    pub now: Instant,
    /// Deliver at most this many bytes per step in each direction (`None`: everything).
    pub chunk: Option<usize>,
    /// Steps `drive` may take before it declares a livelock.
    pub max_steps: usize,
    /// Events the client raised, in order (tests take them).
    pub client_events: Vec<Event>,
    /// Events the server raised, in order.
    pub server_events: Vec<Event>,
    /// Bytes written by the client, in flight to the server.
    to_server: BytesMut,
    /// Bytes written by the server, in flight to the client.
    to_client: BytesMut,
    /// The server's socket read buffer.
    server_rbuf: BytesMut,
    /// The client's socket read buffer.
    client_rbuf: BytesMut,
    eof_to_server: bool,
    eof_to_client: bool,
    /// Raw bytes were injected.
    pub tainted: bool,
}

impl Pair {
    /// A client and a server with these settings, at virtual time `now`.
    pub fn new(client: ConnConfig, server: ConnConfig, now: Instant) -> Self {
        Self {
            client: Conn::client(client, now).expect("valid client config"),
            server: Conn::server(server, now).expect("valid server config"),
            now,
            chunk: None,
            max_steps: 100_000,
            client_events: Vec::new(),
            server_events: Vec::new(),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            server_rbuf: BytesMut::new(),
            client_rbuf: BytesMut::new(),
            eof_to_server: false,
            eof_to_client: false,
            tainted: false,
        }
    }

    /// A pair with default settings whose handshake is done (events cleared).
    pub fn connected(client: ConnConfig, server: ConnConfig, now: Instant) -> Self {
        let mut pair = Self::new(client, server, now);
        pair.drive();
        assert!(pair.client.is_established() && pair.server.is_established());
        pair.client_events.clear();
        pair.server_events.clear();
        pair
    }

    /// One round: both sides transmit, bytes move (up to `chunk`), both sides read, events
    /// are collected, and a side whose peer closed and flushed sees end of stream. Returns
    /// whether anything happened.
    pub fn step(&mut self) -> bool {
        let mut progress = false;
        let mut out = OutBuf::new();
        if self.client.poll_transmit(&mut out) {
            self.to_server.extend_from_slice(&out.take_contiguous());
            progress = true;
        }
        if self.server.poll_transmit(&mut out) {
            self.to_client.extend_from_slice(&out.take_contiguous());
            progress = true;
        }
        progress |= deliver(
            &mut self.server,
            &mut self.to_server,
            &mut self.server_rbuf,
            self.chunk,
            self.now,
        );
        progress |= deliver(
            &mut self.client,
            &mut self.to_client,
            &mut self.client_rbuf,
            self.chunk,
            self.now,
        );
        if self.client.is_closed()
            && !self.client.wants_transmit()
            && self.to_server.is_empty()
            && !self.eof_to_server
        {
            self.eof_to_server = true;
            self.server.handle_transport_closed(self.now);
            progress = true;
        }
        if self.server.is_closed()
            && !self.server.wants_transmit()
            && self.to_client.is_empty()
            && !self.eof_to_client
        {
            self.eof_to_client = true;
            self.client.handle_transport_closed(self.now);
            progress = true;
        }
        progress |= self.collect_events();
        progress
    }

    /// Moves both sides' pending events into `client_events`/`server_events`. Returns whether
    /// there were any.
    pub fn collect_events(&mut self) -> bool {
        let before = self.client_events.len() + self.server_events.len();
        while let Some(event) = self.client.poll_event() {
            self.client_events.push(event);
        }
        while let Some(event) = self.server.poll_event() {
            self.server_events.push(event);
        }
        self.client_events.len() + self.server_events.len() > before
    }

    /// Steps until nothing happens. Panics after `max_steps` steps (a livelock).
    pub fn drive(&mut self) {
        for _ in 0..self.max_steps {
            if !self.step() {
                return;
            }
        }
        panic!("no quiescence after {} steps: livelock", self.max_steps);
    }

    /// Moves the clock forward by `by`, fires both sides' timers, checks the busy-loop guard
    /// and drives.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.fire_timers();
        self.drive();
    }

    /// Jumps to the earlier of both sides' deadlines (if any is later than now), fires the
    /// timers and drives. Returns false when neither side has a deadline.
    pub fn jump_to_next_timeout(&mut self) -> bool {
        let next = match (self.client.poll_timeout(), self.server.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        self.now = self.now.max(next);
        self.fire_timers();
        self.drive();
        true
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        for conn in [&mut self.client, &mut self.server] {
            conn.handle_timeout(now);
            assert!(
                conn.wants_transmit() || conn.poll_timeout().is_none_or(|t| t > now),
                "busy-loop guard: after handle_timeout({now:?}) the {} has deadline {:?} and no \
                 output",
                conn.role(),
                conn.poll_timeout()
            );
        }
    }

    /// Puts raw bytes on the wire toward the server (or the client). Afterwards the two sides
    /// no longer need to agree on credits (the bytes may hold CREDIT frames).
    pub fn inject(&mut self, to_server: bool, bytes: &[u8]) {
        self.tainted = true;
        if to_server {
            self.to_server.extend_from_slice(bytes);
        } else {
            self.to_client.extend_from_slice(bytes);
        }
    }

    /// Bytes in flight in both directions (written, not yet read).
    pub fn in_flight(&self) -> usize {
        self.to_server.len() + self.to_client.len()
    }

    /// Checks the flow-control and stream-count invariants of both sides; at quiescence (nothing
    /// in flight or queued) also that both sides agree on every credit.
    pub fn check_invariants(&self) {
        for conn in [&self.client, &self.server] {
            conn.check_invariants();
        }
        let quiet = self.in_flight() == 0
            && self.client_rbuf.is_empty()
            && self.server_rbuf.is_empty()
            && !self.client.wants_transmit()
            && !self.server.wants_transmit();
        if self.tainted || !(quiet && self.client.is_established() && self.server.is_established())
        {
            return;
        }
        assert_eq!(
            self.server.send_credit, self.client.recv_window,
            "server's connection send credit vs client's receive window"
        );
        assert_eq!(
            self.client.send_credit, self.server.recv_window,
            "client's connection send credit vs server's receive window"
        );
        for (id, stream) in &self.server.streams {
            let Stream::Serving { credit, .. } = stream else {
                panic!("server holds a client stream state")
            };
            if let Some(Stream::Receiving { window, .. }) = self.client.streams.get(id) {
                assert_eq!(
                    credit, window,
                    "stream {id}: server credit vs client window"
                );
            }
        }
    }
}

fn deliver(
    conn: &mut Conn,
    wire: &mut BytesMut,
    rbuf: &mut BytesMut,
    chunk: Option<usize>,
    now: Instant,
) -> bool {
    if wire.is_empty() {
        return false;
    }
    if conn.is_closed() {
        wire.clear(); // the socket is closed: bytes are lost
        return true;
    }
    let n = chunk.unwrap_or(usize::MAX).clamp(1, wire.len());
    rbuf.extend_from_slice(&wire.split_to(n));
    conn.handle_input(rbuf, now);
    true
}

impl Conn {
    #[doc(hidden)]
    /// Asserts the accounting invariants of this side (used by tests and fuzzers).
    pub fn check_invariants(&self) {
        let open = self.streams.values().filter(|s| s.is_open()).count();
        assert_eq!(open as u64, u64::from(self.open), "open count");
        let queued: u64 = self
            .queue
            .iter()
            .map(super::output::Queued::cost)
            .sum::<u64>()
            + self.control.iter().map(super::output::cost).sum::<u64>();
        assert_eq!(queued, self.queued_cost, "queued output cost");
        let encoded: usize = self
            .queue
            .iter()
            .map(|entry| match entry {
                super::output::Queued::Encoded { len, .. } => *len,
                super::output::Queued::Frame(_) => 0,
            })
            .sum();
        assert_eq!(encoded, self.encoded.len(), "encoded output bytes");
        if !self.is_established() {
            return;
        }
        let mut held = 0u64;
        for (id, stream) in &self.streams {
            match stream {
                Stream::Receiving {
                    window,
                    grant,
                    unreleased,
                    ..
                } => {
                    assert_eq!(
                        window + grant + unreleased,
                        u64::from(self.config.stream_credit),
                        "stream {id}: window + grant + unreleased"
                    );
                    held += unreleased;
                }
                Stream::Killed { unreleased } | Stream::Ended { unreleased } => {
                    held += unreleased;
                }
                Stream::Serving {
                    credit,
                    request_len,
                    ..
                } => {
                    assert!(*credit <= u64::from(u32::MAX), "stream {id}: credit");
                    held += request_len;
                }
            }
        }
        assert_eq!(
            self.recv_window + self.conn_grant + held,
            u64::from(self.config.conn_credit),
            "{}: receive window + pending grant + held bytes",
            self.role
        );
        assert!(self.send_credit <= u64::from(u32::MAX));
        if let Some(peer) = self.peer {
            match self.role {
                super::Role::Client => assert!(self.open <= peer.max_streams),
                super::Role::Server => assert!(self.open <= self.config.max_streams),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// conn_ops: operation sequences from fuzzer bytes, checked against a model.

/// The byte at `offset` of stream `id`'s response: a pattern, so loss, duplication and
/// reordering show.
fn pattern(id: StreamId, offset: u64) -> u8 {
    (u64::from(id.0).wrapping_mul(31).wrapping_add(offset) % 251) as u8
}

fn make_payload(id: StreamId, offset: u64, len: usize) -> Bytes {
    (0..len as u64).map(|i| pattern(id, offset + i)).collect()
}

#[derive(Debug, Default)]
struct ClientModel {
    ended: bool,
    received: u64,
    items: Vec<u64>,
    current: u64,
    unreleased: u64,
}

#[derive(Debug, Default)]
struct ServerModel {
    /// Ended by finish, error or kill.
    ended: bool,
    finished_ok: bool,
    sent: u64,
    items: Vec<u64>,
    current: u64,
    pending: Bytes,
}

/// The reference model beside a [`Pair`].
#[derive(Debug, Default)]
struct Model {
    client: BTreeMap<StreamId, ClientModel>,
    server: BTreeMap<StreamId, ServerModel>,
    client_closed: bool,
    server_closed: bool,
    /// Raw bytes were injected: contents are no longer the model's.
    tainted: bool,
}

impl Model {
    fn absorb(&mut self, pair: &mut Pair) {
        pair.collect_events();
        self.tainted |= pair.tainted;
        for event in std::mem::take(&mut pair.client_events) {
            assert!(!self.client_closed, "client event after Closed: {event:?}");
            match event {
                Event::Data { id, payload, more } => {
                    let s = self
                        .client
                        .get_mut(&id)
                        .expect("Data for a stream the client opened");
                    assert!(!s.ended, "Data after End on stream {id}");
                    if !self.tainted {
                        for (i, byte) in payload.iter().enumerate() {
                            assert_eq!(*byte, pattern(id, s.received + i as u64), "stream {id}");
                        }
                    }
                    let len = payload.len() as u64;
                    s.received += len;
                    s.unreleased += len;
                    s.current += len;
                    if !more {
                        s.items.push(s.current);
                        s.current = 0;
                    }
                }
                Event::End { id, result } => {
                    let s = self
                        .client
                        .get_mut(&id)
                        .expect("End for a stream the client opened");
                    assert!(!s.ended, "second End on stream {id}");
                    s.ended = true;
                    if result.is_ok() && !self.tainted {
                        let server = self.server.get(&id).expect("the server saw the stream");
                        assert!(
                            server.finished_ok,
                            "End(Ok) but the server did not finish {id}"
                        );
                        assert_eq!(s.received, server.sent, "stream {id}: bytes lost");
                        assert_eq!(s.items, server.items, "stream {id}: item boundaries");
                    }
                }
                Event::Closed(_) => self.client_closed = true,
                Event::HandshakeDone(_) | Event::CanOpen | Event::GoAway { .. } => {}
                other => panic!("the client raised a server event: {other:?}"),
            }
        }
        for event in std::mem::take(&mut pair.server_events) {
            assert!(!self.server_closed, "server event after Closed: {event:?}");
            match event {
                Event::StreamOpened(request) => {
                    let id = request.stream;
                    assert!(
                        self.client.contains_key(&id) || self.tainted,
                        "server opened {id}, which the client never opened"
                    );
                    let fresh = self.server.insert(id, ServerModel::default()).is_none();
                    assert!(fresh || self.tainted, "stream {id} opened twice");
                }
                Event::Cancelled { id, mode, .. } => {
                    let s = self
                        .server
                        .get_mut(&id)
                        .expect("Cancelled for a known stream");
                    assert!(!s.ended, "Cancelled after the end of stream {id}");
                    if mode == CancelMode::Kill {
                        s.ended = true;
                    }
                }
                Event::Writable { id } => {
                    let s = self.server.get(&id).expect("Writable for a known stream");
                    assert!(!s.ended, "Writable after the end of stream {id}");
                }
                Event::EndTransmitted { id } => {
                    let s = self
                        .server
                        .get(&id)
                        .expect("EndTransmitted for a known stream");
                    assert!(s.ended, "EndTransmitted before the end of stream {id}");
                }
                Event::Closed(_) => self.server_closed = true,
                Event::HandshakeDone(_) | Event::GoAway { .. } => {}
                other => panic!("the server raised a client event: {other:?}"),
            }
        }
    }

    fn live_server_stream(&self, pick: u8) -> Option<StreamId> {
        let live: Vec<_> = self
            .server
            .iter()
            .filter(|(_, s)| !s.ended)
            .map(|(id, _)| *id)
            .collect();
        (!live.is_empty()).then(|| live[usize::from(pick) % live.len()])
    }

    fn client_stream(&self, pick: u8, want: impl Fn(&ClientModel) -> bool) -> Option<StreamId> {
        let ids: Vec<_> = self
            .client
            .iter()
            .filter(|(_, s)| want(s))
            .map(|(id, _)| *id)
            .collect();
        (!ids.is_empty()).then(|| ids[usize::from(pick) % ids.len()])
    }
}

fn small_config(seed: u8) -> ConnConfig {
    ConnConfig {
        max_frame_size: 16 * 1024,
        max_streams: 1 + u32::from(seed % 8),
        stream_credit: 64 + u32::from(seed) * 16,
        conn_credit: 16 * 1024 + u32::from(seed) * 64,
        handshake_timeout: Duration::from_secs(5),
        keepalive_interval: Some(Duration::from_secs(3)),
        ping_timeout: Duration::from_secs(2),
        idle_timeout: seed.is_multiple_of(3).then(|| Duration::from_secs(7)),
        // The model does not predict the output-stall and frame timeouts (tests pin them).
        max_queued_bytes: 1 << 20,
        stall_timeout: None,
        frame_timeout: Duration::from_secs(3600),
    }
}

/// Interprets `data` as a sequence of operations on a client/server [`Pair`] (open, send,
/// finish, fail, stop, kill, release, partial delivery, time, GOAWAY, close, transport loss,
/// injected garbage) and checks after each one that no stream ends twice or hears anything
/// after its end, that nothing is lost or reordered, that credits balance on both sides, and
/// at the end that every stream ended on both sides.
///
/// `t0` is the origin of virtual time, read from the caller's clock (the core reads none).
pub fn conn_ops(data: &[u8], t0: Instant) -> OpsStats {
    let mut stats = OpsStats::default();
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let (Some(a), Some(b)) = (next(), next()) else {
        return stats;
    };
    let mut pair = Pair::new(small_config(a), small_config(b), t0);
    pair.max_steps = 1_000_000;
    let mut model = Model::default();
    if a % 4 != 0 {
        pair.drive(); // most runs start after the handshake; the rest race it
    }
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        match op {
            0..=59 => {
                let route = WireStr::from("r".repeat(usize::from(arg % 24)));
                let payload = Bytes::from(vec![arg; usize::from(arg) * 3]);
                if let Ok(id) = pair
                    .client
                    .open(route, Bytes::from_static(&[0x80]), payload)
                {
                    model.client.insert(id, ClientModel::default());
                }
            }
            60..=119 => {
                if let Some(id) = model.live_server_stream(arg) {
                    let s = model.server.get_mut(&id).expect("picked from the model");
                    let mut data = if s.pending.is_empty() {
                        let len = usize::from(next().unwrap_or(0)) * 5;
                        make_payload(id, s.sent, len)
                    } else {
                        std::mem::take(&mut s.pending)
                    };
                    let whole = data.len();
                    match pair.server.send_data(id, &mut data) {
                        Ok(n) => {
                            stats.blocked_sends += usize::from(!data.is_empty());
                            s.sent += n as u64;
                            s.current += n as u64;
                            if data.is_empty() {
                                s.items.push(s.current);
                                s.current = 0;
                            }
                            assert_eq!(n + data.len(), whole);
                            s.pending = data;
                        }
                        Err(super::SendError::Blocked { .. }) => {
                            stats.blocked_sends += 1;
                            s.pending = data;
                        }
                        Err(e) => panic!("send on live stream {id}: {e}"),
                    }
                }
            }
            120..=139 => {
                if let Some(id) = model.live_server_stream(arg) {
                    let s = model.server.get_mut(&id).expect("picked from the model");
                    match pair.server.finish(id) {
                        Ok(()) => {
                            s.ended = true;
                            s.finished_ok = true;
                        }
                        Err(super::SendError::ItemIncomplete(_)) => assert!(!s.pending.is_empty()),
                        Err(e) => panic!("finish live stream {id}: {e}"),
                    }
                }
            }
            140..=144 => {
                if let Some(id) = model.live_server_stream(arg) {
                    let error = StreamError::new(ErrorKind(u16::from(arg)), "handler failed");
                    pair.server.send_error(id, error).expect("live stream");
                    model.server.get_mut(&id).expect("picked").ended = true;
                }
            }
            145..=154 => {
                if let Some(id) = model.client_stream(arg, |s| !s.ended) {
                    let mode = if op < 150 {
                        CancelMode::Stop
                    } else {
                        CancelMode::Kill
                    };
                    pair.client
                        .cancel(id, mode)
                        .expect("a stream the model says is open");
                    stats.kills += usize::from(mode == CancelMode::Kill);
                }
            }
            155..=184 => {
                if let Some(id) = model.client_stream(arg, |s| s.unreleased > 0) {
                    let s = model.client.get_mut(&id).expect("picked");
                    let len = s.unreleased.min(u64::from(arg) * 40 + 1);
                    if !pair.client.is_closed() {
                        assert_eq!(pair.client.unreleased(id), Some(s.unreleased));
                    }
                    pair.client
                        .release(id, len)
                        .expect("releasing delivered data");
                    s.unreleased -= len;
                }
            }
            185..=199 => pair.drive(),
            200..=214 => {
                pair.step();
            }
            215..=224 => pair.advance(Duration::from_millis(u64::from(arg) * 50)),
            225..=229 => pair.chunk = (arg % 8 != 0).then_some(usize::from(arg % 8) * 7),
            230..=236 => match op - 230 {
                0 | 1 => pair.client.start_goaway(),
                2 | 3 => pair.server.start_goaway(),
                4 => pair.client.close(WireStr::from_static("fuzz")),
                5 => pair.server.close(WireStr::from_static("fuzz")),
                _ => {
                    let now = pair.now;
                    pair.client.handle_transport_closed(now);
                    pair.server.handle_transport_closed(now);
                }
            },
            240..=247 => {
                let _ = pair.jump_to_next_timeout();
            }
            237..=239 => {
                let garbage: Vec<u8> = (0..arg % 32).filter_map(|_| next()).collect();
                pair.inject(arg % 2 == 0, &garbage);
                model.tainted = true;
            }
            _ => {
                for _ in 0..=arg % 4 {
                    pair.step();
                }
            }
        }
        model.absorb(&mut pair);
        pair.check_invariants();
    }
    // Let everything settle, then end both sides.
    pair.drive();
    model.absorb(&mut pair);
    pair.check_invariants();
    if !model.tainted {
        settle(&mut pair, &mut model);
    }
    match pair.client.close_reason() {
        None => {}
        Some(super::CloseReason::Drained) => stats.closes.0 += 1,
        Some(super::CloseReason::Violation(_)) => stats.closes.1 += 1,
        Some(_) => stats.closes.2 += 1,
    }
    let now = pair.now;
    pair.client.handle_transport_closed(now);
    pair.server.handle_transport_closed(now);
    pair.drive();
    model.absorb(&mut pair);
    assert!(
        model.client_closed && model.server_closed,
        "both sides closed"
    );
    for (id, s) in &model.client {
        assert!(s.ended, "client stream {id} never ended");
    }
    for (id, s) in &model.server {
        assert!(s.ended, "server stream {id} never ended");
    }
    stats.opened = model.client.len();
    stats.served = model.server.len();
    stats.completed_with_data = model
        .client
        .iter()
        .filter(|(id, c)| c.received > 0 && model.server.get(id).is_some_and(|s| s.finished_ok))
        .count();
    stats.bytes_received = model.client.values().map(|c| c.received).sum();
    stats
}

/// Liveness: with a reader that releases everything and a server that completes every item
/// and then finishes, every stream must end, whatever state the run left behind (no credit is
/// ever withheld for good).
fn settle(pair: &mut Pair, model: &mut Model) {
    for _ in 0..10_000 {
        for (id, c) in &mut model.client {
            if c.unreleased > 0 {
                pair.client
                    .release(*id, c.unreleased)
                    .expect("delivered data");
                c.unreleased = 0;
            }
        }
        let live: Vec<StreamId> = model
            .server
            .iter()
            .filter(|(_, s)| !s.ended)
            .map(|(id, _)| *id)
            .collect();
        for id in live {
            let s = model.server.get_mut(&id).expect("listed");
            if s.pending.is_empty() {
                pair.server
                    .finish(id)
                    .expect("a live stream with no half-sent item");
                s.ended = true;
                s.finished_ok = true;
                continue;
            }
            let mut data = std::mem::take(&mut s.pending);
            if let Ok(n) = pair.server.send_data(id, &mut data) {
                s.sent += n as u64;
                s.current += n as u64;
                if data.is_empty() {
                    s.items.push(s.current);
                    s.current = 0;
                }
            }
            s.pending = data;
        }
        pair.drive();
        model.absorb(pair);
        pair.check_invariants();
        if model.server.values().all(|s| s.ended) && model.client.values().all(|c| c.ended) {
            return;
        }
    }
    panic!("streams never settled: flow control starved them");
}

/// What one [`conn_ops`] run exercised (so tests can check the generator reaches the
/// interesting paths).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpsStats {
    /// Streams the client opened.
    pub opened: usize,
    /// Streams the server saw.
    pub served: usize,
    /// Streams that completed with at least one byte of data.
    pub completed_with_data: usize,
    /// Response bytes the client received.
    pub bytes_received: u64,
    /// Client streams killed.
    pub kills: usize,
    /// Sends refused or cut short for lack of credit.
    pub blocked_sends: usize,
    /// How the client's connection closed, if by something else than the final transport
    /// loss: `(drained, violation, other)`.
    pub closes: (usize, usize, usize),
}
