//! # dynrt-smol
//!
//! dynrt driven over smol. The state machines and codecs live in [`dynrt_core`]; this crate
//! owns the sockets, timers and external clients, and exposes the runtime API.

pub use dynrt_core as core;

pub use dynrt_io as io;

mod runtime;

pub use runtime::SmolRuntime;

pub use dynrt_io::discovery::etcd::{EtcdConfig, EtcdStore};
