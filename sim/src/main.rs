//! `dynrt-sim`: replay one seed with its trace, or sweep many seeds with a progress bar.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use dynrt_sim::{ALL_FAULTS, FaultKind, Outcome, SimConfig, run};
use indicatif::{ProgressBar, ProgressStyle};

/// Deterministic simulation of a dynrt cluster: real core machines, a seeded network and clock,
/// injected faults, invariants checked after every step.
#[derive(Parser, Debug)]
#[command(name = "dynrt-sim", version)]
struct Args {
    /// The seed to run (with --seeds: the first of the sweep).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sweep this many seeds from --seed (no trace; a progress bar and a summary).
    #[arg(long)]
    seeds: Option<u64>,
    /// Worker processes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Caller processes.
    #[arg(long, default_value_t = 2)]
    callers: usize,
    /// Requests per caller.
    #[arg(long, default_value_t = 60)]
    requests: u32,
    /// Faults to draw from, comma-separated (`all`, `none`, or names: kill, store-restart,
    /// partition-store, partition-peers, slow-consumer, stop-reading, lease-expiry, slow-store,
    /// drain, reset, partial-writes, stall, handler-stall, callhome-drop, compact).
    #[arg(long, default_value = "all")]
    faults: String,
    /// Faults per run.
    #[arg(long, default_value_t = 4)]
    fault_count: u32,
    /// Lease TTL in seconds.
    #[arg(long, default_value_t = 10)]
    ttl: u64,
    /// How long a worker's drain may last, in seconds (shutdown phase 2).
    #[arg(long, default_value_t = 25)]
    drain_limit: u64,
    /// Percent chance per worker that it is Dynamo-only (1.6.1), and per caller that it is a
    /// 1.6.1-style frontend: their calls use Dynamo's call-home protocol.
    #[arg(long, default_value_t = 25)]
    dynamo_percent: u64,
    /// With a single seed: print only the summary, not the trace.
    #[arg(long)]
    quiet: bool,
}

fn parse_faults(text: &str) -> Result<Vec<FaultKind>, String> {
    match text {
        "all" => Ok(ALL_FAULTS.to_vec()),
        "none" | "" => Ok(Vec::new()),
        list => list
            .split(',')
            .map(|name| name.trim().parse().map_err(|e| format!("--faults: {e}")))
            .collect(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let faults = match parse_faults(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.nodes == 0 || args.nodes > 200 || args.callers == 0 {
        eprintln!(
            "--nodes must be 1..=200 and --callers at least 1 (got {} and {})",
            args.nodes, args.callers
        );
        return ExitCode::from(2);
    }
    let config = SimConfig {
        seed: args.seed,
        workers: args.nodes,
        callers: args.callers,
        requests_per_caller: args.requests,
        faults,
        fault_count: args.fault_count,
        lease_ttl: Duration::from_secs(args.ttl.max(1)),
        drain_limit: Duration::from_secs(args.drain_limit),
        dynamo_percent: args.dynamo_percent.min(100),
        ..SimConfig::default()
    };
    match args.seeds {
        None => single(config, args.quiet),
        Some(n) => sweep(config, n),
    }
}

fn single(mut config: SimConfig, quiet: bool) -> ExitCode {
    config.trace = !quiet;
    let started = Instant::now();
    let outcome = run(&config);
    if !quiet {
        print!("{}", outcome.trace);
    }
    report(&outcome, started.elapsed());
    if outcome.violation.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn report(outcome: &Outcome, wall: Duration) {
    eprintln!(
        "seed {}: {} events in {:?} virtual ({:?} wall, {:.0} events/s); {}; fingerprint {:016x}",
        outcome.seed,
        outcome.events,
        outcome.virtual_time,
        wall,
        outcome.events as f64 / wall.as_secs_f64().max(1e-9),
        outcome.stats,
        outcome.fingerprint
    );
    match &outcome.violation {
        Some(v) => eprintln!("FAILED: {v}"),
        None => eprintln!("every invariant held"),
    }
}

fn sweep(config: SimConfig, count: u64) -> ExitCode {
    let bar = ProgressBar::new(count);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {per_sec} eta {eta} {msg}")
            .expect("the template is valid"),
    );
    let started = Instant::now();
    let (mut events, mut failures, mut requests, mut faults) = (0u64, Vec::new(), 0u64, 0u64);
    let mut overshoot = 0u64;
    let (mut dynamo, mut unconfirmed) = (0u64, 0u64);
    let (mut compactions, mut compacted) = (0u64, 0u64);
    for seed in config.seed..config.seed.saturating_add(count) {
        let outcome = run(&SimConfig {
            seed,
            ..config.clone()
        });
        events += outcome.events;
        requests += outcome.stats.requests;
        faults += outcome.stats.faults;
        dynamo += outcome.stats.dynamo_requests;
        unconfirmed += outcome.stats.dynamo_unconfirmed;
        compactions += outcome.stats.compactions;
        compacted += outcome.stats.watches_compacted;
        overshoot = overshoot.max(outcome.stats.max_output_overshoot);
        if let Some(v) = outcome.violation {
            bar.println(format!("seed {seed}: {v}"));
            failures.push(seed);
            bar.set_message(format!("{} failed", failures.len()));
        }
        bar.inc(1);
    }
    bar.finish();
    let wall = started.elapsed();
    eprintln!(
        "{count} seeds in {wall:?}: {events} events ({:.0} events/s), {requests} requests ({dynamo} attempts over Dynamo's protocol; {unconfirmed} Dynamo answers a clean drain counted that no caller read), {faults} faults ({compactions} store compactions, {compacted} watches compacted), largest output-limit overshoot {overshoot} B; {} failed{}",
        events as f64 / wall.as_secs_f64().max(1e-9),
        failures.len(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(" (replay with --seed N): {failures:?}")
        }
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
