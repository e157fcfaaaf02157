//! `dynrt demo`: the executor-neutral demo ([`dynrt_tokio::io::demo`]) on tokio.

use std::time::Duration;

use clap::Args;
use dynrt_tokio::TokioRuntime;
use dynrt_tokio::io::demo::{self, DemoConfig, parse_duration};

use crate::progress::Progress;
use crate::setup::CliError;

#[derive(Args)]
pub(crate) struct DemoArgs {
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

pub(crate) async fn run(args: DemoArgs) -> Result<(), CliError> {
    let config = DemoConfig {
        workers: args.workers as usize,
        concurrency: args.concurrency as usize,
        duration: args.duration,
        items: args.items,
        ..DemoConfig::default()
    };
    eprintln!(
        "dynrt demo: {} workers serving dyn://demo.backend.generate in this process (in-memory \
         discovery, TCP request plane), {} concurrent requests of {} tokens for {:?}",
        config.workers, config.concurrency, config.items, config.duration
    );
    let mut progress = Progress::new(config.duration);
    // The load runs inside a spawned task, not in `block_on`'s thread (steadier latencies).
    let task = tokio::spawn(async move {
        let report = demo::run(&TokioRuntime::current(), &config, |s| progress.update(s)).await;
        progress.finish();
        report
    });
    let report = task
        .await
        .map_err(|e| CliError::Failed(format!("the demo task failed: {e}")))?
        .map_err(|e| CliError::Setup(e.to_string()))?;
    print!("{report}");
    if report.is_success() {
        Ok(())
    } else if report.requests == 0 {
        Err(CliError::Failed("no request completed".into()))
    } else {
        Err(CliError::Failed(format!(
            "{} of {} requests failed",
            report.errors(),
            report.requests
        )))
    }
}
