//! The summary table: [`DemoReport`]'s `Display`.

use std::fmt;
use std::time::Duration;

use super::DemoReport;

impl fmt::Display for DemoReport {
    /// Two columns, one measure a line, then the failures by kind and each runtime's
    /// shutdown:
    ///
    /// ```text
    /// workers                 4
    /// concurrency            64
    /// duration           10.0 s
    /// requests           123456
    /// req/s             12345.6
    /// ...
    /// errors                  0
    /// shutdown  client 1a2b: clean, drained in 0.1 ms
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let load = &self.load;
        let rows: [(&str, String); 13] = [
            ("workers", c.workers.to_string()),
            ("concurrency", c.concurrency.to_string()),
            ("items per request", c.items.to_string()),
            ("duration", format!("{:.2} s", self.elapsed.as_secs_f64())),
            ("requests", self.requests.to_string()),
            ("req/s", format!("{:.1}", self.requests_per_sec())),
            ("items", self.items.to_string()),
            ("items/s", format!("{:.1}", self.items_per_sec())),
            ("latency p50", ms(load.latency.percentile(0.50))),
            ("latency p99", ms(load.latency.percentile(0.99))),
            ("latency max", ms(load.latency.max())),
            ("first item p50", ms(load.first_item.percentile(0.50))),
            ("errors", self.errors().to_string()),
        ];
        for (name, value) in rows {
            writeln!(f, "{name:<18}{value:>14}")?;
        }
        for (kind, (n, first)) in &load.errors.by_kind {
            writeln!(f, "  {kind:<16}{n:>14}   first: {first}")?;
        }
        writeln!(
            f,
            "(latency: request sent to last item; cluster up in {})",
            ms(self.startup)
        )?;
        for (i, s) in self.shutdowns.iter().enumerate() {
            let label = if i == 0 { "shutdown" } else { "" };
            let state = if s.report.is_clean() {
                "clean".to_owned()
            } else if !s.report.is_running() {
                let lost: u64 = s.report.lost.values().sum();
                format!("drained, but {lost} requests were reset during the drain")
            } else {
                let in_flight: u64 = s.report.in_flight.values().sum();
                format!(
                    "cut off with {in_flight} requests and {} tasks running",
                    s.report.graceful_tasks.len()
                )
            };
            writeln!(
                f,
                "{label:<10}{:<10} {}: {state}, drained in {}",
                s.role,
                s.instance,
                ms(s.report.drain_time())
            )?;
        }
        Ok(())
    }
}

/// A duration in milliseconds with three decimals (microsecond resolution).
fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
