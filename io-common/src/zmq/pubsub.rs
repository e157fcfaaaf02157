//! The four typed sockets over the shared [`Socket`] machinery.

use bytes::Bytes;
use dynrt_core::zmtp::{SendError, SocketType};

use super::endpoint::{Endpoint, EndpointError};
use super::socket::{BindError, SendReport, Socket};
use super::{ZmqConfig, ZmqStats};
use crate::runtime::Runtime;

/// The socket was closed; no message will come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ZMQ socket closed")]
pub struct RecvError;

macro_rules! common {
    () => {
        /// Binds `endpoint` (`tcp://host:port`, port 0 or `*` for any) and accepts peers;
        /// returns the endpoint actually bound.
        pub async fn bind(&self, endpoint: &str) -> Result<Endpoint, BindError> {
            self.socket.bind(endpoint).await
        }

        /// Connects to `endpoint` in the background, redialling with backoff while the socket
        /// lives (returns at once; a malformed endpoint is refused here).
        pub fn connect(&self, endpoint: &str) -> Result<(), EndpointError> {
            self.socket.connect(endpoint)
        }

        /// Stops redialling `endpoint` and drops its connection; false if not connected.
        pub fn disconnect(&self, endpoint: &str) -> bool {
            self.socket.disconnect(endpoint)
        }

        /// The counters.
        pub fn stats(&self) -> ZmqStats {
            self.socket.stats()
        }

        /// Peers whose handshake is done.
        pub fn ready_peers(&self) -> usize {
            self.socket.ready_peers()
        }

        /// Closes the socket: its listener, connectors and peers (dropping it does the same).
        pub fn close(&self) {
            self.socket.close()
        }
    };
}

macro_rules! sender {
    () => {
        /// Sends one multipart message to every peer subscribed to its first frame. A peer whose
        /// queue is full misses it (counted in [`ZmqStats::dropped_full`]); no peer blocks
        /// another. Errors only for an empty or over-limit message.
        pub fn send(&self, frames: &[Bytes]) -> Result<SendReport, SendError> {
            self.socket.send(frames)
        }
    };
}

macro_rules! receiver {
    () => {
        /// Subscribes to messages whose first frame starts with `prefix` (empty: all), on every
        /// peer now and later. Subscriptions are counted: each needs its own unsubscribe.
        pub fn subscribe(&self, prefix: impl Into<Bytes>) {
            self.socket.subscribe(prefix.into())
        }

        /// Removes one subscription to `prefix`.
        pub fn unsubscribe(&self, prefix: &[u8]) {
            self.socket.unsubscribe(prefix)
        }

        /// Messages dropped so far because the receive queue was full (the
        /// [`ZmqStats::dropped_slow_receiver`] count, read without taking any lock).
        pub fn dropped_slow_receiver(&self) -> u64 {
            self.socket.dropped_slow_receiver()
        }

        /// The next whole message (its frames), waiting for one; an error once the socket is
        /// closed and what it received has been taken.
        pub async fn recv(&self) -> Result<Vec<Bytes>, RecvError> {
            self.socket.inner.messages.recv().await.ok_or(RecvError)
        }

        /// Every message queued (at least one, waiting for it), appended to `out`; returns how
        /// many. Cheaper than one `recv` per message when they arrive in bursts.
        pub async fn recv_all(&self, out: &mut Vec<Vec<Bytes>>) -> Result<usize, RecvError> {
            self.socket
                .inner
                .messages
                .recv_all(out)
                .await
                .ok_or(RecvError)
        }

        /// The next message if one is queued.
        pub fn try_recv(&self) -> Option<Vec<Bytes>> {
            self.socket.inner.messages.try_recv()
        }
    };
}

macro_rules! socket_type {
    ($name:ident, $kind:expr, $doc:literal, $($body:tt)*) => {
        #[doc = $doc]
        pub struct $name<R: Runtime> {
            socket: Socket<R>,
        }

        impl<R: Runtime> $name<R> {
            /// A socket with nothing bound or connected yet.
            pub fn new(rt: R, config: ZmqConfig) -> Self {
                Self {
                    socket: Socket::new(rt, $kind, config),
                }
            }

            common!();
            $($body)*
        }

        impl<R: Runtime> Drop for $name<R> {
            fn drop(&mut self) {
                self.socket.close();
            }
        }

        impl<R: Runtime> std::fmt::Debug for $name<R> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).field("stats", &self.stats()).finish()
            }
        }
    };
}

socket_type!(
    ZmqPub,
    SocketType::Pub,
    "A PUB socket: sends each message to the peers subscribed to its first frame.",
    sender!();
);
socket_type!(
    ZmqSub,
    SocketType::Sub,
    "A SUB socket: receives the messages of its subscriptions from every publisher it reaches.",
    receiver!();
);
socket_type!(
    ZmqXPub,
    SocketType::XPub,
    "An XPUB socket: a PUB that reports its subscribers' subscriptions (a broker's outer side).",
    sender!();

    /// Calls `hook(true, prefix)` when the first peer subscribes to a prefix and
    /// `hook(false, prefix)` when its last subscriber cancels or leaves (libzmq's XPUB passes
    /// subscriptions on the same way). Replaces an earlier hook; call it before peers arrive.
    pub fn on_subscription(&self, hook: impl Fn(bool, Bytes) + Send + Sync + 'static) {
        *self.socket.inner.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
    }
);
socket_type!(
    ZmqXSub,
    SocketType::XSub,
    "An XSUB socket: a SUB whose subscriptions a broker forwards from its XPUB side.",
    receiver!();
);
