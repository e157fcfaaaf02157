//! [`EndpointRecordParser`]: the endpoint-record parser of one endpoint, with a fast path for
//! the canonical form.
//!
//! Dynamo 1.6.1 and dynrt both write records with `serde_json::to_vec`: compact, fields in
//! declaration order, strings escaped only where JSON requires. For one endpoint, everything up
//! to the instance id is then the same bytes in every record, so the fast path compares that
//! prefix with one `memcmp`, reads the rest by a fixed grammar and builds the [`Instance`]
//! directly. Anything else — whitespace, another field order, an escape, an unknown field, an
//! error — goes to the full serde parser ([`Instance::from_json`]), which decides. The fast path
//! accepts only the canonical serialisation of a record, for which both give the same result;
//! a property test checks that on random records and random corruptions of them.

use std::sync::Arc;

use super::instance::{Instance, InstanceAddress};
use super::records::{DeviceType, PayloadCodec, RecordError};
use crate::names::{EndpointId, InstanceId, TcpTransport};

/// Parses the stored endpoint records of one endpoint (see the module documentation).
#[derive(Clone, Debug)]
pub struct EndpointRecordParser {
    endpoint: EndpointId,
    /// `{"type":"Endpoint","component":"c","endpoint":"e","namespace":"n","instance_id":`
    prefix: Box<[u8]>,
}

impl EndpointRecordParser {
    /// A parser for the records of `endpoint`.
    #[must_use]
    pub fn new(endpoint: EndpointId) -> Self {
        // Valid names need no JSON escaping, so they go in as they are.
        let prefix = format!(
            r#"{{"type":"Endpoint","component":"{}","endpoint":"{}","namespace":"{}","instance_id":"#,
            endpoint.component, endpoint.endpoint, endpoint.namespace
        );
        Self {
            endpoint,
            prefix: prefix.into_bytes().into_boxed_slice(),
        }
    }

    /// The endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    /// Parses the value stored under the key of instance `id`, by the fast path when the value
    /// is canonical and by [`Instance::from_json`] otherwise.
    ///
    /// # Errors
    /// As [`Instance::from_json`].
    pub fn parse(&self, value: &[u8], id: InstanceId) -> Result<Instance, RecordError> {
        match self.parse_canonical(value, id) {
            Some(instance) => Ok(instance),
            None => Instance::from_json(value, &self.endpoint, id),
        }
    }

    /// The fast path alone: `Some` only for the canonical serialisation of a valid record of
    /// this endpoint and id, `None` for anything else (which may still be valid JSON).
    #[must_use]
    pub fn parse_canonical(&self, value: &[u8], id: InstanceId) -> Option<Instance> {
        let mut cur = Cursor(value.strip_prefix(&*self.prefix)?);
        if cur.uint()? != id.0 {
            return None;
        }
        cur.tag(br#","transport":{""#)?;
        let tcp = if cur.tag(br#"tcp":""#).is_some() {
            true
        } else {
            cur.tag(br#"nats_tcp":""#)?;
            false
        };
        let transport = cur.plain_string()?;
        cur.tag(br#"}"#)?;
        let address = if tcp {
            InstanceAddress::Tcp(TcpTransport::parse(transport).ok()?)
        } else {
            InstanceAddress::Nats(Arc::from(transport))
        };
        let device_type = if cur.tag(br#","device_type":"cuda""#).is_some() {
            Some(DeviceType::Cuda)
        } else if cur.tag(br#","device_type":"cpu""#).is_some() {
            Some(DeviceType::Cpu)
        } else {
            None
        };
        let codec = if cur.tag(br#","request_plane_codec":"msgpack""#).is_some() {
            Some(PayloadCodec::Msgpack)
        } else if cur.tag(br#","request_plane_codec":"json""#).is_some() {
            Some(PayloadCodec::Json)
        } else {
            None
        };
        let mux = if cur.tag(br#","dynrt":{"mux":"#).is_some() {
            let version = u32::try_from(cur.uint()?).ok()?;
            cur.tag(b"}")?;
            Some(version)
        } else {
            // `"dynrt":{}` (capabilities without mux) is left to the full parser.
            None
        };
        cur.tag(b"}")?;
        cur.0.is_empty().then_some(Instance {
            id,
            address,
            device_type,
            codec,
            mux,
        })
    }
}

/// The unread rest of the value.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    /// Consumes `expected` if the input starts with it.
    fn tag(&mut self, expected: &[u8]) -> Option<()> {
        self.0 = self.0.strip_prefix(expected)?;
        Some(())
    }

    /// A JSON unsigned integer as serde_json writes it: no sign, no leading zero, no fraction
    /// or exponent (the grammar's next byte is never a digit, `.`, `e` or `E`), fits in u64.
    fn uint(&mut self) -> Option<u64> {
        let digits = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let (number, rest) = self.0.split_at(digits);
        if number.is_empty() || (number.len() > 1 && number[0] == b'0') || number.len() > 20 {
            return None;
        }
        // Nineteen decimal digits always fit in a u64; only the twentieth can overflow.
        let (head, last) = number.split_at(number.len().min(19));
        let mut value = head.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
        if let [d] = last {
            value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.0 = rest;
        Some(value)
    }

    /// The rest of a string whose opening quote is consumed, up to and including the closing
    /// quote; `None` if it holds an escape or a control character (serde_json would escape
    /// those) or is not UTF-8.
    fn plain_string(&mut self) -> Option<&'a str> {
        let end = find_special(self.0)?;
        if self.0[end] != b'"' {
            return None;
        }
        let s = std::str::from_utf8(&self.0[..end]).ok()?;
        self.0 = &self.0[end + 1..];
        Some(s)
    }
}

/// The position of the first `"`, `\\` or control byte, eight bytes at a time.
fn find_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero exactly when the matching high bit of the result is set (for the
    // lowest such byte; higher ones may be false positives, so the hit is confirmed byte-wise).
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("chunks_exact gives 8 bytes"));
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let hit = zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            | below_space;
        if hit != 0 {
            return chunk.iter().position(|&b| special(b)).map(|i| offset + i);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| special(b))
        .map(|i| offset + i)
}
