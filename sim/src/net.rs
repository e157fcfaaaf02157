//! The simulated network: TCP as the application sees it.
//!
//! A connection ([`Link`]) is two ordered byte streams. A write takes what fits in the send
//! window (bytes written and not yet read by the peer's application, as the two kernels'
//! buffers would hold) — a partial write otherwise — and the bytes arrive after a latency with
//! jitter, never before earlier bytes of the same direction. A partition or a stall holds the
//! bytes back until it heals (retransmission delivers them then), so a long one ends by the
//! connection's own timers. A receiver that stops reading leaves the bytes in the window; the
//! sender's writes then take nothing and its stall timer decides. A process that dies resets
//! its connections (a reset discards what the peer has not read yet); a connection closed
//! gracefully sends end of stream after its last bytes, which the peer reads after them, even
//! if it is not reading at the moment (the kernel keeps both).
//!
//! Each end owns its real [`dynrt_core::conn::Conn`] and is pumped like the io drivers pump
//! theirs: inputs, then every `poll_transmit` into the socket, then every event, then the timer.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use dynrt_core::conn::{Conn, Event};
use dynrt_core::names::InstanceId;
use dynrt_core::wire::OutBuf;

use crate::trace::trace;
use crate::world::{Ev, World};

/// Bytes one direction of a connection holds in flight at most (both kernels' buffers).
pub(crate) const WINDOW: usize = 64 * 1024;

/// How long a server end lingers after a graceful close (the runtime driver's `LINGER`).
const LINGER: std::time::Duration = std::time::Duration::from_secs(30);

/// How a socket is closed (see [`World::close_socket`]).
#[derive(Debug, Clone, Copy)]
enum Close {
    /// The application closes it.
    App,
    /// The process dies or cuts it.
    Abort,
    /// A linger ends: the peer closed (`delivered`: by end of stream) or it timed out.
    LingerDone { delivered: bool },
}

/// Which end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    pub(crate) fn idx(self) -> usize {
        match self {
            Self::Client => 0,
            Self::Server => 1,
        }
    }

    pub(crate) fn peer(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// One end of a connection.
#[derive(Default)]
pub(crate) struct End {
    /// The machine (`None` for the server end until the SYN arrives, and after its process died).
    pub(crate) conn: Option<Conn>,
    /// What `poll_transmit` produced and the socket has not taken yet.
    out: OutBuf,
    /// Bytes read from the socket, not yet consumed by the machine (a partial frame).
    rx: BytesMut,
    /// Bytes that arrived while the application was not reading.
    held: Vec<Bytes>,
    /// The socket is open: the process lives and has not closed it.
    pub(crate) open: bool,
    /// The handshake finished at the TCP level: this end may write.
    connected: bool,
    /// The machine reported `Closed`: flush, then close the socket.
    closing: bool,
    /// Bytes this end wrote that the peer has not read yet.
    in_flight: usize,
    /// Bytes the socket has taken from this end since the connection started (the output
    /// position answers are delivered at).
    pub(crate) written: u64,
    /// The machine closed `Drained` (a graceful close): the socket's close is end of stream.
    drained: bool,
    /// End of stream arrived while the application was not reading: read after `held`.
    fin_pending: bool,
    /// A server end after a graceful close: end of stream sent, still reading (and
    /// discarding) until the peer closes or the linger ends, as the runtime's driver does.
    lingering: bool,
    /// A reset arrived: the connection is dead at this end. Its close answers the peer with a
    /// reset — as a kernel answers any later segment of a reset connection — never with end of
    /// stream or a linger (which would let the peer count its answers delivered).
    reset_in: bool,
    /// When the last bytes (or end of stream) this end sent arrive.
    last_arrival: u64,
    timer: Option<u64>,
    /// A pump of this end is running; `again`: someone asked for another round.
    pumping: bool,
    again: bool,
}

/// One connection, from a caller to a worker's address.
pub(crate) struct Link {
    pub(crate) caller: usize,
    pub(crate) slot: usize,
    pub(crate) inc: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) instance: InstanceId,
    pub(crate) ends: [End; 2],
    /// Deliveries on this connection wait until then (a stall fault).
    pub(crate) stalled_until: u64,
}

/// Every connection of the run.
#[derive(Default)]
pub(crate) struct Net {
    pub(crate) links: Vec<Link>,
}

impl World {
    /// One-way latency of a connection's packet, with jitter.
    fn hop(&mut self) -> u64 {
        self.rng.range(100_000, 400_000)
    }

    /// When bytes sent now on `link` from `side` arrive: after the latency, after earlier bytes,
    /// and after any partition or stall in their way heals.
    fn arrival(&mut self, link: u32, side: Side) -> u64 {
        let hop = self.hop();
        let l = &self.net.links[link as usize];
        let cut = self.faults.peers_cut_until[l.slot].max(l.stalled_until);
        let mut t = self.now + hop;
        if cut > self.now {
            t = t.max(cut + hop);
        }
        let end = &self.net.links[link as usize].ends[side.idx()];
        t = t.max(end.last_arrival);
        self.net.links[link as usize].ends[side.idx()].last_arrival = t;
        t
    }

    /// A caller opens a connection to a worker's address (the SYN leaves now).
    pub(crate) fn connect(
        &mut self,
        caller: usize,
        addr: SocketAddr,
        slot: usize,
        inc: u32,
        instance: InstanceId,
    ) -> u32 {
        let conn = Conn::client(self.conn_config.clone(), self.now_instant())
            .expect("the simulation's connection settings are valid");
        let id = self.net.links.len() as u32;
        let mut client = End {
            conn: Some(conn),
            open: true,
            ..End::default()
        };
        client.last_arrival = self.now;
        self.net.links.push(Link {
            caller,
            slot,
            inc,
            addr,
            instance,
            ends: [client, End::default()],
            stalled_until: 0,
        });
        self.stats.connections += 1;
        trace!(
            self,
            format_args!("c{caller}"),
            "connect #{id} to {addr} (w{slot}.{inc})"
        );
        let at = self.arrival(id, Side::Client);
        self.schedule(at, Ev::Syn { link: id });
        id
    }

    pub(crate) fn on_syn(&mut self, link: u32) {
        let (addr, slot, inc) = {
            let l = &self.net.links[link as usize];
            (l.addr, l.slot, l.inc)
        };
        let listening = self.net_listener(addr) == Some((slot, inc));
        if !listening {
            trace!(self, "net", "#{link}: {addr} refuses the connection");
            let at = self.arrival(link, Side::Server);
            self.schedule(
                at,
                Ev::Reset {
                    link,
                    to: Side::Client,
                    fin: false,
                },
            );
            return;
        }
        let conn = Conn::server(self.conn_config.clone(), self.now_instant())
            .expect("the simulation's connection settings are valid");
        let end = &mut self.net.links[link as usize].ends[1];
        end.conn = Some(conn);
        end.open = true;
        end.connected = true;
        self.workers[slot].links.push(link);
        trace!(self, format_args!("w{slot}"), "accept #{link}");
        let at = self.arrival(link, Side::Server);
        self.schedule(at, Ev::SynAck { link });
        self.pump(link, Side::Server);
    }

    pub(crate) fn on_syn_ack(&mut self, link: u32) {
        let end = &mut self.net.links[link as usize].ends[0];
        if !end.open {
            return;
        }
        end.connected = true;
        self.pump(link, Side::Client);
    }

    pub(crate) fn on_bytes(&mut self, link: u32, to: Side, data: Wire) {
        self.trace.mix(data.len() as u64);
        let end = &mut self.net.links[link as usize].ends[to.idx()];
        if !end.open || end.conn.is_none() {
            // The process is gone or closed the socket: the kernel answers with a reset.
            let from = &mut self.net.links[link as usize].ends[to.peer().idx()];
            from.in_flight = from.in_flight.saturating_sub(data.len());
            if from.open {
                let at = self.arrival(link, to);
                self.schedule(
                    at,
                    Ev::Reset {
                        link,
                        to: to.peer(),
                        fin: false,
                    },
                );
            }
            return;
        }
        data.hold(&mut end.held);
        if self.is_reading(link, to) {
            self.read(link, to);
        }
    }

    /// Whether the application at this end reads its socket now.
    fn is_reading(&self, link: u32, side: Side) -> bool {
        match side {
            Side::Server => true,
            Side::Client => {
                let caller = self.net.links[link as usize].caller;
                self.faults.caller_paused_until[caller] <= self.now
            }
        }
    }

    /// The application reads everything that arrived and feeds it to its machine.
    pub(crate) fn read(&mut self, link: u32, side: Side) {
        let now = self.now_instant();
        let l = &mut self.net.links[link as usize];
        let [a, b] = &mut l.ends;
        let (end, peer) = match side {
            Side::Client => (a, b),
            Side::Server => (b, a),
        };
        if end.held.is_empty() {
            return;
        }
        let read = take_held(&mut end.held, &mut end.rx);
        peer.in_flight = peer.in_flight.saturating_sub(read);
        if let Some(conn) = end.conn.as_mut() {
            conn.handle_input(&mut end.rx, now);
        }
        self.pump(link, side);
        // The window opened: the peer may write what it holds.
        self.pump(link, side.peer());
        if std::mem::take(&mut self.net.links[link as usize].ends[side.idx()].fin_pending) {
            self.on_reset(link, side, true);
        }
    }

    /// End of stream (`fin`) or a reset arrives at one end.
    pub(crate) fn on_reset(&mut self, link: u32, to: Side, fin: bool) {
        let now = self.now_instant();
        if self.net.links[link as usize].ends[to.idx()].lingering {
            // The peer closed: after reading everything (end of stream), or not (a reset:
            // it closed with data unread, or died), which the runtime's linger tells apart.
            self.close_socket(link, to, Close::LingerDone { delivered: fin });
            return;
        }
        if !fin {
            self.net.links[link as usize].ends[to.idx()].reset_in = true;
        }
        if self.is_reading(link, to) {
            self.read(link, to);
        } else if fin {
            // Read after what arrived before it, once the application reads again.
            let end = &mut self.net.links[link as usize].ends[to.idx()];
            if end.open && !end.held.is_empty() {
                end.fin_pending = true;
                return;
            }
        }
        let end = &mut self.net.links[link as usize].ends[to.idx()];
        if !end.open {
            return;
        }
        let Some(conn) = end.conn.as_mut() else {
            return;
        };
        conn.handle_transport_closed(now);
        self.pump(link, to);
        self.close_socket(link, to, Close::App);
    }

    /// Resets a connection from one end (a fault, or a process that died).
    pub(crate) fn reset(&mut self, link: u32, from: Side) {
        let end = &mut self.net.links[link as usize].ends[from.idx()];
        if !end.open {
            return;
        }
        let at = self.arrival(link, from);
        self.schedule(
            at,
            Ev::Reset {
                link,
                to: from.peer(),
                fin: false,
            },
        );
    }

    /// Closes this end's socket. What the peer gets: end of stream after the last bytes when
    /// the application closes with nothing unread, a reset when it closes with data unread
    /// (as a kernel does) or is killed or aborts, nothing more after a linger (its end of
    /// stream went out when the linger began). A server end reports whether its held answers
    /// were delivered.
    fn close_socket(&mut self, link: u32, side: Side, how: Close) {
        let end = &mut self.net.links[link as usize].ends[side.idx()];
        if !end.open {
            return;
        }
        let signal = match how {
            Close::App => Some(end.held.is_empty() && !end.fin_pending && !end.reset_in),
            Close::Abort => Some(false),
            Close::LingerDone { .. } => None,
        };
        end.open = false;
        end.lingering = false;
        end.timer = None;
        end.out = OutBuf::new();
        end.held.clear();
        end.fin_pending = false;
        if side == Side::Server {
            let delivered = matches!(how, Close::LingerDone { delivered: true });
            self.server_socket_closed(link, delivered);
        }
        let peer_open = self.net.links[link as usize].ends[side.peer().idx()].open;
        if let Some(fin) = signal
            && peer_open
        {
            let at = self.arrival(link, side);
            self.schedule(
                at,
                Ev::Reset {
                    link,
                    to: side.peer(),
                    fin,
                },
            );
        }
    }

    /// A server end's graceful close with everything written: send end of stream, then keep
    /// reading until the peer closes or `LINGER` passes (the runtime's driver does the same,
    /// so that a late frame of the peer's is not answered with a reset that would discard the
    /// answers' tails still unread).
    fn start_linger(&mut self, link: u32) {
        let end = &mut self.net.links[link as usize].ends[Side::Server.idx()];
        end.lingering = true;
        end.timer = None;
        let at = self.arrival(link, Side::Server);
        self.schedule(
            at,
            Ev::Reset {
                link,
                to: Side::Client,
                fin: true,
            },
        );
        let until = self.now + LINGER.as_nanos() as u64;
        self.schedule(until, Ev::LingerEnd { link });
    }

    /// The linger ran out with the peer still silent: the answers were written and end of
    /// stream sent; the runtime counts them delivered, and so does this.
    pub(crate) fn on_linger_end(&mut self, link: u32) {
        if self.net.links[link as usize].ends[Side::Server.idx()].lingering {
            self.close_socket(link, Side::Server, Close::LingerDone { delivered: true });
        }
    }

    /// The worker's process cuts a connection (phase 3 of its shutdown): a reset.
    pub(crate) fn abort_end(&mut self, link: u32, side: Side) {
        self.close_socket(link, side, Close::Abort);
    }

    /// A process died: its end of the connection vanishes and the peer gets a reset.
    pub(crate) fn drop_end(&mut self, link: u32, side: Side) {
        let end = &mut self.net.links[link as usize].ends[side.idx()];
        if !end.open {
            end.conn = None;
            return;
        }
        self.close_socket(link, side, Close::Abort);
        self.net.links[link as usize].ends[side.idx()].conn = None;
    }

    pub(crate) fn on_conn_timer(&mut self, link: u32, side: Side, at: u64) {
        let now = self.now_instant();
        let end = &mut self.net.links[link as usize].ends[side.idx()];
        if end.timer != Some(at) || !end.open {
            return;
        }
        end.timer = None;
        if let Some(conn) = end.conn.as_mut() {
            conn.handle_timeout(now);
        }
        self.pump(link, side);
    }

    /// Drives one end: transmit into the socket, deliver events, re-arm the timer; repeated
    /// while the application's answers to events produce more output.
    pub(crate) fn pump(&mut self, link: u32, side: Side) {
        // Not re-entrant: an application answer to an event may ask for a pump of the end
        // being pumped; the outer loop goes round once more instead of recursing.
        let end = &mut self.net.links[link as usize].ends[side.idx()];
        if end.pumping {
            end.again = true;
            return;
        }
        end.pumping = true;
        loop {
            let progress = self.pump_once(link, side);
            let end = &mut self.net.links[link as usize].ends[side.idx()];
            let again = std::mem::take(&mut end.again);
            if !progress && !again {
                break;
            }
        }
        self.net.links[link as usize].ends[side.idx()].pumping = false;
        if side == Side::Server {
            self.delivery_progress(link);
        }
        self.check_memory(link, side);
        self.finish_pump(link, side);
    }

    /// One round: transmit, then deliver every event. Whether another round may be needed.
    fn pump_once(&mut self, link: u32, side: Side) -> bool {
        let now = self.now_instant();
        let end = &mut self.net.links[link as usize].ends[side.idx()];
        if !end.open {
            return false;
        }
        let Some(conn) = end.conn.as_mut() else {
            return false;
        };
        while conn.poll_transmit(&mut end.out) {}
        if end.connected && !end.out.is_empty() {
            self.write(link, side);
        }
        let end = &mut self.net.links[link as usize].ends[side.idx()];
        let Some(conn) = end.conn.as_mut() else {
            return false;
        };
        conn.handle_written(end.out.len(), now);
        let mut any = false;
        while let Some(event) = self.net.links[link as usize].ends[side.idx()]
            .conn
            .as_mut()
            .and_then(Conn::poll_event)
        {
            any = true;
            self.on_conn_event(link, side, event);
        }
        let end = &self.net.links[link as usize].ends[side.idx()];
        end.conn
            .as_ref()
            .is_some_and(|conn| end.open && (any || conn.wants_transmit()))
    }

    /// After a pump: close a flushed socket, or arm the timer.
    fn finish_pump(&mut self, link: u32, side: Side) {
        let end = &mut self.net.links[link as usize].ends[side.idx()];
        if !end.open || end.lingering {
            return;
        }
        let Some(conn) = end.conn.as_ref() else {
            return;
        };
        if end.closing && (end.out.is_empty() || conn.is_flush_abandoned()) {
            if side == Side::Server && end.drained && end.out.is_empty() && !end.reset_in {
                self.start_linger(link);
            } else {
                self.close_socket(link, side, Close::App);
            }
            return;
        }
        if let Some(deadline) = conn.poll_timeout() {
            let at = self.ns_not_before_now(deadline);
            let end = &mut self.net.links[link as usize].ends[side.idx()];
            if end.timer.is_none_or(|armed| at < armed) {
                end.timer = Some(at);
                self.schedule(at, Ev::ConnTimer { link, side, at });
            }
        }
    }

    /// The mux links open at both ends.
    pub(crate) fn open_links(&self) -> Vec<u32> {
        (0..self.net.links.len() as u32)
            .filter(|&l| {
                let ends = &self.net.links[l as usize].ends;
                ends[0].open && ends[1].open
            })
            .collect()
    }

    /// Writes what the window takes (a partial write under the fault).
    fn write(&mut self, link: u32, side: Side) {
        let partial = self.faults.partial_writes > 0 && self.rng.chance(30);
        let end = &self.net.links[link as usize].ends[side.idx()];
        let mut n = WINDOW.saturating_sub(end.in_flight).min(end.out.len());
        if partial && n > 1 {
            n = self.rng.range(1, n as u64) as usize;
        }
        if n == 0 {
            return;
        }
        let at = self.arrival(link, side);
        let end = &mut self.net.links[link as usize].ends[side.idx()];
        let data = take_written(&mut end.out, n);
        end.in_flight += data.len();
        end.written += data.len() as u64;
        self.schedule(
            at,
            Ev::Bytes {
                link,
                to: side.peer(),
                data,
            },
        );
    }

    fn on_conn_event(&mut self, link: u32, side: Side, event: Event) {
        if let Event::Closed(reason) = &event {
            let end = &mut self.net.links[link as usize].ends[side.idx()];
            end.closing = true;
            end.drained = matches!(reason, dynrt_core::conn::CloseReason::Drained);
            trace!(self, self.node_name(link, side), "#{link} closed: {reason}");
        }
        match side {
            Side::Client => self.on_client_event(link, event),
            Side::Server => self.on_server_event(link, event),
        }
    }

    /// The output position this end has reached: bytes written plus bytes waiting in its
    /// output (everything `poll_transmit` produced so far).
    pub(crate) fn output_end(&self, link: u32, side: Side) -> u64 {
        let end = &self.net.links[link as usize].ends[side.idx()];
        end.written + end.out.len() as u64
    }

    pub(crate) fn node_name(&self, link: u32, side: Side) -> String {
        let l = &self.net.links[link as usize];
        match side {
            Side::Client => format!("c{}", l.caller),
            Side::Server => format!("w{}", l.slot),
        }
    }

    /// Memory per connection: a receiver holds at most the credit it granted, a sender at most
    /// its output limit (plus the control and END frames the core lets overtake it, recorded).
    fn check_memory(&mut self, link: u32, side: Side) {
        let Some(conn) = self.net.links[link as usize].ends[side.idx()].conn.as_ref() else {
            return;
        };
        let held = conn.held_bytes();
        let limit = conn.output_limit();
        if held > limit {
            self.max_output_overshoot = self.max_output_overshoot.max(held - limit);
            // A frame's worth over the limit is the known, bounded overshoot (control frames
            // and ENDs are queued whatever the limit); anything more is a leak.
            if held - limit > u64::from(self.conn_config.max_frame_size.min(64 * 1024)) {
                let detail =
                    format!("#{link} {side:?} holds {held} bytes of output, limit {limit}");
                self.fail(crate::Invariant::MemoryWithinCredit, detail);
            }
        }
        if side == Side::Client {
            let caller = self.net.links[link as usize].caller;
            let unreleased = self.callers[caller].unreleased_on(link);
            let credit = u64::from(self.conn_config.conn_credit);
            if unreleased > credit {
                let detail = format!(
                    "#{link}: caller c{caller} holds {unreleased} unreleased bytes, more than the {credit} bytes of credit it granted"
                );
                self.fail(crate::Invariant::MemoryWithinCredit, detail);
            }
        }
    }

    /// The worker listening at `addr`, if any.
    pub(crate) fn net_listener(&self, addr: SocketAddr) -> Option<(usize, u32)> {
        self.workers
            .iter()
            .find(|w| w.alive && w.addr == Some(addr))
            .map(|w| (w.slot, w.inc))
    }
}

/// Moves the bytes that arrived into the read buffer, as a read does; how many. (Handing a
/// single arrival over as the buffer instead of copying it cost more than it saved: the buffer
/// then has no room for the next arrival's partial frame.)
pub(crate) fn take_held(held: &mut Vec<Bytes>, rx: &mut BytesMut) -> usize {
    let mut read = 0;
    for data in held.drain(..) {
        read += data.len();
        rx.extend_from_slice(&data);
    }
    read
}

/// Bytes one write put on the wire: the output's segments as they were (no copy), or one
/// buffer.
#[derive(Debug)]
pub(crate) enum Wire {
    One(Bytes),
    Segments(Vec<Bytes>),
}

impl Wire {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::One(data) => data.len(),
            Self::Segments(segments) => segments.iter().map(Bytes::len).sum(),
        }
    }

    /// Adds the bytes to what arrived and waits to be read.
    pub(crate) fn hold(self, held: &mut Vec<Bytes>) {
        match self {
            Self::One(data) => held.push(data),
            Self::Segments(segments) => held.extend(segments),
        }
    }
}

/// Takes the first `n` bytes of `out`, as a socket takes a write of that size: the whole output
/// as its segments (no copy, as a vectored write hands them to the kernel), or a part of it
/// copied, as a kernel would.
pub(crate) fn take_written(out: &mut OutBuf, n: usize) -> Wire {
    if n == out.len() {
        return match out.segment_count() {
            0 | 1 => Wire::One(out.take_contiguous()),
            count => {
                let mut segments = Vec::with_capacity(count);
                out.drain_segments(&mut segments);
                Wire::Segments(segments)
            }
        };
    }
    let mut data = BytesMut::with_capacity(n);
    let mut slices = [std::io::IoSlice::new(&[]); 16];
    let count = out.io_slices(&mut slices);
    for slice in &slices[..count] {
        let take = (n - data.len()).min(slice.len());
        data.extend_from_slice(&slice[..take]);
        if data.len() == n {
            break;
        }
    }
    out.advance(data.len());
    Wire::One(data.freeze())
}
