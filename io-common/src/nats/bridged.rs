//! Values of async-nats that any executor may read but that must be dropped inside tokio.
//!
//! Dropping an async-nats subscriber spawns a tokio task (to send UNSUB); outside a tokio
//! runtime — on smol — that would panic. These wrappers enter the bridge runtime for the drop.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::runtime::Handle;

/// An async-nats value, dropped inside the runtime of `handle`.
struct Bridged<T> {
    inner: Option<T>,
    handle: Handle,
}

impl<T> Bridged<T> {
    fn new(inner: T, handle: Handle) -> Self {
        Self {
            inner: Some(inner),
            handle,
        }
    }

    fn get_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("present until dropped")
    }
}

impl<T> Drop for Bridged<T> {
    fn drop(&mut self) {
        let _entered = self.handle.enter();
        drop(self.inner.take());
    }
}

/// Messages on a subject ([`NatsClient::subscribe`](super::NatsClient::subscribe)), as a
/// stream any executor can poll. async-nats re-subscribes after a reconnect; the stream ends
/// when the client closes. Dropping it unsubscribes.
pub struct Subscription {
    inner: Bridged<async_nats::Subscriber>,
}

impl Subscription {
    pub(super) fn new(subscriber: async_nats::Subscriber, handle: Handle) -> Self {
        Self {
            inner: Bridged::new(subscriber, handle),
        }
    }
}

impl Stream for Subscription {
    type Item = async_nats::Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(self.get_mut().inner.get_mut()).poll_next(cx)
    }
}

/// Requests to one endpoint of a [`NatsComponentService`](super::NatsComponentService), as a
/// stream any executor can poll; answer each with `request.respond(…)` (through
/// [`NatsClient::run`](super::NatsClient::run) off tokio). Its requests, errors and processing
/// time show in `$SRV.STATS`.
pub struct ServiceEndpoint {
    inner: Bridged<async_nats::service::endpoint::Endpoint>,
    subject: String,
}

impl ServiceEndpoint {
    pub(super) fn new(
        endpoint: async_nats::service::endpoint::Endpoint,
        subject: String,
        handle: Handle,
    ) -> Self {
        Self {
            inner: Bridged::new(endpoint, handle),
            subject,
        }
    }

    /// The full subject it listens on (`{service}.{name}`).
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl Stream for ServiceEndpoint {
    type Item = async_nats::service::Request;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(self.get_mut().inner.get_mut()).poll_next(cx)
    }
}
