//! Test and fuzz support, not a stable API: [`Pair`] joins two connections through in-memory
//! buffers, and [`zmtp_frames`] feeds fuzzer bytes to a connection and checks its invariants.

use bytes::{Bytes, BytesMut};

use super::frame;
use super::greeting;
use super::{Event, SocketType, ZmtpConfig, ZmtpConn};

/// Two connections joined by in-memory buffers.
#[derive(Debug)]
pub struct Pair {
    /// One end (conventionally the connecting side).
    pub a: ZmtpConn,
    /// The other end.
    pub b: ZmtpConn,
    /// Events `a` raised.
    pub a_events: Vec<Event>,
    /// Events `b` raised.
    pub b_events: Vec<Event>,
    /// Deliver at most this many bytes per step (`None`: everything).
    pub chunk: Option<usize>,
    a_in: BytesMut,
    b_in: BytesMut,
}

impl Pair {
    /// A pair of sockets of these types with default configs.
    pub fn new(a: SocketType, b: SocketType) -> Self {
        Self::with_configs(a, ZmtpConfig::default(), b, ZmtpConfig::default())
    }

    /// A pair with these configs.
    pub fn with_configs(a: SocketType, ca: ZmtpConfig, b: SocketType, cb: ZmtpConfig) -> Self {
        Self {
            a: ZmtpConn::new(a, ca),
            b: ZmtpConn::new(b, cb),
            a_events: Vec::new(),
            b_events: Vec::new(),
            chunk: None,
            a_in: BytesMut::new(),
            b_in: BytesMut::new(),
        }
    }

    /// Moves bytes both ways until neither side has anything to send (at most `max_steps`
    /// rounds, so a livelock fails the test instead of hanging it). Errors end the drive.
    pub fn drive(&mut self, max_steps: usize) -> Result<(), super::ZmtpError> {
        let mut wire_ab = BytesMut::new();
        let mut wire_ba = BytesMut::new();
        for _ in 0..max_steps {
            while self.a.poll_transmit(&mut wire_ab) {}
            while self.b.poll_transmit(&mut wire_ba) {}
            if wire_ab.is_empty() && wire_ba.is_empty() {
                return Ok(());
            }
            let n = self.chunk.unwrap_or(usize::MAX);
            let take = wire_ab.len().min(n);
            self.b_in.extend_from_slice(&wire_ab.split_to(take));
            let take = wire_ba.len().min(n);
            self.a_in.extend_from_slice(&wire_ba.split_to(take));
            self.b.handle_input(&mut self.b_in)?;
            self.a.handle_input(&mut self.a_in)?;
            while let Some(e) = self.a.poll_event() {
                self.a_events.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.b_events.push(e);
            }
        }
        panic!("the pair did not settle within {max_steps} steps");
    }
}

/// The bytes a peer of type `peer` sends up to and including its READY.
pub fn handshake_bytes(peer: SocketType) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&greeting::encode(true));
    frame::put_ready(&mut out, &[("Socket-Type", peer.name().as_bytes())]);
    out.to_vec()
}

/// Fuzz entry point: byte 0 picks our socket type (bits 0–1), whether a valid handshake is
/// prepended (bit 2), and the chunk size reads arrive in (bits 3–7). The rest is the peer's
/// bytes. Invariants: no panic, an error is sticky, events fit the socket type, nothing
/// buffered beyond the limits.
pub fn zmtp_frames(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let ours = [
        SocketType::Pub,
        SocketType::Sub,
        SocketType::XPub,
        SocketType::XSub,
    ][usize::from(control & 3)];
    let config = ZmtpConfig {
        max_frame: 1024,
        max_message: 4096,
        max_frames: 8,
        max_subscriptions: 16,
        hwm: 4,
        as_server: false,
    };
    let mut conn = ZmtpConn::new(ours, config.clone());
    // SUB/XSUB subscribe to a few prefixes, so the filter both passes and drops messages.
    if !ours.is_publisher() {
        for topic in [&b"a"[..], b"topic", b""] {
            conn.subscribe(Bytes::copy_from_slice(topic))
                .expect("a subscriber may subscribe");
        }
    }
    let mut input = Vec::new();
    if control & 4 != 0 {
        let peer = if ours.is_publisher() {
            SocketType::Sub
        } else {
            SocketType::Pub
        };
        input.extend_from_slice(&handshake_bytes(peer));
    }
    input.extend_from_slice(rest);
    let chunk = usize::from(control >> 3) + 1;
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut failed = None;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        match conn.handle_input(&mut buf) {
            Ok(()) => assert!(failed.is_none(), "an error must be sticky"),
            Err(e) => {
                if let Some(first) = &failed {
                    assert_eq!(first, &e, "an error must be sticky");
                }
                failed = Some(e);
            }
        }
        // Publishers try to send, so the high-water mark and filter paths run.
        if ours.is_publisher() {
            let _ = conn.send(&[Bytes::from_static(b"topic"), Bytes::from_static(b"x")]);
            assert!(conn.queued_messages() <= config.hwm);
        }
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Message(frames) => {
                    assert!(!frames.is_empty() && frames.len() <= config.max_frames);
                    assert!(frames.iter().map(Bytes::len).sum::<usize>() <= config.max_message);
                    assert!(ours != SocketType::Pub, "a PUB reports no messages");
                }
                Event::Subscribe(_) | Event::Cancel(_) => assert!(ours.is_publisher()),
                Event::Ready { peer } => assert!(ours.is_compatible(peer)),
            }
        }
        assert!(conn.peer_filter().len() <= config.max_subscriptions);
        // A partial frame is never buffered beyond the frame limit plus its header.
        if failed.is_none() && conn.is_ready() {
            assert!(buf.len() <= config.max_frame + 9);
        }
        if conn.poll_transmit(&mut out) {
            out.clear();
        }
    }
}
