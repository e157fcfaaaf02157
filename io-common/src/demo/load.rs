//! The load generator: request loops that call an endpoint back to back and time each call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{StreamExt, future};

use super::histogram::LatencyHistogram;
use crate::distributed::{CallStream, Client, ClientError};
use crate::mux::CallError;
use crate::runtime::Runtime;

/// How long a request may run past the end of the load before its loop gives up on it.
pub const REQUEST_GRACE: Duration = Duration::from_secs(10);

/// How long a loop waits before trying again after a call could not start (no instance,
/// connection refused), so a broken cluster does not turn the loop into a busy spin.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Counters every request loop updates as it goes; read them for a live display.
#[derive(Debug, Default)]
pub struct LiveCounters {
    requests: AtomicU64,
    items: AtomicU64,
    errors: AtomicU64,
}

impl LiveCounters {
    /// The counts now, `elapsed` after the load started.
    pub fn snapshot(&self, elapsed: Duration) -> Snapshot {
        Snapshot {
            elapsed,
            requests: self.requests.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// The load's progress at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Time since the load started.
    pub elapsed: Duration,
    /// Requests finished (successfully or not).
    pub requests: u64,
    /// Response items received.
    pub items: u64,
    /// Requests that failed.
    pub errors: u64,
}

impl Snapshot {
    /// Requests per second since the start.
    pub fn requests_per_sec(&self) -> f64 {
        per_sec(self.requests, self.elapsed)
    }

    /// Items per second since the start.
    pub fn items_per_sec(&self) -> f64 {
        per_sec(self.items, self.elapsed)
    }

    /// One line for a progress display:
    /// `3.0 s  requests 12000 (4000/s)  items 192000 (64000/s)  errors 0`.
    pub fn line(&self) -> String {
        format!(
            "{:5.1} s  requests {} ({:.0}/s)  items {} ({:.0}/s)  errors {}",
            self.elapsed.as_secs_f64(),
            self.requests,
            self.requests_per_sec(),
            self.items,
            self.items_per_sec(),
            self.errors
        )
    }
}

pub(crate) fn per_sec(n: u64, elapsed: Duration) -> f64 {
    match elapsed.as_secs_f64() {
        s if s > 0.0 => n as f64 / s,
        _ => 0.0,
    }
}

/// Failed requests by kind, with the first message seen for each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorTally {
    /// Kind → (count, first message).
    pub by_kind: BTreeMap<String, (u64, String)>,
}

impl ErrorTally {
    /// Counts one failure.
    pub fn add(&mut self, kind: &str, message: impl FnOnce() -> String) {
        match self.by_kind.get_mut(kind) {
            Some((n, _)) => *n += 1,
            None => {
                self.by_kind.insert(kind.to_owned(), (1, message()));
            }
        }
    }

    /// Adds `other`'s failures.
    pub fn merge(&mut self, other: &Self) {
        for (kind, (n, message)) in &other.by_kind {
            let entry = self
                .by_kind
                .entry(kind.clone())
                .or_insert_with(|| (0, message.clone()));
            entry.0 += n;
        }
    }

    /// Failures in all.
    pub fn total(&self) -> u64 {
        self.by_kind.values().map(|(n, _)| n).sum()
    }
}

/// What one request loop (or all of them, merged) measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Time from sending a request to its last item (successful requests only).
    pub latency: LatencyHistogram,
    /// Time from sending a request to its first item.
    pub first_item: LatencyHistogram,
    /// Failed requests.
    pub errors: ErrorTally,
}

impl LoadResult {
    /// Adds `other`'s measurements.
    pub fn merge(&mut self, other: &Self) {
        self.latency.merge(&other.latency);
        self.first_item.merge(&other.first_item);
        self.errors.merge(&other.errors);
    }
}

/// How a request ended.
enum Outcome {
    Done {
        items: u64,
        first: Option<Instant>,
    },
    Failed {
        items: u64,
        kind: String,
        message: String,
    },
}

/// One request loop: calls `client` round-robin with `payload`, back to back, until `end`;
/// each response must have `expected_items` items (fewer or more counts as an `Incomplete`
/// failure). A request still running [`REQUEST_GRACE`] after `end` is abandoned as a
/// `Timeout` failure and the loop stops.
pub async fn request_loop<R: Runtime>(
    rt: R,
    client: Client<R>,
    payload: Bytes,
    expected_items: u64,
    end: Instant,
    counters: &LiveCounters,
) -> LoadResult {
    let mut result = LoadResult::default();
    let mut deadline = rt.timer(end + REQUEST_GRACE);
    while rt.now() < end {
        let start = rt.now();
        let call = async { Some(call_once(&rt, &client, payload.clone()).await) };
        let expired = async {
            (&mut deadline).await;
            None
        };
        let outcome = future::or(call, expired).await;
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => Outcome::Failed {
                items: 0,
                kind: "Timeout".into(),
                message: format!("no complete answer {REQUEST_GRACE:?} after the load ended"),
            },
        };
        let timed_out = matches!(&outcome, Outcome::Failed { kind, .. } if kind == "Timeout");
        let finished = rt.now();
        counters.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Done { items, first } if items == expected_items => {
                counters.items.fetch_add(items, Ordering::Relaxed);
                result.latency.record(finished - start);
                if let Some(first) = first {
                    result.first_item.record(first - start);
                }
            }
            Outcome::Done { items, first } => {
                counters.items.fetch_add(items, Ordering::Relaxed);
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if let Some(first) = first {
                    result.first_item.record(first - start);
                }
                result.errors.add("Incomplete", || {
                    format!("{items} items instead of {expected_items}")
                });
            }
            Outcome::Failed {
                items,
                kind,
                message,
            } => {
                counters.items.fetch_add(items, Ordering::Relaxed);
                counters.errors.fetch_add(1, Ordering::Relaxed);
                result.errors.add(&kind, || message);
                if items == 0 && !timed_out {
                    crate::runtime::sleep_until(&rt, rt.now() + RETRY_PAUSE).await;
                }
            }
        }
        if timed_out {
            break;
        }
    }
    result
}

async fn call_once<R: Runtime>(rt: &R, client: &Client<R>, payload: Bytes) -> Outcome {
    let mut stream: CallStream = match client.round_robin(payload).await {
        Ok(stream) => stream,
        Err(e) => {
            return Outcome::Failed {
                items: 0,
                kind: client_error_kind(&e),
                message: e.to_string(),
            };
        }
    };
    let mut items = 0;
    let mut first = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(_) => {
                if first.is_none() {
                    first = Some(rt.now());
                }
                items += 1;
            }
            Err(e) => {
                return Outcome::Failed {
                    items,
                    kind: call_error_kind(&e),
                    message: e.to_string(),
                };
            }
        }
    }
    Outcome::Done { items, first }
}

/// A short name for a failure to start a call.
pub fn client_error_kind(error: &ClientError) -> String {
    match error {
        ClientError::Route(_) => "NoInstance".into(),
        ClientError::Call { error, .. } => call_error_kind(error),
        ClientError::Unsupported { .. } => "Unsupported".into(),
        ClientError::Encode(_) => "Encode".into(),
        ClientError::Wait(_) => "Wait".into(),
    }
}

/// A short name for a failure during a call: the Dynamo error class.
pub fn call_error_kind(error: &CallError) -> String {
    let kind = error.kind();
    kind.dynamo_name()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("code {}", kind.0))
}
