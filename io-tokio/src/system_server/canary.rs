//! The health-check driver: runs the canary scheduler of [`SystemHealth`](dynrt_core::health::SystemHealth).
//!
//! Each turn: fire the timer if due (`handle_timeout`), drain `poll_command` (send or cancel
//! canaries), then sleep until `poll_timeout` or until someone calls
//! [`SystemState::wake_health_driver`]. Each canary runs in its own task that waits for the
//! stream's first item and reports it (`handle_canary_item`, `_error` or `_end`); cancelling a
//! canary aborts that task, which drops the stream. Every health decision is the core's.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dynrt_core::health::{CanaryId, HealthCommand};
use futures_core::Stream;
use tokio::task::JoinHandle;

use super::{SystemState, catch_unwind};

/// The response stream of one canary request: items, or an error message.
pub type CanaryStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// Sends a canary request with `payload` to this process's own instance of `endpoint` and
/// returns its response stream. The runtime plugs in its own client; tests plug in closures.
///
/// Called on the driver's task: do the sending inside the returned stream, not before returning.
/// Any `Fn(&str, serde_json::Value) -> CanaryStream` is a sender.
pub trait CanarySender: Send + Sync + 'static {
    /// Starts one canary request.
    fn send(&self, endpoint: &str, payload: serde_json::Value) -> CanaryStream;
}

impl<F> CanarySender for F
where
    F: Fn(&str, serde_json::Value) -> CanaryStream + Send + Sync + 'static,
{
    fn send(&self, endpoint: &str, payload: serde_json::Value) -> CanaryStream {
        self(endpoint, payload)
    }
}

/// Turns without sleeping before the driver yields to the executor.
const TURN_BUDGET: u32 = 64;

/// The running health-check driver (one per [`SystemState`]). Dropping it stops the driver and
/// abandons every canary in flight (their streams are dropped); [`HealthCheckDriver::stop`]
/// does the same and waits until the driver's task has ended.
#[derive(Debug)]
pub struct HealthCheckDriver {
    task: Option<JoinHandle<()>>,
}

impl HealthCheckDriver {
    /// Spawns the driver on the current tokio runtime. Panics outside a runtime, as
    /// `tokio::spawn` does.
    pub fn spawn(state: SystemState, sender: impl CanarySender) -> Self {
        let task = tokio::spawn(run(state, Arc::new(sender)));
        Self { task: Some(task) }
    }

    /// Stops the driver; canaries in flight are abandoned.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for HealthCheckDriver {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A task aborted when this handle drops.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run(state: SystemState, sender: Arc<dyn CanarySender>) {
    let mut in_flight: BTreeMap<CanaryId, AbortOnDrop> = BTreeMap::new();
    let mut turns = 0;
    loop {
        // Timer, then commands, under one short lock; the sender runs after it is released.
        let (commands, deadline) = {
            let mut health = state.lock_health();
            let now = Instant::now();
            if health
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now)
            {
                health.handle_timeout(now);
            }
            let commands: Vec<_> = std::iter::from_fn(|| health.poll_command()).collect();
            (commands, health.poll_timeout())
        };
        in_flight.retain(|_, task| !task.0.is_finished());
        for command in commands {
            match command {
                HealthCommand::SendCanary {
                    id,
                    endpoint,
                    payload,
                } => {
                    tracing::debug!(%id, %endpoint, "sending canary");
                    // User code: a panic here is a failed canary, not a dead driver.
                    match std::panic::catch_unwind(AssertUnwindSafe(|| {
                        sender.send(&endpoint, payload)
                    })) {
                        Ok(stream) => {
                            let task = tokio::spawn(watch(state.clone(), id, stream));
                            in_flight.insert(id, AbortOnDrop(task));
                        }
                        Err(_) => {
                            tracing::warn!(%id, %endpoint, "the canary sender panicked");
                            state.update_health(|health, now| health.handle_canary_error(id, now));
                        }
                    }
                }
                HealthCommand::CancelCanary { id, endpoint } => {
                    tracing::debug!(%id, %endpoint, "abandoning canary");
                    in_flight.remove(&id);
                }
                _ => {}
            }
        }
        // Check the clock rather than trusting that a timer fired on time (or at all).
        match deadline {
            Some(deadline) if deadline <= Instant::now() => {
                turns += 1;
                if turns >= TURN_BUDGET {
                    turns = 0;
                    tokio::task::yield_now().await;
                }
            }
            Some(deadline) => {
                turns = 0;
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => {}
                    () = state.health_changed() => {}
                }
            }
            None => {
                turns = 0;
                state.health_changed().await;
            }
        }
    }
}

/// Waits for canary `id`'s first item (or end) and reports it. Aborting this task drops the
/// stream, which cancels the request.
async fn watch(state: SystemState, id: CanaryId, mut stream: CanaryStream) {
    let first = catch_unwind(std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)))
        .await
        .unwrap_or_else(|| Some(Err("the canary stream panicked".to_owned())));
    state.update_health(|health, now| match first {
        Some(Ok(_)) => health.handle_canary_item(id, now),
        Some(Err(error)) => {
            tracing::debug!(%id, %error, "canary failed");
            health.handle_canary_error(id, now);
        }
        None => health.handle_canary_end(id, now),
    });
}
