//! Dynamo's metric names, label names, buckets and sanitisation rules (from 1.6.1's
//! `metrics/prometheus_names.rs` and the work handler in `push_handler.rs`).

/// Every metric this crate registers is named `dynamo_component_<name>`.
pub const PREFIX: &str = "dynamo_component";

/// Label names.
pub mod labels {
    /// The namespace of the scope; added automatically.
    pub const NAMESPACE: &str = "dynamo_namespace";
    /// The component of the scope; added automatically.
    pub const COMPONENT: &str = "dynamo_component";
    /// The endpoint of the scope; added automatically.
    pub const ENDPOINT: &str = "dynamo_endpoint";
    /// The process's instance id in lowercase hex; added automatically when known.
    pub const WORKER_ID: &str = "worker_id";
    /// The error class of `errors_total`.
    pub const ERROR_TYPE: &str = "error_type";

    /// Labels the registry adds itself; a user label may not use these names.
    pub const AUTOMATIC: [&str; 4] = [NAMESPACE, COMPONENT, ENDPOINT, WORKER_ID];
}

/// Per-endpoint request metrics (1.6.1's `work_handler` names, after the prefix).
pub mod work_handler {
    /// Counter: requests received.
    pub const REQUESTS_TOTAL: &str = "requests_total";
    /// Counter: request payload bytes received.
    pub const REQUEST_BYTES_TOTAL: &str = "request_bytes_total";
    /// Counter: response bytes sent.
    pub const RESPONSE_BYTES_TOTAL: &str = "response_bytes_total";
    /// Gauge: requests being processed.
    pub const INFLIGHT_REQUESTS: &str = "inflight_requests";
    /// Histogram: request duration in seconds.
    pub const REQUEST_DURATION_SECONDS: &str = "request_duration_seconds";
    /// Counter with label `error_type`: errors while handling requests.
    pub const ERRORS_TOTAL: &str = "errors_total";
    /// Counter: requests cancelled by the caller (stop, kill or disconnect).
    pub const CANCELLATION_TOTAL: &str = "cancellation_total";

    /// HELP of `requests_total`.
    pub const REQUESTS_TOTAL_HELP: &str = "Total number of requests processed by work handler";
    /// HELP of `request_bytes_total`.
    pub const REQUEST_BYTES_TOTAL_HELP: &str =
        "Total number of bytes received in requests by work handler";
    /// HELP of `response_bytes_total`.
    pub const RESPONSE_BYTES_TOTAL_HELP: &str =
        "Total number of bytes sent in responses by work handler";
    /// HELP of `inflight_requests`.
    pub const INFLIGHT_REQUESTS_HELP: &str =
        "Number of requests currently being processed by work handler";
    /// HELP of `request_duration_seconds`.
    pub const REQUEST_DURATION_SECONDS_HELP: &str =
        "Time spent processing requests by work handler";
    /// HELP of `errors_total`.
    pub const ERRORS_TOTAL_HELP: &str = "Total number of errors in work handler processing";
    /// HELP of `cancellation_total`.
    pub const CANCELLATION_TOTAL_HELP: &str = "Total number of requests cancelled by work handler";

    /// Upper bounds (seconds) of `request_duration_seconds`: sub-second resolution for fast
    /// calls, up to ten minutes for long generations.
    pub const REQUEST_DURATION_BUCKETS: [f64; 17] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
        300.0, 600.0,
    ];
}

/// Runtime-level metrics.
pub mod distributed_runtime {
    /// Gauge: seconds since the runtime started, refreshed at every scrape.
    pub const UPTIME_SECONDS: &str = "uptime_seconds";
    /// HELP of `uptime_seconds`.
    pub const UPTIME_SECONDS_HELP: &str = "Total uptime of the DistributedRuntime in seconds";
}

/// A name that no amount of sanitising makes valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SanitizeError {
    /// The input is empty.
    #[error("{what} is empty")]
    Empty {
        /// `"metric name"` or `"label"`.
        what: &'static str,
    },
    /// The input has no character that survives sanitising.
    #[error("{what} '{raw}' has no valid character (use a-z, A-Z, 0-9, '_')")]
    NothingValid {
        /// `"metric name"` or `"label"`.
        what: &'static str,
        /// The input.
        raw: String,
    },
}

/// Sanitises a metric name as 1.6.1 does: every character outside `[a-zA-Z0-9_:]` becomes `_`,
/// a leading digit (or other invalid first character) gets a `_` in front, and a result made of
/// underscores only is an error.
pub fn sanitize_metric_name(raw: &str) -> Result<String, SanitizeError> {
    sanitize(raw, "metric name", |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == ':'
    })
}

/// Sanitises a label name, or a hierarchy name used as a label value, as 1.6.1 does: like
/// [`sanitize_metric_name`] but `:` is invalid too, and a leading `__` (reserved) is removed
/// (then a `_` is put back in front unless a letter follows).
pub fn sanitize_label(raw: &str) -> Result<String, SanitizeError> {
    let what = "label";
    let mut s = sanitize_chars(raw, what, |c| c.is_ascii_alphanumeric() || c == '_')?;
    if let Some(rest) = s.strip_prefix("__") {
        s = if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            rest.to_owned()
        } else {
            format!("_{rest}")
        };
    }
    check_not_only_underscores(s, raw, what)
}

fn sanitize(
    raw: &str,
    what: &'static str,
    valid: impl Fn(char) -> bool,
) -> Result<String, SanitizeError> {
    let s = sanitize_chars(raw, what, valid)?;
    check_not_only_underscores(s, raw, what)
}

/// Replaces each invalid character by one `_` (as 1.6.1's regex over chars does), then puts a
/// `_` in front unless the first character is a letter or `_` (1.6.1's first-character rule,
/// which also applies to metric names: `:x` becomes `_:x`).
fn sanitize_chars(
    raw: &str,
    what: &'static str,
    valid: impl Fn(char) -> bool,
) -> Result<String, SanitizeError> {
    if raw.is_empty() {
        return Err(SanitizeError::Empty { what });
    }
    let mut s: String = raw
        .chars()
        .map(|c| if valid(c) { c } else { '_' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s.insert(0, '_');
    }
    Ok(s)
}

fn check_not_only_underscores(
    s: String,
    raw: &str,
    what: &'static str,
) -> Result<String, SanitizeError> {
    if s.chars().all(|c| c == '_') {
        return Err(SanitizeError::NothingValid {
            what,
            raw: raw.to_owned(),
        });
    }
    Ok(s)
}

/// Whether `name` is a valid label name as written (not sanitised): `[a-zA-Z_][a-zA-Z0-9_]*`,
/// not starting with the reserved `__`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}
