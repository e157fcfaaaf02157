//! Dynamo 1.6.1's TCP request plane, both ways, driven by `dynrt_core::callhome`.
//!
//! - Serving (`serve_connection`, called by the request-plane listener when a connection's
//!   first bytes are not mux): request frames are routed by Dynamo's route form, acked with
//!   Dynamo's texts, and each accepted request is answered over a call-home connection
//!   (`respond`).
//! - Calling ([`DynamoCaller`]): request frames go out on pooled request connections
//!   (`pool`); the answers come back to this runtime's response-stream server
//!   (`response_server`), started once, on first use, at `DYN_TCP_RESPONSE_STREAM_HOST` /
//!   `DYN_TCP_RESPONSE_STREAM_PORT`.
//!
//! - The NATS plane (`DYN_REQUEST_PLANE=nats`, feature `nats`): the same request travels as
//!   one NATS request to the instance's subject and the reply is the ack ([`NatsServe`],
//!   [`DynamoCaller::call_nats`]); the answer comes back over call-home TCP as above.
//!
//! The mapping between a handler's bytes and Dynamo's typed values is
//! `dynrt_core::callhome::value` (and `docs/wire.md`).

mod caller;
#[cfg(feature = "nats")]
mod nats_call;
#[cfg(feature = "nats")]
mod nats_link;
#[cfg(feature = "nats")]
mod nats_serve;
mod pool;
mod respond;
mod response_server;
mod serve;
mod sock;

pub use caller::{DynamoCaller, DynamoStream};
#[cfg(feature = "nats")]
pub use nats_link::NatsLink;
#[cfg(feature = "nats")]
pub use nats_serve::NatsServe;
pub use serve::DynamoServeConfig;
pub(crate) use serve::serve_connection;

/// A socket wrapper for the test workers in `crate::testing::dynamo`.
#[cfg(feature = "testing")]
pub(crate) fn test_sock<R: crate::runtime::Runtime>(tcp: R::Tcp) -> sock::Sock<R> {
    sock::Sock::new(tcp, bytes::BytesMut::new())
}
