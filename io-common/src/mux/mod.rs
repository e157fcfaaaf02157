//! dynrt's request plane between dynrt processes: one multiplexed TCP connection per peer,
//! driven by `dynrt_core::conn`.
//!
//! - [`MuxServer`] listens, tells mux connections from Dynamo ones by their first bytes, and
//!   dispatches each request stream to the [`Handler`] registered for its route.
//! - [`Connector`] keeps one connection per peer address and reconnects on failure (when to
//!   dial, wait or fail fast is `dynrt_core::peers`' decision);
//!   [`MuxClient::call`] opens a request stream on it and returns the [`ResponseStream`].
//!
//! The connection state lives behind one mutex shared by the connection's driver task, the
//! callers and the server's per-request tasks (quinn's pattern): a call locks, opens a stream
//! in the core and wakes the driver; no task is spawned and no channel is crossed on the
//! client's hot path. Response streams do not take that lock: each reads its own inbox
//! (`call`), which the driver fills, and posts credit and cancels to a mailbox the driver
//! applies once per turn (`mailbox`).

mod budget;
mod call;
mod client;
mod connector;
mod delivery;
mod driver;
mod error;
mod handler;
pub mod limit;
mod mailbox;
mod pieces;
mod server;
pub(crate) mod state;

pub use budget::{DEFAULT_PROCESS_OUTPUT_LIMIT, OutputBudget};
pub use client::{MuxClient, ResponseStream};
pub use connector::Connector;
pub use error::CallError;
pub use handler::{
    BoxItemStream, Handler, HandlerError, Handlers, RequestContext, handler_fn, typed_handler,
};
pub use server::{MuxServer, ServerConfig};

pub use dynrt_core::conn::ConnConfig;
pub use dynrt_core::wire::mux::{CancelMode, ErrorKind, RequestHeader, StreamError};
