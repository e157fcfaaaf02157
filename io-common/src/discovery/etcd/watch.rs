//! One prefix watch: an etcd watch stream pumped into the consumer's channel, reconnected after
//! errors and restarts, resynced after compaction.
//!
//! The pump knows the next revision it needs (`next`: one past the last change delivered, or
//! past the snapshot). Every (re)connection asks etcd for the changes from `next` on, so nothing
//! is missed or repeated across reconnects. It gives up on continuity — lists the prefix again
//! and delivers [`WatchEvent::Resync`] — when etcd cancels the watch because `next` was
//! compacted away, or when the store behind the endpoint is not the one it watched (another
//! cluster id, or a revision below what was already delivered: a restored or wiped etcd).
//!
//! `next` advances only past events actually delivered, and past progress notifications
//! (which etcd sends only to watchers that are caught up). It never trusts a response header's
//! revision otherwise: a watcher catching up may get a header revision ahead of its events.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchResponse, WatchStream};
use tokio::sync::watch;

use super::{MAX_RESPONSE_BYTES, Shared, describe, get_prefix, pairs, random_seed, stopped};
use crate::discovery::WatchEvent;

/// Reconnect backoff: Dynamo 1.6.1's watch retry (250 ms doubling to 5 s, jittered into
/// `[d/2, d]`).
const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How often an idle pump checks whether its consumer went away.
const CONSUMER_CHECK: Duration = Duration::from_secs(2);

/// Why the pump stops reading a stream.
enum Next {
    /// Reconnect after a backoff (the stream broke).
    Reconnect,
    /// List the prefix again and deliver a resync (continuity lost), then reconnect.
    Resync,
    /// The consumer is gone or the store shuts down.
    Stop,
}

pub(super) struct WatchPump {
    shared: Arc<Shared>,
    prefix: String,
    /// The first revision not yet delivered.
    next: i64,
    /// The cluster the delivered state came from.
    cluster: u64,
    tx: async_channel::Sender<WatchEvent>,
    stop: watch::Receiver<bool>,
    backoff: Backoff,
}

impl WatchPump {
    /// A pump for `prefix`, whose snapshot was read at `revision` of `cluster`.
    pub(super) fn new(
        shared: Arc<Shared>,
        prefix: String,
        revision: i64,
        cluster: u64,
        tx: async_channel::Sender<WatchEvent>,
    ) -> Self {
        let stop = shared.stop.subscribe();
        Self {
            shared,
            prefix,
            next: revision + 1,
            cluster,
            tx,
            stop,
            backoff: Backoff::new(random_seed()),
        }
    }

    pub(super) async fn run(mut self) {
        loop {
            let next = match self.open().await {
                Some(stream) => self.pump(stream).await,
                None => Next::Stop,
            };
            match next {
                Next::Stop => return,
                Next::Reconnect => {
                    let delay = self.backoff.next_delay();
                    if !self.pause(delay).await {
                        return;
                    }
                }
                Next::Resync => {
                    tracing::info!(
                        endpoints = %self.shared.endpoints,
                        prefix = %self.prefix,
                        "etcd watch lost continuity (compaction or a different store); listing \
                         the prefix again"
                    );
                    if !self.resync().await {
                        return;
                    }
                }
            }
        }
    }

    /// Whether the pump should end: shutdown, or nobody reads the channel any more.
    fn finished(&self) -> bool {
        *self.stop.borrow() || self.tx.is_closed()
    }

    /// Sleeps `delay` (by the runtime's clock) unless the pump should end first; `false` when
    /// it should.
    async fn pause(&mut self, delay: Duration) -> bool {
        let clock = self.shared.clock.clone();
        let deadline = clock.now() + delay;
        while !self.finished() {
            let now = clock.now();
            if now >= deadline {
                return true;
            }
            let step = (deadline - now).min(CONSUMER_CHECK);
            tokio::select! {
                _ = stopped(&mut self.stop) => return false,
                () = clock.bridge_sleep_until(now + step) => {}
            }
        }
        false
    }

    /// Opens a watch stream from `next`, retrying with backoff; `None` when the pump should end.
    async fn open(&mut self) -> Option<WatchStream> {
        loop {
            if self.finished() {
                return None;
            }
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(self.next)
                .with_progress_notify();
            let mut client = self
                .shared
                .client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES);
            let prefix = self.prefix.clone();
            let clock = self.shared.clock.clone();
            let attempt = clock.bridge_timeout(
                self.shared.request_timeout,
                client.watch(prefix, Some(options)),
            );
            let result = tokio::select! {
                _ = stopped(&mut self.stop) => return None,
                result = attempt => result,
            };
            match result {
                Some(Ok(stream)) => return Some(stream),
                Some(Err(_)) | None => {
                    let delay = self.backoff.next_delay();
                    tracing::debug!(
                        endpoints = %self.shared.endpoints,
                        prefix = %self.prefix,
                        ?delay,
                        "etcd watch: cannot reopen the stream yet"
                    );
                    if !self.pause(delay).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Reads `stream` until it breaks or the pump must resync or stop.
    async fn pump(&mut self, mut stream: WatchStream) -> Next {
        let clock = self.shared.clock.clone();
        loop {
            let message = tokio::select! {
                _ = stopped(&mut self.stop) => return Next::Stop,
                message = stream.message() => message,
                () = clock.bridge_sleep_until(clock.now() + CONSUMER_CHECK) => {
                    if self.tx.is_closed() {
                        return Next::Stop;
                    }
                    continue;
                }
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) | Err(_) if self.finished() => return Next::Stop,
                Ok(None) | Err(_) => {
                    let error = match message {
                        Err(e) => describe(&e),
                        _ => "stream ended".into(),
                    };
                    tracing::warn!(
                        endpoints = %self.shared.endpoints,
                        prefix = %self.prefix,
                        %error,
                        "etcd watch broke; reconnecting with backoff"
                    );
                    return Next::Reconnect;
                }
            };
            if let Some(next) = self.handle(&response).await {
                return next;
            }
        }
    }

    /// Applies one response; `Some` when the pump must leave this stream.
    async fn handle(&mut self, response: &WatchResponse) -> Option<Next> {
        if response.created() {
            // The stream works: the next failure starts the backoff over.
            self.backoff.reset();
            if let Some(header) = response.header() {
                let went_back = header.revision() < self.next - 1;
                if header.cluster_id() != self.cluster || went_back {
                    return Some(Next::Resync);
                }
            }
        }
        if response.canceled() {
            return Some(if response.compact_revision() > 0 {
                Next::Resync
            } else {
                Next::Reconnect
            });
        }
        if response.events().is_empty() {
            // A progress notification: every change up to the header's revision was sent.
            if !response.created()
                && let Some(header) = response.header()
            {
                self.next = self.next.max(header.revision() + 1);
            }
            return None;
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            self.next = self.next.max(kv.mod_revision() + 1);
            let Ok(key) = kv.key_str() else { continue };
            let delivered = match event.event_type() {
                EventType::Put => {
                    WatchEvent::Put(key.to_owned(), bytes::Bytes::copy_from_slice(kv.value()))
                }
                EventType::Delete => WatchEvent::Delete(key.to_owned()),
            };
            if !self.deliver(delivered).await {
                return Some(Next::Stop);
            }
        }
        None
    }

    /// Sends one event, waiting while the consumer's channel is full; `false` when the consumer
    /// is gone or the store shuts down.
    async fn deliver(&mut self, event: WatchEvent) -> bool {
        tokio::select! {
            _ = stopped(&mut self.stop) => false,
            sent = self.tx.send(event) => sent.is_ok(),
        }
    }

    /// Lists the prefix (retrying with backoff) and delivers it as a resync; `false` when the
    /// pump should end.
    async fn resync(&mut self) -> bool {
        loop {
            if self.finished() {
                return false;
            }
            let clock = self.shared.clock.clone();
            let listing = clock.bridge_timeout(
                self.shared.request_timeout,
                get_prefix(self.shared.client.clone(), self.prefix.clone()),
            );
            let result = tokio::select! {
                _ = stopped(&mut self.stop) => return false,
                result = listing => result,
            };
            match result {
                Some(Ok((kvs, revision, cluster))) => {
                    self.next = revision + 1;
                    self.cluster = cluster;
                    return self.deliver(WatchEvent::Resync(pairs(kvs))).await;
                }
                Some(Err(_)) | None => {
                    let delay = self.backoff.next_delay();
                    if !self.pause(delay).await {
                        return false;
                    }
                }
            }
        }
    }
}

/// Jittered exponential backoff with its own small generator.
struct Backoff {
    failures: u32,
    state: u64,
}

impl Backoff {
    fn new(seed: u64) -> Self {
        Self {
            failures: 0,
            state: seed,
        }
    }

    fn reset(&mut self) {
        self.failures = 0;
    }

    /// The next wait: `initial · 2^failures` capped at the maximum, uniform in `[d/2, d]`.
    fn next_delay(&mut self) -> Duration {
        let doublings = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let d = BACKOFF_INITIAL
            .saturating_mul(1 << doublings)
            .min(BACKOFF_MAX);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let low = nanos / 2;
        Duration::from_nanos(low + self.random() % (nanos - low + 1))
    }

    /// splitmix64 over a counter.
    fn random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::new(7);
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= BACKOFF_INITIAL / 2 && delays[0] <= BACKOFF_INITIAL);
        assert!(delays[1] >= BACKOFF_INITIAL && delays[1] <= BACKOFF_INITIAL * 2);
        assert!(delays[7] >= BACKOFF_MAX / 2 && delays[7] <= BACKOFF_MAX);
        backoff.reset();
        assert!(backoff.next_delay() <= BACKOFF_INITIAL);
    }
}
