//! The per-endpoint request metrics the request plane records on its hot path.
//!
//! Every recording method is one or two relaxed atomic operations on counters shared (through an
//! `Arc`) with the registry, which reads them when it renders. Nothing locks, allocates or reads
//! a clock; durations come from the `now` the driver passes in.
//!
//! `inflight_requests` is not a counter of its own: it is derived when read (requests started,
//! less those whose duration was observed, less those abandoned without one). A gauge moved up
//! and down per request would cost two more atomic operations on a cache line every worker
//! thread writes; on a two-worker runtime at ~500k requests/s that was a measurable share of
//! the metrics' cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::prometheus_names::work_handler::REQUEST_DURATION_BUCKETS;

/// Error classes of `dynamo_component_errors_total{error_type}`: 1.6.1's work-handler values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    /// The request payload could not be decoded.
    Deserialization,
    /// The handler failed to start generating.
    Generate,
    /// The request envelope was malformed.
    InvalidMessage,
    /// The final response marker could not be sent.
    PublishFinal,
    /// A response item could not be sent.
    PublishResponse,
    /// The response stream to the caller could not be opened.
    ResponseStream,
    /// A response item could not be encoded.
    Serialization,
}

impl ErrorType {
    /// Every class, in the order of their label values.
    pub const ALL: [Self; 7] = [
        Self::Deserialization,
        Self::Generate,
        Self::InvalidMessage,
        Self::PublishFinal,
        Self::PublishResponse,
        Self::ResponseStream,
        Self::Serialization,
    ];

    /// The `error_type` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deserialization => "deserialization",
            Self::Generate => "generate",
            Self::InvalidMessage => "invalid_message",
            Self::PublishFinal => "publish_final",
            Self::PublishResponse => "publish_response",
            Self::ResponseStream => "response_stream",
            Self::Serialization => "serialization",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const BUCKETS: usize = REQUEST_DURATION_BUCKETS.len();

/// The shared counters of one endpoint (one series in each of the seven families).
#[derive(Debug)]
pub(crate) struct EndpointCore {
    requests: AtomicU64,
    /// Requests that left `inflight_requests` without a duration (a token dropped unfinished).
    abandoned: AtomicU64,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
    cancellations: AtomicU64,
    errors: [AtomicU64; ErrorType::ALL.len()],
    /// Per bucket (not cumulative); the last slot counts observations above the largest bound.
    duration_counts: [AtomicU64; BUCKETS + 1],
    /// Sum of observed durations in nanoseconds: exact, one `fetch_add`. It wraps after 584
    /// years of summed request time, which Prometheus reads as a counter reset.
    duration_sum_nanos: AtomicU64,
}

impl EndpointCore {
    pub(crate) fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            request_bytes: AtomicU64::new(0),
            response_bytes: AtomicU64::new(0),
            cancellations: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_counts: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        // The bucket rule of 1.6.1 (`value <= upper_bound`, compared as f64 seconds).
        let secs = d.as_secs_f64();
        let idx = REQUEST_DURATION_BUCKETS.partition_point(|b| *b < secs);
        self.duration_counts[idx].fetch_add(1, Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.duration_sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
    pub(crate) fn inflight(&self) -> i64 {
        // Those that left first, then those that came: a request is counted in before it can be
        // counted out, so read in this order the difference is never below the truth's lower
        // bound (racing recorders can only make it momentarily high, never negative).
        let left = self.abandoned.load(Relaxed)
            + self
                .duration_counts
                .iter()
                .map(|c| c.load(Relaxed))
                .sum::<u64>();
        let came = self.requests.load(Relaxed);
        i64::try_from(came.saturating_sub(left)).unwrap_or(i64::MAX)
    }
    pub(crate) fn request_bytes(&self) -> u64 {
        self.request_bytes.load(Relaxed)
    }
    pub(crate) fn response_bytes(&self) -> u64 {
        self.response_bytes.load(Relaxed)
    }
    pub(crate) fn cancellations(&self) -> u64 {
        self.cancellations.load(Relaxed)
    }
    pub(crate) fn errors(&self, t: ErrorType) -> u64 {
        self.errors[t.index()].load(Relaxed)
    }
    /// A snapshot of the per-bucket counts (not cumulative; last = above the largest bound).
    pub(crate) fn duration_counts(&self) -> [u64; BUCKETS + 1] {
        std::array::from_fn(|i| self.duration_counts[i].load(Relaxed))
    }
    pub(crate) fn duration_sum_secs(&self) -> f64 {
        self.duration_sum_nanos.load(Relaxed) as f64 / 1e9
    }
}

/// The request metrics of one endpoint; cheap to clone (an `Arc`), `Send + Sync`.
///
/// Recording follows 1.6.1's work handler: when a request arrives, `requests_total`,
/// `inflight_requests` and `request_bytes_total` go up ([`EndpointMetrics::request_started`]);
/// each response frame sent adds to `response_bytes_total`; when the request is done the
/// duration is observed and `inflight_requests` goes down ([`InflightRequest::finish`]).
#[derive(Debug, Clone)]
pub struct EndpointMetrics(pub(crate) Arc<EndpointCore>);

impl EndpointMetrics {
    /// A request with a payload of `request_bytes` bytes arrived at `now`. Keep the returned
    /// token until the request is done.
    #[inline]
    pub fn request_started(&self, request_bytes: u64, now: Instant) -> InflightRequest {
        self.request_arrived(request_bytes);
        InflightRequest {
            core: Some(Arc::clone(&self.0)),
            started: now,
        }
    }

    /// What [`Self::request_started`] records, without a token: for a caller that keeps these
    /// metrics and the start time itself (the request plane's per-request state does) and so
    /// saves the token's reference count. It must end the request with [`Self::request_done`]
    /// or [`Self::request_abandoned`], or the request stays in `inflight_requests`.
    #[inline]
    pub fn request_arrived(&self, request_bytes: u64) {
        let c = &self.0;
        c.requests.fetch_add(1, Relaxed);
        if request_bytes > 0 {
            c.request_bytes.fetch_add(request_bytes, Relaxed);
        }
    }

    /// A request that arrived at `started` is done at `now`: its duration is observed and it
    /// leaves `inflight_requests`.
    #[inline]
    pub fn request_done(&self, started: Instant, now: Instant) {
        self.0.observe(now.saturating_duration_since(started));
    }

    /// A request leaves `inflight_requests` without a duration.
    #[inline]
    pub fn request_abandoned(&self) {
        self.0.abandoned.fetch_add(1, Relaxed);
    }

    /// `bytes` of response were sent (call per frame, the final marker included).
    #[inline]
    pub fn response_bytes(&self, bytes: u64) {
        self.0.response_bytes.fetch_add(bytes, Relaxed);
    }

    /// An error of class `error_type` happened while handling a request.
    #[inline]
    pub fn error(&self, error_type: ErrorType) {
        self.0.errors[error_type.index()].fetch_add(1, Relaxed);
    }

    /// The caller cancelled a request (stop, kill or disconnect).
    #[inline]
    pub fn cancelled(&self) {
        self.0.cancellations.fetch_add(1, Relaxed);
    }

    /// `requests_total` so far.
    pub fn requests(&self) -> u64 {
        self.0.requests()
    }

    /// `inflight_requests` now.
    pub fn inflight(&self) -> i64 {
        self.0.inflight()
    }

    /// `errors_total{error_type}` so far.
    pub fn errors(&self, error_type: ErrorType) -> u64 {
        self.0.errors(error_type)
    }

    /// `cancellation_total` so far.
    pub fn cancellations(&self) -> u64 {
        self.0.cancellations()
    }
}

/// One request being handled. Dropping it takes the request out of `inflight_requests`;
/// [`InflightRequest::finish`] also records its duration.
#[derive(Debug)]
#[must_use = "dropping the token at once ends the request; keep it until the request is done"]
pub struct InflightRequest {
    /// `None` once finished.
    core: Option<Arc<EndpointCore>>,
    started: Instant,
}

impl InflightRequest {
    /// When the request started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The request is done at `now`: observe its duration and leave `inflight_requests`.
    #[inline]
    pub fn finish(mut self, now: Instant) {
        if let Some(core) = self.core.take() {
            core.observe(now.saturating_duration_since(self.started));
        }
    }
}

impl Drop for InflightRequest {
    #[inline]
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.abandoned.fetch_add(1, Relaxed);
        }
    }
}
