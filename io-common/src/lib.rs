//! # dynrt-io
//!
//! The drivers that connect dynrt-core's state machines to sockets, timers and external
//! clients, written once, generic over a small [`Runtime`] (spawn, timers, TCP, and — with the
//! `tokio-bridge` feature that etcd enables — a bridge to tokio for the tokio-only clients). `dynrt-tokio` and `dynrt-smol` each implement
//! [`Runtime`] in about a hundred lines and re-export this crate's API with their runtime
//! filled in, so a user switches executor by changing one import.
//!
//! Why a shared crate rather than two copies: every line of driver logic written twice is a
//! line that can drift; and the core cannot hold it, because it is async and the core is pure.
//! The split follows quinn's: protocol state in the core, glue generic over a small runtime
//! trait, executor-specific code in the thinnest layer possible.

pub mod cancel;
pub mod demo;
pub mod discovery;
pub mod distributed;
pub mod dynamo;
pub mod events;
pub mod mux;
pub mod nats;
mod queue;
pub mod runtime;
pub mod system_server;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
pub mod zmq;

pub use cancel::CancellationToken;
pub use distributed::DistributedRuntime;
pub use runtime::Runtime;
