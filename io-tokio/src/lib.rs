//! # dynrt-tokio
//!
//! dynrt driven over tokio. The state machines and codecs live in [`dynrt_core`]; this crate
//! owns the sockets, timers and external clients, and exposes the runtime API.

pub use dynrt_core as core;

pub use dynrt_io as io;

pub mod discovery;
pub mod distributed;
pub mod mux;
mod runtime;
pub mod system_server;
pub mod zmq;

pub use runtime::TokioRuntime;

#[cfg(feature = "etcd")]
pub use dynrt_io::discovery::etcd::{EtcdConfig, EtcdStore};

pub use distributed::DistributedRuntime;
