//! The demo on smol: a whole dynrt cluster in one process under load, with live progress and
//! a summary table (the same demo as `dynrt demo`, which runs on tokio; the logic is
//! `dynrt_io::demo`, this file only parses flags and prints).
//!
//! ```sh
//! cargo run --release -p dynrt-smol --example demo -- --workers 4 --concurrency 64 --duration 10s
//! SMOL_THREADS=2 cargo run --release -p dynrt-smol --example demo   # two executor threads
//! ```
//!
//! smol's global executor runs on one thread unless `SMOL_THREADS` says otherwise.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dynrt_smol::SmolRuntime;
use dynrt_smol::io::demo::{self, DemoConfig, Snapshot, parse_duration};

/// A whole dynrt cluster in this process under load (no external service needed).
#[derive(Parser)]
struct Args {
    /// Worker runtimes serving dyn://demo.backend.generate
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    workers: u32,
    /// Request loops running at once
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// How long to send requests (10s, 500ms, 1m, ...)
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Tokens streamed back per request
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=i64::from(demo::MAX_TOKENS_LIMIT)))]
    items: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = DemoConfig {
        workers: args.workers as usize,
        concurrency: args.concurrency as usize,
        duration: args.duration,
        items: args.items,
        ..DemoConfig::default()
    };
    eprintln!(
        "dynrt demo on smol: {} workers, {} concurrent requests of {} tokens for {:?}",
        config.workers, config.concurrency, config.items, config.duration
    );
    // On a terminal the line is redrawn in place ten times a second; otherwise (CI, pipes) a
    // plain line is printed each second.
    let terminal = std::io::stderr().is_terminal();
    let mut next_line = Duration::from_secs(1);
    let progress = move |s: &Snapshot| {
        if terminal {
            eprint!("\r{}\x1b[K", s.line());
            let _ = std::io::stderr().flush();
        } else if s.elapsed >= next_line {
            eprintln!("{}", s.line());
            next_line += Duration::from_secs(1);
        }
    };
    let task = smol::spawn(async move { demo::run(&SmolRuntime::new(), &config, progress).await });
    let report = smol::block_on(task);
    if terminal {
        eprintln!();
    }
    match report {
        Ok(report) => {
            print!("{report}");
            if report.is_success() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "demo: {} of {} requests failed",
                    report.errors(),
                    report.requests
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(2)
        }
    }
}
