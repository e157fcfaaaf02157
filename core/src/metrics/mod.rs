//! Metrics: the runtime → namespace → component → endpoint hierarchy, Dynamo's names and labels,
//! and the Prometheus text exposition served at `/metrics`.
//!
//! Every metric is named `dynamo_component_<name>` and carries the labels of its [`Scope`]
//! (`dynamo_namespace`, `dynamo_component`, `dynamo_endpoint`, each present from its level down,
//! values sanitised as 1.6.1 does with [`prometheus_names::sanitize_label`]) plus `worker_id` (the
//! instance id in lowercase hex) when the registry knows it. User labels come on top and may not
//! reuse those names ([`MetricsError::ReservedLabel`]).
//!
//! [`MetricsRegistry::endpoint`] registers the request-plane set of one endpoint and returns its
//! hot-path handle [`EndpointMetrics`]; [`MetricsRegistry::counter`], [`MetricsRegistry::gauge`],
//! [`MetricsRegistry::int_gauge`] and [`MetricsRegistry::histogram`] register application
//! metrics. The runtime's `dynamo_component_uptime_seconds` is built in and computed from the
//! `now` given to [`MetricsRegistry::render`], so it is fresh at every scrape.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dynrt_core::metrics::MetricsRegistry;
//!
//! let t0 = Instant::now();
//! let mut registry = MetricsRegistry::new(t0, Some(0x1a2b));
//! let generate = registry.endpoint("demo", "backend", "generate", &[])?; // once, at serve time
//!
//! // Per request, on the hot path: relaxed atomics only.
//! let request = generate.request_started(128, t0);
//! generate.response_bytes(64);
//! request.finish(t0 + Duration::from_millis(2));
//!
//! let text = registry.render(t0 + Duration::from_secs(1)); // GET /metrics
//! assert!(text.contains(
//!     r#"dynamo_component_requests_total{dynamo_component="backend",dynamo_endpoint="generate",dynamo_namespace="demo",worker_id="1a2b"} 1"#
//! ));
//! assert!(text.contains(r#"dynamo_component_uptime_seconds{worker_id="1a2b"} 1"#));
//! # Ok::<(), dynrt_core::metrics::MetricsError>(())
//! ```
//!
//! ## Why hand-written exposition, not `prometheus-client`
//!
//! `prometheus-client` is pure, but it writes OpenMetrics text: counter families lose their
//! `_total` in `# TYPE` lines, output ends with `# EOF`, and it is served as
//! `application/openmetrics-text`. Dynamo 1.6.1 serves the classic 0.0.4 text of the `prometheus`
//! crate, and dashboards and scrapers built on it read that. The exposition is small (see
//! grammar in `metrics/text.rs`) and the tests parse every output with a strict grammar check and with the
//! `prometheus-parse` crate. Owning the storage also lets the hot path be a fixed struct of
//! atomics (no label-map lookup per request).
//!
//! ## Registration is get-or-create
//!
//! Registering the same name, kind, help (and buckets) again with the same labels returns a handle
//! to the same series; with other labels it adds a series to the family. A different kind, help
//! or buckets under one name is a [`MetricsError::Conflict`].

mod endpoint;
mod handles;
pub mod prometheus_names;
mod text;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use thiserror::Error;

use endpoint::EndpointCore;
pub use endpoint::{EndpointMetrics, ErrorType, InflightRequest};
use handles::HistogramCore;
pub use handles::{Counter, Gauge, Histogram, IntGauge};
use prometheus_names::{
    PREFIX, SanitizeError, distributed_runtime as rt, is_valid_label_name, labels as label_names,
    sanitize_label, sanitize_metric_name, work_handler as wh,
};
use text::{Value, f64_string, write_header, write_sample};

/// Content type of the exposition: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Registering a metric failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The metric name cannot be sanitised into a valid one.
    #[error("metric name: {0}")]
    InvalidName(SanitizeError),
    /// A namespace, component or endpoint name cannot be sanitised into a label value.
    #[error("{level} name: {source}")]
    InvalidScope {
        /// `"namespace"`, `"component"` or `"endpoint"`.
        level: &'static str,
        /// Why.
        source: SanitizeError,
    },
    /// A user label uses a name the registry sets itself.
    #[error(
        "label '{label}' is added automatically and cannot be set (reserved: dynamo_namespace, dynamo_component, dynamo_endpoint, worker_id)"
    )]
    ReservedLabel {
        /// The label name.
        label: String,
    },
    /// A user label uses a name this kind of metric reserves (`le` for histograms,
    /// `error_type` for the endpoint set).
    #[error("label '{label}' is reserved by {metric} '{name}'")]
    LabelReservedByMetric {
        /// The label name.
        label: String,
        /// What kind of metric.
        metric: &'static str,
        /// The metric name.
        name: String,
    },
    /// A user label name is not `[a-zA-Z_][a-zA-Z0-9_]*` or starts with `__`.
    #[error(
        "label name '{label}' is not valid (use a-z, A-Z, 0-9, '_', not starting with a digit or '__')"
    )]
    InvalidLabelName {
        /// The label name.
        label: String,
    },
    /// The same label name is given twice.
    #[error("label '{label}' is given twice")]
    DuplicateLabel {
        /// The label name.
        label: String,
    },
    /// The name is registered with another kind, help or buckets.
    #[error("metric '{name}' is already registered {existing}")]
    Conflict {
        /// The full metric name.
        name: String,
        /// What is registered (e.g. "as a gauge", "with help '…'").
        existing: String,
    },
    /// The name collides with a histogram's `_bucket`, `_sum` or `_count` series.
    #[error("metric '{name}' collides with the series of histogram '{histogram}'")]
    HistogramClash {
        /// The full metric name.
        name: String,
        /// The histogram family.
        histogram: String,
    },
    /// Histogram buckets must be finite and strictly increasing, and there must be at least one.
    #[error("histogram '{name}': {reason}")]
    InvalidBuckets {
        /// The full metric name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where a metric lives in the hierarchy: the runtime, a namespace, a component or an endpoint.
/// Holds the sanitised label values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    namespace: Option<String>,
    component: Option<String>,
    endpoint: Option<String>,
}

impl Scope {
    /// The runtime: no hierarchy labels.
    pub fn runtime() -> Self {
        Self::default()
    }

    /// A namespace.
    pub fn namespace(namespace: &str) -> Result<Self, MetricsError> {
        Ok(Self {
            namespace: level("namespace", namespace)?,
            ..Self::default()
        })
    }

    /// A component of a namespace.
    pub fn component(namespace: &str, component: &str) -> Result<Self, MetricsError> {
        Ok(Self {
            component: level("component", component)?,
            ..Self::namespace(namespace)?
        })
    }

    /// An endpoint of a component.
    pub fn endpoint(
        namespace: &str,
        component: &str,
        endpoint: &str,
    ) -> Result<Self, MetricsError> {
        Ok(Self {
            endpoint: level("endpoint", endpoint)?,
            ..Self::component(namespace, component)?
        })
    }

    /// The `(label, value)` pairs this scope adds.
    pub fn labels(&self) -> Vec<(&'static str, &str)> {
        [
            (label_names::NAMESPACE, &self.namespace),
            (label_names::COMPONENT, &self.component),
            (label_names::ENDPOINT, &self.endpoint),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

/// 1.6.1 skips an empty level and sanitises the others.
fn level(level: &'static str, raw: &str) -> Result<Option<String>, MetricsError> {
    if raw.is_empty() {
        return Ok(None);
    }
    sanitize_label(raw)
        .map(Some)
        .map_err(|source| MetricsError::InvalidScope { level, source })
}

/// What a family is, for conflict checks and for the `# TYPE` line.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Counter,
    IntGauge,
    Gauge,
    Histogram(Arc<[f64]>),
    /// One of the seven families of the endpoint set.
    Endpoint(EndpointFamily),
    Uptime,
}

impl Shape {
    fn kind(&self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::IntGauge | Self::Gauge | Self::Uptime => "gauge",
            Self::Histogram(_) => "histogram",
            Self::Endpoint(f) => f.kind(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Counter => "as a counter".into(),
            Self::IntGauge => "as an integer gauge".into(),
            Self::Gauge => "as a gauge".into(),
            Self::Histogram(b) => format!("as a histogram with buckets {b:?}"),
            Self::Endpoint(_) => "by the endpoint request metrics".into(),
            Self::Uptime => "as the runtime uptime".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndpointFamily {
    Requests,
    RequestBytes,
    ResponseBytes,
    Inflight,
    Duration,
    Errors,
    Cancellations,
}

impl EndpointFamily {
    const ALL: [Self; 7] = [
        Self::Requests,
        Self::RequestBytes,
        Self::ResponseBytes,
        Self::Inflight,
        Self::Duration,
        Self::Errors,
        Self::Cancellations,
    ];

    fn name_help(self) -> (&'static str, &'static str) {
        match self {
            Self::Requests => (wh::REQUESTS_TOTAL, wh::REQUESTS_TOTAL_HELP),
            Self::RequestBytes => (wh::REQUEST_BYTES_TOTAL, wh::REQUEST_BYTES_TOTAL_HELP),
            Self::ResponseBytes => (wh::RESPONSE_BYTES_TOTAL, wh::RESPONSE_BYTES_TOTAL_HELP),
            Self::Inflight => (wh::INFLIGHT_REQUESTS, wh::INFLIGHT_REQUESTS_HELP),
            Self::Duration => (
                wh::REQUEST_DURATION_SECONDS,
                wh::REQUEST_DURATION_SECONDS_HELP,
            ),
            Self::Errors => (wh::ERRORS_TOTAL, wh::ERRORS_TOTAL_HELP),
            Self::Cancellations => (wh::CANCELLATION_TOTAL, wh::CANCELLATION_TOTAL_HELP),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Inflight => "gauge",
            Self::Duration => "histogram",
            _ => "counter",
        }
    }
}

#[derive(Debug, Clone)]
enum Source {
    Counter(Arc<AtomicU64>),
    IntGauge(Arc<AtomicI64>),
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<HistogramCore>),
    Endpoint(Arc<EndpointCore>),
    Uptime,
}

/// Sorted `(name, value)` label pairs of one series.
type LabelSet = Vec<(String, String)>;

#[derive(Debug)]
struct Family {
    help: String,
    shape: Shape,
    series: BTreeMap<LabelSet, Source>,
}

/// All metrics of one process. Registration takes `&mut self` (the driver keeps the registry
/// behind its own lock); recording goes through the handles and never touches the registry;
/// rendering takes `&self` and only reads atomics.
#[derive(Debug)]
pub struct MetricsRegistry {
    start: Instant,
    worker_id: Option<String>,
    families: BTreeMap<String, Family>,
}

impl MetricsRegistry {
    /// A registry for a process that started at `start`; `worker_id` is its instance id (the
    /// `worker_id` label), if known.
    pub fn new(start: Instant, worker_id: Option<u64>) -> Self {
        let mut registry = Self {
            start,
            worker_id: worker_id.map(|id| format!("{id:x}")),
            families: BTreeMap::new(),
        };
        let labels = registry.label_set(&Scope::runtime(), &[]);
        registry.families.insert(
            full_name(rt::UPTIME_SECONDS),
            Family {
                help: rt::UPTIME_SECONDS_HELP.to_owned(),
                shape: Shape::Uptime,
                series: BTreeMap::from([(labels, Source::Uptime)]),
            },
        );
        registry
    }

    /// Registers (or finds) a counter `dynamo_component_<name>`.
    pub fn counter(
        &mut self,
        scope: &Scope,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Counter, MetricsError> {
        match self.register(scope, name, help, labels, Shape::Counter, || {
            Source::Counter(Arc::default())
        })? {
            Source::Counter(c) => Ok(Counter(c)),
            _ => unreachable!("register returns a source of the requested shape"),
        }
    }

    /// Registers (or finds) an integer gauge `dynamo_component_<name>`.
    pub fn int_gauge(
        &mut self,
        scope: &Scope,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<IntGauge, MetricsError> {
        match self.register(scope, name, help, labels, Shape::IntGauge, || {
            Source::IntGauge(Arc::default())
        })? {
            Source::IntGauge(g) => Ok(IntGauge(g)),
            _ => unreachable!("register returns a source of the requested shape"),
        }
    }

    /// Registers (or finds) a floating-point gauge `dynamo_component_<name>`.
    pub fn gauge(
        &mut self,
        scope: &Scope,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Gauge, MetricsError> {
        match self.register(scope, name, help, labels, Shape::Gauge, || {
            Source::Gauge(Arc::new(AtomicU64::new(0f64.to_bits())))
        })? {
            Source::Gauge(g) => Ok(Gauge(g)),
            _ => unreachable!("register returns a source of the requested shape"),
        }
    }

    /// Registers (or finds) a histogram `dynamo_component_<name>` with the given bucket upper
    /// bounds (finite, strictly increasing; `+Inf` is implied).
    pub fn histogram(
        &mut self,
        scope: &Scope,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        buckets: &[f64],
    ) -> Result<Histogram, MetricsError> {
        let full = full_name(&sanitize_metric_name(name).map_err(MetricsError::InvalidName)?);
        let reason = if buckets.is_empty() {
            Some("no buckets".to_owned())
        } else if let Some(b) = buckets.iter().find(|b| !b.is_finite()) {
            Some(format!("bucket bound {b} is not finite"))
        } else {
            buckets.windows(2).find(|w| w[0] >= w[1]).map(|w| {
                format!(
                    "bucket bounds must increase, but {} is followed by {}",
                    w[0], w[1]
                )
            })
        };
        if let Some(reason) = reason {
            return Err(MetricsError::InvalidBuckets { name: full, reason });
        }
        let bounds: Arc<[f64]> = buckets.into();
        let make = || {
            Source::Histogram(Arc::new(HistogramCore {
                bounds: bounds.clone(),
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0f64.to_bits()),
            }))
        };
        match self.register(
            scope,
            name,
            help,
            labels,
            Shape::Histogram(bounds.clone()),
            make,
        )? {
            Source::Histogram(h) => Ok(Histogram(h)),
            _ => unreachable!("register returns a source of the requested shape"),
        }
    }

    /// Registers (or finds) the request metrics of an endpoint: `requests_total`,
    /// `request_bytes_total`, `response_bytes_total`, `inflight_requests`,
    /// `request_duration_seconds`, `errors_total{error_type}` and `cancellation_total`, all
    /// with the endpoint's labels plus `labels`.
    pub fn endpoint(
        &mut self,
        namespace: &str,
        component: &str,
        endpoint: &str,
        labels: &[(&str, &str)],
    ) -> Result<EndpointMetrics, MetricsError> {
        let scope = Scope::endpoint(namespace, component, endpoint)?;
        let set = self.user_labels(&scope, labels)?;
        for (k, _) in labels {
            let reserved_by = match *k {
                label_names::ERROR_TYPE => Some(("counter", wh::ERRORS_TOTAL)),
                "le" => Some(("histogram", wh::REQUEST_DURATION_SECONDS)),
                _ => None,
            };
            if let Some((metric, name)) = reserved_by {
                return Err(MetricsError::LabelReservedByMetric {
                    label: (*k).to_owned(),
                    metric,
                    name: full_name(name),
                });
            }
        }
        // Check all seven families before changing any.
        for fam in EndpointFamily::ALL {
            let (name, help) = fam.name_help();
            self.check_family(&full_name(name), help, &Shape::Endpoint(fam))?;
        }
        let (first, _) = EndpointFamily::Requests.name_help();
        if let Some(Source::Endpoint(core)) = self
            .families
            .get(&full_name(first))
            .and_then(|f| f.series.get(&set))
        {
            return Ok(EndpointMetrics(core.clone()));
        }
        let core = Arc::new(EndpointCore::new());
        for fam in EndpointFamily::ALL {
            let (name, help) = fam.name_help();
            self.families
                .entry(full_name(name))
                .or_insert_with(|| Family {
                    help: help.to_owned(),
                    shape: Shape::Endpoint(fam),
                    series: BTreeMap::new(),
                })
                .series
                .insert(set.clone(), Source::Endpoint(core.clone()));
        }
        Ok(EndpointMetrics(core))
    }

    /// The exposition at `now` (uptime is computed from it).
    pub fn render(&self, now: Instant) -> String {
        let mut out = String::with_capacity(4096);
        self.encode(now, &mut out);
        out
    }

    /// Appends the exposition at `now` to `out`.
    pub fn encode(&self, now: Instant, out: &mut String) {
        let mut body = String::new();
        for (name, family) in &self.families {
            body.clear();
            for (set, source) in &family.series {
                let pairs: Vec<(&str, &str)> =
                    set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                self.write_series(&mut body, name, &family.shape, &pairs, source, now);
            }
            if !body.is_empty() {
                write_header(out, name, &family.help, family.shape.kind());
                out.push_str(&body);
            }
        }
    }

    fn write_series(
        &self,
        out: &mut String,
        name: &str,
        shape: &Shape,
        labels: &[(&str, &str)],
        source: &Source,
        now: Instant,
    ) {
        match (shape, source) {
            (_, Source::Counter(c)) => {
                write_sample(out, name, "", labels, None, Value::U64(c.load(Relaxed)))
            }
            (_, Source::IntGauge(g)) => {
                write_sample(out, name, "", labels, None, Value::I64(g.load(Relaxed)))
            }
            (_, Source::Gauge(g)) => write_sample(
                out,
                name,
                "",
                labels,
                None,
                Value::F64(f64::from_bits(g.load(Relaxed))),
            ),
            (_, Source::Uptime) => {
                let up = now.saturating_duration_since(self.start).as_secs_f64();
                write_sample(out, name, "", labels, None, Value::F64(up));
            }
            (_, Source::Histogram(h)) => {
                let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Relaxed)).collect();
                let sum = f64::from_bits(h.sum.load(Relaxed));
                write_histogram(out, name, labels, &h.bounds, &counts, sum);
            }
            (Shape::Endpoint(fam), Source::Endpoint(core)) => {
                write_endpoint_series(out, name, *fam, labels, core)
            }
            (_, Source::Endpoint(_)) => unreachable!("endpoint sources live in endpoint families"),
        }
    }

    /// Validates, then finds or adds the series.
    fn register(
        &mut self,
        scope: &Scope,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        shape: Shape,
        make: impl FnOnce() -> Source,
    ) -> Result<Source, MetricsError> {
        let full = full_name(&sanitize_metric_name(name).map_err(MetricsError::InvalidName)?);
        let set = self.user_labels(scope, labels)?;
        if matches!(shape, Shape::Histogram(_)) && labels.iter().any(|(k, _)| *k == "le") {
            return Err(MetricsError::LabelReservedByMetric {
                label: "le".into(),
                metric: "histogram",
                name: full,
            });
        }
        self.check_family(&full, help, &shape)?;
        let family = self.families.entry(full).or_insert_with(|| Family {
            help: help.to_owned(),
            shape,
            series: BTreeMap::new(),
        });
        Ok(family.series.entry(set).or_insert_with(make).clone())
    }

    /// `Err` if `full` exists with another shape or help, or clashes with a histogram.
    fn check_family(&self, full: &str, help: &str, shape: &Shape) -> Result<(), MetricsError> {
        if let Some(existing) = self.families.get(full) {
            if existing.shape != *shape {
                return Err(MetricsError::Conflict {
                    name: full.to_owned(),
                    existing: existing.shape.describe(),
                });
            }
            if existing.help != help {
                return Err(MetricsError::Conflict {
                    name: full.to_owned(),
                    existing: format!("with help '{}'", existing.help),
                });
            }
            return Ok(());
        }
        let is_histogram = shape.kind() == "histogram";
        for suffix in ["_bucket", "_sum", "_count"] {
            // A new name that is a histogram's series, or a new histogram whose series exist.
            if let Some(base) = full.strip_suffix(suffix)
                && self
                    .families
                    .get(base)
                    .is_some_and(|f| f.shape.kind() == "histogram")
            {
                return Err(MetricsError::HistogramClash {
                    name: full.to_owned(),
                    histogram: base.to_owned(),
                });
            }
            if is_histogram && self.families.contains_key(&format!("{full}{suffix}")) {
                return Err(MetricsError::HistogramClash {
                    name: format!("{full}{suffix}"),
                    histogram: full.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The sorted label set of a series: scope labels, `worker_id`, then checked user labels.
    fn user_labels(&self, scope: &Scope, user: &[(&str, &str)]) -> Result<LabelSet, MetricsError> {
        for (i, (k, _)) in user.iter().enumerate() {
            if label_names::AUTOMATIC.contains(k) {
                return Err(MetricsError::ReservedLabel {
                    label: (*k).to_owned(),
                });
            }
            if !is_valid_label_name(k) {
                return Err(MetricsError::InvalidLabelName {
                    label: (*k).to_owned(),
                });
            }
            if user[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(MetricsError::DuplicateLabel {
                    label: (*k).to_owned(),
                });
            }
        }
        Ok(self.label_set(scope, user))
    }

    fn label_set(&self, scope: &Scope, user: &[(&str, &str)]) -> LabelSet {
        let mut set: LabelSet = scope
            .labels()
            .into_iter()
            .chain(
                self.worker_id
                    .as_deref()
                    .map(|w| (label_names::WORKER_ID, w)),
            )
            .chain(user.iter().copied())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        set.sort();
        set
    }
}

fn full_name(name: &str) -> String {
    format!("{PREFIX}_{name}")
}

fn write_histogram(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) {
    let mut cumulative = 0u64;
    for (i, count) in counts.iter().enumerate() {
        cumulative += count;
        let le = bounds
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), |b| f64_string(*b));
        write_sample(
            out,
            name,
            "_bucket",
            labels,
            Some(("le", &le)),
            Value::U64(cumulative),
        );
    }
    write_sample(out, name, "_sum", labels, None, Value::F64(sum));
    // `_count` is the bucket total, so it always equals the `+Inf` bucket even while other
    // threads record.
    write_sample(out, name, "_count", labels, None, Value::U64(cumulative));
}

fn write_endpoint_series(
    out: &mut String,
    name: &str,
    fam: EndpointFamily,
    series_labels: &[(&str, &str)],
    core: &EndpointCore,
) {
    let labels = series_labels;
    let one = |out: &mut String, v: Value| write_sample(out, name, "", labels, None, v);
    match fam {
        EndpointFamily::Requests => one(out, Value::U64(core.requests())),
        EndpointFamily::RequestBytes => one(out, Value::U64(core.request_bytes())),
        EndpointFamily::ResponseBytes => one(out, Value::U64(core.response_bytes())),
        EndpointFamily::Inflight => one(out, Value::I64(core.inflight())),
        EndpointFamily::Cancellations => one(out, Value::U64(core.cancellations())),
        EndpointFamily::Duration => write_histogram(
            out,
            name,
            labels,
            &wh::REQUEST_DURATION_BUCKETS,
            &core.duration_counts(),
            core.duration_sum_secs(),
        ),
        EndpointFamily::Errors => {
            // Like 1.6.1's counter vector, a class appears once it has been counted.
            for t in ErrorType::ALL {
                let n = core.errors(t);
                if n == 0 {
                    continue;
                }
                let mut with_type: Vec<(&str, &str)> = labels.to_vec();
                with_type.push((label_names::ERROR_TYPE, t.as_str()));
                with_type.sort_unstable();
                write_sample(out, name, "", &with_type, None, Value::U64(n));
            }
        }
    }
}
