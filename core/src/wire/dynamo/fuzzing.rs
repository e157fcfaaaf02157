//! Fuzz entry points, shared by the cargo-fuzz targets in `fuzz/` and by the test that replays
//! their corpora on stable Rust. Each decodes arbitrary bytes, re-encodes every frame it got and
//! asserts the result is exactly the bytes the decoder consumed. A panic here is a bug.

use std::collections::BTreeMap;

use bytes::BytesMut;

use super::control::TCP_TRANSPORT;
use super::{
    AckDecoder, Checksum, ConnectionInfo, RequestControlMessage, RequestDecoder, RequestFrame,
    TcpStreamConnectionInfo, TwoPartDecoder,
};
use crate::wire::OutBuf;

/// A limit small enough that fuzz inputs can reach it.
const FUZZ_LIMIT: usize = 64 * 1024;

/// Request frames (and the ack decoder, over the same bytes).
pub fn dynamo_request(data: &[u8]) {
    let mut src = BytesMut::from(data);
    let mut decoder = RequestDecoder::new(FUZZ_LIMIT);
    let mut consumed = 0;
    while let Ok(Some(frame)) = decoder.decode(&mut src) {
        headers_agree_with_serde_json(&frame);
        let mut out = OutBuf::new();
        frame.encode(&mut out);
        let wire = out.take_contiguous();
        assert_eq!(
            &wire[..],
            &data[consumed..consumed + wire.len()],
            "re-encoded request differs"
        );
        consumed += wire.len();
    }

    let mut src = BytesMut::from(data);
    let mut decoder = AckDecoder::new(FUZZ_LIMIT);
    let mut consumed = 0;
    while let Ok(Some(ack)) = decoder.decode(&mut src) {
        let mut wire = BytesMut::new();
        ack.encode(&mut wire)
            .expect("a decoded ack fits its own length field");
        assert_eq!(
            &wire[..],
            &data[consumed..consumed + wire.len()],
            "re-encoded ack differs"
        );
        consumed += wire.len();
    }
}

/// dynrt's headers reader gives what serde_json gives for a map of strings (the same pairs,
/// the last of a name sent twice), or both refuse; an empty field is no headers.
fn headers_agree_with_serde_json(frame: &RequestFrame) {
    let ours = frame.headers();
    let json = frame.headers_json();
    if json.is_empty() {
        assert_eq!(
            ours,
            Ok(BTreeMap::new()),
            "an empty headers field is no headers"
        );
        return;
    }
    let theirs: Result<BTreeMap<String, String>, _> = serde_json::from_slice(json);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "headers read differently"),
        (Err(_), Err(_)) => {}
        _ => panic!("headers: dynrt {ours:?}, serde_json {theirs:?}"),
    }
}

/// Two-part frames; a frame that decoded with a non-zero checksum is re-encoded with one.
pub fn two_part(data: &[u8]) {
    let mut src = BytesMut::from(data);
    let mut decoder = TwoPartDecoder::new(FUZZ_LIMIT);
    let mut consumed = 0;
    while let Ok(Some(frame)) = decoder.decode(&mut src) {
        let had_checksum = data[consumed + 16..consumed + 24] != [0; 8];
        let checksum = if had_checksum {
            Checksum::Xxh3
        } else {
            Checksum::None
        };
        let mut out = OutBuf::new();
        frame.encode(checksum, &mut out);
        let wire = out.take_contiguous();
        assert_eq!(
            &wire[..],
            &data[consumed..consumed + wire.len()],
            "re-encoded two-part differs"
        );
        consumed += wire.len();
    }
}

/// Request control messages (and the TCP connection info inside one): dynrt's reader agrees
/// with serde_json on every input — the same value, or both refuse — and what it reads writes
/// back as serde_json writes it.
pub fn control_message(data: &[u8]) {
    let ours = RequestControlMessage::from_json(data);
    let theirs: Result<RequestControlMessage, _> = serde_json::from_slice(data);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "control message read differently"),
        (Err(_), Err(_)) => {}
        _ => panic!("control message: dynrt {ours:?}, serde_json {theirs:?}"),
    }
    if let Ok(message) = ours {
        assert_eq!(
            message.to_json(),
            serde_json::to_vec(&message).expect("serialisable"),
            "control message written differently"
        );
    }
    let info = ConnectionInfo {
        transport: TCP_TRANSPORT.to_owned(),
        info: String::from_utf8_lossy(data).into_owned(),
    };
    let ours = TcpStreamConnectionInfo::from_connection_info(&info);
    let theirs: Result<TcpStreamConnectionInfo, _> = serde_json::from_str(&info.info);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "connection info read differently"),
        (Err(_), Err(_)) => {}
        _ => panic!("connection info: dynrt {ours:?}, serde_json {theirs:?}"),
    }
    if let Ok(tcp) = ours {
        assert_eq!(
            tcp.to_connection_info().info,
            serde_json::to_string(&tcp).expect("serialisable"),
            "connection info written differently"
        );
    }
}
