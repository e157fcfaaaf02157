//! Seeded randomness and jittered exponential backoff.

use std::time::Duration;

/// One step of splitmix64: a fast, well-mixed 64-bit hash of `x`. Used as a counter-based
/// generator (`splitmix64(seed + n)`) wherever the core needs reproducible randomness.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A tiny deterministic generator: the same seed gives the same sequence.
#[derive(Debug, Clone)]
pub(super) struct Rng {
    state: u64,
}

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(1);
        splitmix64(self.state)
    }
}

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure; doubles after each further failure.
    pub initial: Duration,
    /// The wait never exceeds this.
    pub max: Duration,
    /// The wait is never shorter than this (also after jitter).
    pub min: Duration,
}

impl Backoff {
    /// The wait after failed attempt number `failures` (1-based), at most `cap` (before the
    /// `min` floor), jittered into `[d/2, d]` when `jitter` is set — the shape of Dynamo 1.6.1's
    /// watch-retry jitter.
    pub(super) fn delay(
        &self,
        failures: u32,
        cap: Duration,
        jitter: bool,
        rng: &mut Rng,
    ) -> Duration {
        let doublings = failures.saturating_sub(1).min(63);
        let raw = self
            .initial
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max);
        let d = raw.min(self.max).min(cap);
        let d = if jitter { jittered(d, rng) } else { d };
        d.max(self.min)
    }
}

/// Uniform in `[d/2, d]`, in nanoseconds.
fn jittered(d: Duration, rng: &mut Rng) -> Duration {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let low = nanos / 2;
    let span = nanos - low;
    let offset = if span == u64::MAX {
        rng.next_u64()
    } else {
        rng.next_u64() % (span + 1)
    };
    Duration::from_nanos(low + offset)
}
