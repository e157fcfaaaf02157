//! The caller's side of one call-home connection: the worker connected to the caller's
//! response-stream server and streams the answer to one request.
//!
//! | state | input | next state, output |
//! |---|---|---|
//! | `AwaitHandshake` | header `{"subject","stream_type":"response"}` | `Claiming`; [`CallerEvent::Handshake`] |
//! | `AwaitHandshake` | anything else, EOF, timeout | `Closed`; [`CallerEvent::Failed`] |
//! | `Claiming` | `accept(codec)` / `reject()` | `AwaitPrologue` / `Closed` + `Failed(UnknownSubject)` |
//! | `AwaitPrologue` | header `{"error":null}` | `Streaming`; [`CallerEvent::Accepted`] |
//! | `AwaitPrologue` | header `{"error":"…"}` | `Closed`; [`CallerEvent::Refused`] |
//! | `AwaitPrologue` | a body, bad JSON, EOF, timeout | `Closed`; `Failed` |
//! | `AwaitPrologue`, `Streaming` | `cancel(Stop)` | writes `"stop"`; a later end without the final marker is clean |
//! | `AwaitPrologue`, `Streaming` | `cancel(Kill)` | writes `"kill"`; `Closed`; `Finished { stopped: true }` |
//! | `Streaming` | body `{"data":…,"complete_final":false}` | [`CallerEvent::Item`] |
//! | `Streaming` | body `{"complete_final":true}` | final seen |
//! | `Streaming` | header `"sentinel"`, or EOF | `Closed`; `Finished` if final seen or stopped, else `Failed(Truncated)` |
//! | `Streaming` | header `"stop"`/`"kill"`, sentinel with a body, bad item, item after final | writes `"kill"`; `Closed`; `Failed(Protocol)` |
//!
//! Frames whose header exceeds 128 KiB (the largest control message) or whose total exceeds the
//! message limit are refused before they are buffered.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::received::{ItemBody, decode_item};
use super::value::Received;
use super::{CallHomeConfig, CallHomeError, Cancel};
use crate::wire::OutBuf;
use crate::wire::dynamo::control::TypedError;
use crate::wire::dynamo::{
    CONTROL_MESSAGE_MAX_BYTES, CallHomeHandshake, ControlMessage, PayloadCodec,
    ResponseStreamPrologue, StreamType, TwoPartDecoder, TwoPartFrame,
};

/// What the caller's side of a call-home connection reports.
#[derive(Debug, Clone, PartialEq)]
pub enum CallerEvent {
    /// The worker's handshake named `subject`: claim it and call [`CallerStream::accept`], or
    /// [`CallerStream::reject`] if nobody registered it.
    Handshake {
        /// The subject from the handshake.
        subject: String,
    },
    /// The prologue said the worker took the request; items follow.
    Accepted,
    /// The prologue refused the request (the handler failed before streaming). Terminal.
    Refused {
        /// The worker's message.
        error: String,
        /// Its typed error, if it sent one.
        typed_error: Option<TypedError>,
    },
    /// One item: what the `data` of a `{"data":…,"complete_final":false}` wrapper means to a
    /// dynrt caller ([`received_item`](super::value::received_item) of it).
    Item(Received),
    /// The stream ended cleanly: after the final marker, or after a stop or kill. Terminal.
    Finished {
        /// Whether it ended because the caller stopped or killed it.
        stopped: bool,
    },
    /// The stream failed. Terminal.
    Failed(CallHomeError),
}

#[derive(Debug)]
enum State {
    AwaitHandshake {
        deadline: Instant,
    },
    Claiming {
        subject: String,
    },
    AwaitPrologue {
        deadline: Instant,
        codec: PayloadCodec,
    },
    Streaming {
        codec: PayloadCodec,
        final_seen: bool,
    },
    Closed,
}

/// The caller's side of one accepted call-home connection.
#[derive(Debug)]
pub struct CallerStream {
    config: CallHomeConfig,
    decoder: TwoPartDecoder,
    state: State,
    /// Set once the caller sent `"stop"` or `"kill"`.
    stopped: bool,
    out: VecDeque<TwoPartFrame>,
    events: VecDeque<CallerEvent>,
}

impl CallerStream {
    /// A connection the response-stream server just accepted at `now`.
    pub fn new(config: CallHomeConfig, now: Instant) -> Self {
        let deadline = now + config.handshake_timeout;
        Self {
            decoder: TwoPartDecoder::new(config.max_message_size),
            config,
            state: State::AwaitHandshake { deadline },
            stopped: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether the exchange is over; the driver closes the socket once transmit is drained.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The subject the worker named, while it is being claimed.
    pub fn claiming(&self) -> Option<&str> {
        match &self.state {
            State::Claiming { subject } => Some(subject),
            _ => None,
        }
    }

    /// The subject was registered: items will be decoded with `codec`. Returns false (and
    /// changes nothing) unless a handshake is being claimed.
    pub fn accept(&mut self, codec: PayloadCodec, now: Instant) -> bool {
        if !matches!(self.state, State::Claiming { .. }) {
            return false;
        }
        self.state = State::AwaitPrologue {
            deadline: now + self.config.prologue_timeout,
            codec,
        };
        true
    }

    /// Nobody registered the subject: the connection fails and closes.
    pub fn reject(&mut self) -> bool {
        let State::Claiming { subject } = &self.state else {
            return false;
        };
        let subject = subject.clone();
        self.fail(CallHomeError::UnknownSubject(subject));
        true
    }

    /// Asks the worker to stop or kill. Returns false when there is no stream to cancel (before
    /// the handshake was accepted, or after the end).
    pub fn cancel(&mut self, how: Cancel) -> bool {
        if !matches!(
            self.state,
            State::AwaitPrologue { .. } | State::Streaming { .. }
        ) {
            return false;
        }
        self.stopped = true;
        match how {
            Cancel::Stop => self.queue_control(ControlMessage::Stop),
            Cancel::Kill => {
                self.queue_control(ControlMessage::Kill);
                self.finish();
            }
        }
        true
    }

    /// Reads every whole frame in `input`.
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) {
        while !self.is_closed() && !matches!(self.state, State::Claiming { .. }) {
            match self.decoder.decode(input) {
                Ok(Some(frame)) => self.on_frame(frame, now),
                Ok(None) => return,
                Err(e) => {
                    self.protocol_kill(CallHomeError::Decode(e));
                    return;
                }
            }
        }
    }

    /// The connection failed (a reset, a read or write error) rather than ended. Before the
    /// final marker this is never a clean end, even after a stop: a stopped call may end at the
    /// worker's end of stream, but a worker that died before it acted on the stop did not end
    /// it (found by the simulation, seed 4399). Otherwise as [`Self::handle_eof`].
    pub fn handle_reset(&mut self, now: Instant) {
        match &self.state {
            State::Streaming {
                final_seen: false, ..
            } if self.stopped => self.fail(CallHomeError::Truncated),
            State::AwaitPrologue { .. } if self.stopped => {
                self.fail(CallHomeError::Closed("before the response-stream prologue"))
            }
            _ => self.handle_eof(now),
        }
    }

    /// The worker closed its side. (A failed socket is [`Self::handle_reset`].)
    pub fn handle_eof(&mut self, _now: Instant) {
        match &self.state {
            State::Closed => {}
            State::Streaming { final_seen, .. } if *final_seen || self.stopped => self.finish(),
            State::Streaming { .. } => self.fail(CallHomeError::Truncated),
            State::AwaitPrologue { .. } if self.stopped => self.finish(),
            State::AwaitHandshake { .. } | State::Claiming { .. } => {
                self.fail(CallHomeError::Closed("before the call-home handshake"))
            }
            State::AwaitPrologue { .. } => {
                self.fail(CallHomeError::Closed("before the response-stream prologue"))
            }
        }
    }

    /// Fails a handshake or prologue that is overdue at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::AwaitHandshake { deadline } if now >= deadline => {
                self.fail(CallHomeError::HandshakeTimeout {
                    secs: self.config.handshake_timeout.as_secs(),
                })
            }
            State::AwaitPrologue { deadline, .. } if now >= deadline => {
                let secs = self.config.prologue_timeout.as_secs();
                self.queue_control(ControlMessage::Kill);
                self.fail(CallHomeError::PrologueTimeout { secs })
            }
            _ => {}
        }
    }

    /// Appends the frames to write (`"stop"`, `"kill"`) to `out`; true if it wrote any.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut OutBuf) -> bool {
        let mut wrote = false;
        while let Some(frame) = self.out.pop_front() {
            frame.encode(self.config.checksum, out);
            wrote = true;
        }
        wrote
    }

    /// The next report.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<CallerEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must run next; the last `now` while output is queued.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitHandshake { deadline } | State::AwaitPrologue { deadline, .. } => {
                Some(deadline)
            }
            _ => None,
        }
    }

    fn on_frame(&mut self, frame: TwoPartFrame, now: Instant) {
        if frame.header.len() > CONTROL_MESSAGE_MAX_BYTES {
            return self.protocol_kill(CallHomeError::Protocol(format!(
                "control message of {} bytes exceeds the {CONTROL_MESSAGE_MAX_BYTES}-byte limit",
                frame.header.len()
            )));
        }
        match &mut self.state {
            State::AwaitHandshake { .. } => self.on_handshake(frame),
            State::AwaitPrologue { codec, .. } => {
                let codec = *codec;
                self.on_prologue(frame, codec, now)
            }
            State::Streaming { codec, final_seen } => {
                let (codec, seen) = (*codec, *final_seen);
                self.on_stream_frame(frame, codec, seen)
            }
            State::Claiming { .. } | State::Closed => {}
        }
    }

    fn on_handshake(&mut self, frame: TwoPartFrame) {
        if frame.header.is_empty() || !frame.body.is_empty() {
            return self.fail(CallHomeError::Protocol(
                "the first frame must be a header-only call-home handshake".into(),
            ));
        }
        match CallHomeHandshake::from_json(&frame.header) {
            Ok(h) if h.stream_type == StreamType::Response => {
                self.state = State::Claiming {
                    subject: h.subject.clone(),
                };
                self.events
                    .push_back(CallerEvent::Handshake { subject: h.subject });
            }
            Ok(_) => self.fail(CallHomeError::Protocol(
                "request streams are not supported (handshake stream_type is request)".into(),
            )),
            Err(e) => self.fail(CallHomeError::Decode(e)),
        }
    }

    fn on_prologue(&mut self, frame: TwoPartFrame, codec: PayloadCodec, _now: Instant) {
        if frame.header.is_empty() || !frame.body.is_empty() {
            return self.fail(CallHomeError::Protocol(
                "malformed prologue: expected a header-only control message".into(),
            ));
        }
        match ResponseStreamPrologue::from_json(&frame.header) {
            Ok(ResponseStreamPrologue { error: None, .. }) => {
                self.state = State::Streaming {
                    codec,
                    final_seen: false,
                };
                self.events.push_back(CallerEvent::Accepted);
            }
            Ok(ResponseStreamPrologue {
                error: Some(error),
                typed_error,
            }) => {
                self.state = State::Closed;
                self.events
                    .push_back(CallerEvent::Refused { error, typed_error });
            }
            Err(e) => self.fail(CallHomeError::Decode(e)),
        }
    }

    fn on_stream_frame(&mut self, frame: TwoPartFrame, codec: PayloadCodec, final_seen: bool) {
        if !frame.header.is_empty() {
            return match ControlMessage::from_json(&frame.header) {
                Ok(ControlMessage::Sentinel) if frame.body.is_empty() => {
                    if final_seen || self.stopped {
                        self.finish()
                    } else {
                        self.fail(CallHomeError::Truncated)
                    }
                }
                Ok(ControlMessage::Sentinel) => {
                    self.protocol_kill(CallHomeError::Protocol("sentinel with a body".into()))
                }
                Ok(other) => self.protocol_kill(CallHomeError::Protocol(format!(
                    "the worker sent {other:?}, which only a caller may send"
                ))),
                Err(e) => self.protocol_kill(CallHomeError::Decode(e)),
            };
        }
        if frame.body.is_empty() {
            // An empty frame carries nothing; 1.6.1 skips it too.
            return;
        }
        if final_seen {
            return self.protocol_kill(CallHomeError::Protocol(
                "response received after generation ended".into(),
            ));
        }
        match decode_item(codec, &frame.body) {
            Ok(ItemBody {
                complete_final: true,
                data,
            }) => {
                if let Some(data) = data {
                    self.events.push_back(CallerEvent::Item(data));
                }
                self.state = State::Streaming {
                    codec,
                    final_seen: true,
                };
            }
            Ok(ItemBody {
                data: Some(data), ..
            }) => self.events.push_back(CallerEvent::Item(data)),
            Ok(ItemBody { data: None, .. }) => self.protocol_kill(CallHomeError::Protocol(
                "empty response received (no data, not final)".into(),
            )),
            Err(e) => self.protocol_kill(CallHomeError::Decode(e)),
        }
    }

    fn queue_control(&mut self, message: ControlMessage) {
        self.out
            .push_back(TwoPartFrame::header_only(Bytes::from_static(
                message.json(),
            )));
    }

    /// A protocol violation after the stream was set up: tell the worker to stop work (as 1.6.1
    /// does) and fail.
    fn protocol_kill(&mut self, error: CallHomeError) {
        if matches!(
            self.state,
            State::Streaming { .. } | State::AwaitPrologue { .. }
        ) {
            self.queue_control(ControlMessage::Kill);
        }
        self.fail(error);
    }

    fn finish(&mut self) {
        self.state = State::Closed;
        self.events.push_back(CallerEvent::Finished {
            stopped: self.stopped,
        });
    }

    fn fail(&mut self, error: CallHomeError) {
        self.state = State::Closed;
        self.events.push_back(CallerEvent::Failed(error));
    }
}
