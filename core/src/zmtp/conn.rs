//! One ZMTP 3 connection of a PUB, SUB, XPUB or XSUB socket, as a sans-IO machine: greeting,
//! NULL handshake, message framing, subscriptions and the topic filter.
//!
//! ## Driving it
//!
//! ```text
//! conn = ZmtpConn::new(our_type, config)          // queues our greeting
//! loop {
//!     on socket bytes:   conn.handle_input(&mut read_buf)?   // Err: drop the peer
//!     application:       conn.send(&frames) / conn.subscribe(topic) / conn.unsubscribe(topic)
//!     while conn.poll_transmit(&mut write_buf) {}            // write `write_buf` to the socket
//!     while let Some(event) = conn.poll_event() { deliver(event) }
//! }
//! ```
//!
//! ZMTP has no timers of its own under NULL (a PING is answered, never sent), so the machine
//! has no `handle_timeout`; the driver bounds the handshake with its own deadline.
//!
//! ## States
//!
//! | state | input | next state | output |
//! |---|---|---|---|
//! | `Greeting` | a greeting byte that is not ZMTP 3 | `Failed` | — |
//! | `Greeting` | 64 greeting bytes, NULL mechanism | `AwaitReady` | READY (`Socket-Type`) |
//! | `Greeting` | other mechanism | `Failed` | — |
//! | `AwaitReady` | READY with a compatible `Socket-Type` | `Ready` | `Event::Ready`; SUB/XSUB: its subscriptions |
//! | `AwaitReady` | READY with an incompatible or missing type, any other frame | `Failed` | — |
//! | `Ready` | a message (SUB/XSUB: matching our filter) | `Ready` | `Event::Message` |
//! | `Ready` | PUB/XPUB: `\x01topic` message or SUBSCRIBE | `Ready` | `Event::Subscribe` |
//! | `Ready` | PUB/XPUB: `\x00topic` message or CANCEL | `Ready` | `Event::Cancel` |
//! | `Ready` | PING | `Ready` | PONG |
//! | `Ready` | ERROR, READY, SUBSCRIBE to a SUB, a frame over a limit | `Failed` | — |
//! | `Failed` | anything | `Failed` | the same error again |

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::filter::TopicFilter;
use super::frame::{self, Command, Frame};
use super::greeting::{self, GREETING_LEN};
use super::{SendError, SocketType, ZmtpError};

/// Limits and queue sizes of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZmtpConfig {
    /// The largest frame accepted from the peer (checked on its header).
    pub max_frame: usize,
    /// The largest multipart message accepted from the peer, all frames together.
    pub max_message: usize,
    /// The most frames one message may have.
    pub max_frames: usize,
    /// The most distinct subscriptions a peer may hold on a PUB/XPUB connection.
    pub max_subscriptions: usize,
    /// Messages queued for the socket, not yet taken by `poll_transmit`, beyond which
    /// [`ZmtpConn::send`] drops (1.6.1's send high-water mark is 100 000).
    pub hwm: usize,
    /// The as-server flag of our greeting (informative under NULL: set it on accepted sockets).
    pub as_server: bool,
}

impl Default for ZmtpConfig {
    fn default() -> Self {
        Self {
            max_frame: 16 << 20,
            max_message: 16 << 20,
            max_frames: 64,
            max_subscriptions: 10_000,
            hwm: 100_000,
            as_server: false,
        }
    }
}

/// What the connection reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake finished; the peer is a socket of this type.
    Ready {
        /// The peer's type.
        peer: SocketType,
    },
    /// A whole message: on SUB/XSUB one that matched our subscriptions, on XPUB one the peer
    /// sent that is not a subscription.
    Message(Vec<Bytes>),
    /// PUB/XPUB: the peer subscribed to this prefix.
    Subscribe(Bytes),
    /// PUB/XPUB: the peer cancelled its subscription to this prefix.
    Cancel(Bytes),
}

#[derive(Debug)]
enum State {
    Greeting,
    AwaitReady,
    Ready { peer: SocketType },
    Failed(ZmtpError),
}

/// One ZMTP connection (see the module docs for the driving loop and the state table).
#[derive(Debug)]
pub struct ZmtpConn {
    ours: SocketType,
    config: ZmtpConfig,
    state: State,
    out: BytesMut,
    /// Messages in `out` (what the high-water mark counts).
    queued: usize,
    /// PUB/XPUB: what the peer subscribed to (a set, as libzmq keeps it per peer).
    peer_filter: TopicFilter,
    /// SUB/XSUB: what we subscribed to; incoming messages are filtered on it too, as libzmq's
    /// SUB does, so a publisher that ignores subscriptions cannot flood us with other topics.
    our_filter: TopicFilter,
    partial: Vec<Bytes>,
    partial_size: usize,
    events: VecDeque<Event>,
    filtered: u64,
}

impl ZmtpConn {
    /// A connection for a socket of type `ours`, with our greeting queued.
    pub fn new(ours: SocketType, config: ZmtpConfig) -> Self {
        let mut out = BytesMut::with_capacity(256);
        out.put_slice(&greeting::encode(config.as_server));
        Self {
            ours,
            config,
            state: State::Greeting,
            out,
            queued: 0,
            peer_filter: TopicFilter::new(),
            our_filter: TopicFilter::new(),
            partial: Vec::new(),
            partial_size: 0,
            events: VecDeque::new(),
            filtered: 0,
        }
    }

    /// Our socket type.
    pub fn socket_type(&self) -> SocketType {
        self.ours
    }

    /// The peer's socket type, once the handshake is done.
    pub fn peer_type(&self) -> Option<SocketType> {
        match self.state {
            State::Ready { peer } => Some(peer),
            _ => None,
        }
    }

    /// Whether the handshake is done.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready { .. })
    }

    /// The error that ended the connection, if one did.
    pub fn error(&self) -> Option<&ZmtpError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// PUB/XPUB: the peer's subscriptions.
    pub fn peer_filter(&self) -> &TopicFilter {
        &self.peer_filter
    }

    /// SUB/XSUB: our subscriptions.
    pub fn our_filter(&self) -> &TopicFilter {
        &self.our_filter
    }

    /// Messages queued and not yet taken by `poll_transmit`.
    pub fn queued_messages(&self) -> usize {
        self.queued
    }

    /// Bytes queued and not yet taken by `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }

    /// SUB/XSUB: messages received that matched none of our subscriptions (dropped).
    pub fn filtered_messages(&self) -> u64 {
        self.filtered
    }

    /// Feeds bytes read from the socket; consumes every whole frame in `buf` and leaves a
    /// partial one. An error is fatal and sticky: drop the peer.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), ZmtpError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        match self.consume(buf) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.state = State::Failed(e.clone());
                self.partial.clear();
                Err(e)
            }
        }
    }

    fn consume(&mut self, buf: &mut BytesMut) -> Result<(), ZmtpError> {
        if let State::Greeting = self.state {
            greeting::check_prefix(&buf[..buf.len().min(GREETING_LEN)])?;
            if buf.len() < GREETING_LEN {
                return Ok(());
            }
            let bytes: [u8; GREETING_LEN] = buf[..GREETING_LEN]
                .try_into()
                .expect("length checked above");
            greeting::parse(&bytes)?;
            buf.advance(GREETING_LEN);
            frame::put_ready(
                &mut self.out,
                &[("Socket-Type", self.ours.name().as_bytes())],
            );
            self.state = State::AwaitReady;
        }
        while let Some(frame) = frame::decode(buf, self.config.max_frame)? {
            match frame {
                Frame::Command(body) => self.handle_command(Command::parse(body)?)?,
                Frame::Data { more, body } => self.handle_data(more, body)?,
            }
        }
        Ok(())
    }

    fn handle_command(&mut self, cmd: Command) -> Result<(), ZmtpError> {
        let name = cmd.name.as_ref();
        if name == b"ERROR" {
            let reason = cmd.data.get(1..).unwrap_or_default();
            return Err(ZmtpError::PeerError {
                reason: String::from_utf8_lossy(reason).into_owned(),
            });
        }
        match self.state {
            State::AwaitReady if name == b"READY" => self.handle_ready(cmd.data),
            State::AwaitReady => Err(ZmtpError::UnexpectedCommand {
                got: cmd.name_str(),
                expected: "READY",
            }),
            State::Ready { .. } => match name {
                b"PING" => {
                    // PING: a two-byte TTL, then up to 16 bytes of context that PONG echoes.
                    let context = cmd.data.get(2..).unwrap_or_default();
                    if context.len() > 16 {
                        return Err(ZmtpError::BadCommand {
                            command: "PING".into(),
                            reason: "context longer than 16 bytes",
                        });
                    }
                    frame::put_command(&mut self.out, "PONG", context);
                    Ok(())
                }
                b"SUBSCRIBE" | b"CANCEL" if self.ours.is_publisher() => {
                    self.peer_subscription(name == b"SUBSCRIBE", cmd.data)
                }
                b"READY" | b"SUBSCRIBE" | b"CANCEL" => Err(ZmtpError::UnexpectedCommand {
                    got: cmd.name_str(),
                    expected: "no handshake or subscription command",
                }),
                // PONG and commands of later ZMTP versions carry nothing we act on.
                _ => Ok(()),
            },
            State::Greeting | State::Failed(_) => {
                unreachable!("commands are decoded only after the greeting, never after failure")
            }
        }
    }

    fn handle_ready(&mut self, data: Bytes) -> Result<(), ZmtpError> {
        let props = frame::parse_properties(data)?;
        let Some((_, value)) = props
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(b"Socket-Type"))
        else {
            return Err(ZmtpError::BadCommand {
                command: "READY".into(),
                reason: "no Socket-Type property",
            });
        };
        let peer = SocketType::from_name(value)
            .filter(|peer| self.ours.is_compatible(*peer))
            .ok_or_else(|| ZmtpError::IncompatibleSocketType {
                ours: self.ours,
                peer: String::from_utf8_lossy(value).into_owned(),
            })?;
        self.state = State::Ready { peer };
        self.events.push_back(Event::Ready { peer });
        let prefixes: Vec<Bytes> = self.our_filter.prefixes().cloned().collect();
        for prefix in prefixes {
            self.put_subscription(true, &prefix);
        }
        Ok(())
    }

    fn handle_data(&mut self, more: bool, body: Bytes) -> Result<(), ZmtpError> {
        if !self.is_ready() {
            return Err(ZmtpError::MessageBeforeReady);
        }
        self.partial_size += body.len();
        if self.partial_size > self.config.max_message {
            return Err(ZmtpError::MessageTooLarge {
                size: self.partial_size,
                limit: self.config.max_message,
            });
        }
        if self.partial.len() == self.config.max_frames {
            return Err(ZmtpError::TooManyFrames {
                limit: self.config.max_frames,
            });
        }
        self.partial.push(body);
        if more {
            return Ok(());
        }
        self.partial_size = 0;
        let message = std::mem::take(&mut self.partial);
        if self.ours.is_publisher() {
            // ZMTP 3.0 subscriptions: a one-frame message starting 0x01 (subscribe) or 0x00.
            if let [only] = message.as_slice()
                && let Some(&kind @ (0 | 1)) = only.first()
            {
                return self.peer_subscription(kind == 1, only.slice(1..));
            }
            if self.ours == SocketType::XPub {
                self.events.push_back(Event::Message(message));
            }
        } else if self.our_filter.matches(&message[0]) {
            self.events.push_back(Event::Message(message));
        } else {
            self.filtered += 1;
        }
        Ok(())
    }

    fn peer_subscription(&mut self, subscribe: bool, topic: Bytes) -> Result<(), ZmtpError> {
        if subscribe {
            // A set per peer: a repeated SUBSCRIBE changes nothing but is still reported.
            if !self.peer_filter.contains(&topic) {
                if self.peer_filter.len() >= self.config.max_subscriptions {
                    return Err(ZmtpError::TooManySubscriptions {
                        limit: self.config.max_subscriptions,
                    });
                }
                self.peer_filter.subscribe(topic.clone());
            }
            self.events.push_back(Event::Subscribe(topic));
        } else {
            self.peer_filter.remove(&topic);
            self.events.push_back(Event::Cancel(topic));
        }
        Ok(())
    }

    fn put_subscription(&mut self, subscribe: bool, topic: &[u8]) {
        // The ZMTP 3.0 message form: every 3.x peer accepts it (3.1 keeps it valid).
        frame::put_header(&mut self.out, 0, topic.len() + 1);
        self.out.put_u8(u8::from(subscribe));
        self.out.put_slice(topic);
    }

    /// SUB/XSUB: subscribes to messages whose first frame starts with `prefix` (sent now if
    /// the handshake is done, else with the handshake).
    pub fn subscribe(&mut self, prefix: Bytes) -> Result<(), SendError> {
        self.check_subscriber()?;
        self.our_filter.subscribe(prefix.clone());
        if self.is_ready() {
            self.put_subscription(true, &prefix);
        }
        Ok(())
    }

    /// SUB/XSUB: removes one subscription to `prefix`; the peer is told when it was the last.
    pub fn unsubscribe(&mut self, prefix: &[u8]) -> Result<(), SendError> {
        self.check_subscriber()?;
        if self.our_filter.unsubscribe(prefix) && self.is_ready() {
            self.put_subscription(false, prefix);
        }
        Ok(())
    }

    fn check_subscriber(&self) -> Result<(), SendError> {
        if self.ours.is_publisher() {
            return Err(SendError::WrongRole(self.ours));
        }
        if let State::Failed(_) = self.state {
            return Err(SendError::Closed);
        }
        Ok(())
    }

    /// PUB/XPUB: queues `frames` as one message if the peer subscribed to its first frame.
    /// `Ok(false)`: not subscribed (or the handshake is not done: a publisher's peer has no
    /// subscriptions yet), nothing queued. [`SendError::Full`]: the high-water mark is reached
    /// and the message dropped.
    pub fn send(&mut self, frames: &[Bytes]) -> Result<bool, SendError> {
        let Some(first) = frames.first() else {
            return Err(self.bad_message(frames));
        };
        if frame::message_len(frames) > self.config.max_message {
            return Err(self.bad_message(frames));
        }
        if !self.may_send(first)? {
            return Ok(false);
        }
        frame::put_message(&mut self.out, frames);
        self.queued += 1;
        Ok(true)
    }

    /// PUB/XPUB: like [`Self::send`] for a message already encoded with
    /// [`frame::put_message`] (whose first frame is `topic`): one encoding copied to every
    /// subscriber of a fan-out.
    pub fn send_encoded(&mut self, topic: &[u8], encoded: &[u8]) -> Result<bool, SendError> {
        if !self.may_send(topic)? {
            return Ok(false);
        }
        self.out.extend_from_slice(encoded);
        self.queued += 1;
        Ok(true)
    }

    fn may_send(&self, topic: &[u8]) -> Result<bool, SendError> {
        if !self.ours.is_publisher() {
            return Err(SendError::WrongRole(self.ours));
        }
        match self.state {
            State::Failed(_) => Err(SendError::Closed),
            State::Ready { .. } if self.peer_filter.matches(topic) => {
                if self.queued >= self.config.hwm {
                    Err(SendError::Full {
                        hwm: self.config.hwm,
                    })
                } else {
                    Ok(true)
                }
            }
            _ => Ok(false),
        }
    }

    fn bad_message(&self, frames: &[Bytes]) -> SendError {
        SendError::BadMessage {
            size: frames.iter().map(Bytes::len).sum(),
            frames: frames.len(),
            limit: self.config.max_message,
        }
    }

    /// Moves everything queued into `dst` (swapping buffers when `dst` is empty, so a driver
    /// that writes and clears one buffer never copies); false when nothing was queued.
    #[must_use]
    pub fn poll_transmit(&mut self, dst: &mut BytesMut) -> bool {
        if self.out.is_empty() {
            return false;
        }
        if dst.is_empty() {
            std::mem::swap(dst, &mut self.out);
        } else {
            dst.extend_from_slice(&self.out);
            self.out.clear();
        }
        self.queued = 0;
        true
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
