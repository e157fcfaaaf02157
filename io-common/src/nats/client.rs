//! [`NatsClient`]: one connection, shared by everything in the runtime that uses NATS.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{Event, RequestErrorKind};
use bytes::Bytes;
use dynrt_core::config::NatsConfig;
use tokio::runtime::Handle;

use super::{NatsError, Subscription, confirm_processed, options};
use crate::runtime::{Clock, Runtime};

/// Told whether the connection is up, each time that changes.
type Observer = Box<dyn Fn(bool) + Send + Sync>;

/// The connection state async-nats's events report, and who to tell.
#[derive(Default)]
struct ConnectionState {
    connected: AtomicBool,
    observers: Mutex<Vec<Observer>>,
}

impl ConnectionState {
    fn set(&self, connected: bool) {
        if self.connected.swap(connected, Ordering::SeqCst) != connected {
            let observers = self
                .observers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for observer in observers.iter() {
                observer(connected);
            }
        }
    }
}

/// A NATS connection (async-nats), usable from any executor. Cheap to clone.
///
/// ```no_run
/// # async fn demo<R: dynrt_io::Runtime>(rt: R) -> Result<(), dynrt_io::nats::NatsError> {
/// use dynrt_core::config::NatsConfig;
/// use dynrt_io::nats::NatsClient;
///
/// let nats = NatsClient::connect(&rt, &NatsConfig::new("nats://127.0.0.1:4222")).await?;
/// nats.publish("greetings", "hello".into()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NatsClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    handle: Handle,
    /// The application runtime's clock: the bounds on calls and the connect retries.
    clock: Clock,
    servers: String,
    state: Arc<ConnectionState>,
}

impl NatsClient {
    /// Connects as `config` says, retrying an unreachable server until
    /// `config.startup_connect_timeout`; a refusal (credentials, TLS) fails at once.
    pub async fn connect<R: Runtime>(rt: &R, config: &NatsConfig) -> Result<Self, NatsError> {
        let handle = match rt.tokio_handle() {
            Some(handle) => handle,
            None => own_runtime()?,
        };
        let state = Arc::new(ConnectionState::default());
        let servers = config.servers.join(", ");
        let on_event = {
            let state = state.clone();
            let servers = servers.clone();
            Arc::new(move |event: Event| match event {
                Event::Connected => {
                    if !state.connected.load(Ordering::SeqCst) {
                        tracing::info!(%servers, "NATS connected");
                    }
                    state.set(true);
                }
                Event::Disconnected => {
                    tracing::warn!(%servers, "NATS connection lost; reconnecting");
                    state.set(false);
                }
                Event::Closed => state.set(false),
                other => tracing::warn!(%servers, "NATS: {other}"),
            })
        };
        let config = config.clone();
        let clock = Clock::of(rt);
        let retry_clock = clock.clone();
        let client = run_on(&handle, async move {
            let options = options::connect_options(&config, on_event).await?;
            options::connect_with_retry(&config, options, &retry_clock).await
        })
        .await??;
        state.set(client.connection_state() == async_nats::connection::State::Connected);
        tracing::info!(%servers, "NATS client ready");
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                handle,
                clock,
                servers,
                state,
            }),
        })
    }

    /// The async-nats client itself, for what this type does not wrap. Its futures need a
    /// tokio runtime: off tokio, await them through [`Self::run`].
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The tokio runtime that drives the connection.
    pub fn tokio_handle(&self) -> &Handle {
        &self.inner.handle
    }

    /// Runs `future` where async-nats can run: here on tokio, on the bridge runtime otherwise.
    pub async fn run<F>(&self, future: F) -> Result<F::Output, NatsError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        run_on(&self.inner.handle, future).await
    }

    /// The application runtime's clock, which bounds the client's waits.
    pub(crate) fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The servers it was configured with, for messages.
    pub fn servers(&self) -> &str {
        &self.inner.servers
    }

    /// Whether the connection is up now (async-nats reconnects by itself when it is not).
    pub fn is_connected(&self) -> bool {
        self.inner.state.connected.load(Ordering::SeqCst)
    }

    /// Calls `observer` with the new state each time the connection goes down or comes back.
    pub fn on_connection_change(&self, observer: impl Fn(bool) + Send + Sync + 'static) {
        self.inner
            .state
            .observers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(observer));
    }

    /// The largest message the server accepts (its `max_payload`).
    pub fn max_payload(&self) -> usize {
        self.inner.client.server_info().max_payload
    }

    /// Publishes `payload` on `subject`. While disconnected, async-nats buffers it (bounded)
    /// and sends it after the reconnect.
    pub async fn publish(
        &self,
        subject: impl Into<String>,
        payload: Bytes,
    ) -> Result<(), NatsError> {
        let subject = subject.into();
        let client = self.inner.client.clone();
        let s = subject.clone();
        self.run(async move { client.publish(s, payload).await })
            .await?
            .map_err(|e| NatsError::Publish {
                subject,
                reason: e.to_string(),
            })
    }

    /// Subscribes to `subject` (wildcards allowed). Returns once the server has the
    /// subscription: what any client publishes from then on reaches it.
    pub async fn subscribe(&self, subject: impl Into<String>) -> Result<Subscription, NatsError> {
        let subject = subject.into();
        let client = self.inner.client.clone();
        let clock = self.inner.clock.clone();
        let s = subject.clone();
        let subscriber = self
            .run(async move {
                let subscriber = client.subscribe(s).await.map_err(|e| e.to_string())?;
                confirm_processed(&client, &clock).await?;
                Ok::<_, String>(subscriber)
            })
            .await?
            .map_err(|reason| NatsError::Subscribe { subject, reason })?;
        Ok(Subscription::new(subscriber, self.inner.handle.clone()))
    }

    /// Sends `payload` to `subject` and waits at most `timeout` for the reply.
    pub async fn request(
        &self,
        subject: impl Into<String>,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<async_nats::Message, NatsError> {
        let subject = subject.into();
        let client = self.inner.client.clone();
        let s = subject.clone();
        let clock = self.inner.clock.clone();
        let reply = self
            .run(async move {
                clock
                    .bridge_timeout(timeout, client.request(s, payload))
                    .await
            })
            .await?;
        match reply {
            None => Err(NatsError::TimedOut {
                subject,
                after: timeout,
            }),
            Some(Ok(message)) => Ok(message),
            Some(Err(e)) => Err(match e.kind() {
                RequestErrorKind::NoResponders => NatsError::NoResponders { subject },
                RequestErrorKind::TimedOut => NatsError::TimedOut {
                    subject,
                    // async-nats's own request timeout (`DYN_NATS_REQUEST_TIMEOUT_SECS`) ran
                    // out first.
                    after: self.inner.client.timeout().unwrap_or(timeout).min(timeout),
                },
                _ => NatsError::Request {
                    subject,
                    reason: e.to_string(),
                },
            }),
        }
    }

    /// Waits until everything published so far reached the server, at most `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), NatsError> {
        let client = self.inner.client.clone();
        let clock = self.inner.clock.clone();
        match self
            .run(async move { clock.bridge_timeout(timeout, client.flush()).await })
            .await?
        {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(NatsError::Publish {
                subject: "(flush)".into(),
                reason: e.to_string(),
            }),
            None => Err(NatsError::Publish {
                subject: "(flush)".into(),
                reason: format!("not flushed within {timeout:?}"),
            }),
        }
    }

    /// Flushes and closes the connection (subscriptions end), at most `timeout`.
    pub async fn close(&self, timeout: Duration) {
        let client = self.inner.client.clone();
        let clock = self.inner.clock.clone();
        let result = self
            .run(async move { clock.bridge_timeout(timeout, client.drain()).await })
            .await;
        if !matches!(result, Ok(Some(Ok(())))) {
            tracing::debug!(servers = %self.inner.servers, "NATS connection closed without a clean drain");
        }
    }
}

impl std::fmt::Debug for NatsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsClient")
            .field("servers", &self.inner.servers)
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// The tokio runtime of NATS clients whose executor has no tokio bridge: one per process, on
/// two threads of its own, started on first use.
fn own_runtime() -> Result<Handle, NatsError> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("dynrt-nats")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map(|runtime| runtime.handle().clone())
        .map_err(|e| NatsError::Runtime(e.clone()))
}

/// Awaits `future` here when this task runs on tokio, or spawned on `handle` otherwise.
pub(super) async fn run_on<F>(handle: &Handle, future: F) -> Result<F::Output, NatsError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if Handle::try_current().is_ok() {
        Ok(future.await)
    } else {
        handle
            .spawn(future)
            .await
            .map_err(|_| NatsError::BridgeGone)
    }
}
