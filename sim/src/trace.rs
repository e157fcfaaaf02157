//! The run's trace: readable lines (time, node, event) when enabled, and always a cheap
//! fingerprint of the run so that replays can be compared without formatting anything.

use std::fmt::Write as _;

/// Lines and fingerprint of one run.
pub(crate) struct Trace {
    enabled: bool,
    text: String,
    /// FNV-1a over every fingerprinted value, in order.
    hash: u64,
}

impl Trace {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            text: String::new(),
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// Whether lines are kept: callers check this before formatting anything.
    pub(crate) fn on(&self) -> bool {
        self.enabled
    }

    /// Mixes a value into the fingerprint.
    pub(crate) fn mix(&mut self, value: u64) {
        self.hash = (self.hash ^ value).wrapping_mul(0x0000_0100_0000_01b3);
    }

    /// Adds a line `time node text` (time in ms with µs precision since the start).
    pub(crate) fn line(&mut self, now: u64, node: &str, text: std::fmt::Arguments<'_>) {
        if !self.enabled {
            return;
        }
        let _ = writeln!(
            self.text,
            "{:>6}.{:06} {:<6} {}",
            now / 1_000_000_000,
            (now / 1_000) % 1_000_000,
            node,
            text
        );
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.hash
    }

    pub(crate) fn take_text(&mut self) -> String {
        std::mem::take(&mut self.text)
    }
}

/// Writes a trace line only when tracing is on; the arguments are not formatted otherwise.
macro_rules! trace {
    ($world:expr, $node:expr, $($arg:tt)*) => {
        if $world.trace.on() {
            let now = $world.now;
            $world.trace.line(now, &$node.to_string(), format_args!($($arg)*));
        }
    };
}
pub(crate) use trace;
