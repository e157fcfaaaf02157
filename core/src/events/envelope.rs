//! The event envelope: 1.6.1's `EventEnvelope`, MessagePack with field names
//! (`rmp_serde::to_vec_named`), fields in declaration order, integers in their shortest form,
//! the topic a string and the payload binary.
//!
//! Encoding is written by hand (the same bytes rmp-serde produces, checked in the tests) so a
//! publisher writes straight into its output buffer. Decoding reads that layout directly and
//! hands the payload out as a slice of the input; any other valid layout (keys reordered, extra
//! keys, the array form) goes through rmp-serde.

use bytes::{BufMut, Bytes};
use serde::Deserialize;

use super::EventWireError;

/// One event as it travels: who published it, its place in that publisher's sequence, when
/// (milliseconds since the Unix epoch, the publisher's clock), its topic and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    /// The publisher's id (random, below 2^53).
    pub publisher_id: u64,
    /// Per publisher, from 0, one more for each event.
    pub sequence: u64,
    /// Publish time, ms since the Unix epoch.
    pub published_at: u64,
    /// The topic (not the scope subject).
    pub topic: String,
    /// The payload (MessagePack for typed events).
    pub payload: Bytes,
}

/// Bytes of the encoding of an envelope with this topic and payload length (exact).
pub fn encoded_len(topic_len: usize, payload_len: usize) -> usize {
    // map header + 5 keys (1 + name) + three u64s at worst + str + bin headers.
    1 + (1 + 12)
        + 9
        + (1 + 8)
        + 9
        + (1 + 12)
        + 9
        + (1 + 5)
        + 5
        + topic_len
        + (1 + 7)
        + 5
        + payload_len
}

/// Writes the envelope as 1.6.1's `MsgpackCodec::encode_envelope_parts` does.
pub fn encode_envelope(
    publisher_id: u64,
    sequence: u64,
    published_at: u64,
    topic: &str,
    payload: &[u8],
    out: &mut impl BufMut,
) {
    out.put_u8(0x85);
    put_key(out, "publisher_id");
    put_uint(out, publisher_id);
    put_key(out, "sequence");
    put_uint(out, sequence);
    put_key(out, "published_at");
    put_uint(out, published_at);
    put_key(out, "topic");
    put_str(out, topic);
    put_key(out, "payload");
    put_bin(out, payload);
}

fn put_key(out: &mut impl BufMut, key: &str) {
    // Every key is under 32 bytes: a fixstr.
    out.put_u8(0xa0 | key.len() as u8);
    out.put_slice(key.as_bytes());
}

fn put_uint(out: &mut impl BufMut, v: u64) {
    if v < 128 {
        out.put_u8(v as u8);
    } else if v <= u64::from(u8::MAX) {
        out.put_u8(0xcc);
        out.put_u8(v as u8);
    } else if v <= u64::from(u16::MAX) {
        out.put_u8(0xcd);
        out.put_u16(v as u16);
    } else if v <= u64::from(u32::MAX) {
        out.put_u8(0xce);
        out.put_u32(v as u32);
    } else {
        out.put_u8(0xcf);
        out.put_u64(v);
    }
}

fn put_str(out: &mut impl BufMut, s: &str) {
    let n = s.len();
    if n < 32 {
        out.put_u8(0xa0 | n as u8);
    } else if n <= usize::from(u8::MAX) {
        out.put_u8(0xd9);
        out.put_u8(n as u8);
    } else if n <= usize::from(u16::MAX) {
        out.put_u8(0xda);
        out.put_u16(n as u16);
    } else {
        out.put_u8(0xdb);
        out.put_u32(u32::try_from(n).expect("event topics are far below 4 GiB"));
    }
    out.put_slice(s.as_bytes());
}

fn put_bin(out: &mut impl BufMut, b: &[u8]) {
    let n = b.len();
    if n <= usize::from(u8::MAX) {
        out.put_u8(0xc4);
        out.put_u8(n as u8);
    } else if n <= usize::from(u16::MAX) {
        out.put_u8(0xc5);
        out.put_u16(n as u16);
    } else {
        out.put_u8(0xc6);
        out.put_u32(u32::try_from(n).expect("event payloads are limited below 4 GiB"));
    }
    out.put_slice(b);
}

/// Decodes an envelope; the payload is a slice of `bytes` when the layout is 1.6.1's.
pub fn decode_envelope(bytes: &Bytes) -> Result<EventEnvelope, EventWireError> {
    match Reader::new(bytes).canonical() {
        Some((publisher_id, sequence, published_at, topic, payload)) => Ok(EventEnvelope {
            publisher_id,
            sequence,
            published_at,
            topic: topic.to_owned(),
            payload: bytes.slice(payload),
        }),
        None => decode_general(bytes),
    }
}

/// Only `(publisher_id, sequence)`, for deduplication before a full decode.
pub fn decode_identity(bytes: &Bytes) -> Result<(u64, u64), EventWireError> {
    match Reader::new(bytes).canonical() {
        Some((p, s, ..)) => Ok((p, s)),
        None => decode_general(bytes).map(|e| (e.publisher_id, e.sequence)),
    }
}

#[derive(Deserialize)]
struct Owned {
    publisher_id: u64,
    sequence: u64,
    published_at: u64,
    topic: String,
    #[serde(with = "serde_bytes_compat")]
    payload: Vec<u8>,
}

mod serde_bytes_compat {
    use serde::Deserializer;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_str<E>(self, v: &str) -> Result<Vec<u8>, E> {
                Ok(v.as_bytes().to_vec())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(V)
    }
}

fn decode_general(bytes: &Bytes) -> Result<EventEnvelope, EventWireError> {
    let e: Owned =
        rmp_serde::from_slice(bytes).map_err(|e| EventWireError::Envelope(e.to_string()))?;
    Ok(EventEnvelope {
        publisher_id: e.publisher_id,
        sequence: e.sequence,
        published_at: e.published_at,
        topic: e.topic,
        payload: Bytes::from(e.payload),
    })
}

/// A cursor over the canonical layout; `None` at the first thing it does not expect.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

type Canonical<'a> = (u64, u64, u64, &'a str, std::ops::Range<usize>);

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }

    fn canonical(mut self) -> Option<Canonical<'a>> {
        if self.byte()? != 0x85 {
            return None;
        }
        self.key(b"publisher_id")?;
        let p = self.uint()?;
        self.key(b"sequence")?;
        let s = self.uint()?;
        self.key(b"published_at")?;
        let t = self.uint()?;
        self.key(b"topic")?;
        let topic = self.str()?;
        self.key(b"payload")?;
        let payload = self.bin()?;
        (self.at == self.b.len()).then_some((p, s, t, topic, payload))
    }

    fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    fn take(&mut self, n: usize) -> Option<std::ops::Range<usize>> {
        let end = self.at.checked_add(n)?;
        if end > self.b.len() {
            return None;
        }
        let r = self.at..end;
        self.at = end;
        Some(r)
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        let r = self.take(n)?;
        Some(self.b[r].iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }

    fn key(&mut self, name: &[u8]) -> Option<()> {
        let r = self.str_range()?;
        (&self.b[r] == name).then_some(())
    }

    fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            v @ 0..=0x7f => Some(u64::from(v)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => None,
        }
    }

    fn str_range(&mut self) -> Option<std::ops::Range<usize>> {
        let n = match self.byte()? {
            v @ 0xa0..=0xbf => usize::from(v & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return None,
        };
        self.take(n)
    }

    fn str(&mut self) -> Option<&'a str> {
        let r = self.str_range()?;
        std::str::from_utf8(&self.b[r]).ok()
    }

    fn bin(&mut self) -> Option<std::ops::Range<usize>> {
        let n = match self.byte()? {
            0xc4 => self.be(1)? as usize,
            0xc5 => self.be(2)? as usize,
            0xc6 => self.be(4)? as usize,
            _ => return None,
        };
        self.take(n)
    }
}
