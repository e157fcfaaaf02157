//! Discovery over tokio: [`dynrt_io::discovery`] with [`TokioRuntime`] filled in.

pub use dynrt_io::discovery::*;

use crate::TokioRuntime;

/// [`dynrt_io::discovery::Discovery`] on tokio.
pub type Discovery = dynrt_io::discovery::Discovery<TokioRuntime>;
/// [`dynrt_io::discovery::SharedInstances`] on tokio.
pub type SharedInstances = dynrt_io::discovery::SharedInstances<TokioRuntime>;
/// [`dynrt_io::discovery::InstanceWatch`] on tokio.
pub type InstanceWatch = dynrt_io::discovery::InstanceWatch<TokioRuntime>;
/// [`dynrt_io::discovery::FileStore`] on tokio.
pub type FileStore = dynrt_io::discovery::FileStore<TokioRuntime>;
/// [`dynrt_io::discovery::MemSession`] on tokio.
pub type MemSession = dynrt_io::discovery::MemSession<TokioRuntime>;
