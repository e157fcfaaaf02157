//! The simulator's own guarantees: replays are identical, a bounded seed sweep keeps every
//! invariant, kept regression seeds stay clean, and planted bugs are caught (so a clean run
//! means something).

use dynrt_sim::{FaultKind, Invariant, PlantedBug, SimConfig, run};
use proptest::prelude::*;

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        ..SimConfig::default()
    }
}

#[test]
fn a_seed_replays_byte_for_byte() {
    for seed in [0, 1, 110, 4242] {
        let traced = SimConfig {
            trace: true,
            ..config(seed)
        };
        let first = run(&traced);
        let second = run(&traced);
        assert!(!first.trace.is_empty());
        assert_eq!(first.trace, second.trace, "seed {seed}: traces differ");
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.events, second.events);
        // Tracing changes nothing but the text.
        let quiet = run(&config(seed));
        assert_eq!(
            quiet.fingerprint, first.fingerprint,
            "seed {seed}: tracing changed the run"
        );
    }
}

#[test]
fn different_seeds_make_different_runs() {
    assert_ne!(run(&config(1)).fingerprint, run(&config(2)).fingerprint);
}

#[test]
fn a_fault_free_run_completes_every_request() {
    let outcome = run(&SimConfig {
        faults: Vec::new(),
        cancel_percent: (0, 0),
        ..config(3)
    });
    assert!(outcome.violation.is_none(), "{:?}", outcome.violation);
    assert_eq!(outcome.stats.requests, 120);
    assert_eq!(outcome.stats.ok, 120, "{}", outcome.stats);
}

#[test]
fn callers_that_cancel_get_what_they_asked_for() {
    let outcome = run(&SimConfig {
        faults: Vec::new(),
        cancel_percent: (20, 20),
        ..config(4)
    });
    assert!(outcome.violation.is_none(), "{:?}", outcome.violation);
    // Killed requests end `Cancelled` at their caller; stopped ones end `Ok` early; none
    // fails.
    assert!(outcome.stats.cancelled > 0, "{}", outcome.stats);
    assert_eq!(outcome.stats.errors, 0, "{}", outcome.stats);
    assert_eq!(
        outcome.stats.ok + outcome.stats.cancelled,
        outcome.stats.requests
    );
}

/// Seeds that once failed, each with what it found; they must stay clean.
const REGRESSIONS: &[(u64, &str)] = &[
    // With 5 workers, 3 callers, 8 faults: a stream reset by the stall timeout during a drain
    // (its caller stopped reading) counted as finished, and the drain reported clean though
    // the stream was not delivered. Fixed in the core: the mux connection says why a stream
    // was cancelled (`CancelCause`), the request plane reports such a reset to `Shutdown` as
    // lost (`request_lost`), and the report is then not clean (`RequestsLost`, exit code 6).
    // The simulation has grown since (shutdown phases, cancels, retries), so these seeds no
    // longer replay that run; `planted_bug_loss_counted_as_finished_is_caught` plants the bug
    // back and the sweep still finds it.
    (
        100_285,
        "drain reported clean with a stream reset by the stall timeout",
    ),
    (100_903, "same"),
    // A keep-alive the worker timed out on (slow store) still reached the store and renewed
    // the lease after the worker declared it lost: deregistration is bounded by TTL + the RPC
    // timeout, not by the TTL alone (decision recorded in the lease check).
    (
        110,
        "slow store: keep-alive renewed after its RPC timed out",
    ),
    (115, "slow store: same"),
    (137, "slow store: same"),
    // Found once the workers shut down through the core's `Shutdown`: phase 3 cut a
    // connection without telling its machine, so a stream still served never ended at the
    // worker (a simulator bug: the runtime's abort closes the machine first).
    (3612, "phase 3 cut a connection whose stream never ended"),
    // A worker closed a drained connection while its caller was not reading; the caller's
    // keep-alive then gave up and reset the connection with the answer unread, and the drain
    // still counted the answer delivered. The runtime's driver lingers after a graceful close
    // and now counts held answers delivered only if the peer closes with end of stream (a
    // reset means they were not read); the simulation models the linger.
    (7688, "a reset during the linger counted as delivered"),
];

#[test]
fn regression_seeds_stay_clean() {
    for &(seed, what) in REGRESSIONS {
        let big = seed >= 100_000;
        let outcome = run(&SimConfig {
            workers: if big { 5 } else { 3 },
            callers: if big { 3 } else { 2 },
            fault_count: if big { 8 } else { 4 },
            ..config(seed)
        });
        assert!(
            outcome.violation.is_none(),
            "seed {seed} ({what}): {}",
            outcome.violation.unwrap()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn every_invariant_holds_for_any_seed(seed in any::<u64>(), workers in 1usize..5, callers in 1usize..4) {
        let outcome = run(&SimConfig { seed, workers, callers, requests_per_caller: 30, ..SimConfig::default() });
        prop_assert!(outcome.violation.is_none(), "seed {seed} ({workers} workers, {callers} callers): {}", outcome.violation.unwrap());
        prop_assert_eq!(outcome.stats.ok + outcome.stats.errors + outcome.stats.cancelled, outcome.stats.requests);
    }
}

/// Runs seeds with a planted bug until one is caught; returns the invariant that caught it.
fn first_catch(bug: PlantedBug, faults: Vec<FaultKind>) -> Option<(u64, Invariant)> {
    (0..40).find_map(|seed| {
        let outcome = run(&SimConfig {
            planted_bug: Some(bug),
            faults: faults.clone(),
            ..config(seed)
        });
        outcome.violation.map(|v| (seed, v.invariant))
    })
}

#[test]
fn planted_bug_routing_to_removed_instances_is_caught() {
    let caught = first_catch(
        PlantedBug::IgnoreRemovals,
        vec![FaultKind::Kill, FaultKind::Drain],
    );
    assert!(
        matches!(caught, Some((_, Invariant::NoRouteToRemoved))),
        "{caught:?}"
    );
}

#[test]
fn planted_bug_forgotten_streams_are_caught() {
    let caught = first_catch(PlantedBug::ForgetStreams, Vec::new());
    assert!(
        matches!(caught, Some((_, Invariant::NoSilentLoss))),
        "{caught:?}"
    );
}

/// The core bug seeds 100285 and 100903 found, planted back: a worker that reports a stream
/// cut off under its caller (here: reset by the stall timeout while the caller stopped
/// reading during a drain) as finished gets a clean drain report though it did not deliver
/// that stream. The sweep must catch it, under the faults that found it.
#[test]
fn planted_bug_loss_counted_as_finished_is_caught() {
    let caught = (0..40).find_map(|seed| {
        let outcome = run(&SimConfig {
            planted_bug: Some(PlantedBug::LossCountedFinished),
            faults: vec![FaultKind::StopReading, FaultKind::Drain],
            fault_count: 8,
            ..config(seed)
        });
        outcome.violation.map(|v| (seed, v.invariant))
    });
    // Its report now fails first (it counts no loss where the worker lost a stream); the
    // clean drain's check at the end of the run caught it before that check existed.
    assert!(
        matches!(
            caught,
            Some((
                _,
                Invariant::DrainReportTruthful | Invariant::CleanDrainDelivers
            ))
        ),
        "{caught:?}"
    );
    // Without the planted bug the same seed is clean.
    let (seed, _) = caught.expect("caught");
    let fixed = run(&SimConfig {
        faults: vec![FaultKind::StopReading, FaultKind::Drain],
        fault_count: 8,
        ..config(seed)
    });
    assert!(fixed.violation.is_none(), "{:?}", fixed.violation);
}

#[test]
fn planted_bug_double_end_is_caught() {
    let caught = first_catch(PlantedBug::DoubleEnd, Vec::new());
    assert!(
        matches!(caught, Some((_, Invariant::StreamEndsOnce))),
        "{caught:?}"
    );
}
