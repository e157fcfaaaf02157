//! ZMTP properties: any messages cross a PUB→SUB pair intact under any chunking, frames
//! re-encode to their bytes, the topic filter agrees with a naive model, and no peer input
//! panics the machine.

use bytes::{Bytes, BytesMut};
use dynrt_core::zmtp::fuzzing::{Pair, zmtp_frames};
use dynrt_core::zmtp::{Event, SocketType, TopicFilter, frame};
use proptest::prelude::*;

fn frames() -> impl Strategy<Value = Vec<Bytes>> {
    // Up to 600 bytes: both the one-byte and the eight-byte size forms.
    prop::collection::vec(
        prop::collection::vec(any::<u8>(), 0..600).prop_map(Bytes::from),
        1..5,
    )
}

proptest! {
    #[test]
    fn messages_cross_a_pub_sub_pair_intact(
        messages in prop::collection::vec(frames(), 1..8),
        chunk in prop::option::of(1usize..200),
        xsocks in any::<bool>(),
    ) {
        let (a, b) = if xsocks {
            (SocketType::XSub, SocketType::XPub)
        } else {
            (SocketType::Sub, SocketType::Pub)
        };
        let mut p = Pair::new(a, b);
        p.chunk = chunk;
        p.a.subscribe(Bytes::new()).unwrap();
        p.drive(100_000).unwrap();
        for m in &messages {
            prop_assert!(p.b.send(m).unwrap());
        }
        p.drive(100_000).unwrap();
        let got: Vec<Vec<Bytes>> = p.a_events.iter().filter_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        }).collect();
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn frames_decode_to_what_was_encoded_at_every_split(
        message in frames(),
        split in any::<prop::sample::Index>(),
    ) {
        let mut wire = BytesMut::new();
        frame::put_message(&mut wire, &message);
        prop_assert_eq!(wire.len(), frame::message_len(&message));
        let at = split.index(wire.len() + 1);
        let mut buf = BytesMut::from(&wire[..at]);
        let mut got = Vec::new();
        while let Some(f) = frame::decode(&mut buf, 1 << 20).unwrap() {
            got.push(f);
        }
        buf.extend_from_slice(&wire[at..]);
        while let Some(f) = frame::decode(&mut buf, 1 << 20).unwrap() {
            got.push(f);
        }
        prop_assert!(buf.is_empty());
        let last = message.len() - 1;
        let expected: Vec<_> = message.iter().enumerate().map(|(i, body)| frame::Frame::Data {
            more: i < last,
            body: body.clone(),
        }).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn topic_filter_agrees_with_a_naive_model(
        ops in prop::collection::vec((0u8..3, prop::collection::vec(0u8..3, 0..4)), 0..60),
    ) {
        let mut filter = TopicFilter::new();
        let mut model: Vec<Vec<u8>> = Vec::new();
        for (op, topic) in ops {
            match op {
                0 => {
                    let new = !model.contains(&topic);
                    prop_assert_eq!(filter.subscribe(Bytes::from(topic.clone())), new);
                    model.push(topic);
                }
                1 => {
                    let pos = model.iter().position(|t| *t == topic);
                    if let Some(i) = pos {
                        model.remove(i);
                    }
                    let last = pos.is_some() && !model.contains(&topic);
                    prop_assert_eq!(filter.unsubscribe(&topic), last);
                }
                _ => {
                    let naive = model.iter().any(|t| topic.starts_with(t));
                    prop_assert_eq!(filter.matches(&topic), naive);
                }
            }
        }
    }

    #[test]
    fn arbitrary_peer_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        zmtp_frames(&data);
    }
}
