//! The messages carried inside two-part frames, as serde types whose JSON is byte-for-byte what
//! dynamo-runtime 1.6.1 writes (field names, field order and omission rules mirror its structs
//! in `src/pipeline/network.rs` and `src/pipeline/network/tcp.rs`).

use std::collections::BTreeMap;

use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::control_json;
use crate::wire::{DecodeError, EncodeError};

/// The transport name in [`ConnectionInfo`] for Dynamo's TCP call-home response streams.
pub const TCP_TRANSPORT: &str = "tcp_server";

/// How request bodies and response items are encoded (`payload_codec` in the control message).
///
/// A control message without the field means JSON (serde default, as in 1.6.1). What a sender
/// *chooses* is configuration: 1.6.1 sends msgpack unless `DYN_REQUEST_PLANE_CODEC=json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadCodec {
    /// JSON (`serde_json`).
    #[default]
    Json,
    /// MessagePack with field names (`rmp_serde::to_vec_named`).
    Msgpack,
}

impl PayloadCodec {
    /// The name used on the wire and in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Msgpack => "msgpack",
        }
    }

    /// Encodes `value` with this codec.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, EncodeError> {
        let result = match self {
            Self::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Self::Msgpack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
        };
        result.map_err(|reason| EncodeError::Serialize {
            what: self.what(),
            reason,
        })
    }

    /// Decodes a `T` encoded with this codec.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        let result = match self {
            Self::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Self::Msgpack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        };
        result.map_err(|reason| DecodeError::Malformed {
            what: self.what(),
            reason,
        })
    }

    fn what(self) -> &'static str {
        match self {
            Self::Json => "JSON payload",
            Self::Msgpack => "msgpack payload",
        }
    }
}

/// Whether the request side is one item or a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestType {
    /// One request item.
    SingleIn,
    /// A stream of request items.
    ManyIn,
}

/// Whether the response side is one item or a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    /// One response item.
    SingleOut,
    /// A stream of response items.
    ManyOut,
}

/// Which direction a call-home stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamType {
    /// Caller → worker (request streaming).
    Request,
    /// Worker → caller (responses).
    Response,
}

/// Where the worker must connect to deliver a stream. For TCP, `info` is itself a JSON document
/// (a [`TcpStreamConnectionInfo`]) encoded as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// The transport name, `tcp_server` for TCP.
    pub transport: String,
    /// Transport-specific details, as a string.
    pub info: String,
}

/// The TCP details inside [`ConnectionInfo::info`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpStreamConnectionInfo {
    /// `ip:port` of the caller's response-stream server.
    pub address: String,
    /// A per-stream id (a UUID in Dynamo) the worker repeats in its [`CallHomeHandshake`].
    pub subject: String,
    /// The request id.
    pub context: String,
    /// The direction of the stream.
    pub stream_type: StreamType,
}

impl TcpStreamConnectionInfo {
    /// Wraps these details into the [`ConnectionInfo`] a request control message carries.
    pub fn to_connection_info(&self) -> ConnectionInfo {
        let mut info = String::with_capacity(
            64 + self.address.len() + self.subject.len() + self.context.len(),
        );
        control_json::write_tcp_info(self, &mut info);
        ConnectionInfo {
            transport: TCP_TRANSPORT.to_owned(),
            info,
        }
    }

    /// Reads the TCP details out of a [`ConnectionInfo`].
    pub fn from_connection_info(info: &ConnectionInfo) -> Result<Self, DecodeError> {
        if info.transport != TCP_TRANSPORT {
            return Err(DecodeError::Malformed {
                what: "connection_info",
                reason: format!(
                    "transport is '{}', expected '{TCP_TRANSPORT}'",
                    info.transport
                ),
            });
        }
        if let Some(tcp) = control_json::read_tcp_info(info.info.as_bytes()) {
            return Ok(tcp);
        }
        serde_json::from_str(&info.info).map_err(|e| DecodeError::Malformed {
            what: "connection_info.info",
            reason: e.to_string(),
        })
    }
}

/// The header of the two-part frame inside a request frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestControlMessage {
    /// The request id.
    pub id: String,
    /// One request item or a stream.
    pub request_type: RequestType,
    /// One response item or a stream.
    pub response_type: ResponseType,
    /// How the body and the response items are encoded.
    #[serde(default)]
    pub payload_codec: PayloadCodec,
    /// Where the worker sends the responses.
    pub connection_info: ConnectionInfo,
    /// Free-form metadata (trace context and the like); omitted when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// When the frontend sent the request, in nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_send_ts_ns: Option<u64>,
    /// Where the worker fetches a request stream from, for streamed requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_stream_connection_info: Option<ConnectionInfo>,
}

impl RequestControlMessage {
    /// Appends the message as JSON to `out`, byte for byte what serde_json writes for it,
    /// without serde_json's generic path (the message is on every request).
    pub fn write_json(&self, out: &mut BytesMut) {
        control_json::write_request_control(self, out);
    }

    /// The message as JSON (what [`Self::write_json`] appends).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.write_json(&mut out);
        out.into()
    }

    /// Parses a message as serde_json would (the same values, the same errors), in one pass
    /// over the bytes for the shape senders write; anything else goes through serde_json.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        match control_json::read_request_control(bytes) {
            Some(message) => Ok(message),
            None => from_json("request control message", bytes),
        }
    }
}

/// The first frame on a call-home connection: which registered stream this socket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallHomeHandshake {
    /// The subject from [`TcpStreamConnectionInfo::subject`].
    pub subject: String,
    /// The direction of the stream.
    pub stream_type: StreamType,
}

impl CallHomeHandshake {
    /// The JSON header serde_json writes for it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(48 + self.subject.len());
        out.put_slice(b"{\"subject\":");
        super::json::write_str(&self.subject, &mut out);
        out.put_slice(match self.stream_type {
            StreamType::Request => b",\"stream_type\":\"request\"}",
            StreamType::Response => b",\"stream_type\":\"response\"}",
        });
        out.to_vec()
    }

    /// Reads a handshake header: in the layout [`Self::to_json`] writes, with a subject that
    /// needs no unescaping, without a parser; anything else is read (or refused) by serde_json.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        match control_json::read_handshake(bytes) {
            Some(handshake) => Ok(handshake),
            None => from_json("call-home handshake", bytes),
        }
    }
}

/// An accepted request's prologue, as serde_json writes it.
const PROLOGUE_OK: &[u8] = b"{\"error\":null}";

/// The second frame of a response stream: whether the worker took the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseStreamPrologue {
    /// `None` (written as `null`) when the request was accepted, otherwise why not.
    pub error: Option<String>,
    /// A structured error (Dynamo's `DynamoError` JSON), re-encoded in 1.6.1's field order.
    /// Omitted when absent; older senders never write it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_error: Option<TypedError>,
}

impl ResponseStreamPrologue {
    /// The prologue of an accepted request: `{"error":null}`.
    pub fn ok() -> Self {
        Self {
            error: None,
            typed_error: None,
        }
    }

    /// The JSON header serde_json writes for it; an accepted request's is a constant.
    pub fn to_json(&self) -> Result<Vec<u8>, EncodeError> {
        if *self == Self::ok() {
            return Ok(PROLOGUE_OK.to_vec());
        }
        serde_json::to_vec(self).map_err(|e| EncodeError::Serialize {
            what: "response-stream prologue",
            reason: e.to_string(),
        })
    }

    /// Reads a prologue header: an accepted request's exact spelling is matched whole,
    /// anything else is read (or refused) by serde_json.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes == PROLOGUE_OK {
            return Ok(Self::ok());
        }
        from_json("response-stream prologue", bytes)
    }

    /// The prologue of a refused request.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            error: Some(message.into()),
            typed_error: None,
        }
    }
}

/// Dynamo's serialised `DynamoError`, with its fields in the order 1.6.1 writes them:
/// `error_type, class, reason, message, diagnostic, public, caused_by`. All are optional on
/// read (1.6.1's reader accepts any subset); fields this version does not know are kept and
/// written after the known ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TypedError {
    /// The legacy error type (`"Unknown"`, `"InvalidArgument"`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The canonical class (`"Internal"`, `"InvalidRequest"`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The registered reason key (`"runtime.internal"`, `"request.invalid"`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The operator-facing diagnostic (1.6.1 writes the message again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
    /// Client-safe details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<serde_json::Value>,
    /// The error this one wraps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Box<Self>>,
    /// Fields a later version added.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl TypedError {
    /// The error 1.6.1 writes for an error of class `class` (one of its `ErrorClass` names)
    /// with `message`. Classes dynrt does not map become `Internal`, so a 1.6.1 reader never
    /// sees a class/reason pair it would reject.
    pub fn new(class: &str, message: impl Into<String>) -> Self {
        let (error_type, class, reason) = match class {
            "InvalidArgument" | "InvalidRequest" => {
                ("InvalidArgument", "InvalidRequest", "request.invalid")
            }
            "Cancelled" => ("Cancelled", "Cancelled", "request.cancelled"),
            "NotFound" => ("Unknown", "NotFound", "request.not_found"),
            "Unavailable" => ("Unavailable", "Unavailable", "backend.unavailable"),
            "WorkerUnavailable" => (
                "WorkerUnavailable",
                "Unavailable",
                "backend.worker_unavailable",
            ),
            _ => ("Unknown", "Internal", "runtime.internal"),
        };
        let message = message.into();
        Self {
            error_type: Some(error_type.to_owned()),
            class: Some(class.to_owned()),
            reason: Some(reason.to_owned()),
            message: Some(message.clone()),
            diagnostic: Some(message),
            ..Self::default()
        }
    }
}

/// Header-only control frames on a call-home stream: `"stop"` and `"kill"` flow from caller to
/// worker to cancel, `"sentinel"` marks a clean end of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlMessage {
    /// Finish gracefully.
    Stop,
    /// Abort now.
    Kill,
    /// Clean end of stream.
    Sentinel,
}

impl ControlMessage {
    /// The JSON header serde_json writes for it: `"stop"`, `"kill"`, `"sentinel"`.
    pub fn json(self) -> &'static [u8] {
        match self {
            Self::Stop => b"\"stop\"",
            Self::Kill => b"\"kill\"",
            Self::Sentinel => b"\"sentinel\"",
        }
    }

    /// Reads a control message header: the spellings [`Self::json`] writes are matched whole,
    /// anything else is read (or refused) by serde_json.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes {
            b"\"stop\"" => Ok(Self::Stop),
            b"\"kill\"" => Ok(Self::Kill),
            b"\"sentinel\"" => Ok(Self::Sentinel),
            _ => from_json("control message", bytes),
        }
    }
}

/// The wrapper around every response item (Dynamo's `NetworkStreamWrapper`), encoded with the
/// request's payload codec. The last item is `{"complete_final":true}` without data; a stream
/// that ends without it was cut off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamItem<T> {
    /// The item; absent in the final marker.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// Whether this is the final marker.
    pub complete_final: bool,
}

fn none<T>() -> Option<T> {
    None
}

impl<T> StreamItem<T> {
    /// A data item.
    pub fn data(data: T) -> Self {
        Self {
            data: Some(data),
            complete_final: false,
        }
    }

    /// The final marker.
    pub fn complete_final() -> Self {
        Self {
            data: None,
            complete_final: true,
        }
    }
}

/// Encodes a message as the JSON header Dynamo expects, naming `what` in the error.
pub fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(value).map_err(|e| EncodeError::Serialize {
        what,
        reason: e.to_string(),
    })
}

/// Appends a message as JSON to `out` (no buffer of its own), naming `what` in the error. On
/// error `out` may hold part of the message; callers truncate it back.
pub fn write_json<T: Serialize>(
    what: &'static str,
    value: &T,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    serde_json::to_writer(out.writer(), value).map_err(|e| EncodeError::Serialize {
        what,
        reason: e.to_string(),
    })
}

/// Decodes a JSON message, naming `what` in the error.
pub fn from_json<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
        what,
        reason: e.to_string(),
    })
}
