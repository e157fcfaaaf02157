//! The machinery every ZMQ socket type shares: its peers, a listener that accepts them, and
//! connectors that dial (and redial) endpoints. The typed sockets in `pubsub` wrap it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::zmtp::{Event, SendError, SocketType, TopicFilter, ZmtpConn};

use super::endpoint::{Endpoint, EndpointError, parse_endpoint};
use super::peer::{Driver, Peer};
use super::{ZmqConfig, ZmqStats};
use crate::cancel::CancellationToken;
use crate::queue::BatchQueue;
use crate::runtime::{self, Runtime};

/// Called with (subscribe?, prefix) when an XPUB's aggregate subscriptions change.
pub(crate) type SubscriptionHook = Box<dyn Fn(bool, Bytes) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) dropped_full: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dropped_slow_receiver: AtomicU64,
    pub(crate) peer_errors: AtomicU64,
    pub(crate) connects: AtomicU64,
}

pub(crate) struct Inner<R: Runtime> {
    pub(crate) rt: R,
    pub(crate) kind: SocketType,
    pub(crate) config: ZmqConfig,
    peers: Mutex<Vec<Arc<Peer>>>,
    /// SUB/XSUB: our subscriptions (counted), applied to every peer as it joins.
    subscriptions: Mutex<TopicFilter>,
    /// XPUB: every peer's subscriptions together (counted per peer), so the hook hears only a
    /// prefix's first subscription and last cancel, as libzmq's XPUB passes them on.
    aggregate: Mutex<TopicFilter>,
    pub(crate) hook: Mutex<Option<SubscriptionHook>>,
    /// SUB/XSUB: whole messages received and not yet taken (bounded by `recv_capacity`).
    pub(crate) messages: BatchQueue<Vec<Bytes>>,
    pub(crate) counters: Counters,
    pub(crate) cancel: CancellationToken,
    connectors: Mutex<HashMap<String, CancellationToken>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A socket: the state its peers' drivers share with it.
pub(crate) struct Socket<R: Runtime> {
    pub(crate) inner: Arc<Inner<R>>,
}

impl<R: Runtime> Socket<R> {
    pub(crate) fn new(rt: R, kind: SocketType, config: ZmqConfig) -> Self {
        let messages = BatchQueue::new(config.recv_capacity);
        let inner = Arc::new(Inner {
            rt,
            kind,
            config,
            peers: Mutex::new(Vec::new()),
            subscriptions: Mutex::new(TopicFilter::new()),
            aggregate: Mutex::new(TopicFilter::new()),
            hook: Mutex::new(None),
            messages,
            counters: Counters::default(),
            cancel: CancellationToken::new(),
            connectors: Mutex::new(HashMap::new()),
        });
        Self { inner }
    }

    /// Binds `endpoint` and accepts peers until the socket closes; returns the endpoint bound
    /// (with the port the OS picked for port 0).
    pub(crate) async fn bind(&self, endpoint: &str) -> Result<Endpoint, BindError> {
        let parsed = parse_endpoint(endpoint)?;
        let addr = parsed.bind_addr()?;
        let listener = self
            .inner
            .rt
            .bind(addr)
            .await
            .map_err(|source| BindError::Io {
                endpoint: endpoint.to_string(),
                source,
            })?;
        let local = R::local_addr(&listener).map_err(|source| BindError::Io {
            endpoint: endpoint.to_string(),
            source,
        })?;
        let inner = self.inner.clone();
        tracing::info!(socket = %inner.kind, endpoint = %Endpoint::from_addr(local), "ZMQ socket bound");
        let cancel = inner.cancel.clone();
        self.inner.rt.spawn(async move {
            let accept = async {
                loop {
                    match runtime::accept::<R>(&listener).await {
                        Ok((tcp, addr)) => {
                            let inner = inner.clone();
                            inner.rt.clone().spawn(async move {
                                let _ = inner.run_peer(tcp, addr, true).await;
                            });
                        }
                        Err(e) => {
                            // Out of descriptors and the like: wait a little instead of spinning.
                            tracing::warn!(error = %e, "ZMQ accept failed");
                            runtime::sleep_until(
                                &inner.rt,
                                inner.rt.now() + Duration::from_millis(100),
                            )
                            .await;
                        }
                    }
                }
            };
            futures_lite::future::or(accept, cancel.cancelled()).await;
        });
        Ok(Endpoint::from_addr(local))
    }

    /// Dials `endpoint` in the background, and again with backoff whenever the connection
    /// fails or ends, until [`Self::disconnect`] or close. A second connect to the same
    /// endpoint does nothing.
    pub(crate) fn connect(&self, endpoint: &str) -> Result<(), EndpointError> {
        let parsed = parse_endpoint(endpoint)?;
        let mut connectors = lock(&self.inner.connectors);
        if connectors.contains_key(endpoint) {
            return Ok(());
        }
        let cancel = self.inner.cancel.child_token();
        connectors.insert(endpoint.to_string(), cancel.clone());
        let inner = self.inner.clone();
        self.inner.rt.spawn(async move {
            futures_lite::future::or(inner.redial(parsed), cancel.cancelled()).await;
        });
        Ok(())
    }

    /// Stops dialing `endpoint` and closes its connection; false when it was not connected.
    pub(crate) fn disconnect(&self, endpoint: &str) -> bool {
        let Some(cancel) = lock(&self.inner.connectors).remove(endpoint) else {
            return false;
        };
        cancel.cancel();
        true
    }

    /// Closes the listener, every connector and every peer; `recv` hands out what was
    /// received, then fails.
    pub(crate) fn close(&self) {
        self.inner.cancel.cancel();
        self.inner.messages.close();
        for peer in lock(&self.inner.peers).iter() {
            peer.close();
        }
    }

    /// PUB/XPUB: sends one message to every peer subscribed to its first frame.
    pub(crate) fn send(&self, frames: &[Bytes]) -> Result<SendReport, SendError> {
        let mut report = SendReport::default();
        for peer in lock(&self.inner.peers).iter() {
            match peer.with(|conn| conn.send(frames)) {
                Ok(true) => report.delivered += 1,
                Ok(false) => {}
                Err(SendError::Full { .. }) => report.dropped += 1,
                Err(SendError::Closed) => {}
                Err(e) => return Err(e),
            }
        }
        let c = &self.inner.counters;
        if report.delivered > 0 {
            c.sent.fetch_add(report.delivered as u64, Ordering::Relaxed);
        }
        if report.dropped > 0 {
            c.dropped_full
                .fetch_add(report.dropped as u64, Ordering::Relaxed);
            tracing::debug!(
                dropped = report.dropped,
                "ZMQ peer queue full: message dropped"
            );
        }
        Ok(report)
    }

    /// SUB/XSUB: subscribes to `prefix` on every peer, present and future.
    pub(crate) fn subscribe(&self, prefix: Bytes) {
        let mut subs = lock(&self.inner.subscriptions);
        if subs.subscribe(prefix.clone()) {
            for peer in lock(&self.inner.peers).iter() {
                let _ = peer.with(|conn| conn.subscribe(prefix.clone()));
            }
        }
    }

    /// SUB/XSUB: removes one subscription to `prefix`; peers hear of it when it was the last.
    pub(crate) fn unsubscribe(&self, prefix: &[u8]) {
        let mut subs = lock(&self.inner.subscriptions);
        if subs.unsubscribe(prefix) {
            for peer in lock(&self.inner.peers).iter() {
                let _ = peer.with(|conn| conn.unsubscribe(prefix));
            }
        }
    }

    pub(crate) fn stats(&self) -> ZmqStats {
        let c = &self.inner.counters;
        ZmqStats {
            sent: c.sent.load(Ordering::Relaxed),
            dropped_full: c.dropped_full.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            dropped_slow_receiver: c.dropped_slow_receiver.load(Ordering::Relaxed),
            peer_errors: c.peer_errors.load(Ordering::Relaxed),
            connects: c.connects.load(Ordering::Relaxed),
            peers: lock(&self.inner.peers).len(),
        }
    }

    pub(crate) fn dropped_slow_receiver(&self) -> u64 {
        self.inner
            .counters
            .dropped_slow_receiver
            .load(Ordering::Relaxed)
    }

    pub(crate) fn ready_peers(&self) -> usize {
        lock(&self.inner.peers)
            .iter()
            .filter(|p| p.with(|conn| conn.is_ready()))
            .count()
    }
}

/// What one send did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Peers that took the message.
    pub delivered: usize,
    /// Peers whose queue was full (the message was dropped for them; counted in the stats).
    pub dropped: usize,
}

/// A bind that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The endpoint is malformed or does not resolve.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The listener could not be opened.
    #[error("ZMQ bind {endpoint}: {source}")]
    Io {
        /// The endpoint.
        endpoint: String,
        /// The error.
        source: std::io::Error,
    },
}

struct PeerGuard<'a, R: Runtime> {
    inner: &'a Inner<R>,
    peer: Arc<Peer>,
}

impl<R: Runtime> Drop for PeerGuard<'_, R> {
    fn drop(&mut self) {
        let inner = self.inner;
        lock(&inner.peers).retain(|p| !Arc::ptr_eq(p, &self.peer));
        if inner.kind == SocketType::XPub {
            // A departed subscriber's subscriptions end with it (libzmq's XPUB does the same).
            let prefixes: Vec<Bytes> = self
                .peer
                .with(|conn| conn.peer_filter().prefixes().cloned().collect());
            for prefix in prefixes {
                inner.on_event(Event::Cancel(prefix));
            }
        }
    }
}

impl<R: Runtime> Inner<R> {
    /// Runs one peer connection to its end; true when its handshake finished.
    async fn run_peer(self: &Arc<Self>, tcp: R::Tcp, addr: SocketAddr, accepted: bool) -> bool {
        let mut zmtp = self.config.zmtp.clone();
        zmtp.as_server = accepted;
        zmtp.hwm = self.config.send_hwm;
        let conn = ZmtpConn::new(self.kind, zmtp);
        let peer = Peer::new(conn);
        {
            // Subscriptions first, under their lock, so none is missed by a concurrent one.
            let subs = lock(&self.subscriptions);
            for prefix in subs.prefixes() {
                let _ = peer.with(|conn| conn.subscribe(prefix.clone()));
            }
            lock(&self.peers).push(peer.clone());
        }
        if self.cancel.is_cancelled() {
            peer.close();
        }
        let this = self.clone();
        let mut driver = Driver::new(
            &self.rt,
            peer.clone(),
            tcp,
            self.config.handshake_timeout,
            move |_peer: &Arc<Peer>, events: &mut Vec<Event>| this.on_events(events),
        );
        // Removes the peer however this future ends, even dropped by a disconnect.
        let _guard = PeerGuard { inner: self, peer };
        let result = (&mut driver).await;
        let ready = driver.was_ready();
        match result {
            Ok(()) => tracing::debug!(socket = %self.kind, peer = %addr, "ZMQ peer closed"),
            Err(e) => {
                self.counters.peer_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(socket = %self.kind, peer = %addr, error = %e, "ZMQ peer dropped");
            }
        }
        ready
    }

    /// The events of one read: its messages are queued together (one wake-up for the
    /// receiver, however many there are), the rest handled in order.
    fn on_events(&self, events: &mut Vec<Event>) {
        if events.iter().any(|e| matches!(e, Event::Message(_))) {
            let messages = events.iter_mut().filter_map(|event| match event {
                Event::Message(frames) => Some(std::mem::take(frames)),
                _ => None,
            });
            self.queue_messages(messages);
        }
        for event in events.drain(..) {
            if !matches!(event, Event::Message(_)) {
                self.on_event(event);
            }
        }
    }

    /// Queues messages for `recv`; those beyond the queue's capacity are dropped and counted.
    fn queue_messages(&self, messages: impl IntoIterator<Item = Vec<Bytes>>) {
        let pushed = self.messages.push_all(messages);
        let c = &self.counters;
        if pushed.queued > 0 {
            c.received
                .fetch_add(pushed.queued as u64, Ordering::Relaxed);
        }
        if pushed.dropped > 0 {
            let dropped = pushed.dropped as u64;
            let before = c
                .dropped_slow_receiver
                .fetch_add(dropped, Ordering::Relaxed);
            // Logged at the first drop and each time the count passes a power of two.
            if before == 0 || (before + dropped).ilog2() > before.ilog2() {
                tracing::warn!(socket = %self.kind, dropped = before + dropped, capacity = self.config.recv_capacity, "ZMQ receive queue full: messages dropped");
            }
        }
    }

    fn on_event(&self, event: Event) {
        match event {
            Event::Message(frames) => self.queue_messages([frames]),
            Event::Subscribe(prefix) if self.kind == SocketType::XPub => {
                let new = lock(&self.aggregate).subscribe(prefix.clone());
                if new && let Some(hook) = lock(&self.hook).as_ref() {
                    hook(true, prefix);
                }
            }
            Event::Cancel(prefix) if self.kind == SocketType::XPub => {
                let last = lock(&self.aggregate).unsubscribe(&prefix);
                if last && let Some(hook) = lock(&self.hook).as_ref() {
                    hook(false, prefix);
                }
            }
            Event::Ready { peer } => {
                tracing::debug!(socket = %self.kind, peer = %peer, "ZMQ handshake done");
            }
            Event::Subscribe(_) | Event::Cancel(_) => {}
        }
    }

    async fn redial(self: Arc<Self>, endpoint: Endpoint) {
        let mut backoff = self.config.reconnect_min;
        loop {
            match self.dial(&endpoint).await {
                Ok((tcp, addr)) => {
                    self.counters.connects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(socket = %self.kind, %endpoint, "ZMQ connected");
                    if self.run_peer(tcp, addr, false).await {
                        backoff = self.config.reconnect_min;
                    }
                }
                Err(e) => {
                    tracing::debug!(socket = %self.kind, %endpoint, error = %e, "ZMQ connect failed; retrying");
                }
            }
            runtime::sleep_until(&self.rt, self.rt.now() + backoff).await;
            backoff = (backoff * 2).min(self.config.reconnect_max);
        }
    }

    async fn dial(&self, endpoint: &Endpoint) -> std::io::Result<(R::Tcp, SocketAddr)> {
        let e = endpoint.clone();
        let addr = blocking::unblock(move || e.resolve())
            .await
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, e))?;
        let timeout = self.config.connect_timeout;
        let deadline = self.rt.now() + timeout;
        let connect = self.rt.connect(addr);
        let timer = async {
            runtime::sleep_until(&self.rt, deadline).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connect to {endpoint} timed out after {timeout:?}"),
            ))
        };
        let tcp = futures_lite::future::or(connect, timer).await?;
        Ok((tcp, addr))
    }
}
