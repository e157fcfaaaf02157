//! Discovery over smol: [`dynrt_io::discovery`] with [`SmolRuntime`] filled in.

pub use dynrt_io::discovery::*;

use crate::SmolRuntime;

/// [`dynrt_io::discovery::Discovery`] on smol.
pub type Discovery = dynrt_io::discovery::Discovery<SmolRuntime>;
/// [`dynrt_io::discovery::SharedInstances`] on smol.
pub type SharedInstances = dynrt_io::discovery::SharedInstances<SmolRuntime>;
/// [`dynrt_io::discovery::InstanceWatch`] on smol.
pub type InstanceWatch = dynrt_io::discovery::InstanceWatch<SmolRuntime>;
/// [`dynrt_io::discovery::FileStore`] on smol.
pub type FileStore = dynrt_io::discovery::FileStore<SmolRuntime>;
/// [`dynrt_io::discovery::MemSession`] on smol.
pub type MemSession = dynrt_io::discovery::MemSession<SmolRuntime>;
