//! The worker's side of one call-home connection: after it accepted a request, the worker
//! connects to the caller's response-stream server and streams the answer.
//!
//! | state | input | next state, output |
//! |---|---|---|
//! | (new, connected) | — | `AwaitPrologue`; writes the handshake |
//! | `AwaitPrologue` | `send_prologue(Ok)` | `Streaming`; writes `{"error":null}` |
//! | `AwaitPrologue` | `send_prologue(Err)` | `Draining`; writes the error prologue and `"sentinel"` |
//! | `Streaming` | `send_item` | writes `{"data":…,"complete_final":false}` |
//! | `Streaming` | `finish` | `Draining`; writes `{"complete_final":true}` and `"sentinel"` |
//! | `AwaitPrologue`, `Streaming` | header `"stop"` / `"kill"` | `Closed`; [`WorkerEvent::Cancelled`]; nothing more is written (no final, no sentinel) |
//! | `AwaitPrologue`, `Streaming` | EOF, any other frame | `Closed`; `Cancelled(Kill)` (1.6.1 kills the work) |
//! | any | `handle_write_failed` | `Closed`; [`WorkerEvent::Failed`]; no sentinel |
//! | `Draining` | EOF | `Closed`; [`WorkerEvent::Done`] |
//! | `Draining` | the close timeout | `Closed`; [`WorkerEvent::CloseTimedOut`] |

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::value::{
    ItemJson, annotated_data, ascii_json_string_into, bytes_json, json_string_into,
};
use super::{CallHomeConfig, CallHomeError, Cancel};
use crate::wire::dynamo::{
    CONTROL_MESSAGE_MAX_BYTES, CallHomeHandshake, ControlMessage, PayloadCodec,
    ResponseStreamPrologue, StreamItem, StreamType, TwoPartDecoder, TwoPartFrame,
};
use crate::wire::{EncodeError, OutBuf};

/// What the worker's side reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEvent {
    /// The caller sent `"stop"` or `"kill"` (or went away): stop producing. Terminal.
    Cancelled(Cancel),
    /// The stream ended cleanly: the sentinel was written and the caller closed.
    Done,
    /// The sentinel was written but the caller did not close within the close timeout. A
    /// caller closes once it read the sentinel, so it may never have read the answer (it
    /// stopped reading, or had given the call up before the worker connected): the exchange
    /// is over, and the answer is not known delivered. Terminal.
    CloseTimedOut,
    /// Writing failed. Terminal.
    Failed(CallHomeError),
}

/// Why an item or a marker could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerSendError {
    /// The call is not in a state that takes this (before the prologue, after the end).
    #[error("the response stream is not open for {0}")]
    NotOpen(&'static str),
    /// The item is not JSON, or does not fit the codec or the size limit.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

#[derive(Debug)]
enum State {
    AwaitPrologue,
    Streaming,
    Draining { deadline: Option<Instant> },
    Closed,
}

/// The worker's side of one call-home connection.
#[derive(Debug)]
pub struct WorkerStream {
    config: CallHomeConfig,
    codec: PayloadCodec,
    decoder: TwoPartDecoder,
    state: State,
    out: VecDeque<TwoPartFrame>,
    events: VecDeque<WorkerEvent>,
}

impl WorkerStream {
    /// The worker connected to the caller for `subject`; items will be encoded with `codec`.
    /// Queues the handshake.
    pub fn new(subject: &str, codec: PayloadCodec, config: CallHomeConfig) -> Self {
        let handshake = CallHomeHandshake {
            subject: subject.to_owned(),
            stream_type: StreamType::Response,
        };
        let header = handshake.to_json();
        let mut out = VecDeque::new();
        out.push_back(TwoPartFrame::header_only(Bytes::from(header)));
        Self {
            decoder: TwoPartDecoder::new(CONTROL_MESSAGE_MAX_BYTES),
            config,
            codec,
            state: State::AwaitPrologue,
            out,
            events: VecDeque::new(),
        }
    }

    /// Whether the exchange is over; the driver closes the socket once transmit is drained.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether items may be sent now.
    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming)
    }

    /// Writes the prologue: `Ok` opens the stream, `Err` refuses the request and ends it.
    pub fn send_prologue(
        &mut self,
        prologue: &ResponseStreamPrologue,
    ) -> Result<(), WorkerSendError> {
        if !matches!(self.state, State::AwaitPrologue) {
            return Err(WorkerSendError::NotOpen("a prologue"));
        }
        let header = prologue.to_json()?;
        self.out
            .push_back(TwoPartFrame::header_only(Bytes::from(header)));
        if prologue.error.is_some() {
            // 1.6.1 drops its sender after an error prologue, which writes the sentinel.
            self.queue_control(ControlMessage::Sentinel);
            self.state = State::Draining { deadline: None };
        } else {
            self.state = State::Streaming;
        }
        Ok(())
    }

    /// Writes one item whose data is the JSON text `json` (for example an `Annotated`), as
    /// `{"data":<json>,"complete_final":false}` in the request's codec. `json` is checked: it
    /// comes from outside the mapping (for a handler's item, [`Self::send_handler_item`] writes
    /// the same bytes without reading its own JSON again).
    pub fn send_item_json(&mut self, json: &[u8]) -> Result<(), WorkerSendError> {
        if !self.is_streaming() {
            return Err(WorkerSendError::NotOpen("items"));
        }
        let body = match self.codec {
            PayloadCodec::Json => {
                serde_json::from_slice::<serde::de::IgnoredAny>(json).map_err(|e| {
                    EncodeError::Serialize {
                        what: "response item",
                        reason: format!("not JSON: {e}"),
                    }
                })?;
                let mut body = Vec::with_capacity(ITEM_HEAD.len() + json.len() + ITEM_TAIL.len());
                body.extend_from_slice(ITEM_HEAD);
                body.extend_from_slice(json);
                body.extend_from_slice(ITEM_TAIL);
                Bytes::from(body)
            }
            PayloadCodec::Msgpack => msgpack_item(json)?,
        };
        self.push_item(body)
    }

    /// Writes a handler's item as Dynamo's `Annotated` carrying it,
    /// `{"data":<item_to_json(item)>}` (see [`value`](super::value)): the same bytes as
    /// `send_item_json(&annotated_data(&item_to_json(item)))`, built in one buffer. The JSON is
    /// the mapping's own, valid by construction, so it is not parsed again; a text item in
    /// msgpack is encoded as a string without going through a JSON value.
    pub fn send_handler_item(&mut self, item: &[u8]) -> Result<(), WorkerSendError> {
        if !self.is_streaming() {
            return Err(WorkerSendError::NotOpen("items"));
        }
        if self.codec == PayloadCodec::Json {
            const ANNOTATED: &[u8] = br#"{"data":"#;
            let len = ITEM_HEAD.len() + ANNOTATED.len() + item.len() + 3 + ITEM_TAIL.len();
            let mut body = Vec::with_capacity(len);
            body.extend_from_slice(ITEM_HEAD);
            body.extend_from_slice(ANNOTATED);
            if ItemJson::is_json(item) {
                body.extend_from_slice(item);
            } else if !ascii_json_string_into(item, &mut body) {
                // Not ASCII: UTF-8 text, or bytes (`ItemJson::of` without its JSON test).
                match std::str::from_utf8(item) {
                    Ok(text) => json_string_into(text, &mut body),
                    Err(_) => body.extend_from_slice(&bytes_json(item)),
                }
            }
            body.push(b'}');
            body.extend_from_slice(ITEM_TAIL);
            return self.push_item(Bytes::from(body));
        }
        let body = if ItemJson::is_json(item) {
            msgpack_item(&annotated_data(item))?
        } else if let Some(body) = msgpack_text_item(item) {
            body?
        } else {
            msgpack_item(&annotated_data(&bytes_json(item)))?
        };
        self.push_item(body)
    }

    /// Queues an item's encoded body, if the frame fits the message limit.
    fn push_item(&mut self, body: Bytes) -> Result<(), WorkerSendError> {
        let frame = TwoPartFrame::body_only(body);
        if frame.encoded_len() > self.config.max_message_size {
            return Err(EncodeError::TooLarge {
                what: "response item",
                len: frame.encoded_len() as u64,
                limit: self.config.max_message_size as u64,
            }
            .into());
        }
        self.out.push_back(frame);
        Ok(())
    }

    /// Ends the stream cleanly: the final marker, then the sentinel.
    pub fn finish(&mut self) -> Result<(), WorkerSendError> {
        if !self.is_streaming() {
            return Err(WorkerSendError::NotOpen("the final marker"));
        }
        let last = self.codec.encode(&StreamItem::<()>::complete_final())?;
        self.out
            .push_back(TwoPartFrame::body_only(Bytes::from(last)));
        self.queue_control(ControlMessage::Sentinel);
        self.state = State::Draining { deadline: None };
        Ok(())
    }

    /// Reads the caller's control messages.
    pub fn handle_input(&mut self, input: &mut BytesMut, _now: Instant) {
        while !self.is_closed() {
            let frame = match self.decoder.decode(input) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(_) => return self.cancel(Cancel::Kill),
            };
            if matches!(self.state, State::Draining { .. }) {
                // The caller may still say stop after our sentinel; nothing is left to stop.
                continue;
            }
            let control = (!frame.header.is_empty() && frame.body.is_empty())
                .then(|| ControlMessage::from_json(&frame.header).ok())
                .flatten();
            match control {
                Some(ControlMessage::Stop) => self.cancel(Cancel::Stop),
                // A kill, and anything a caller must not send (sentinel, data, bad JSON): 1.6.1
                // kills the work.
                _ => self.cancel(Cancel::Kill),
            }
        }
    }

    /// The caller closed its side (or the socket failed).
    pub fn handle_eof(&mut self, _now: Instant) {
        match self.state {
            State::Closed => {}
            State::Draining { .. } => {
                self.state = State::Closed;
                self.events.push_back(WorkerEvent::Done);
            }
            State::AwaitPrologue | State::Streaming => self.cancel(Cancel::Kill),
        }
    }

    /// A write failed: nothing more is written, not even the sentinel.
    pub fn handle_write_failed(&mut self, reason: &str) {
        if self.is_closed() {
            return;
        }
        self.out.clear();
        self.state = State::Closed;
        self.events
            .push_back(WorkerEvent::Failed(CallHomeError::Protocol(format!(
                "write to the caller failed: {reason}"
            ))));
    }

    /// Ends a drain that outlived the close timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Draining {
            deadline: Some(deadline),
        } = self.state
            && now >= deadline
        {
            self.state = State::Closed;
            self.events.push_back(WorkerEvent::CloseTimedOut);
        }
    }

    /// Appends the frames to write to `out`; true if it wrote any. Once the sentinel is
    /// written, the close timeout starts at `now`.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut OutBuf, now: Instant) -> bool {
        let mut wrote = false;
        while let Some(frame) = self.out.pop_front() {
            frame.encode(self.config.checksum, out);
            wrote = true;
        }
        if let State::Draining { deadline: None } = self.state {
            self.state = State::Draining {
                deadline: Some(now + self.config.close_timeout),
            };
        }
        wrote
    }

    /// Frames queued and not yet handed to [`Self::poll_transmit`].
    pub fn queued_frames(&self) -> usize {
        self.out.len()
    }

    /// The next report.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<WorkerEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Draining { deadline } => deadline,
            _ => None,
        }
    }

    fn cancel(&mut self, how: Cancel) {
        self.out.clear();
        self.state = State::Closed;
        self.events.push_back(WorkerEvent::Cancelled(how));
    }

    fn queue_control(&mut self, message: ControlMessage) {
        self.out
            .push_back(TwoPartFrame::header_only(Bytes::from_static(
                message.json(),
            )));
    }
}

/// The JSON body of an item: `ITEM_HEAD`, its data, `ITEM_TAIL`.
const ITEM_HEAD: &[u8] = br#"{"data":"#;
const ITEM_TAIL: &[u8] = br#","complete_final":false}"#;

/// The msgpack body of a text item, `{"data":{"data":<text>},"complete_final":false}`, byte
/// for byte what rmp_serde's named encoding of `StreamItem::data(Annotated { data: text })`
/// writes (maps with their keys as strings, the string's length in its shortest header), in
/// one buffer of its exact size. `None` if `item` is not UTF-8 text, or too long for a msgpack
/// string. ASCII (what tokens nearly always are) is UTF-8 without the full check.
fn msgpack_text_item(item: &[u8]) -> Option<Result<Bytes, WorkerSendError>> {
    const HEAD: &[u8] = b"\x82\xa4data\x81\xa4data";
    const TAIL: &[u8] = b"\xaecomplete_final\xc2";
    if !item.is_ascii() && std::str::from_utf8(item).is_err() {
        return None;
    }
    let Ok(len) = u32::try_from(item.len()) else {
        // Beyond any message limit; rmp_serde's own encoding says what it says.
        return Some(msgpack_annotated_text(item));
    };
    let mut body = Vec::with_capacity(HEAD.len() + 5 + item.len() + TAIL.len());
    body.extend_from_slice(HEAD);
    match len {
        0..32 => body.push(0xa0 | len as u8),
        32..256 => body.extend_from_slice(&[0xd9, len as u8]),
        256..65536 => {
            body.push(0xda);
            body.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            body.push(0xdb);
            body.extend_from_slice(&len.to_be_bytes());
        }
    }
    body.extend_from_slice(item);
    body.extend_from_slice(TAIL);
    Some(Ok(Bytes::from(body)))
}

/// [`msgpack_text_item`] through rmp_serde.
fn msgpack_annotated_text(item: &[u8]) -> Result<Bytes, WorkerSendError> {
    /// `Annotated` with only its data, as a JSON value `{"data":…}` encodes.
    #[derive(serde::Serialize)]
    struct Annotated<'a> {
        data: &'a str,
    }
    let text = std::str::from_utf8(item).map_err(|e| EncodeError::Serialize {
        what: "msgpack payload",
        reason: e.to_string(),
    })?;
    let mut body = Vec::new();
    rmp_serde::encode::write_named(&mut body, &StreamItem::data(Annotated { data: text }))
        .map_err(|e| EncodeError::Serialize {
            what: "msgpack payload",
            reason: e.to_string(),
        })?;
    Ok(Bytes::from(body))
}

/// The msgpack body of an item whose data is the JSON text `json`, transcoded through a value.
fn msgpack_item(json: &[u8]) -> Result<Bytes, WorkerSendError> {
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| EncodeError::Serialize {
            what: "response item",
            reason: format!("not JSON: {e}"),
        })?;
    Ok(Bytes::from(
        PayloadCodec::Msgpack.encode(&StreamItem::data(value))?,
    ))
}
