//! One event as a ZMQ multipart message, as 1.6.1's `ZmqPubTransport::publish` sends it:
//!
//! | part | content |
//! |---|---|
//! | 0 | the ZMQ topic (subscribers filter on it): the event topic in direct mode, the scope subject through a broker |
//! | 1 | publisher id, u64 big-endian |
//! | 2 | sequence, u64 big-endian |
//! | 3 | 5-byte frame header + envelope |

use bytes::{BufMut, Bytes, BytesMut};

use super::{EventEnvelope, EventWireError, decode_envelope, decode_frame, encode_envelope};

/// One decoded message: its identity parts and the envelope they must agree with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireMessage {
    /// The envelope (its payload a slice of the received part).
    pub envelope: EventEnvelope,
}

/// The four parts for one event. The envelope is written once into `scratch` (reused by the
/// caller between events) and split off, so the parts share one allocation.
#[allow(clippy::too_many_arguments)]
pub fn encode_multipart(
    zmq_topic: &str,
    publisher_id: u64,
    sequence: u64,
    published_at: u64,
    topic: &str,
    payload: &[u8],
    scratch: &mut BytesMut,
) -> [Bytes; 4] {
    scratch.reserve(16 + 5 + super::envelope::encoded_len(topic.len(), payload.len()));
    scratch.put_u64(publisher_id);
    scratch.put_u64(sequence);
    let ids = scratch.split().freeze();
    // Header placeholder, patched once the envelope's length is known.
    scratch.put_slice(&[super::FRAME_VERSION, 0, 0, 0, 0]);
    encode_envelope(
        publisher_id,
        sequence,
        published_at,
        topic,
        payload,
        scratch,
    );
    let len = u32::try_from(scratch.len() - super::FRAME_HEADER_SIZE)
        .expect("event payloads are limited below 4 GiB");
    scratch[1..5].copy_from_slice(&len.to_be_bytes());
    let frame = scratch.split().freeze();
    [
        Bytes::copy_from_slice(zmq_topic.as_bytes()),
        ids.slice(0..8),
        ids.slice(8..16),
        frame,
    ]
}

/// Decodes and checks one multipart message: four parts, the expected ZMQ topic (when
/// `expected_topic` is given), 8-byte identity parts that agree with the envelope, a frame of
/// at most `max` bytes.
pub fn decode_multipart(
    parts: &[Bytes],
    expected_topic: Option<&[u8]>,
    max: usize,
) -> Result<WireMessage, EventWireError> {
    let [topic, publisher, sequence, frame] = parts else {
        return Err(EventWireError::PartCount(parts.len()));
    };
    if let Some(expected) = expected_topic
        && topic.as_ref() != expected
    {
        return Err(EventWireError::TopicMismatch {
            expected: String::from_utf8_lossy(expected).into_owned(),
            got: String::from_utf8_lossy(topic).into_owned(),
        });
    }
    let publisher = be_u64(publisher, "publisher id")?;
    let sequence = be_u64(sequence, "sequence")?;
    let envelope = decode_envelope(&decode_frame(frame, max)?)?;
    if envelope.publisher_id != publisher || envelope.sequence != sequence {
        return Err(EventWireError::IdentityMismatch {
            frame_publisher: publisher,
            frame_sequence: sequence,
            envelope_publisher: envelope.publisher_id,
            envelope_sequence: envelope.sequence,
        });
    }
    Ok(WireMessage { envelope })
}

fn be_u64(part: &Bytes, name: &'static str) -> Result<u64, EventWireError> {
    let arr: [u8; 8] = part
        .as_ref()
        .try_into()
        .map_err(|_| EventWireError::IdentityPart {
            part: name,
            len: part.len(),
        })?;
    Ok(u64::from_be_bytes(arr))
}
