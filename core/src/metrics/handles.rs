//! Handles of application metrics: counters, gauges and histograms backed by shared atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// A monotonically increasing integer. `Counter::default()` is one no registry renders (it
/// still counts), for a metric that could not be registered.
#[derive(Debug, Clone, Default)]
pub struct Counter(pub(super) Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// An integer that goes up and down.
#[derive(Debug, Clone)]
pub struct IntGauge(pub(super) Arc<AtomicI64>);

impl IntGauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }
    /// Adds `n` (may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// A floating-point value that goes up and down.
#[derive(Debug, Clone)]
pub struct Gauge(pub(super) Arc<AtomicU64>);

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Relaxed);
    }
    /// Adds `n` (may be negative).
    pub fn add(&self, n: f64) {
        add_f64(&self.0, n);
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }
}

fn add_f64(cell: &AtomicU64, n: f64) {
    let mut cur = cell.load(Relaxed);
    loop {
        let new = (f64::from_bits(cur) + n).to_bits();
        match cell.compare_exchange_weak(cur, new, Relaxed, Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

#[derive(Debug)]
pub(super) struct HistogramCore {
    pub(super) bounds: Arc<[f64]>,
    /// Per bucket, not cumulative; the last slot is above the largest bound.
    pub(super) counts: Box<[AtomicU64]>,
    pub(super) sum: AtomicU64,
}

/// A distribution of observations in fixed buckets.
#[derive(Debug, Clone)]
pub struct Histogram(pub(super) Arc<HistogramCore>);

impl Histogram {
    /// Records `v` (counted in the first bucket whose bound is ≥ `v`). NaN is ignored.
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let idx = self.0.bounds.partition_point(|b| *b < v);
        self.0.counts[idx].fetch_add(1, Relaxed);
        add_f64(&self.0.sum, v);
    }
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.counts.iter().map(|c| c.load(Relaxed)).sum()
    }
}
