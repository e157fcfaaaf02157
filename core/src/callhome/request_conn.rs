//! The request connection: the caller writes request frames, the worker answers each with an
//! ack. Acks carry no id; they answer the requests of a connection in order (FIFO).
//!
//! Caller ([`RequestSender`]):
//!
//! | state | input | output |
//! |---|---|---|
//! | open | `send(frame)` | frame queued; a token for its ack |
//! | open | an ack | [`AckEvent::Acked`] for the oldest request waiting |
//! | open | an ack with no request waiting, bad bytes, EOF, the oldest ack overdue | closed; [`AckEvent::Failed`] for every request waiting |
//!
//! Worker ([`RequestReceiver`]):
//!
//! | state | input | output |
//! |---|---|---|
//! | open | a request frame | [`RequestEvent::Request`] with its sequence number; the driver must `ack` it |
//! | open | a frame whose path is not UTF-8 | ack `Invalid endpoint path`, connection stays open |
//! | open | bad bytes (too large, bad lengths) | ack `Read error: …`, then closed |
//! | open | `ack(seq, ack)` | acks written in sequence order, however they were answered |
//! | open | EOF | closed once every ack is written |

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::BytesMut;

use super::{CallHomeConfig, CallHomeError};
use crate::wire::dynamo::{AckDecoder, AckFrame, RequestDecoder, RequestFrame};
use crate::wire::{DecodeError, OutBuf};

/// What the caller's side of a request connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckEvent {
    /// The worker answered request `token`.
    Acked {
        /// The token [`RequestSender::send`] returned.
        token: u64,
        /// Empty = accepted; otherwise the worker's error text.
        ack: AckFrame,
    },
    /// Request `token` will never be answered: the connection failed.
    Failed {
        /// The token.
        token: u64,
        /// Why.
        error: CallHomeError,
    },
}

/// The caller's side of one request connection.
#[derive(Debug)]
pub struct RequestSender {
    config: CallHomeConfig,
    decoder: AckDecoder,
    next_token: u64,
    queued: VecDeque<RequestFrame>,
    /// Requests written or queued and not yet acked, oldest first, with their ack deadlines.
    waiting: VecDeque<(u64, Instant)>,
    events: VecDeque<AckEvent>,
    closed: Option<CallHomeError>,
}

impl RequestSender {
    /// A connection just established.
    pub fn new(config: CallHomeConfig) -> Self {
        Self {
            decoder: AckDecoder::new(config.max_message_size),
            config,
            next_token: 0,
            queued: VecDeque::new(),
            waiting: VecDeque::new(),
            events: VecDeque::new(),
            closed: None,
        }
    }

    /// Why the connection is closed, if it is.
    pub fn closed(&self) -> Option<&CallHomeError> {
        self.closed.as_ref()
    }

    /// Requests waiting for their ack.
    pub fn in_flight(&self) -> usize {
        self.waiting.len()
    }

    /// Queues `frame`; returns the token its [`AckEvent`] will carry, or the error that closed
    /// the connection.
    pub fn send(&mut self, frame: RequestFrame, now: Instant) -> Result<u64, CallHomeError> {
        if let Some(e) = &self.closed {
            return Err(e.clone());
        }
        let token = self.next_token;
        self.next_token += 1;
        self.queued.push_back(frame);
        self.waiting
            .push_back((token, now + self.config.ack_timeout));
        Ok(token)
    }

    /// Appends the queued frames to `out`; true if it wrote any.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut OutBuf) -> bool {
        let mut wrote = false;
        while let Some(frame) = self.queued.pop_front() {
            frame.encode(out);
            wrote = true;
        }
        wrote
    }

    /// Reads the acks in `input`.
    pub fn handle_input(&mut self, input: &mut BytesMut, _now: Instant) {
        while self.closed.is_none() {
            match self.decoder.decode(input) {
                Ok(Some(ack)) => match self.waiting.pop_front() {
                    Some((token, _)) => self.events.push_back(AckEvent::Acked { token, ack }),
                    None => {
                        return self.close(CallHomeError::Protocol(
                            "an ack arrived with no request waiting".into(),
                        ));
                    }
                },
                Ok(None) => return,
                Err(e) => return self.close(CallHomeError::Decode(e)),
            }
        }
    }

    /// The worker closed the connection (or the socket failed).
    pub fn handle_eof(&mut self, _now: Instant) {
        self.close(CallHomeError::Closed(
            "by the worker before every request was acked",
        ));
    }

    /// Fails the connection when its oldest ack is overdue: a later ack could no longer be
    /// matched to its request, so every request waiting fails.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(&(_, deadline)) = self.waiting.front()
            && now >= deadline
        {
            let secs = self.config.ack_timeout.as_secs();
            self.close(CallHomeError::AckTimeout { secs });
        }
    }

    /// The next report.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<AckEvent> {
        self.events.pop_front()
    }

    /// The oldest ack deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        self.waiting.front().map(|&(_, deadline)| deadline)
    }

    fn close(&mut self, error: CallHomeError) {
        if self.closed.is_some() {
            return;
        }
        self.queued.clear();
        for (token, _) in self.waiting.drain(..) {
            self.events.push_back(AckEvent::Failed {
                token,
                error: error.clone(),
            });
        }
        self.closed = Some(error);
    }
}

/// What the worker's side of a request connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEvent {
    /// A request arrived; answer it with [`RequestReceiver::ack`] and this `seq`.
    Request {
        /// Its position on the connection.
        seq: u64,
        /// The frame.
        frame: RequestFrame,
    },
    /// The caller's bytes were not request frames; the connection closes after the error ack.
    Failed(CallHomeError),
}

/// The worker's side of one request connection.
#[derive(Debug)]
pub struct RequestReceiver {
    decoder: RequestDecoder,
    next_seq: u64,
    /// The next sequence number to write an ack for.
    next_ack: u64,
    /// Acks given for later sequence numbers, waiting for the earlier ones.
    answered: BTreeMap<u64, AckFrame>,
    events: VecDeque<RequestEvent>,
    eof: bool,
    failed: bool,
}

impl RequestReceiver {
    /// A connection just accepted; frames over `max_message_size` are refused.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            decoder: RequestDecoder::new(max_message_size),
            next_seq: 0,
            next_ack: 0,
            answered: BTreeMap::new(),
            events: VecDeque::new(),
            eof: false,
            failed: false,
        }
    }

    /// Requests read and not yet acked.
    pub fn unacked(&self) -> u64 {
        self.next_seq - self.next_ack
    }

    /// Whether the connection is done: it failed or the caller closed, and every ack is written.
    pub fn is_closed(&self) -> bool {
        (self.eof || self.failed) && self.unacked() == 0
    }

    /// Reads the request frames in `input`.
    pub fn handle_input(&mut self, input: &mut BytesMut, _now: Instant) {
        while !self.failed && !self.eof {
            match self.decoder.decode(input) {
                Ok(Some(frame)) => {
                    let seq = self.take_seq();
                    self.events.push_back(RequestEvent::Request { seq, frame });
                }
                Ok(None) => return,
                Err(DecodeError::InvalidUtf8 { .. }) if self.decoder.skip_frame(input) => {
                    let seq = self.take_seq();
                    self.answered
                        .insert(seq, AckFrame::rejected("Invalid endpoint path"));
                }
                Err(e) => {
                    let seq = self.take_seq();
                    self.answered
                        .insert(seq, AckFrame::rejected(&format!("Read error: {e}")));
                    self.failed = true;
                    self.events
                        .push_back(RequestEvent::Failed(CallHomeError::Decode(e)));
                }
            }
        }
    }

    /// The caller closed its side.
    pub fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
    }

    /// Answers request `seq`. Returns false for a sequence number that is not waiting.
    pub fn ack(&mut self, seq: u64, ack: AckFrame) -> bool {
        if seq < self.next_ack || seq >= self.next_seq || self.answered.contains_key(&seq) {
            return false;
        }
        self.answered.insert(seq, ack);
        true
    }

    /// Appends the acks that are next in order to `out`; true if it wrote any.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut OutBuf) -> bool {
        let mut wrote = false;
        while let Some(ack) = self.answered.remove(&self.next_ack) {
            out.with_buf(|buf| {
                ack.encode(buf)
                    .expect("ack texts are ours and far below 4 GiB")
            });
            self.next_ack += 1;
            wrote = true;
        }
        wrote
    }

    /// The next report.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<RequestEvent> {
        self.events.pop_front()
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }
}
