use bytes::{BufMut, Bytes, BytesMut};

use super::fuzzing::{Pair, handshake_bytes};
use super::*;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// A SUB (a) subscribed to `topic` and a PUB (b), handshake done.
fn pub_sub(chunk: Option<usize>, topic: &'static str) -> Pair {
    let mut p = Pair::new(SocketType::Sub, SocketType::Pub);
    p.chunk = chunk;
    p.a.subscribe(b(topic)).unwrap();
    p.drive(10_000).unwrap();
    p
}

#[test]
fn handshake_then_subscribed_message_arrives_in_every_chunking() {
    for chunk in [None, Some(1), Some(7), Some(64)] {
        let mut p = pub_sub(chunk, "kv");
        assert_eq!(
            p.a_events,
            [Event::Ready {
                peer: SocketType::Pub
            }]
        );
        assert_eq!(
            p.b_events,
            [
                Event::Ready {
                    peer: SocketType::Sub
                },
                Event::Subscribe(b("kv"))
            ]
        );
        let long = Bytes::from(vec![7u8; 300]);
        assert!(p.b.send(&[b("kv.events"), b("hdr"), long.clone()]).unwrap());
        assert!(!p.b.send(&[b("other"), b("x")]).unwrap(), "not subscribed");
        p.drive(10_000).unwrap();
        assert_eq!(
            p.a_events[1..],
            [Event::Message(vec![b("kv.events"), b("hdr"), long])]
        );
    }
}

#[test]
fn publisher_sends_nothing_before_the_subscription_arrives() {
    let mut p = Pair::new(SocketType::Sub, SocketType::Pub);
    assert!(!p.b.send(&[b("t")]).unwrap(), "handshake not done");
    p.drive(100).unwrap();
    assert!(!p.b.send(&[b("t")]).unwrap(), "no subscription");
    p.a.subscribe(Bytes::new()).unwrap();
    p.drive(100).unwrap();
    assert!(
        p.b.send(&[b("t")]).unwrap(),
        "the empty prefix matches everything"
    );
}

#[test]
fn subscriber_filters_messages_a_publisher_sent_anyway() {
    let mut p = pub_sub(None, "a");
    let mut wire = BytesMut::new();
    frame::put_message(&mut wire, &[b("b-topic"), b("x")]);
    frame::put_message(&mut wire, &[b("a-topic")]);
    p.a.handle_input(&mut wire).unwrap();
    assert_eq!(p.a.poll_event(), Some(Event::Message(vec![b("a-topic")])));
    assert_eq!(p.a.poll_event(), None);
    assert_eq!(p.a.filtered_messages(), 1);
}

#[test]
fn cancel_is_sent_only_when_the_last_subscription_goes() {
    let mut p = pub_sub(None, "t");
    p.a.subscribe(b("t")).unwrap();
    p.drive(100).unwrap();
    p.a.unsubscribe(b"t").unwrap();
    p.drive(100).unwrap();
    assert!(p.b.peer_filter().matches(b"t1"), "one subscription remains");
    p.a.unsubscribe(b"t").unwrap();
    p.drive(100).unwrap();
    assert!(!p.b.peer_filter().matches(b"t1"));
    assert_eq!(p.b_events.last(), Some(&Event::Cancel(b("t"))));
}

#[test]
fn zmtp_3_1_subscribe_and_cancel_commands_are_accepted() {
    let mut publisher = ZmtpConn::new(SocketType::XPub, ZmtpConfig::default());
    let mut wire = BytesMut::from(&handshake_bytes(SocketType::Sub)[..]);
    frame::put_command(&mut wire, "SUBSCRIBE", b"topic");
    publisher.handle_input(&mut wire).unwrap();
    assert!(publisher.peer_filter().matches(b"topic.x"));
    frame::put_command(&mut wire, "CANCEL", b"topic");
    publisher.handle_input(&mut wire).unwrap();
    assert!(publisher.peer_filter().is_empty());
    let events: Vec<_> = std::iter::from_fn(|| publisher.poll_event()).collect();
    assert_eq!(
        events,
        [
            Event::Ready {
                peer: SocketType::Sub
            },
            Event::Subscribe(b("topic")),
            Event::Cancel(b("topic"))
        ]
    );
}

#[test]
fn xpub_reports_non_subscription_messages_and_pub_ignores_them() {
    for (ours, reported) in [(SocketType::XPub, true), (SocketType::Pub, false)] {
        let mut conn = ZmtpConn::new(ours, ZmtpConfig::default());
        let mut wire = BytesMut::from(&handshake_bytes(SocketType::XSub)[..]);
        frame::put_message(&mut wire, &[b("\x02hello")]);
        conn.handle_input(&mut wire).unwrap();
        let _ready = conn.poll_event();
        assert_eq!(conn.poll_event().is_some(), reported, "{ours}");
    }
}

#[test]
fn ping_is_answered_with_pong_carrying_its_context() {
    let mut p = pub_sub(None, "");
    let mut wire = BytesMut::new();
    frame::put_command(&mut wire, "PING", b"\x00\x0actx");
    p.a.handle_input(&mut wire).unwrap();
    let mut out = BytesMut::new();
    assert!(p.a.poll_transmit(&mut out));
    let mut expected = BytesMut::new();
    frame::put_command(&mut expected, "PONG", b"ctx");
    assert_eq!(out, expected);
}

#[test]
fn high_water_mark_drops_until_the_driver_takes_the_queue() {
    let config = ZmtpConfig {
        hwm: 2,
        ..ZmtpConfig::default()
    };
    let mut p = Pair::with_configs(
        SocketType::Sub,
        ZmtpConfig::default(),
        SocketType::Pub,
        config,
    );
    p.a.subscribe(Bytes::new()).unwrap();
    p.drive(100).unwrap();
    assert!(p.b.send(&[b("1")]).unwrap());
    assert!(p.b.send(&[b("2")]).unwrap());
    assert_eq!(p.b.send(&[b("3")]), Err(SendError::Full { hwm: 2 }));
    let mut out = BytesMut::new();
    assert!(p.b.poll_transmit(&mut out));
    assert!(p.b.send(&[b("4")]).unwrap());
}

fn fail(ours: SocketType, bytes: &[u8]) -> ZmtpError {
    let mut conn = ZmtpConn::new(ours, ZmtpConfig::default());
    let err = conn.handle_input(&mut BytesMut::from(bytes)).unwrap_err();
    // Sticky: the same error again, and sends refused.
    assert_eq!(conn.handle_input(&mut BytesMut::new()), Err(err.clone()));
    assert!(conn.error().is_some());
    err
}

#[test]
fn greetings_that_are_not_zmtp_3_null_are_refused_by_name() {
    assert_eq!(
        fail(SocketType::Sub, b"GET / HTTP/1.1"),
        ZmtpError::BadSignature {
            offset: 0,
            byte: b'G'
        }
    );
    let mut g = greeting::encode(false);
    g[10] = 2;
    assert_eq!(
        fail(SocketType::Sub, &g[..11]),
        ZmtpError::UnsupportedVersion { major: 2 },
        "refused on the version byte, without waiting for 64 bytes"
    );
    let mut g = greeting::encode(false);
    g[12..17].copy_from_slice(b"CURVE");
    assert_eq!(
        fail(SocketType::Sub, &g),
        ZmtpError::UnsupportedMechanism {
            mechanism: "CURVE".into()
        }
    );
}

#[test]
fn incompatible_or_missing_socket_type_is_refused() {
    let err = fail(SocketType::Pub, &handshake_bytes(SocketType::XPub));
    assert_eq!(
        err,
        ZmtpError::IncompatibleSocketType {
            ours: SocketType::Pub,
            peer: "XPUB".into()
        }
    );
    let mut wire = BytesMut::from(&greeting::encode(true)[..]);
    frame::put_ready(&mut wire, &[("Socket-Type", b"DEALER")]);
    assert!(matches!(
        fail(SocketType::Sub, &wire),
        ZmtpError::IncompatibleSocketType { .. }
    ));
    let mut wire = BytesMut::from(&greeting::encode(true)[..]);
    frame::put_ready(&mut wire, &[("Identity", b"")]);
    assert!(matches!(
        fail(SocketType::Sub, &wire),
        ZmtpError::BadCommand { .. }
    ));
}

#[test]
fn limits_are_enforced_with_the_sizes_named() {
    let mut wire = BytesMut::from(&handshake_bytes(SocketType::Pub)[..]);
    wire.put_u8(frame::FLAG_LONG);
    wire.put_u64(1 << 40);
    let err = fail(SocketType::Sub, &wire);
    assert_eq!(
        err,
        ZmtpError::FrameTooLarge {
            size: 1 << 40,
            limit: 16 << 20
        }
    );
    assert_eq!(
        err.to_string(),
        "ZMTP frame of 1099511627776 bytes exceeds the 16777216-byte limit"
    );

    let config = ZmtpConfig {
        max_message: 10,
        max_frames: 3,
        ..ZmtpConfig::default()
    };
    let mut conn = ZmtpConn::new(SocketType::Sub, config.clone());
    let mut wire = BytesMut::from(&handshake_bytes(SocketType::Pub)[..]);
    frame::put_message(&mut wire, &[b("123456"), b("789012")]);
    assert_eq!(
        conn.handle_input(&mut wire),
        Err(ZmtpError::MessageTooLarge {
            size: 12,
            limit: 10
        })
    );
    let mut conn = ZmtpConn::new(SocketType::Sub, config);
    let mut wire = BytesMut::from(&handshake_bytes(SocketType::Pub)[..]);
    frame::put_message(&mut wire, &[b("1"), b("2"), b("3"), b("4")]);
    assert_eq!(
        conn.handle_input(&mut wire),
        Err(ZmtpError::TooManyFrames { limit: 3 })
    );
}

#[test]
fn subscription_count_is_bounded() {
    let config = ZmtpConfig {
        max_subscriptions: 2,
        ..ZmtpConfig::default()
    };
    let mut conn = ZmtpConn::new(SocketType::Pub, config);
    let mut wire = BytesMut::from(&handshake_bytes(SocketType::Sub)[..]);
    for topic in ["\x01a", "\x01b", "\x01a", "\x01c"] {
        frame::put_message(&mut wire, &[b(topic)]);
    }
    assert_eq!(
        conn.handle_input(&mut wire),
        Err(ZmtpError::TooManySubscriptions { limit: 2 })
    );
}

#[test]
fn protocol_violations_are_typed_errors() {
    let hs = handshake_bytes(SocketType::Pub);
    let mut data_before_ready = BytesMut::from(&greeting::encode(true)[..]);
    frame::put_message(&mut data_before_ready, &[b("x")]);
    assert_eq!(
        fail(SocketType::Sub, &data_before_ready),
        ZmtpError::MessageBeforeReady
    );
    let mut second_ready = BytesMut::from(&hs[..]);
    frame::put_ready(&mut second_ready, &[("Socket-Type", b"PUB")]);
    assert!(matches!(
        fail(SocketType::Sub, &second_ready),
        ZmtpError::UnexpectedCommand { .. }
    ));
    let mut bad_flags = BytesMut::from(&hs[..]);
    bad_flags.put_slice(&[0x05, 0]);
    assert_eq!(
        fail(SocketType::Sub, &bad_flags),
        ZmtpError::BadFlags { flags: 5 }
    );
    let mut error = BytesMut::from(&hs[..]);
    frame::put_command(&mut error, "ERROR", b"\x04oops");
    assert_eq!(
        fail(SocketType::Sub, &error),
        ZmtpError::PeerError {
            reason: "oops".into()
        }
    );
    let mut empty_command = BytesMut::from(&hs[..]);
    empty_command.put_slice(&[frame::FLAG_COMMAND, 0]);
    assert!(matches!(
        fail(SocketType::Sub, &empty_command),
        ZmtpError::BadCommand { .. }
    ));
}

#[test]
fn role_misuse_is_refused() {
    let mut sub = ZmtpConn::new(SocketType::Sub, ZmtpConfig::default());
    assert_eq!(
        sub.send(&[b("x")]),
        Err(SendError::WrongRole(SocketType::Sub))
    );
    let mut publisher = ZmtpConn::new(SocketType::Pub, ZmtpConfig::default());
    assert_eq!(
        publisher.subscribe(b("x")),
        Err(SendError::WrongRole(SocketType::Pub))
    );
    assert!(matches!(
        publisher.send(&[]),
        Err(SendError::BadMessage { frames: 0, .. })
    ));
}

#[test]
fn xsub_and_xpub_talk_like_sub_and_pub() {
    let mut p = Pair::new(SocketType::XSub, SocketType::XPub);
    p.a.subscribe(b("")).unwrap();
    p.drive(100).unwrap();
    assert!(p.b.send(&[b("any")]).unwrap());
    p.drive(100).unwrap();
    assert_eq!(p.a_events.last(), Some(&Event::Message(vec![b("any")])));
}

#[test]
fn fuzz_entry_accepts_its_seeds() {
    super::fuzzing::zmtp_frames(&[]);
    super::fuzzing::zmtp_frames(&[4 | 1, 0x00, 0x03, b'a', b'b', b'c']);
    super::fuzzing::zmtp_frames(&[4, 0x00, 0x02, 0x01, b'a']);
    super::fuzzing::zmtp_frames(&[0xff; 200]);
}
