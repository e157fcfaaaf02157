//! The application's commands: open, send, finish, fail, cancel, release, GOAWAY, close.

use bytes::Bytes;

use super::output::{MIN_PIECE, PER_FRAME, extend_encoded_run, queue_data};
use super::{
    CancelError, CloseReason, Conn, Event, OpenError, ReleaseError, Role, SendError, State, Stream,
};
use crate::wire::DEFAULT_COPY_THRESHOLD;
use crate::wire::mux::{
    Cancel, CancelMode, Credit, End, ErrorKind, Frame, GoAwayCode, HEADER_LEN, Request,
    StreamError, StreamId, WireStr, data_header,
};

impl Conn {
    /// Client: opens a stream with a REQUEST for endpoint `route`, with a msgpack `header`
    /// ([`crate::wire::mux::RequestHeader::to_msgpack`]) and a raw `payload`.
    ///
    /// Refused while the handshake runs, once a GOAWAY went either way, when the server's
    /// `max_streams` are open or the connection credit is short (both: wait for
    /// [`Event::CanOpen`]), or when the request can never fit this connection.
    pub fn open(
        &mut self,
        route: WireStr,
        header: Bytes,
        payload: Bytes,
    ) -> Result<StreamId, OpenError> {
        if self.role != Role::Client {
            return Err(OpenError::NotClient);
        }
        match &self.state {
            State::Handshake { .. } => return Err(OpenError::Handshaking),
            State::Closed(_) => return Err(OpenError::Closed),
            State::Open { .. } if self.is_going_away() => return Err(OpenError::GoingAway),
            State::Open { .. } => {}
        }
        let peer = self.peer.expect("Open implies the peer's HELLO arrived");
        if self.highest.0 == u32::MAX {
            return Err(OpenError::StreamIdsExhausted);
        }
        if route.len() > usize::from(u16::MAX) {
            return Err(OpenError::TooLarge {
                what: "route",
                len: route.len() as u64,
                limit: u64::from(u16::MAX),
            });
        }
        let len = 6 + route.len() as u64 + header.len() as u64 + payload.len() as u64;
        let limit = peer.max_frame_size.min(peer.conn_credit);
        if len > u64::from(limit) {
            return Err(OpenError::TooLarge {
                what: "body",
                len,
                limit: u64::from(limit),
            });
        }
        if self.open >= peer.max_streams {
            self.open_blocked = true;
            return Err(OpenError::TooManyStreams {
                limit: peer.max_streams,
            });
        }
        if len > self.send_credit {
            self.open_blocked = true;
            return Err(OpenError::Blocked {
                len,
                credit: self.send_credit,
            });
        }
        let id = StreamId(self.highest.0 + 1);
        self.highest = id;
        self.send_credit -= len;
        self.push_frame(Frame::Request(Request {
            stream: id,
            route,
            header,
            payload,
        }));
        self.streams.insert(
            id,
            Stream::Receiving {
                window: u64::from(self.config.stream_credit),
                grant: 0,
                unreleased: 0,
                item_open: false,
                stop_sent: false,
            },
        );
        self.open += 1;
        self.idle_since = None;
        Ok(id)
    }

    /// Server: sends (part of) a response item on stream `id`.
    ///
    /// Takes as much of `data` as the stream and connection credit and the output limit
    /// ([`Self::output_limit`]) allow, as DATA frames of at most the peer's frame size, and
    /// leaves the rest in `data`; returns how many bytes it took. While `data` is not empty the
    /// item is unfinished: pass the rest to the next `send_data` of this stream (after
    /// [`Event::Writable`]) before anything else. Refused with [`SendError::Blocked`] when no
    /// byte could be taken. An empty `data` sends an empty piece that ends the item (an empty
    /// item, if none was unfinished), unless the output limit is reached.
    pub fn send_data(&mut self, id: StreamId, data: &mut Bytes) -> Result<usize, SendError> {
        if self.role != Role::Server {
            return Err(SendError::NotServer);
        }
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let max_frame = u64::from(self.frame_limit());
        let limit = self.output_limit();
        let output_was_pending = self.output_pending();
        let now = self.now;
        // One map lookup per item (this runs for every item a server sends).
        let Some(Stream::Serving {
            credit,
            item_open,
            wants_write,
            blocked_since,
            ..
        }) = self.streams.get_mut(&id)
        else {
            return Err(SendError::NotOpen(id));
        };
        // Output is about to be queued: if none was waiting, the stall clock starts now.
        if !output_was_pending {
            self.last_write_progress = now;
        }
        let was_blocked = *blocked_since;
        let mut taken = 0;
        if data.is_empty() {
            let held = self.queued_cost + self.unwritten;
            if held == 0 || held + PER_FRAME <= limit {
                *item_open = false;
                self.queued_cost +=
                    queue_data(&mut self.queue, &mut self.encoded, id, false, Bytes::new());
                self.set_blocked(id, was_blocked, None);
                return Ok(0);
            }
            self.output_blocked = true;
        }
        while !data.is_empty() {
            let by_output = output_room(limit, self.queued_cost + self.unwritten, data.len());
            let room = (*credit)
                .min(self.send_credit)
                .min(max_frame)
                .min(by_output);
            if room == 0 {
                if by_output == 0 {
                    self.output_blocked = true;
                }
                break;
            }
            let n = data.len().min(room as usize);
            // The whole rest in one frame (nearly always): moved, not split (a split clones the
            // handle through its vtable and leaves an empty one to drop).
            let piece = if n == data.len() {
                std::mem::take(data)
            } else {
                data.split_to(n)
            };
            *credit -= n as u64;
            self.send_credit -= n as u64;
            *item_open = !data.is_empty();
            taken += n;
            let more = !data.is_empty();
            self.queued_cost += queue_data(&mut self.queue, &mut self.encoded, id, more, piece);
        }
        *wants_write = taken == 0 || !data.is_empty();
        let credit_left = *credit;
        // A stream's stall clock runs while it waits with nothing taken.
        let blocked = if !*wants_write {
            None
        } else if taken > 0 {
            Some(now)
        } else {
            was_blocked.or(Some(now))
        };
        self.set_blocked(id, was_blocked, blocked);
        if taken == 0 {
            return Err(SendError::Blocked {
                stream: id,
                stream_credit: credit_left,
                conn_credit: self.send_credit,
            });
        }
        Ok(taken)
    }

    /// Server: sends whole items on stream `id` in order, as [`Self::send_data`] would one
    /// after the other, and stops at the first item not taken whole (the rest of it stays in
    /// it). Returns how many items were taken whole; taken items are left empty.
    ///
    /// Errors as `send_data` for the first item (`Blocked` when not a byte of it could be
    /// taken); once an item was taken, a later refusal is the count returned.
    ///
    /// A server whose handler has several items ready hands them over in one call: small
    /// items that fit the credit and the output limit then cost one map lookup for the batch
    /// and a copy each.
    pub fn send_items(&mut self, id: StreamId, items: &mut [Bytes]) -> Result<usize, SendError> {
        let mut done = 0;
        while done < items.len() {
            done += self.send_small_items(id, &mut items[done..]);
            let Some(item) = items.get_mut(done) else {
                break;
            };
            match self.send_data(id, item) {
                Ok(_) if item.is_empty() => done += 1,
                Ok(_) => break,
                Err(SendError::Blocked { .. }) if done > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// The fast path of [`Self::send_items`]: takes the leading items that are small (encoded
    /// at once, see `output`), not empty, and fit whole in one frame within the stream and
    /// connection credit and the output limit, exactly as `send_data` would take each.
    /// Returns how many it took; anything else is left to `send_data`.
    fn send_small_items(&mut self, id: StreamId, items: &mut [Bytes]) -> usize {
        if self.role != Role::Server || self.is_closed() {
            return 0;
        }
        let max_frame = u64::from(self.frame_limit());
        let limit = self.output_limit();
        let output_was_pending = self.output_pending();
        // A stream waiting for room goes through `send_data`, which keeps its stall clock.
        let Some(Stream::Serving {
            credit,
            item_open,
            wants_write,
            blocked_since: None,
            ..
        }) = self.streams.get_mut(&id)
        else {
            return 0;
        };
        let (mut done, mut bytes) = (0, 0);
        for item in items.iter_mut() {
            let n = item.len();
            let len = n as u64;
            let held = self.queued_cost + self.unwritten;
            if n == 0
                || n >= DEFAULT_COPY_THRESHOLD
                || len > (*credit).min(self.send_credit).min(max_frame)
                || len > output_room(limit, held, n)
            {
                break;
            }
            *credit -= len;
            self.send_credit -= len;
            self.queued_cost += PER_FRAME + len;
            self.encoded
                .extend_from_slice(&data_header(id.0, false, n as u32));
            self.encoded.extend_from_slice(item);
            drop(std::mem::take(item));
            bytes += HEADER_LEN + n;
            done += 1;
        }
        if done == 0 {
            return 0;
        }
        // As `send_data` leaves a stream after an item taken whole.
        *item_open = false;
        *wants_write = false;
        if !output_was_pending {
            self.last_write_progress = self.now;
        }
        extend_encoded_run(&mut self.queue, bytes, done as u64);
        done
    }

    /// Server: ends stream `id` successfully (END). Refused while an item is half sent.
    pub fn finish(&mut self, id: StreamId) -> Result<(), SendError> {
        self.check_server_stream(id)?;
        if let Some(Stream::Serving {
            item_open: true, ..
        }) = self.streams.get(&id)
        {
            return Err(SendError::ItemIncomplete(id));
        }
        self.end_server_stream(id, Ok(()));
        Ok(())
    }

    /// Server: ends stream `id` with an error (END with ERROR), cutting short any half-sent
    /// item. A message too long for one frame is truncated.
    pub fn send_error(&mut self, id: StreamId, error: StreamError) -> Result<(), SendError> {
        self.check_server_stream(id)?;
        let limit = self.frame_limit() as usize - 2;
        let error = StreamError {
            kind: error.kind,
            message: error.message.truncated(limit),
        };
        self.end_server_stream(id, Err(error));
        Ok(())
    }

    /// Client: asks the server to stop (finish gracefully; data keeps coming until END) or to
    /// kill (abort now: `End(Cancelled)` is raised at once and the stream's later DATA is
    /// dropped) stream `id`. Stopping twice is harmless.
    pub fn cancel(&mut self, id: StreamId, mode: CancelMode) -> Result<(), CancelError> {
        if self.role != Role::Client {
            return Err(CancelError::NotClient);
        }
        let Some(Stream::Receiving {
            stop_sent,
            unreleased,
            ..
        }) = self.streams.get_mut(&id)
        else {
            return Err(CancelError::NotOpen(id));
        };
        match mode {
            CancelMode::Stop => {
                if !*stop_sent {
                    *stop_sent = true;
                    self.push_frame(Frame::Cancel(Cancel { stream: id, mode }));
                }
            }
            CancelMode::Kill => {
                let unreleased = *unreleased;
                self.streams.insert(id, Stream::Killed { unreleased });
                self.push_frame(Frame::Cancel(Cancel { stream: id, mode }));
                self.events.push_back(Event::End {
                    id,
                    result: Err(StreamError::new(
                        ErrorKind::CANCELLED,
                        WireStr::from_static("killed by this side"),
                    )),
                });
            }
        }
        Ok(())
    }

    /// Client: the application consumed `len` bytes of stream `id`'s data (delivered in
    /// [`Event::Data`]); the credit goes back to the server (in a CREDIT once half the initial
    /// credit has been released). Works after the stream ended too; a no-op once the connection
    /// is closed, and for `len == 0` (whatever `id` is: an empty item needs no release).
    ///
    /// Call it as the application takes bytes out of [`Event::Data`] pieces, not only when an
    /// item is complete: an item larger than the stream credit arrives only if its earlier
    /// pieces are released. A driver that hands items to a consumer releases when the consumer
    /// takes them, so a slow consumer slows the server (that is the memory bound).
    pub fn release(&mut self, id: StreamId, len: u64) -> Result<(), ReleaseError> {
        if self.role != Role::Client {
            return Err(ReleaseError::NotClient);
        }
        if self.is_closed() || len == 0 {
            return Ok(());
        }
        let threshold = (u64::from(self.config.stream_credit) / 2).max(1);
        let Some(stream) = self.streams.get_mut(&id) else {
            return Err(ReleaseError::UnknownStream(id));
        };
        let unreleased = stream.unreleased();
        if len > unreleased {
            return Err(ReleaseError::TooMuch {
                stream: id,
                len,
                unreleased,
            });
        }
        match stream {
            Stream::Receiving {
                window,
                grant,
                unreleased,
                ..
            } => {
                *unreleased -= len;
                *grant += len;
                if *grant >= threshold {
                    *window += *grant;
                    let credit = Frame::Credit(Credit {
                        stream: id,
                        increment: u32::try_from(*grant)
                            .expect("a grant never exceeds the stream credit (a u32)"),
                    });
                    *grant = 0;
                    self.push_control(credit);
                }
            }
            Stream::Killed { unreleased } => *unreleased -= len,
            Stream::Ended { unreleased } => {
                *unreleased -= len;
                if *unreleased == 0 {
                    self.streams.remove(&id);
                }
            }
            Stream::Serving { .. } => unreachable!("a client holds no Serving streams"),
        }
        self.grant_conn(len);
        Ok(())
    }

    /// Starts a graceful shutdown: GOAWAY `NO_ERROR`; no new streams; open ones run to
    /// completion; then [`CloseReason::Drained`]. During the handshake it closes at once.
    /// A no-op if a GOAWAY was already sent or the connection is closed.
    pub fn start_goaway(&mut self) {
        match self.state {
            State::Handshake { .. } => self.close_with(
                CloseReason::Local(WireStr::from_static("shut down during the handshake")),
                Some(GoAwayCode::NO_ERROR),
            ),
            State::Open { .. } => {
                self.send_goaway(GoAwayCode::NO_ERROR, WireStr::from_static("shutting down"));
            }
            State::Closed(_) => {}
        }
    }

    /// Closes the connection at once: queued output is dropped, a GOAWAY `CLOSED` is queued,
    /// every open stream ends (client: `End(Cancelled)`; server: `Cancelled(Kill)`).
    pub fn close(&mut self, reason: WireStr) {
        self.close_with(CloseReason::Local(reason), Some(GoAwayCode::CLOSED));
    }

    // ---------- helpers ----------

    fn check_server_stream(&self, id: StreamId) -> Result<(), SendError> {
        if self.role != Role::Server {
            return Err(SendError::NotServer);
        }
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        match self.streams.get(&id) {
            Some(Stream::Serving { .. }) => Ok(()),
            _ => Err(SendError::NotOpen(id)),
        }
    }

    /// Server: queues END for stream `id` and forgets the stream.
    pub(super) fn end_server_stream(&mut self, id: StreamId, result: Result<(), StreamError>) {
        let Some(Stream::Serving {
            request_len,
            blocked_since,
            ..
        }) = self.streams.remove(&id)
        else {
            unreachable!("callers check that the stream is Serving");
        };
        if let Some(since) = blocked_since {
            self.blocked.remove(&(since, id));
        }
        self.push_frame(Frame::End(End { stream: id, result }));
        self.grant_conn(request_len);
        self.stream_closed();
    }

    /// Connection credit released; granted back with CREDIT by [`Self::maybe_grant_conn`].
    pub(super) fn grant_conn(&mut self, len: u64) {
        self.conn_grant += len;
        self.maybe_grant_conn();
    }

    /// Sends the pending connection grant once it reaches half the initial credit, or at once
    /// while the peer's remaining credit is below the largest REQUEST it may send (so a client
    /// waiting to send a large REQUEST is never stuck behind a grant held back for batching).
    pub(super) fn maybe_grant_conn(&mut self) {
        if self.conn_grant == 0 || self.is_closed() {
            return;
        }
        let credit = u64::from(self.config.conn_credit);
        let largest_request = credit.min(u64::from(self.config.max_frame_size));
        if self.conn_grant >= (credit / 2).max(1) || self.recv_window < largest_request {
            self.recv_window += self.conn_grant;
            self.push_control(Frame::Credit(Credit {
                stream: StreamId::CONNECTION,
                increment: u32::try_from(self.conn_grant)
                    .expect("a grant never exceeds the connection credit (a u32)"),
            }));
            self.conn_grant = 0;
        }
    }
}

/// Payload bytes one more DATA frame may carry under the output limit, when `held` bytes are
/// held and `want` are offered. With nothing held one frame always goes (a limit below one
/// frame's cost cannot deadlock); a nearly full queue takes no sliver below [`MIN_PIECE`].
fn output_room(limit: u64, held: u64, want: usize) -> u64 {
    if held == 0 {
        return limit.saturating_sub(PER_FRAME).max(MIN_PIECE);
    }
    let room = limit.saturating_sub(held + PER_FRAME);
    if room < (want as u64).min(MIN_PIECE) {
        0
    } else {
        room
    }
}
