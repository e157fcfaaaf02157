//! The NATS client: connection from the configuration, the runtime's KV-router calls, a NATS
//! service (`$SRV`) per component, and subscriptions any executor can read.
//!
//! async-nats runs only on tokio. Every call goes through
//! [`Runtime::tokio_handle`](crate::runtime::Runtime::tokio_handle): awaited directly when the caller already runs on
//! tokio, spawned there and awaited through its `JoinHandle` otherwise (smol). A
//! [`Subscription`] or service endpoint is read from any executor (its channel needs no
//! runtime) and dropped inside the tokio runtime (async-nats unsubscribes with a tokio task).
//!
//! Connection losses are async-nats's to repair: it reconnects forever, with backoff, and
//! restores every subscription. While it is disconnected, the client logs a warning, `/health`
//! shows `"dependencies":{"nats":"disconnected"}`, publishes are buffered by async-nats and
//! requests fail with [`NatsError::TimedOut`] — nothing waits without a bound.

mod error;

pub use error::NatsError;

#[cfg(feature = "nats")]
mod bridged;
#[cfg(feature = "nats")]
mod client;
#[cfg(feature = "nats")]
mod confirm;
#[cfg(feature = "nats")]
mod options;
#[cfg(feature = "nats")]
mod service;

#[cfg(feature = "nats")]
pub use async_nats;
#[cfg(feature = "nats")]
pub use bridged::{ServiceEndpoint, Subscription};
#[cfg(feature = "nats")]
pub use client::NatsClient;
#[cfg(feature = "nats")]
pub(crate) use confirm::confirm_processed;
#[cfg(feature = "nats")]
pub use service::{NatsComponentService, service_name};
