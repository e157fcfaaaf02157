//! The mapping between a dynrt handler's bytes and Dynamo's typed values (`docs/wire.md`,
//! "Bytes and Dynamo's values").
//!
//! A dynrt handler takes and gives bytes; a Dynamo engine takes and gives serde values, and its
//! responses are `Annotated<T>`:
//! `{"data":T?, "id":String?, "event":String?, "comment":[String]?, "error":DynamoError?}`.
//!
//! - **Serving a Dynamo caller**: the request body, in whatever codec `payload_codec` names,
//!   reaches the handler as JSON text ([`request_body_to_json`]). Each item the handler yields
//!   becomes a JSON value ([`item_to_json`]: valid JSON is that value; other UTF-8 is a JSON
//!   string; anything else a JSON array of its byte values) and is sent as `Annotated`
//!   `{"data":value}` ([`annotated_data`]). A handler error becomes
//!   `{"event":"error","error":DynamoError}` ([`annotated_error`]).
//! - **Calling a Dynamo worker**: the caller's bytes must be JSON ([`json_to_request_body`]
//!   refuses anything else) and go out in the codec the worker's record names. Each item's
//!   `data` comes back as JSON text, except that a JSON string comes back as its raw UTF-8
//!   text, so tokens print plainly ([`received_item`]).

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::Value;

use crate::wire::dynamo::{PayloadCodec, TypedError};
use crate::wire::{DecodeError, EncodeError};

/// A handler's item as JSON text: itself if it is JSON a receiver can read as a value, a JSON
/// string if it is other UTF-8 (including JSON whose numbers overflow a double, such as a run
/// of 400 digits: passed through, it would fail the caller's decoding and kill the stream),
/// else a JSON array of its bytes.
pub fn item_to_json(item: &[u8]) -> Cow<'_, [u8]> {
    match ItemJson::of(item) {
        ItemJson::Json => Cow::Borrowed(item),
        ItemJson::Text(text) => Cow::Owned(json_string(text)),
        ItemJson::Bytes => Cow::Owned(bytes_json(item)),
    }
}

/// Which JSON [`item_to_json`] makes of a handler's item: decided once, so that a writer can
/// put the JSON straight into its frame without reading it again.
pub(crate) enum ItemJson<'a> {
    /// The item is JSON a receiver reads as a value: itself.
    Json,
    /// Other UTF-8: a JSON string of it.
    Text(&'a str),
    /// Anything else: a JSON array of its bytes.
    Bytes,
}

impl<'a> ItemJson<'a> {
    pub(crate) fn of(item: &'a [u8]) -> Self {
        if Self::is_json(item) {
            return Self::Json;
        }
        match std::str::from_utf8(item) {
            Ok(text) => Self::Text(text),
            Err(_) => Self::Bytes,
        }
    }

    /// Whether `item` is JSON a receiver reads as a value (the first case of [`Self::of`]).
    pub(crate) fn is_json(item: &[u8]) -> bool {
        // JSON text begins, after whitespace, with one of these bytes: anything else (a token
        // of text, as most items are) is not JSON, which serde_json would say with an error
        // value allocated and dropped.
        let first = item
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if !matches!(
            first,
            Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n')
        ) {
            return false;
        }
        serde_json::from_slice::<serde::de::IgnoredAny>(item).is_ok() && numbers_fit(item)
    }
}

/// `item` (not UTF-8) as a JSON array of its byte values.
pub(crate) fn bytes_json(item: &[u8]) -> Vec<u8> {
    let value = Value::Array(item.iter().map(|b| Value::from(*b)).collect());
    serde_json::to_vec(&value).expect("a JSON value always serialises")
}

/// `text` as a JSON string, byte for byte what `serde_json` writes (`\"`, `\\`, the short
/// escapes `\b \f \n \r \t`, other control bytes as `\u00xx`; everything else as is). Items
/// are often kilobytes of text with nothing to escape: this tests 64 bytes at a time without
/// branching (the compiler vectorises it; 64 rather than 32 halves the per-block reduction,
/// while a block that needs an escape is still short to look at byte by byte) where
/// serde_json looks at each byte, the largest cost of a Dynamo answer's items.
pub fn json_string(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    json_string_into(text, &mut out);
    out
}

/// [`json_string`], appended to `out`.
pub(crate) fn json_string_into(text: &str, out: &mut Vec<u8>) {
    let written = escape_into(text.as_bytes(), out, false);
    debug_assert!(written, "only an ASCII-only escape stops early");
}

/// `bytes` as a JSON string appended to `out` ([`json_string`]'s bytes) if they are ASCII,
/// which is UTF-8: the escape test's blocks look for a byte ≥ 0x80 as well, so text needs no
/// separate UTF-8 check. False, with `out` as it was, if they are not ASCII.
pub(crate) fn ascii_json_string_into(bytes: &[u8], out: &mut Vec<u8>) -> bool {
    escape_into(bytes, out, true)
}

fn escape_into(bytes: &[u8], out: &mut Vec<u8>, ascii_only: bool) -> bool {
    const BLOCK: usize = 64;
    let start = out.len();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    for (n, block) in bytes.chunks(BLOCK).enumerate() {
        let (dirty, high) = block.iter().fold((false, false), |(dirty, high), &b| {
            (
                dirty | (b < 0x20) | (b == b'"') | (b == b'\\'),
                high | (b >= 0x80),
            )
        });
        if ascii_only && high {
            out.truncate(start);
            return false;
        }
        if !dirty {
            continue;
        }
        for (k, &b) in block.iter().enumerate() {
            let Some(escape) = escape_of(b) else {
                continue;
            };
            let i = n * BLOCK + k;
            out.extend_from_slice(&bytes[copied..i]);
            match escape {
                Escape::Short(c) => out.extend_from_slice(&[b'\\', c]),
                Escape::Unicode => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            copied = i + 1;
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
    true
}

enum Escape {
    Short(u8),
    Unicode,
}

fn escape_of(b: u8) -> Option<Escape> {
    match b {
        b'"' => Some(Escape::Short(b'"')),
        b'\\' => Some(Escape::Short(b'\\')),
        0x08 => Some(Escape::Short(b'b')),
        0x0c => Some(Escape::Short(b'f')),
        b'\n' => Some(Escape::Short(b'n')),
        b'\r' => Some(Escape::Short(b'r')),
        b'\t' => Some(Escape::Short(b't')),
        0..0x20 => Some(Escape::Unicode),
        _ => None,
    }
}

/// Whether the numbers of the JSON text `json` fit the double a JSON value holds. Validating
/// with `IgnoredAny` does not look at their range; a receiver parsing a value does, and fails
/// on an integer of 309 digits or more, or an exponent past the double's range. Only text with
/// a long digit run or an exponent is parsed again, so ordinary items cost one scan.
fn numbers_fit(json: &[u8]) -> bool {
    let mut run = 0usize;
    let mut suspicious = false;
    for &b in json {
        if b.is_ascii_digit() {
            run += 1;
            if run >= 300 {
                suspicious = true;
                break;
            }
        } else {
            if (b == b'e' || b == b'E') && run > 0 {
                suspicious = true;
                break;
            }
            run = 0;
        }
    }
    !suspicious || serde_json::from_slice::<Value>(json).is_ok()
}

/// `Annotated` carrying `json` (JSON text) as its data: `{"data":<json>}`.
pub fn annotated_data(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 9);
    out.extend_from_slice(br#"{"data":"#);
    out.extend_from_slice(json);
    out.push(b'}');
    out
}

/// `Annotated` carrying an error of class `class` (a Dynamo `ErrorClass` name):
/// `{"event":"error","error":{"error_type":…,"class":…,"reason":…,"message":…,"diagnostic":…}}`.
pub fn annotated_error(class: &str, message: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct ErrorItem<'a> {
        event: &'a str,
        error: TypedError,
    }
    serde_json::to_vec(&ErrorItem {
        event: "error",
        error: TypedError::new(class, message),
    })
    .expect("strings always serialise")
}

/// A request body in `codec` as JSON text for a dynrt handler. JSON is checked and passed
/// through; msgpack is transcoded.
pub fn request_body_to_json(codec: PayloadCodec, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match codec {
        PayloadCodec::Json => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| {
                DecodeError::Malformed {
                    what: "JSON request body",
                    reason: e.to_string(),
                }
            })?;
            Ok(body.to_vec())
        }
        PayloadCodec::Msgpack => {
            let value: Value = codec.decode(body)?;
            Ok(serde_json::to_vec(&value).expect("a JSON value always serialises"))
        }
    }
}

/// A dynrt caller's request bytes as a body in `codec`. They must be JSON (a Dynamo engine
/// takes a typed value); JSON is passed through, msgpack transcoded.
pub fn json_to_request_body(codec: PayloadCodec, json: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let not_json = |e: serde_json::Error| EncodeError::Serialize {
        what: "request for a Dynamo worker",
        reason: format!("it must be JSON: {e}"),
    };
    match codec {
        PayloadCodec::Json => {
            serde_json::from_slice::<serde::de::IgnoredAny>(json).map_err(not_json)?;
            Ok(json.to_vec())
        }
        PayloadCodec::Msgpack => {
            let value: Value = serde_json::from_slice(json).map_err(not_json)?;
            codec.encode(&value)
        }
    }
}

/// What one item from a Dynamo worker means to a dynrt caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Data for the caller: JSON text, or the raw text of a JSON string.
    Data(Bytes),
    /// An `Annotated` error: the stream ends with it.
    Error {
        /// Its Dynamo class name (`"Internal"` when absent).
        class: String,
        /// Its message.
        message: String,
    },
    /// An `Annotated` without data or error (an event or comment only): nothing for the caller.
    Skip,
}

const ANNOTATED_FIELDS: [&str; 5] = ["data", "id", "event", "comment", "error"];

/// Interprets the `data` of one received wrapper. An object whose fields are all `Annotated`'s
/// is read as one; any other value is the data itself.
pub fn received_item(value: Value) -> Received {
    let annotated = matches!(&value, Value::Object(map)
        if !map.is_empty() && map.keys().all(|k| ANNOTATED_FIELDS.contains(&k.as_str())));
    if !annotated {
        return Received::Data(data_bytes(value));
    }
    let Value::Object(mut map) = value else {
        return Received::Skip;
    };
    let is_error = map.get("error").is_some_and(|e| !e.is_null())
        || map.get("event").and_then(Value::as_str) == Some("error");
    if is_error {
        let error = map.remove("error").unwrap_or(Value::Null);
        let class = error
            .get("class")
            .or_else(|| error.get("error_type"))
            .and_then(Value::as_str)
            .unwrap_or("Internal")
            .to_owned();
        let message = error
            .get("message")
            .or_else(|| error.get("diagnostic"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                map.get("comment").and_then(Value::as_array).map(|c| {
                    c.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            })
            .unwrap_or_else(|| "unknown error".to_owned());
        return Received::Error { class, message };
    }
    match map.remove("data") {
        Some(Value::Null) | None => Received::Skip,
        Some(data) => Received::Data(data_bytes(data)),
    }
}

fn data_bytes(value: Value) -> Bytes {
    Bytes::from(match value {
        Value::String(text) => text.into_bytes(),
        other => serde_json::to_vec(&other).expect("a JSON value always serialises"),
    })
}
