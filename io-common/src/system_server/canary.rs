//! The health-check driver: runs the canary scheduler of [`SystemHealth`](dynrt_core::health::SystemHealth).
//!
//! Each turn: fire the timer if due (`handle_timeout`), drain `poll_command` (send or cancel
//! canaries), then sleep until `poll_timeout` or until someone calls
//! [`SystemState::wake_health_driver`]. Each canary runs in its own task that waits for the
//! stream's first item and reports it (`handle_canary_item`, `_error` or `_end`); cancelling a
//! canary ends that task (it races the stream against a per-canary stop channel), which drops
//! the stream. Every health decision is the core's.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use dynrt_core::health::{CanaryId, HealthCommand};
use futures_lite::Stream;

use crate::runtime::Runtime;

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
    /// Closed (or dropped) to stop: the driver's task races its loop against the other end.
    stop: Sender<()>,
    /// Closed when the driver's task has ended (its sender is dropped then).
    ended: Receiver<()>,
}

impl HealthCheckDriver {
    /// Spawns the driver on `runtime`.
    pub fn spawn<R: Runtime>(runtime: &R, state: SystemState, sender: impl CanarySender) -> Self {
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let (ended_tx, ended) = async_channel::bounded::<()>(1);
        let driver = run(runtime.clone(), state, Arc::new(sender));
        runtime.spawn(async move {
            let _ended = ended_tx;
            futures_lite::future::or(driver, async {
                // Only closing ends it: nothing is ever sent.
                let _ = stopped.recv().await;
            })
            .await;
        });
        Self { stop, ended }
    }

    /// Stops the driver; canaries in flight are abandoned.
    pub async fn stop(self) {
        self.stop.close();
        let _ = self.ended.recv().await;
    }
}

impl Drop for HealthCheckDriver {
    fn drop(&mut self) {
        self.stop.close();
    }
}

async fn run<R: Runtime>(runtime: R, state: SystemState, sender: Arc<dyn CanarySender>) {
    // Each canary task runs while its entry's sender lives: removing (or dropping) the entry
    // ends the task, which drops the stream. A closed sender means the task has ended.
    let mut in_flight: BTreeMap<CanaryId, Sender<()>> = BTreeMap::new();
    let mut timer: Option<R::Timer> = None;
    let mut turns = 0;
    loop {
        // Timer, then commands, under one short lock; the sender runs after it is released.
        let (commands, deadline) = {
            let mut health = state.lock_health();
            let now = runtime.now();
            if health
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now)
            {
                health.handle_timeout(now);
            }
            let commands: Vec<_> = std::iter::from_fn(|| health.poll_command()).collect();
            (commands, health.poll_timeout())
        };
        in_flight.retain(|_, task| !task.is_closed());
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
                            let (keep, abandoned) = async_channel::bounded::<()>(1);
                            let watch = watch(state.clone(), id, stream);
                            runtime.spawn(async move {
                                futures_lite::future::or(watch, async {
                                    let _ = abandoned.recv().await;
                                })
                                .await;
                            });
                            in_flight.insert(id, keep);
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
            Some(deadline) if deadline <= runtime.now() => {
                turns += 1;
                if turns >= TURN_BUDGET {
                    turns = 0;
                    futures_lite::future::yield_now().await;
                }
            }
            Some(deadline) => {
                turns = 0;
                let timer = match &mut timer {
                    Some(timer) => {
                        R::reset_timer(timer, deadline);
                        timer
                    }
                    None => timer.insert(runtime.timer(deadline)),
                };
                futures_lite::future::or(
                    async {
                        timer.await;
                    },
                    state.health_changed(),
                )
                .await;
            }
            None => {
                turns = 0;
                state.health_changed().await;
            }
        }
    }
}

/// Waits for canary `id`'s first item (or end) and reports it. Dropping this future drops the
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
