//! Reading a response item's body into what it means to a dynrt caller ([`Received`]).
//!
//! The meaning is defined by [`received_item`] on the body's `data` decoded as a JSON value.
//! Building that value tree costs a map, its keys and a copy of the text for every item, while
//! almost every item is text: a JSON string, or an `Annotated` whose data is a string. Those are
//! read here with borrowed types that accept only such items and refuse anything else (numbers,
//! duplicate keys, bytes, an error, an unknown field), and the text is sliced out of the body
//! when it holds no escapes; a JSON body in exactly the shape a worker writes for such text is
//! not parsed at all ([`plain_text_item`]), nor is a msgpack body in the shape a worker writes
//! ([`msgpack_text_item`]). A refused body is decoded the general way, so the result — data,
//! error or skip, and every decode error — is the one the value tree gives.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::value::{Received, received_item};
use crate::wire::DecodeError;
use crate::wire::dynamo::{PayloadCodec, StreamItem};

/// A decoded item body: its meaning (if it carries data) and whether it is the final marker.
pub(crate) struct ItemBody {
    pub(crate) data: Option<Received>,
    pub(crate) complete_final: bool,
}

/// Decodes an item body in `codec`.
pub(crate) fn decode_item(codec: PayloadCodec, body: &Bytes) -> Result<ItemBody, DecodeError> {
    if codec == PayloadCodec::Json
        && let Some(text) = plain_text_item(body)
    {
        return Ok(ItemBody {
            data: Some(Received::Data(body.slice_ref(text))),
            complete_final: false,
        });
    }
    if codec == PayloadCodec::Msgpack
        && let Some(text) = msgpack_text_item(body)
    {
        return Ok(ItemBody {
            data: Some(Received::Data(body.slice_ref(text))),
            complete_final: false,
        });
    }
    let fast = match codec {
        PayloadCodec::Json => serde_json::from_slice::<StreamItem<Text<'_>>>(body).ok(),
        PayloadCodec::Msgpack => rmp_serde::from_slice::<StreamItem<Text<'_>>>(body).ok(),
    };
    if let Some(item) = fast {
        return Ok(ItemBody {
            data: item.data.map(|text| Received::Data(text.into_bytes(body))),
            complete_final: item.complete_final,
        });
    }
    let item = codec.decode::<StreamItem<serde_json::Value>>(body)?;
    Ok(ItemBody {
        data: item.data.map(received_item),
        complete_final: item.complete_final,
    })
}

/// The text of a JSON body that is exactly what a worker writes for a text item with nothing to
/// escape — `{"data":{"data":"<text>"},"complete_final":false}` (an `Annotated`, as dynrt's
/// workers send), or the same with the string as the data — read without a parser: the text
/// has no quote, backslash or control byte and is UTF-8, so the string ends where the known
/// tail begins and means its own bytes.
fn plain_text_item(body: &[u8]) -> Option<&[u8]> {
    const SHAPES: [(&[u8], &[u8]); 2] = [
        (br#"{"data":{"data":""#, br#""},"complete_final":false}"#),
        (br#"{"data":""#, br#"","complete_final":false}"#),
    ];
    SHAPES.iter().find_map(|(head, tail)| {
        let text = body.strip_prefix(*head)?.strip_suffix(*tail)?;
        let (dirty, high) = scan(text);
        // ASCII is UTF-8; only text with other bytes needs the UTF-8 check.
        (!dirty && (!high || std::str::from_utf8(text).is_ok())).then_some(text)
    })
}

/// The text of a msgpack body laid out exactly as a worker writes a text item — rmp_serde's
/// named encoding of `{"data":{"data":<str>},"complete_final":false}`, or of the same with the
/// string as the data — read without a decoder: the string's header says where it ends (any of
/// the string headers, as the decoder takes them), it must end where the known tail begins,
/// and it must be UTF-8 (ASCII, what tokens nearly always are, is that without the full check).
fn msgpack_text_item(body: &[u8]) -> Option<&[u8]> {
    const HEAD: &[u8] = b"\x82\xa4data";
    const ANNOTATED: &[u8] = b"\x81\xa4data";
    const TAIL: &[u8] = b"\xaecomplete_final\xc2";
    let rest = body.strip_prefix(HEAD)?.strip_suffix(TAIL)?;
    let rest = rest.strip_prefix(ANNOTATED).unwrap_or(rest);
    let (&marker, rest) = rest.split_first()?;
    let (len, text) = match marker {
        0xa0..=0xbf => (usize::from(marker & 0x1f), rest),
        0xd9 => {
            let (&len, text) = rest.split_first()?;
            (usize::from(len), text)
        }
        0xda => {
            let (len, text) = rest.split_first_chunk::<2>()?;
            (usize::from(u16::from_be_bytes(*len)), text)
        }
        0xdb => {
            let (len, text) = rest.split_first_chunk::<4>()?;
            (usize::try_from(u32::from_be_bytes(*len)).ok()?, text)
        }
        _ => return None,
    };
    (text.len() == len && (text.is_ascii() || std::str::from_utf8(text).is_ok())).then_some(text)
}

/// Whether `text` holds a byte a JSON string must escape (`"`, `\`, below 0x20), and whether
/// it holds a byte that is not ASCII; tested 256 bytes at a time without branching, which the
/// compiler vectorises (the first block that needs an escape ends the test: such text goes to
/// the parser).
fn scan(text: &[u8]) -> (bool, bool) {
    let mut high = false;
    for block in text.chunks(256) {
        let (dirty, block_high) = block.iter().fold((false, false), |(dirty, high), &b| {
            (
                dirty | (b < 0x20) | (b == b'"') | (b == b'\\'),
                high | (b >= 0x80),
            )
        });
        if dirty {
            return (true, true);
        }
        high |= block_high;
    }
    (false, high)
}

/// Text data: a string, or an `Annotated` whose data is a string and that is no error.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(text) => text,
            Text::Owned(text) => text,
        }
    }

    /// The text's bytes: a slice of `body` when it was read without unescaping.
    fn into_bytes(self, body: &Bytes) -> Bytes {
        match self {
            Text::Borrowed(text) => body.slice_ref(text.as_bytes()),
            Text::Owned(text) => Bytes::from(text.into_bytes()),
        }
    }
}

/// Refuses a body the borrowed read does not take; the general decoding reads it.
fn refuse<E: de::Error>(what: &str) -> E {
    E::custom(format_args!("not text data: {what}"))
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, or an Annotated whose data is a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text::Owned(v))
    }

    /// An `Annotated`: only its fields, each at most once, `data` a string, `id` and `event`
    /// strings (an `event` of `"error"` refused), `comment` strings, `error` null.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut data = None;
        let mut seen = [false; 4];
        while let Some(field) = map.next_key::<Field>()? {
            let once = match field {
                Field::Data => data.is_some(),
                Field::Other(i) => std::mem::replace(&mut seen[i], true),
            };
            if once {
                return Err(refuse("a repeated field"));
            }
            match field {
                Field::Data => data = Some(map.next_value::<Str<'de>>()?.0),
                Field::Other(EVENT) => {
                    let event = map.next_value::<Option<Str<'de>>>()?;
                    if event.is_some_and(|Str(text)| text.as_str() == "error") {
                        return Err(refuse("an error event"));
                    }
                }
                Field::Other(COMMENT) => drop(map.next_value::<Option<Vec<Str<'de>>>>()?),
                Field::Other(ERROR) => {
                    if map.next_value::<Option<()>>()?.is_some() {
                        return Err(refuse("an error"));
                    }
                }
                Field::Other(_) => drop(map.next_value::<Option<Str<'de>>>()?),
            }
        }
        data.ok_or_else(|| refuse("no data"))
    }
}

const EVENT: usize = 1;
const COMMENT: usize = 2;
const ERROR: usize = 3;

/// A field of `Annotated` (`Other` indexes `id`, `event`, `comment`, `error`); any other key,
/// and a key that is not a string, is refused.
#[derive(Clone, Copy)]
enum Field {
    Data,
    Other(usize),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field of Annotated")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                match v {
                    "data" => Ok(Field::Data),
                    "id" => Ok(Field::Other(0)),
                    "event" => Ok(Field::Other(EVENT)),
                    "comment" => Ok(Field::Other(COMMENT)),
                    "error" => Ok(Field::Other(ERROR)),
                    _ => Err(refuse("a field Annotated does not have")),
                }
            }
        }
        deserializer.deserialize_str(FieldVisitor)
    }
}

/// A string and nothing else (not bytes, not a number).
struct Str<'de>(Text<'de>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Text::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Text::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Text::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}
