//! The NATS request plane's view of the runtime's NATS client (`crate::nats::NatsClient`):
//! async-nats, driven on its tokio handle (async-nats runs only on tokio).
//!
//! Every call that may touch tokio's reactor or timers runs on that handle: awaited in place
//! when the caller already runs inside a tokio runtime, else as a task there awaited through
//! its `JoinHandle`, an ordinary future any executor can await.

use std::time::Duration;

use async_nats::{Client, HeaderMap, RequestErrorKind, Subscriber};
use bytes::Bytes;
use dynrt_core::wire::dynamo::nats::NatsFailure;

/// A connected NATS client and the tokio handle that drives it. Cheap to clone.
#[derive(Clone)]
pub struct NatsLink {
    client: Client,
    tokio: tokio::runtime::Handle,
}

impl std::fmt::Debug for NatsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsLink")
            .field("state", &self.client.connection_state())
            .finish_non_exhaustive()
    }
}

impl NatsLink {
    /// Wraps a client connected elsewhere; `tokio` must be a handle of the runtime it runs on.
    pub fn from_client(client: Client, tokio: tokio::runtime::Handle) -> Self {
        Self { client, tokio }
    }

    /// The async-nats client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The tokio handle that drives the client.
    pub(crate) fn tokio(&self) -> &tokio::runtime::Handle {
        &self.tokio
    }

    /// The largest message the connected server accepts (0 before the first connection).
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    /// Sends one request to `subject` and waits at most `timeout` for its reply.
    ///
    /// # Errors
    /// A typed [`NatsFailure`]: nobody subscribed, no reply in time, the server's limit, or
    /// the client's own failure.
    pub async fn request(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, NatsFailure> {
        let client = self.client.clone();
        let len = payload.len();
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(payload)
            .timeout(Some(timeout));
        let send = async move { client.send_request(subject, request).await };
        // On tokio already (the caller's executor is the client's): awaited here, which saves
        // a task and its wake-up per request.
        let sent = if tokio::runtime::Handle::try_current().is_ok() {
            Ok(send.await)
        } else {
            self.tokio.spawn(send).await
        };
        match sent {
            Ok(Ok(message)) => Ok(message.payload),
            Ok(Err(e)) => Err(match e.kind() {
                RequestErrorKind::NoResponders => NatsFailure::NoResponders,
                RequestErrorKind::TimedOut => NatsFailure::AckTimeout(timeout),
                RequestErrorKind::MaxPayloadExceeded => NatsFailure::PayloadTooLarge {
                    payload: len,
                    max_payload: self.max_payload(),
                },
                _ => NatsFailure::Request(e.to_string()),
            }),
            Err(e) => Err(NatsFailure::Request(format!("request task failed: {e}"))),
        }
    }

    /// Subscribes to `subject` in `queue` group.
    ///
    /// # Errors
    /// The client is closed.
    pub async fn queue_subscribe(
        &self,
        subject: String,
        queue: &str,
    ) -> Result<Subscriber, String> {
        let client = self.client.clone();
        let queue = queue.to_owned();
        let what = subject.clone();
        self.tokio
            .spawn(async move { client.queue_subscribe(subject, queue).await })
            .await
            .map_err(|e| format!("subscribe task failed: {e}"))?
            .map_err(|e| format!("cannot subscribe to {what}: {e}"))
    }
}
