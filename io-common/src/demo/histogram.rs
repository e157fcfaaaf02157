//! A latency histogram with about 1.6 % resolution and fixed memory, for percentiles.

use std::time::Duration;

/// Values below this many nanoseconds have a bucket each.
const EXACT: u64 = 128;
/// Sub-buckets per power of two above [`EXACT`] (6 bits of mantissa: 1/64 ≈ 1.6 % wide).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// The powers of two from 2^7 to 2^63 each get [`SUB`] buckets.
const BUCKETS: usize = EXACT as usize + (64 - 7) * SUB as usize;

/// Durations in log-linear buckets (exact below 128 ns, then 64 buckets per power of two),
/// with the exact maximum and sum kept beside them. Merging two is adding their counts, so
/// every load loop keeps its own and the demo merges them at the end.
///
/// ```
/// use std::time::Duration;
/// use dynrt_io::demo::LatencyHistogram;
///
/// let mut h = LatencyHistogram::new();
/// for ms in 1..=100 {
///     h.record(Duration::from_millis(ms));
/// }
/// let p50 = h.percentile(0.5).as_secs_f64() * 1e3;
/// assert!((49.0..=51.0).contains(&p50), "{p50}");
/// assert_eq!(h.max(), Duration::from_millis(100));
/// ```
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64]>,
    count: u64,
    sum_nanos: u128,
    max_nanos: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count)
            .field("p50", &self.percentile(0.5))
            .field("max", &self.max())
            .finish()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum_nanos: 0,
            max_nanos: 0,
        }
    }

    /// Records one duration (durations beyond 584 years are recorded as that).
    pub fn record(&mut self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(nanos)] += 1;
        self.count += 1;
        self.sum_nanos += u128::from(nanos);
        self.max_nanos = self.max_nanos.max(nanos);
    }

    /// Adds `other`'s values to this one.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_nanos += other.sum_nanos;
        self.max_nanos = self.max_nanos.max(other.max_nanos);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (zero when empty).
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_nanos)
    }

    /// The mean (zero when empty).
    pub fn mean(&self) -> Duration {
        match self.count {
            0 => Duration::ZERO,
            n => Duration::from_nanos(u64::try_from(self.sum_nanos / u128::from(n)).unwrap_or(0)),
        }
    }

    /// The value at quantile `q` (0.5 is the median, 0.99 the 99th percentile): the upper
    /// bound of the bucket holding that rank, never more than the maximum. Zero when empty.
    pub fn percentile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos(upper_bound(i).min(self.max_nanos));
            }
        }
        self.max()
    }
}

/// The bucket of a value in nanoseconds.
fn index(nanos: u64) -> usize {
    if nanos < EXACT {
        return nanos as usize;
    }
    let exp = 63 - nanos.leading_zeros();
    let mantissa = (nanos >> (exp - SUB_BITS)) & (SUB - 1);
    EXACT as usize + (exp as usize - 7) * SUB as usize + mantissa as usize
}

/// The largest value in nanoseconds that falls into bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i < EXACT as usize {
        return i as u64;
    }
    let exp = 7 + ((i - EXACT as usize) / SUB as usize) as u32;
    let mantissa = ((i - EXACT as usize) % SUB as usize) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    ((SUB + mantissa) << (exp - SUB_BITS)).saturating_add(width - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_whose_bounds_hold_it() {
        let mut values: Vec<u64> = (0..5000).collect();
        values.extend((7..64).flat_map(|e| {
            let p = 1u64 << e;
            [p - 1, p, p + 1, p + p / 3]
        }));
        values.push(u64::MAX);
        for v in values {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(upper_bound(i) >= v, "{v} above its bucket {i}");
            if i > 0 {
                assert!(upper_bound(i - 1) < v, "{v} belongs below bucket {i}");
            }
        }
    }

    #[test]
    fn percentiles_are_within_the_bucket_resolution() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        for (q, want) in [(0.5, 5_000.0), (0.99, 9_900.0), (0.999, 9_990.0)] {
            let got = h.percentile(q).as_nanos() as f64 / 1e3;
            assert!(
                (got - want).abs() / want < 0.02,
                "p{q}: {got} µs, want {want}"
            );
        }
        assert_eq!(h.percentile(1.0), Duration::from_millis(10));
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_larger_maximum() {
        let (mut a, mut b) = (LatencyHistogram::new(), LatencyHistogram::new());
        a.record(Duration::from_micros(10));
        b.record(Duration::from_millis(3));
        b.record(Duration::from_millis(3));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), Duration::from_millis(3));
        assert!(a.percentile(0.5) >= Duration::from_micros(2_950));
        assert_eq!(LatencyHistogram::new().percentile(0.5), Duration::ZERO);
    }
}
