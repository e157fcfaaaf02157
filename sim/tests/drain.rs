//! Drains, readiness and deregistration under named fault schedules: what the core's
//! `Shutdown` reports must be what happened, a hung handler must turn its worker not ready,
//! and each of the per-step invariants must catch what it is there to catch.

use std::time::Duration;

use dynrt_core::shutdown::{EXIT_DRAIN_TIMED_OUT, ShutdownOutcome};
use dynrt_sim::{FaultKind, Invariant, PlantedBug, SimConfig, run};

mod common;
use common::{at, clean};

/// A worker's handler hangs under load and the worker is then drained with a 3 s limit: its
/// streams are still running at the deadline. The report must say so (`DeadlineHit`, exit
/// code 3, the running streams counted), phase 3 cuts them, and each of their callers gets a
/// typed error — while every request the other worker took completes.
#[test]
fn a_drain_whose_deadline_expires_reports_the_streams_it_cut() {
    let outcome = run(&SimConfig {
        seed: 11,
        workers: 2,
        callers: 2,
        requests_per_caller: 40,
        faults: Vec::new(),
        cancel_percent: (0, 0),
        drain_limit: Duration::from_secs(3),
        script: vec![
            at(2.0, FaultKind::HandlerStall, 0, 60.0),
            at(4.0, FaultKind::Drain, 0, 1.0),
        ],
        trace: true,
        ..SimConfig::default()
    });
    clean(&outcome);
    let drain = outcome
        .drains
        .iter()
        .find(|d| d.worker == 0)
        .expect("worker 0 drained");
    assert_eq!(drain.outcome, ShutdownOutcome::DeadlineHit, "{drain:?}");
    assert_eq!(drain.exit_code, EXIT_DRAIN_TIMED_OUT, "{drain:?}");
    assert_eq!(
        drain.closing_at - drain.began,
        Duration::from_secs(3),
        "{drain:?}"
    );
    assert!(drain.in_flight > 0, "{drain:?}");
    assert!(drain.cut_streams > 0, "{drain:?}");
    assert!(drain.exited_at.is_some(), "{drain:?}");
    assert_eq!(outcome.stats.streams_cut, drain.cut_streams);
    // The cut streams' callers got typed errors (the invariant checked which); every other
    // request completed.
    assert!(
        outcome.stats.errors >= drain.cut_streams,
        "{}",
        outcome.stats
    );
    assert_eq!(
        outcome.stats.ok + outcome.stats.errors,
        outcome.stats.requests,
        "{}",
        outcome.stats
    );
    assert!(outcome.trace.contains("cut (phase 3)"));
    assert!(outcome.trace.contains("Disconnected"), "no typed cut error");
}

/// A drain with nothing in flight ends clean at once: phase 3 begins in the step the
/// shutdown began, the exit code is 0, and the process is gone within the close grace.
#[test]
fn a_drain_with_no_load_ends_clean_promptly() {
    for (requests, seed) in [(0, 21), (5, 22)] {
        let outcome = run(&SimConfig {
            seed,
            workers: 2,
            callers: 1,
            requests_per_caller: requests,
            burst: true,
            items: (1, 2),
            item_delay_ms: (0, 5),
            faults: Vec::new(),
            cancel_percent: (0, 0),
            script: vec![at(6.0, FaultKind::Drain, 1, 1.0)],
            ..SimConfig::default()
        });
        clean(&outcome);
        let drain = &outcome.drains[0];
        assert_eq!(drain.outcome, ShutdownOutcome::Clean, "{drain:?}");
        assert_eq!(drain.exit_code, 0, "{drain:?}");
        assert_eq!(drain.closing_at, drain.began, "{drain:?}");
        let exited = drain.exited_at.expect("the worker exits");
        assert!(
            exited - drain.began <= Duration::from_secs(3),
            "{requests} requests: exit {:?} after the drain began",
            exited - drain.began
        );
        assert_eq!(
            outcome.stats.ok, outcome.stats.requests,
            "{}",
            outcome.stats
        );
    }
}

/// Requests that reach a worker after its shutdown began are refused with a typed
/// `WorkerUnavailable`, and the caller offers each to another instance: the caller does not
/// read its socket for a while (so it misses the GOAWAY) and discovery is slow to tell it
/// the worker left, so requests keep going to the draining worker. Every request completes.
#[test]
fn requests_during_a_drain_are_refused_and_retried_elsewhere() {
    let outcome = run(&SimConfig {
        seed: 31,
        workers: 3,
        callers: 1,
        requests_per_caller: 120,
        store_latency: Duration::from_millis(400),
        faults: Vec::new(),
        cancel_percent: (0, 0),
        script: vec![
            at(3.0, FaultKind::StopReading, 0, 3.0),
            at(3.5, FaultKind::Drain, 0, 1.0),
        ],
        trace: true,
        ..SimConfig::default()
    });
    clean(&outcome);
    // "request N refused (WorkerUnavailable: ...): retry elsewhere"
    let refused: Vec<&str> = outcome
        .trace
        .lines()
        .filter(|l| l.contains("WorkerUnavailable") && l.contains("retry elsewhere"))
        .filter_map(|l| l.split("request ").nth(1)?.split(' ').next())
        .collect();
    assert!(
        !refused.is_empty(),
        "no request was refused by the draining worker"
    );
    assert!(
        outcome.stats.retries as usize >= refused.len(),
        "{}",
        outcome.stats
    );
    for req in &refused {
        let ended_ok = format!("request {req} ended Ok");
        assert!(
            outcome.trace.contains(&ended_ok),
            "refused request {req} did not complete elsewhere"
        );
    }
    let drain = &outcome.drains[0];
    assert_eq!(drain.outcome, ShutdownOutcome::Clean, "{drain:?}");
}

/// A handler that stops answering turns its worker not ready within the traffic window
/// (the invariant checks the bound after every step); once it answers again, the worker is
/// ready again within a canary round.
#[test]
fn a_hung_handler_turns_its_worker_not_ready_and_back() {
    let outcome = run(&SimConfig {
        seed: 41,
        workers: 2,
        callers: 1,
        requests_per_caller: 30,
        // Requests keep coming until about 80 s, after the stall has ended.
        fault_window: Duration::from_secs(40),
        faults: Vec::new(),
        cancel_percent: (0, 0),
        script: vec![at(1.0, FaultKind::HandlerStall, 0, 30.0)],
        trace: true,
        ..SimConfig::default()
    });
    clean(&outcome);
    let w0: Vec<(f64, &str)> = outcome
        .trace
        .lines()
        .filter(|l| l.contains(" w0 ") && l.contains("health: ready = "))
        .map(|l| {
            let t = l.split_whitespace().next().unwrap().parse::<f64>().unwrap();
            (t, l.rsplit(' ').next().unwrap())
        })
        .collect();
    let not_ready = w0
        .iter()
        .find(|(t, r)| *t > 1.0 && *r == "false")
        .expect("w0 turned not ready");
    // The traffic window: two canary waits and a canary timeout after the last evidence.
    assert!(not_ready.0 <= 1.0 + 23.0, "{w0:?}");
    let ready_again = w0
        .iter()
        .find(|(t, r)| *t >= 31.0 && *r == "true")
        .expect("w0 ready again");
    assert!(ready_again.0 <= 31.0 + 13.0, "{w0:?}");
}

/// The per-step invariants under the faults that exercise them, over a bounded set of
/// seeds: drains (with hung handlers, so deadlines expire), kills and lease loss
/// (deregistration promises), partitions and slow consumers (readiness, credit).
#[test]
fn drain_readiness_and_lease_faults_keep_every_invariant() {
    let faults = vec![
        FaultKind::Drain,
        FaultKind::HandlerStall,
        FaultKind::Kill,
        FaultKind::LeaseExpiry,
        FaultKind::PartitionPeers,
        FaultKind::PartitionStore,
        FaultKind::SlowConsumer,
        FaultKind::StopReading,
    ];
    let (mut drains, mut cut, mut deadline_hit) = (0, 0, 0);
    for seed in 0..24 {
        let outcome = run(&SimConfig {
            seed,
            faults: faults.clone(),
            fault_count: 6,
            drain_limit: Duration::from_secs(5),
            ..SimConfig::default()
        });
        clean(&outcome);
        drains += outcome.drains.len();
        cut += outcome.stats.streams_cut;
        deadline_hit += outcome
            .drains
            .iter()
            .filter(|d| d.outcome == ShutdownOutcome::DeadlineHit)
            .count();
    }
    // The sweep did meet what it is for.
    assert!(drains > 10, "{drains} drains");
    assert!(
        deadline_hit > 0 && cut > 0,
        "{deadline_hit} deadlines hit, {cut} streams cut"
    );
}

/// Runs seeds with a planted bug until one is caught; returns the seed and the invariant.
fn first_catch(bug: PlantedBug, config: SimConfig) -> Option<(u64, Invariant)> {
    (0..40).find_map(|seed| {
        let outcome = run(&SimConfig {
            seed,
            planted_bug: Some(bug),
            ..config.clone()
        });
        outcome.violation.map(|v| (seed, v.invariant))
    })
}

/// A drain that ends when handlers have produced their last item (not when answers are
/// delivered) reports nothing in flight while answers still wait behind a caller that
/// stopped reading: the report is caught lying.
#[test]
fn planted_bug_finished_at_last_item_is_caught() {
    let caught = first_catch(
        PlantedBug::FinishedAtLastItem,
        SimConfig {
            faults: vec![FaultKind::StopReading, FaultKind::Drain],
            fault_count: 8,
            ..SimConfig::default()
        },
    );
    assert!(
        matches!(caught, Some((_, Invariant::DrainReportTruthful))),
        "{caught:?}"
    );
}

#[test]
fn planted_bug_ignored_drain_deadline_is_caught() {
    let caught = first_catch(
        PlantedBug::IgnoreDrainDeadline,
        SimConfig {
            faults: vec![FaultKind::HandlerStall, FaultKind::Drain],
            fault_count: 6,
            drain_limit: Duration::from_secs(3),
            ..SimConfig::default()
        },
    );
    assert!(
        matches!(caught, Some((_, Invariant::DrainBounded))),
        "{caught:?}"
    );
}

#[test]
fn planted_bug_refusals_not_retried_is_caught() {
    let caught = first_catch(
        PlantedBug::GiveUpOnRefusal,
        SimConfig {
            faults: vec![FaultKind::Drain, FaultKind::Kill],
            fault_count: 6,
            ..SimConfig::default()
        },
    );
    assert!(
        matches!(caught, Some((_, Invariant::RefusalsRetried))),
        "{caught:?}"
    );
}

#[test]
fn planted_bug_canary_bypassing_the_handler_is_caught() {
    let caught = first_catch(
        PlantedBug::CanaryBypassesHandler,
        SimConfig {
            faults: vec![FaultKind::HandlerStall],
            fault_count: 4,
            ..SimConfig::default()
        },
    );
    assert!(
        matches!(caught, Some((_, Invariant::ReadinessTruthful))),
        "{caught:?}"
    );
}

/// Readiness under partitions. A worker cut off from the store loses its lease within the
/// TTL, shuts down (exit code 4) and reports not ready — before the store expires the lease,
/// which the invariant checks. A worker cut off from its peers stays ready: its canaries are
/// served in-process, as dynrt's client serves a call to its own instance, so its handler is
/// (truthfully) answering; its callers fail over meanwhile.
#[test]
fn a_store_partition_turns_a_worker_not_ready_a_peer_partition_does_not() {
    let outcome = run(&SimConfig {
        seed: 51,
        workers: 3,
        callers: 2,
        requests_per_caller: 60,
        faults: Vec::new(),
        cancel_percent: (0, 0),
        script: vec![
            at(2.0, FaultKind::PartitionStore, 0, 20.0),
            at(2.0, FaultKind::PartitionPeers, 1, 20.0),
        ],
        trace: true,
        ..SimConfig::default()
    });
    clean(&outcome);
    let readiness = |worker: &str| -> Vec<(f64, bool)> {
        outcome
            .trace
            .lines()
            .filter(|l| l.contains(worker) && l.contains("health: ready = "))
            .map(|l| {
                let t = l.split_whitespace().next().unwrap().parse::<f64>().unwrap();
                (t, l.ends_with("true"))
            })
            .collect()
    };
    let w0 = readiness(" w0 ");
    let lost = w0
        .iter()
        .find(|(t, ready)| *t > 2.0 && !ready)
        .expect("w0 turned not ready");
    assert!(lost.0 <= 2.0 + 10.0, "{w0:?}");
    let drain = outcome
        .drains
        .iter()
        .find(|d| d.worker == 0)
        .expect("w0 shut down");
    assert_eq!(drain.outcome, ShutdownOutcome::LeaseLost, "{drain:?}");
    assert_eq!(drain.exit_code, 4, "{drain:?}");
    let w1 = readiness(" w1 ");
    assert!(
        !w1.iter().any(|(t, ready)| *t > 1.0 && *t < 22.0 && !ready),
        "w1 turned not ready while only its peers were cut off: {w1:?}"
    );
    assert_eq!(
        outcome.stats.ok + outcome.stats.errors,
        outcome.stats.requests,
        "{}",
        outcome.stats
    );
}
