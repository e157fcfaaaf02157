//! Store compaction, as etcd does it: a caller that resumes its watch below the compaction
//! point gets `Compacted` (etcd cancels the watch), lists again and watches from the listed
//! revision — and its view, rebuilt so, keeps every invariant.

use dynrt_sim::{ALL_FAULTS, FaultKind, Invariant, PlantedBug, SimConfig, run};

mod common;
use common::{at, clean};

/// The time of a trace line.
fn time(line: &str) -> f64 {
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn compact_is_a_fault_by_name_and_in_all() {
    assert_eq!("compact".parse::<FaultKind>(), Ok(FaultKind::Compact));
    assert_eq!(FaultKind::Compact.name(), "compact");
    assert!(ALL_FAULTS.contains(&FaultKind::Compact));
}

/// The scripted run of two tests below: caller 0 cut off from the store (compacting) from 2 s to 16 s,
/// worker 1 killed at 3 s.
fn compacted_while_a_worker_restarts() -> SimConfig {
    SimConfig {
        seed: 3,
        workers: 3,
        callers: 2,
        faults: Vec::new(),
        script: vec![
            at(2.0, FaultKind::Compact, 0, 14.0),
            at(3.0, FaultKind::Kill, 1, 2.0),
        ],
        ..SimConfig::default()
    }
}

/// Caller 0 is cut off from the store from 2 s to 16 s while the store compacts; worker 1 is
/// killed at 3 s and restarts at 5 s on a new address with a new lease, and its old record
/// goes when its lease expires (13 s). Caller 0's watch breaks at the first change; when the
/// cut heals it resumes from the revision after the last it saw, which compaction has removed:
/// etcd answers `Compacted`, and the caller lists again, learning from the list that the old
/// instance is gone and the new one is there. Caller 1, never cut off, learns the same from
/// its watch.
#[test]
fn a_caller_whose_watch_is_compacted_lists_again_and_sees_the_removal() {
    let outcome = run(&SimConfig {
        trace: true,
        ..compacted_while_a_worker_restarts()
    });
    clean(&outcome);
    assert!(outcome.stats.compactions > 0, "{}", outcome.stats);
    assert!(outcome.stats.watches_compacted > 0, "{}", outcome.stats);
    let lines: Vec<&str> = outcome.trace.lines().collect();
    let find = |what: &str| -> Option<&str> { lines.iter().copied().find(|l| l.contains(what)) };
    let compacted = find("c0     watch compacted").expect("c0's watch was compacted");
    // The removal caller 1 observed through its watch...
    let removed_c1 = find("c1     Removed(").expect("c1 observed the old instance's removal");
    let id = removed_c1
        .split("Removed(")
        .nth(1)
        .unwrap()
        .trim_end_matches(')');
    // ...caller 0 observed only after the compaction, from its new list.
    let removed_c0 = lines
        .iter()
        .find(|l| l.contains("c0     Removed(") && l.contains(id))
        .expect("c0 observed the old instance's removal");
    assert!(time(removed_c0) >= time(compacted), "{removed_c0}");
    let listed = lines
        .iter()
        .find(|l| l.contains("c0     listed") && time(l) >= time(compacted))
        .expect("c0 listed again after the compaction");
    assert!(time(removed_c0) >= time(listed), "{removed_c0}");
    // The new incarnation, which registered while caller 0 was cut off, is found by the list.
    assert!(
        lines.iter().any(|l| l.contains("c0     Added(")
            && l.contains("10.0.1.1:9002")
            && time(l) >= time(listed)),
        "c0 did not find worker 1's new address"
    );
}

/// Compaction among the faults that move the store's revision while callers are behind
/// (kills, store restarts, lease expiry, drains), over a bounded set of seeds: every invariant
/// holds and the sweep does compact watches.
#[test]
fn compaction_with_kills_restarts_and_drains_keeps_every_invariant() {
    let faults = vec![
        FaultKind::Compact,
        FaultKind::Kill,
        FaultKind::StoreRestart,
        FaultKind::LeaseExpiry,
        FaultKind::Drain,
    ];
    let mut compacted = 0;
    for seed in 0..40 {
        let outcome = run(&SimConfig {
            seed,
            faults: faults.clone(),
            fault_count: 6,
            ..SimConfig::default()
        });
        clean(&outcome);
        compacted += outcome.stats.watches_compacted;
    }
    assert!(compacted > 0, "no watch was compacted");
}

/// A caller that treats `Compacted` as "skip ahead" (watches again from the compaction point,
/// without listing) misses the changes compacted away: `view-matches-store` catches it, in
/// the scripted run above and in a sweep, and the same runs without the bug are clean.
#[test]
fn planted_bug_skipping_compacted_history_is_caught() {
    let scripted = compacted_while_a_worker_restarts();
    let outcome = run(&SimConfig {
        planted_bug: Some(PlantedBug::SkipCompactedHistory),
        ..scripted.clone()
    });
    let v = outcome.violation.expect("the stale view is caught");
    assert_eq!(v.invariant, Invariant::ViewMatchesStore, "{v}");
    clean(&run(&scripted));

    let config = SimConfig {
        faults: vec![FaultKind::Compact, FaultKind::Kill, FaultKind::Drain],
        fault_count: 6,
        ..SimConfig::default()
    };
    let caught = (0..60).find_map(|seed| {
        let outcome = run(&SimConfig {
            seed,
            planted_bug: Some(PlantedBug::SkipCompactedHistory),
            ..config.clone()
        });
        outcome.violation.map(|v| (seed, v.invariant))
    });
    assert!(
        matches!(caught, Some((_, Invariant::ViewMatchesStore))),
        "{caught:?}"
    );
    let (seed, _) = caught.expect("caught");
    clean(&run(&SimConfig { seed, ..config }));
}
