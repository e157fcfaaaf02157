//! # dynrt-core
//!
//! The sans-IO heart of dynrt: every wire codec and every state machine of the runtime, with no
//! sockets, no clocks, no threads and no executor. Drivers (`dynrt-tokio`, `dynrt-smol`, the
//! fuzzers, the benches, the simulation) own all IO and feed this crate bytes and time.
//!
//! ## How a driver talks to a state machine
//!
//! Every machine in this crate has four kinds of method (the shape quinn-proto made familiar):
//!
//! - getters (`&self`) that never change anything;
//! - `handle_*` methods for input from the network or the clock; they take `now` as a parameter;
//! - mutators for commands from the application (open a stream, register, shut down);
//! - `poll_*` methods for output: `poll_transmit` (bytes for a socket, written into a buffer the
//!   driver owns), `poll_event` (what the application must learn), `poll_command` (work for an
//!   external system such as etcd), and `poll_timeout` (the next deadline, `None` if none).
//!
//! After any input the driver drains every `poll_*` until it returns nothing, then sleeps until
//! the deadline from `poll_timeout` or the next input, whichever comes first. The codecs in
//! [`wire`] follow the same rule in miniature: decoders pull whole frames out of a `BytesMut` the
//! driver owns, encoders append to one.
//!
//! ```
//! use bytes::BytesMut;
//! use dynrt_core::wire::dynamo::{AckFrame, AckDecoder, DEFAULT_MAX_MESSAGE_SIZE};
//!
//! // A driver loop in miniature: bytes arrive in arbitrary pieces, frames come out whole.
//! let mut wire = BytesMut::new();
//! AckFrame::accepted().encode(&mut wire)?;
//! AckFrame::rejected("Server unavailable: draining").encode(&mut wire)?;
//!
//! let mut decoder = AckDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
//! let mut socket_buffer = BytesMut::new();
//! let mut acks = Vec::new();
//! for chunk in wire.chunks(3) {
//!     socket_buffer.extend_from_slice(chunk); // what a socket read would do
//!     while let Some(ack) = decoder.decode(&mut socket_buffer)? {
//!         acks.push(ack);
//!     }
//! }
//! assert_eq!(acks.len(), 2);
//! assert!(acks[0].is_accepted());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The machines: [`conn`] (dynrt's mux connection), [`callhome`] (Dynamo's request connection and
//! call-home response streams, both sides), [`lease`], [`health`], [`shutdown`], the discovery
//! instance sets in [`discovery`].
//!
//! The design decisions behind all this are written down in [`manual`].
#![forbid(unsafe_code)]

pub mod callhome;
pub mod config;
pub mod conn;
pub mod discovery;
pub mod health;
pub mod kv;
pub mod lease;
pub mod manual;
pub mod metrics;
pub mod names;
pub mod router;
pub mod shutdown;
pub mod status;
pub mod wire;
pub mod zmtp;
