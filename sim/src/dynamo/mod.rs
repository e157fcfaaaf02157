//! Dynamo's call-home protocol on the simulated network.
//!
//! A Dynamo call uses two connections (see [`dynrt_core::callhome`]): the caller's pooled
//! **request connection** to the worker (request frames out, acks back in order) and, per
//! accepted request, a **call-home connection** the worker dials back to the caller's
//! response-stream server, on which it streams the answer. Both are simulated TCP with the
//! same model as the mux connections of [`crate::net`] (latency with jitter, a bounded
//! window, partitions and stalls that hold bytes back, resets, end of stream, a reader that
//! stops reading), each end driven by the real core machine the runtime drives there:
//!
//! | connection | client end (dials) | server end (accepts) |
//! |---|---|---|
//! | request | caller: [`RequestSender`] | worker: [`RequestReceiver`] |
//! | call-home | worker: [`WorkerStream`] | caller: [`CallerStream`] (with [`dynrt_core::callhome::PendingStreams`]) |
//!
//! Each end is pumped as `io-common/src/dynamo` drives it: inputs, then `poll_transmit` into
//! the socket, then every event, then the timer. The caller's response-stream server closes
//! its sockets with `SO_LINGER` 0 (a reset), as the runtime does; the worker closes a
//! call-home connection gracefully.
//!
//! Which calls use it is seeded: some workers register without dynrt's mux capability
//! (1.6.1 workers, reached only over Dynamo's protocol), and some callers are 1.6.1-style
//! frontends that call every worker over it. The caller side is in [`caller`], the worker
//! side in [`worker`].

mod caller;
mod worker;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dynrt_core::callhome::{
    CallHomeConfig, CallerStream, RequestReceiver, RequestSender, WorkerStream,
};
use dynrt_core::wire::OutBuf;

pub(crate) use caller::DynCaller;
pub(crate) use worker::DynWorker;

use crate::net::{Side, WINDOW, Wire, take_held, take_written};
use crate::trace::trace;
use crate::world::{Ev, World};

/// How long dialling may take before the dialler gives up (the runtime's `CONNECT_TIMEOUT` on
/// both the pool's dial and the worker's call-home dial).
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The port of every caller's response-stream server.
const RESPONSE_PORT: u16 = 7000;

/// The address of caller `caller`'s response-stream server: `10.1.{caller}.1:7000`.
pub(crate) fn response_address(caller: usize) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(10, 1, caller as u8, 1),
        RESPONSE_PORT,
    ))
}

/// The caller a response-stream address belongs to.
fn caller_of(addr: SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(v4) if v4.ip().octets()[1] == 1 && v4.port() == RESPONSE_PORT => {
            Some(usize::from(v4.ip().octets()[2]))
        }
        _ => None,
    }
}

/// The call-home settings of the simulation: 1.6.1's defaults, except a prologue timeout
/// within the run's settle time.
pub(crate) fn callhome_config() -> CallHomeConfig {
    CallHomeConfig {
        prologue_timeout: Duration::from_secs(120),
        ..CallHomeConfig::default()
    }
}

/// Events of Dynamo's connections.
#[derive(Debug)]
pub(crate) enum DynEv {
    /// The dialler's SYN reaches the listener.
    Syn { link: u32 },
    /// The SYN-ACK reaches the dialler: it may write.
    SynAck { link: u32 },
    /// The dialler gives up a connection not established in time.
    DialTimeout { link: u32 },
    /// Bytes arrive at one end.
    Bytes { link: u32, to: Side, data: Wire },
    /// A reset, or end of stream (`fin`), arrives at one end.
    Reset { link: u32, to: Side, fin: bool },
    /// A machine's timer.
    Timer { link: u32, side: Side, at: u64 },
    /// A caller's registry of call-homes waiting for their worker: its establish deadline.
    PendingTimer { caller: usize, at: u64 },
    /// A worker's handler produces its next item (on call-home connection `link`).
    HandlerTick { link: u32 },
}

/// Which of the two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Caller (client) to worker (server).
    Request,
    /// Worker (client) to the caller's response-stream server (server).
    CallHome,
}

/// The machine at one end.
enum Machine {
    Sender(RequestSender),
    Receiver(RequestReceiver),
    Worker(WorkerStream),
    Caller(CallerStream),
}

/// One end of a Dynamo connection.
#[derive(Default)]
struct End {
    machine: Option<Machine>,
    out: OutBuf,
    rx: BytesMut,
    held: Vec<Bytes>,
    open: bool,
    connected: bool,
    in_flight: usize,
    fin_pending: bool,
    /// End of stream (or a reset) was read: the machine was told.
    eof: bool,
    last_arrival: u64,
    timer: Option<u64>,
}

/// One Dynamo connection.
pub(crate) struct DynLink {
    pub(crate) kind: Kind,
    pub(crate) caller: usize,
    pub(crate) slot: usize,
    pub(crate) inc: u32,
    ends: [End; 2],
    pub(crate) stalled_until: u64,
}

impl DynLink {
    /// Whether both ends are open (a fault may hit it).
    pub(crate) fn is_open(&self) -> bool {
        self.ends[0].open && self.ends[1].open
    }

    /// The side the caller process holds.
    fn caller_side(&self) -> Side {
        match self.kind {
            Kind::Request => Side::Client,
            Kind::CallHome => Side::Server,
        }
    }
}

/// Every Dynamo connection of the run.
#[derive(Default)]
pub(crate) struct DynNet {
    pub(crate) links: Vec<DynLink>,
    /// Requests whose worker wrote the whole answer (sentinel included) and then saw the
    /// caller close, which is all Dynamo's protocol tells it: the caller's close is a reset
    /// (`SO_LINGER` 0, 1.6.1's and dynrt's callers alike) whether it read the answer or had
    /// given the call up, so the worker counts the answer delivered and cannot know better.
    pub(crate) unconfirmable: std::collections::BTreeSet<u64>,
    /// The Dynamo handlers' item text.
    pub(crate) text: worker::TextRuns,
}

impl World {
    pub(crate) fn on_dyn(&mut self, ev: DynEv) {
        match ev {
            DynEv::Syn { link } => self.dyn_syn(link),
            DynEv::SynAck { link } => {
                let end = &mut self.dnet.links[link as usize].ends[0];
                if end.open && !end.connected {
                    end.connected = true;
                    self.dyn_connected(link);
                    self.dyn_pump(link, Side::Client);
                }
            }
            DynEv::DialTimeout { link } => {
                let end = &self.dnet.links[link as usize].ends[0];
                if end.open && !end.connected {
                    trace!(
                        self,
                        self.dyn_node(link, Side::Client),
                        "d#{link} dial timed out"
                    );
                    self.dyn_dial_failed(link);
                    self.dyn_close(link, Side::Client, false);
                }
            }
            DynEv::Bytes { link, to, data } => self.dyn_bytes(link, to, data),
            DynEv::Reset { link, to, fin } => self.dyn_reset_arrives(link, to, fin),
            DynEv::Timer { link, side, at } => {
                let now = self.now_instant();
                let end = &mut self.dnet.links[link as usize].ends[side.idx()];
                if end.timer != Some(at) || !end.open {
                    return;
                }
                end.timer = None;
                match end.machine.as_mut() {
                    Some(Machine::Sender(m)) => m.handle_timeout(now),
                    Some(Machine::Caller(m)) => m.handle_timeout(now),
                    Some(Machine::Worker(m)) => m.handle_timeout(now),
                    Some(Machine::Receiver(_)) | None => {}
                }
                self.dyn_pump(link, side);
            }
            DynEv::PendingTimer { caller, at } => self.dyn_pending_timer(caller, at),
            DynEv::HandlerTick { link } => self.dyn_produce(link),
        }
    }

    fn dyn_node(&self, link: u32, side: Side) -> String {
        let l = &self.dnet.links[link as usize];
        if side == l.caller_side() {
            format!("c{}", l.caller)
        } else {
            format!("w{}", l.slot)
        }
    }

    /// One-way delivery time of bytes sent now from `side`: latency with jitter, after earlier
    /// bytes, after a partition of the worker or a stall of the connection heals.
    fn dyn_arrival(&mut self, link: u32, side: Side) -> u64 {
        let hop = self.rng.range(100_000, 400_000);
        let l = &self.dnet.links[link as usize];
        let cut = self.faults.peers_cut_until[l.slot]
            .max(l.stalled_until)
            .max(self.dyn_callhome_cut(link));
        let mut t = self.now + hop;
        if cut > self.now {
            t = t.max(cut + hop);
        }
        let end = &mut self.dnet.links[link as usize].ends[side.idx()];
        t = t.max(end.last_arrival);
        end.last_arrival = t;
        t
    }

    /// A call-home connection's packets vanish while its caller's response-stream server is
    /// cut off (the `callhome-drop` fault): until then, as a partition holds them.
    fn dyn_callhome_cut(&self, link: u32) -> u64 {
        let l = &self.dnet.links[link as usize];
        match l.kind {
            Kind::CallHome => self.faults.callhome_cut_until[l.caller],
            Kind::Request => 0,
        }
    }

    /// Opens a connection from its client end; the SYN leaves now.
    fn dyn_dial(&mut self, kind: Kind, caller: usize, slot: usize, inc: u32, m: Machine) -> u32 {
        let id = self.dnet.links.len() as u32;
        let client = End {
            machine: Some(m),
            open: true,
            last_arrival: self.now,
            ..End::default()
        };
        self.dnet.links.push(DynLink {
            kind,
            caller,
            slot,
            inc,
            ends: [client, End::default()],
            stalled_until: 0,
        });
        self.stats.connections += 1;
        let at = self.dyn_arrival(id, Side::Client);
        self.schedule(at, Ev::Dyn(DynEv::Syn { link: id }));
        let at = self.now + DIAL_TIMEOUT.as_nanos() as u64;
        self.schedule(at, Ev::Dyn(DynEv::DialTimeout { link: id }));
        id
    }

    fn dyn_syn(&mut self, link: u32) {
        let (kind, caller, slot, inc) = {
            let l = &self.dnet.links[link as usize];
            (l.kind, l.caller, l.slot, l.inc)
        };
        if !self.dnet.links[link as usize].ends[0].open {
            return;
        }
        let machine = match kind {
            Kind::Request => {
                let listening = self.workers[slot].alive && self.workers[slot].inc == inc;
                listening.then(|| {
                    Machine::Receiver(RequestReceiver::new(callhome_config().max_message_size))
                })
            }
            Kind::CallHome => Some(Machine::Caller(CallerStream::new(
                callhome_config(),
                self.now_instant(),
            ))),
        };
        if kind == Kind::CallHome && self.faults.callhome_cut_until[caller] > self.now {
            // The response-stream server is unreachable: the SYN vanishes (the dial times out).
            trace!(self, "net", "d#{link}: call-home SYN to c{caller} dropped");
            return;
        }
        let Some(machine) = machine else {
            trace!(
                self,
                "net", "d#{link}: w{slot}.{inc} refuses the connection"
            );
            let at = self.dyn_arrival(link, Side::Server);
            self.schedule(
                at,
                Ev::Dyn(DynEv::Reset {
                    link,
                    to: Side::Client,
                    fin: false,
                }),
            );
            return;
        };
        let end = &mut self.dnet.links[link as usize].ends[1];
        end.machine = Some(machine);
        end.open = true;
        end.connected = true;
        end.last_arrival = self.now;
        trace!(
            self,
            self.dyn_node(link, Side::Server),
            "accept d#{link} ({kind:?})"
        );
        let at = self.dyn_arrival(link, Side::Server);
        self.schedule(at, Ev::Dyn(DynEv::SynAck { link }));
        self.dyn_pump(link, Side::Server);
    }

    /// Whether the process at this end reads its socket now (a caller may have stopped).
    fn dyn_is_reading(&self, link: u32, side: Side) -> bool {
        let l = &self.dnet.links[link as usize];
        side != l.caller_side() || self.faults.caller_paused_until[l.caller] <= self.now
    }

    fn dyn_bytes(&mut self, link: u32, to: Side, data: Wire) {
        self.trace.mix(data.len() as u64);
        let end = &mut self.dnet.links[link as usize].ends[to.idx()];
        if !end.open || end.machine.is_none() {
            // Closed or gone: the kernel answers with a reset.
            let from = &mut self.dnet.links[link as usize].ends[to.peer().idx()];
            from.in_flight = from.in_flight.saturating_sub(data.len());
            if from.open {
                let at = self.dyn_arrival(link, to);
                self.schedule(
                    at,
                    Ev::Dyn(DynEv::Reset {
                        link,
                        to: to.peer(),
                        fin: false,
                    }),
                );
            }
            return;
        }
        data.hold(&mut end.held);
        if self.dyn_is_reading(link, to) {
            self.dyn_read(link, to);
        }
    }

    /// The process reads everything that arrived and feeds it to its machine.
    pub(crate) fn dyn_read(&mut self, link: u32, side: Side) {
        let now = self.now_instant();
        let [a, b] = &mut self.dnet.links[link as usize].ends;
        let (end, peer) = match side {
            Side::Client => (a, b),
            Side::Server => (b, a),
        };
        if !end.open {
            return;
        }
        if !end.held.is_empty() {
            let read = take_held(&mut end.held, &mut end.rx);
            peer.in_flight = peer.in_flight.saturating_sub(read);
            match end.machine.as_mut() {
                Some(Machine::Sender(m)) => m.handle_input(&mut end.rx, now),
                Some(Machine::Receiver(m)) => m.handle_input(&mut end.rx, now),
                Some(Machine::Worker(m)) => m.handle_input(&mut end.rx, now),
                Some(Machine::Caller(m)) => m.handle_input(&mut end.rx, now),
                None => {}
            }
            self.dyn_pump(link, side);
            // The window opened: the peer may write what it holds.
            self.dyn_pump(link, side.peer());
        }
        if std::mem::take(&mut self.dnet.links[link as usize].ends[side.idx()].fin_pending) {
            self.dyn_reset_arrives(link, side, true);
        }
    }

    /// End of stream (`fin`) or a reset arrives at one end.
    fn dyn_reset_arrives(&mut self, link: u32, to: Side, fin: bool) {
        let now = self.now_instant();
        let reading = self.dyn_is_reading(link, to);
        let end = &mut self.dnet.links[link as usize].ends[to.idx()];
        if !end.open || end.eof {
            return;
        }
        if fin && !end.held.is_empty() {
            if reading {
                self.dyn_read(link, to);
            } else {
                // Read after the bytes before it, once the process reads again.
                end.fin_pending = true;
                return;
            }
        } else if !fin {
            // A reset discards what was not read yet.
            end.held.clear();
        }
        let end = &mut self.dnet.links[link as usize].ends[to.idx()];
        if !end.open {
            return;
        }
        end.eof = true;
        let connected = end.connected;
        match end.machine.as_mut() {
            Some(Machine::Sender(m)) => m.handle_eof(now),
            Some(Machine::Receiver(m)) => m.handle_eof(now),
            Some(Machine::Worker(m)) => m.handle_eof(now),
            // A reset is not an end of stream to the caller (a stopped call ends clean only at
            // the worker's end of stream).
            Some(Machine::Caller(m)) if !fin => m.handle_reset(now),
            Some(Machine::Caller(m)) => m.handle_eof(now),
            None => {}
        }
        if !connected {
            // A refused or reset dial.
            self.dyn_dial_failed(link);
            self.dyn_close(link, to, false);
            return;
        }
        self.dyn_eof_seen(link, to);
        self.dyn_pump(link, to);
        if !fin {
            // A reset: the socket is dead whatever the machine thinks.
            self.dyn_close(link, to, false);
        }
    }

    /// Resets a connection from one end (a fault).
    pub(crate) fn dyn_reset(&mut self, link: u32, from: Side) {
        if !self.dnet.links[link as usize].ends[from.idx()].open {
            return;
        }
        let at = self.dyn_arrival(link, from);
        self.schedule(
            at,
            Ev::Dyn(DynEv::Reset {
                link,
                to: from.peer(),
                fin: false,
            }),
        );
    }

    /// Closes one end's socket: end of stream after its last bytes (`graceful`, with nothing
    /// unread), else a reset. The machine is dropped with it.
    pub(crate) fn dyn_close(&mut self, link: u32, side: Side, graceful: bool) {
        let end = &mut self.dnet.links[link as usize].ends[side.idx()];
        if !end.open {
            return;
        }
        let fin = graceful && end.held.is_empty() && !end.fin_pending;
        end.open = false;
        end.timer = None;
        end.out = OutBuf::new();
        end.held.clear();
        end.fin_pending = false;
        if self.dnet.links[link as usize].ends[side.peer().idx()].open {
            let at = self.dyn_arrival(link, side);
            self.schedule(
                at,
                Ev::Dyn(DynEv::Reset {
                    link,
                    to: side.peer(),
                    fin,
                }),
            );
        }
        self.dyn_socket_closed(link, side);
    }

    /// Drives one end: transmit into the socket, deliver events, close a finished exchange,
    /// re-arm the timer; repeated while answers to events produce more.
    pub(crate) fn dyn_pump(&mut self, link: u32, side: Side) {
        for _ in 0..64 {
            if !self.dyn_pump_once(link, side) {
                break;
            }
        }
        let end = &mut self.dnet.links[link as usize].ends[side.idx()];
        if !end.open {
            return;
        }
        let deadline = match end.machine.as_ref() {
            Some(Machine::Sender(m)) => m.poll_timeout(),
            Some(Machine::Caller(m)) => m.poll_timeout(),
            Some(Machine::Worker(m)) => m.poll_timeout(),
            Some(Machine::Receiver(_)) | None => None,
        };
        if let Some(deadline) = deadline {
            let at = self.ns_not_before_now(deadline);
            let end = &mut self.dnet.links[link as usize].ends[side.idx()];
            if end.timer.is_none_or(|armed| at < armed) {
                end.timer = Some(at);
                self.schedule(at, Ev::Dyn(DynEv::Timer { link, side, at }));
            }
        }
        self.dyn_check_memory(link, side);
        if self.dnet.links[link as usize].kind == Kind::CallHome && side == Side::Client {
            self.dyn_resume(link);
        }
    }

    /// One round; whether another may be needed.
    fn dyn_pump_once(&mut self, link: u32, side: Side) -> bool {
        let now = self.now_instant();
        let end = &mut self.dnet.links[link as usize].ends[side.idx()];
        if !end.open {
            return false;
        }
        let out = &mut end.out;
        match end.machine.as_mut() {
            Some(Machine::Sender(m)) => {
                let _ = m.poll_transmit(out);
            }
            Some(Machine::Receiver(m)) => {
                let _ = m.poll_transmit(out);
            }
            Some(Machine::Worker(m)) => {
                let _ = m.poll_transmit(out, now);
            }
            Some(Machine::Caller(m)) => {
                let _ = m.poll_transmit(out);
            }
            None => return false,
        }
        if end.connected && !end.out.is_empty() {
            self.dyn_write(link, side);
        }
        let any = self.dyn_events(link, side);
        let end = &self.dnet.links[link as usize].ends[side.idx()];
        if !end.open {
            return false;
        }
        let closed = match end.machine.as_ref() {
            Some(Machine::Sender(m)) => m.closed().is_some(),
            Some(Machine::Receiver(m)) => m.is_closed(),
            Some(Machine::Worker(m)) => m.is_closed(),
            Some(Machine::Caller(m)) => m.is_closed(),
            None => true,
        };
        if closed && end.out.is_empty() {
            // The caller's response-stream server closes with SO_LINGER 0 (a reset); the
            // others close gracefully.
            let l = &self.dnet.links[link as usize];
            let graceful = !(l.kind == Kind::CallHome && side == Side::Server);
            self.dyn_close(link, side, graceful);
            return false;
        }
        any
    }

    /// Writes what the window takes (a partial write under the fault).
    fn dyn_write(&mut self, link: u32, side: Side) {
        let partial = self.faults.partial_writes > 0 && self.rng.chance(30);
        let end = &self.dnet.links[link as usize].ends[side.idx()];
        let mut n = WINDOW.saturating_sub(end.in_flight).min(end.out.len());
        if partial && n > 1 {
            n = self.rng.range(1, n as u64) as usize;
        }
        if n == 0 {
            return;
        }
        let at = self.dyn_arrival(link, side);
        let end = &mut self.dnet.links[link as usize].ends[side.idx()];
        let data = take_written(&mut end.out, n);
        end.in_flight += data.len();
        self.schedule(
            at,
            Ev::Dyn(DynEv::Bytes {
                link,
                to: side.peer(),
                data,
            }),
        );
    }

    /// Whether this end's socket has written everything its machine produced.
    fn dyn_flushed(&self, link: u32, side: Side) -> bool {
        let end = &self.dnet.links[link as usize].ends[side.idx()];
        end.open && end.out.is_empty()
    }

    /// Memory per connection: the bytes an end holds unwritten stay within one window plus
    /// one batch of the worker's items (the runtime's `flush` waits before the handler is
    /// polled again).
    fn dyn_check_memory(&mut self, link: u32, side: Side) {
        let end = &self.dnet.links[link as usize].ends[side.idx()];
        let held = end.out.len() as u64;
        let bound = (WINDOW + 64 * 1024) as u64;
        if held > bound {
            let detail = format!("d#{link} {side:?} holds {held} bytes of output, bound {bound}");
            self.fail(crate::Invariant::MemoryWithinCredit, detail);
        }
    }

    /// Delivers the machine's events to its process.
    fn dyn_events(&mut self, link: u32, side: Side) -> bool {
        let mut any = false;
        loop {
            let end = &mut self.dnet.links[link as usize].ends[side.idx()];
            if !end.open {
                return any;
            }
            match end.machine.as_mut() {
                Some(Machine::Sender(m)) => {
                    let Some(ev) = m.poll_event() else {
                        return any;
                    };
                    self.dyn_ack_event(link, ev);
                }
                Some(Machine::Receiver(m)) => {
                    let Some(ev) = m.poll_event() else {
                        return any;
                    };
                    self.dyn_request_event(link, ev);
                }
                Some(Machine::Worker(m)) => {
                    let Some(ev) = m.poll_event() else {
                        return any;
                    };
                    self.dyn_worker_event(link, ev);
                }
                Some(Machine::Caller(m)) => {
                    let Some(ev) = m.poll_event() else {
                        return any;
                    };
                    self.dyn_caller_event(link, ev);
                }
                None => return any,
            }
            any = true;
        }
    }

    /// Every Dynamo connection end of a worker incarnation vanishes (the process died or
    /// exited).
    pub(crate) fn dyn_worker_gone(&mut self, slot: usize, inc: u32) {
        for link in 0..self.dnet.links.len() as u32 {
            let l = &self.dnet.links[link as usize];
            if l.slot != slot || l.inc != inc {
                continue;
            }
            let side = l.caller_side().peer();
            self.dyn_close(link, side, false);
            self.dnet.links[link as usize].ends[side.idx()].machine = None;
        }
    }

    /// A stop-reading fault ended: the caller reads what waited in its Dynamo sockets.
    pub(crate) fn dyn_caller_reads(&mut self, caller: usize) {
        for link in 0..self.dnet.links.len() as u32 {
            let l = &self.dnet.links[link as usize];
            if l.caller == caller {
                let side = l.caller_side();
                self.dyn_read(link, side);
            }
        }
    }

    /// A client end's dial finished.
    fn dyn_connected(&mut self, link: u32) {
        let l = &self.dnet.links[link as usize];
        match l.kind {
            Kind::Request => {
                let caller = l.caller;
                self.dyn_caller_connected(caller, link);
            }
            Kind::CallHome => self.dyn_worker_connected(link),
        }
    }

    /// A client end's dial failed (refused, reset, or timed out).
    fn dyn_dial_failed(&mut self, link: u32) {
        let l = &self.dnet.links[link as usize];
        match l.kind {
            Kind::Request => {
                let caller = l.caller;
                self.dyn_request_dial_failed(caller, link);
            }
            Kind::CallHome => self.dyn_callhome_dial_failed(link),
        }
    }

    /// End of stream or a reset was read at one end.
    fn dyn_eof_seen(&mut self, link: u32, side: Side) {
        if self.dnet.links[link as usize].kind == Kind::CallHome && side == Side::Client {
            self.dyn_worker_eof(link);
        }
    }

    /// One end's socket closed.
    fn dyn_socket_closed(&mut self, link: u32, side: Side) {
        let l = &self.dnet.links[link as usize];
        let caller = l.caller;
        match (l.kind, side) {
            (Kind::Request, Side::Client) => {
                if l.ends[0].connected {
                    self.dyn_request_conn_gone(
                        caller,
                        link,
                        dynrt_core::router::Outcome::ClosedBeforeSent,
                    );
                }
            }
            (Kind::Request, Side::Server) => {}
            (Kind::CallHome, Side::Client) => self.dyn_worker_socket_closed(link),
            (Kind::CallHome, Side::Server) => self.dyn_callhome_closed_at_caller(caller, link),
        }
    }

    /// Whether a clean drain may have missed `req` without anyone being able to know: its
    /// Dynamo answer ended as [`DynNet::unconfirmable`] says.
    pub(crate) fn dyn_unconfirmable(&self, req: u64) -> bool {
        self.dnet.unconfirmable.contains(&req)
    }

    /// The open Dynamo connections (for the reset and stall faults).
    pub(crate) fn dyn_open_links(&self) -> Vec<u32> {
        (0..self.dnet.links.len() as u32)
            .filter(|&l| self.dnet.links[l as usize].is_open())
            .collect()
    }
}
