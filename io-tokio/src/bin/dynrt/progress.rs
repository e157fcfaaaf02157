//! The demo's live progress on stderr: an indicatif bar redrawn ten times a second on a
//! terminal, a plain line a second otherwise (CI logs, pipes).

use std::io::IsTerminal;
use std::time::Duration;

use dynrt_tokio::io::demo::Snapshot;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    next_line: Duration,
}

impl Progress {
    /// A display for a load of `total`.
    pub(crate) fn new(total: Duration) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self {
                bar: None,
                next_line: Duration::from_secs(1),
            };
        }
        let length = u64::try_from(total.as_millis()).unwrap_or(u64::MAX).max(1);
        let bar =
            ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr_with_hz(10));
        let style = ProgressStyle::with_template("{spinner} [{bar:24}] {msg}")
            .expect("the template is valid")
            .progress_chars("=> ");
        bar.set_style(style);
        Self {
            bar: Some(bar),
            next_line: Duration::ZERO,
        }
    }

    pub(crate) fn update(&mut self, snapshot: &Snapshot) {
        match &self.bar {
            Some(bar) => {
                let ms = u64::try_from(snapshot.elapsed.as_millis()).unwrap_or(u64::MAX);
                bar.set_message(snapshot.line());
                bar.set_position(ms.min(bar.length().unwrap_or(ms)));
            }
            None if snapshot.elapsed >= self.next_line => {
                eprintln!("{}", snapshot.line());
                self.next_line += Duration::from_secs(1);
            }
            None => {}
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
