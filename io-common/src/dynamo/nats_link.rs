//! The NATS connection the NATS request plane uses: async-nats, driven on the runtime's tokio
//! handle (async-nats runs only on tokio; on smol the adapter's background tokio runtime).
//!
//! Every call that may touch tokio's reactor or timers runs as a task on that handle and is
//! awaited through its `JoinHandle`, an ordinary future any executor can await.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, HeaderMap, RequestErrorKind, Subscriber};
use bytes::Bytes;
use dynrt_core::wire::dynamo::nats::NatsFailure;

use crate::runtime::Runtime;

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
    /// Connects to `servers` (comma-separated `nats://host:port` URLs), giving up after
    /// `timeout`. Once connected, async-nats reconnects on its own (without bound); the
    /// connection's ups and downs are logged.
    ///
    /// # Errors
    /// The servers could not be reached in time, or the URL list is invalid (the text names
    /// `NATS_SERVER` and what was tried).
    pub async fn connect<R: Runtime>(
        rt: &R,
        servers: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let tokio = rt.tokio_handle().ok_or_else(|| {
            "the NATS client runs on tokio, and this executor's Runtime gives no tokio handle \
             (Runtime::tokio_handle)"
                .to_owned()
        })?;
        let urls = servers.to_owned();
        let connecting = tokio.spawn(async move {
            let options = ConnectOptions::new()
                .name("dynrt")
                .connection_timeout(timeout)
                .event_callback(|event| async move {
                    match event {
                        Event::Disconnected => tracing::warn!("NATS connection lost; reconnecting"),
                        Event::Connected => tracing::info!("NATS connection (re)established"),
                        other => tracing::debug!(event = %other, "NATS client event"),
                    }
                });
            let addrs: Vec<async_nats::ServerAddr> = urls
                .split(',')
                .map(|u| u.trim().parse())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("NATS_SERVER: '{urls}' is not a list of NATS URLs: {e}"))?;
            tokio::time::timeout(timeout, options.connect(addrs))
                .await
                .map_err(|_| format!("NATS_SERVER: no answer from {urls} within {timeout:?}"))?
                .map_err(|e| format!("NATS_SERVER: cannot connect to {urls}: {e}"))
        });
        let client = connecting
            .await
            .map_err(|e| format!("NATS connect task failed: {e}"))??;
        tracing::info!(servers, "NATS client connected");
        Ok(Self { client, tokio })
    }

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
        let sent = self
            .tokio
            .spawn(async move { client.send_request(subject, request).await });
        match sent.await {
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
