//! The deterministic simulation's speed: simulated events per second on one core.
//!
//! Three cases over the same ten seeds per iteration: `fault_free` (the baseline: the same
//! cluster and load with no faults), `all_faults` (the default sweep: four faults per run drawn
//! from every kind), and `traced` (the default sweep keeping its readable trace, the cost of
//! replaying a seed for a human). Criterion reports elements (events) per second; the issue's
//! goal is ≥ 1 M simulated events/s on one core. The ratio all_faults / fault_free is the cost
//! of faults per event; traced / all_faults the cost of the trace.
//!
//! `cargo bench -p dynrt-benches --bench sim`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dynrt_sim::{SimConfig, run};

const SEEDS: u64 = 10;

fn config(seed: u64, faults: bool, trace: bool) -> SimConfig {
    let base = SimConfig::default();
    SimConfig {
        seed,
        trace,
        faults: if faults {
            base.faults.clone()
        } else {
            Vec::new()
        },
        ..base
    }
}

/// Events the ten runs of a case process (fixed: the runs are deterministic).
fn events(faults: bool, trace: bool) -> u64 {
    (0..SEEDS)
        .map(|s| run(&config(s, faults, trace)).events)
        .sum()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim");
    for (name, faults, trace) in [
        ("fault_free", false, false),
        ("all_faults", true, false),
        ("traced", true, true),
    ] {
        group.throughput(Throughput::Elements(events(faults, trace)));
        group.bench_function(name, |b| {
            b.iter(|| {
                for seed in 0..SEEDS {
                    black_box(run(&config(seed, faults, trace)));
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
