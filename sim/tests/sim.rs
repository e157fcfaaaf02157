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
    for (seed, dynamo_percent) in [(0, 25), (1, 25), (110, 25), (4242, 25), (16, 100)] {
        let traced = SimConfig {
            trace: true,
            dynamo_percent,
            ..config(seed)
        };
        let first = run(&traced);
        let second = run(&traced);
        assert!(!first.trace.is_empty());
        assert_eq!(first.trace, second.trace, "seed {seed}: traces differ");
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.events, second.events);
        // Tracing changes nothing but the text.
        let quiet = run(&SimConfig {
            dynamo_percent,
            ..config(seed)
        });
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

/// Seeds that failed once Dynamo's call-home protocol ran on the simulated network (every
/// worker and caller speaking it: `dynamo_percent: 100`), each with what it found. Faults
/// added since change the schedules, so they no longer replay those runs; the planted bug and
/// the search below keep finding what they found.
const DYNAMO_REGRESSIONS: &[(u64, &str)] = &[
    // A caller stopped reading after the worker wrote the whole answer; the worker's close
    // timeout after the sentinel ended the exchange as `Done`, so the drain counted the answer
    // delivered and reported clean. Fixed in the core: the close timeout is
    // `WorkerEvent::CloseTimedOut`, which the runtime reports to the drain as lost
    // (executor scenario `an_answer_whose_caller_never_closes_is_not_counted_delivered`);
    // `planted_bug_close_timeout_counted_delivered_is_caught` plants it back.
    (34, "close timeout after the sentinel counted as delivered"),
    (98, "same"),
    // A request reached its worker after its caller's ack timeout (a partition); the worker
    // acked it, called home and wrote the whole answer, and the caller — which had given the
    // call up, and here had stopped reading too — reset the connection unread. Dynamo's
    // protocol cannot tell the worker: callers close call-home sockets with a reset whether
    // they read the answer or not, so the drain counts it delivered. Recorded, not a
    // violation: `Stats::dynamo_unconfirmed` counts such answers.
    (
        16,
        "an answer nobody read, which the protocol cannot tell the worker about",
    ),
    (4, "same"),
];

/// The faults that found the Dynamo drain bugs.
fn dynamo_drain_config(seed: u64) -> SimConfig {
    SimConfig {
        dynamo_percent: 100,
        faults: vec![
            FaultKind::PartitionPeers,
            FaultKind::StopReading,
            FaultKind::Drain,
        ],
        fault_count: 8,
        ..config(seed)
    }
}

#[test]
fn dynamo_regression_seeds_stay_clean() {
    for &(seed, what) in DYNAMO_REGRESSIONS {
        let outcome = run(&SimConfig {
            dynamo_percent: 100,
            ..config(seed)
        });
        assert!(
            outcome.violation.is_none(),
            "seed {seed} ({what}): {}",
            outcome.violation.unwrap()
        );
        assert!(outcome.stats.dynamo_requests > 0, "{}", outcome.stats);
    }
    // The protocol's blind spot still shows up, counted and not a violation.
    let unconfirmed = (0..40).find(|&seed| {
        let outcome = run(&dynamo_drain_config(seed));
        assert!(
            outcome.violation.is_none(),
            "seed {seed}: {}",
            outcome.violation.unwrap()
        );
        outcome.stats.dynamo_unconfirmed > 0
    });
    assert!(
        unconfirmed.is_some(),
        "no unconfirmable Dynamo answer found"
    );
}

/// The core bug the Dynamo calls found, planted back: a worker whose caller never closed after
/// the sentinel counts the answer delivered, and a drain reports clean though the caller never
/// read it. The sweep must catch it, and the same seed without the bug is clean.
#[test]
fn planted_bug_close_timeout_counted_delivered_is_caught() {
    let caught = (0..40).find_map(|seed| {
        let outcome = run(&SimConfig {
            planted_bug: Some(PlantedBug::CloseTimeoutDelivered),
            ..dynamo_drain_config(seed)
        });
        outcome.violation.map(|v| (seed, v.invariant))
    });
    assert!(
        matches!(caught, Some((_, Invariant::CleanDrainDelivers))),
        "{caught:?}"
    );
    let (seed, _) = caught.expect("caught");
    let fixed = run(&dynamo_drain_config(seed));
    assert!(fixed.violation.is_none(), "{:?}", fixed.violation);
}

/// Every worker and caller on Dynamo's protocol, under every fault: the invariants hold for
/// its calls as for mux streams.
#[test]
fn dynamo_calls_keep_every_invariant() {
    for seed in 500..512 {
        let outcome = run(&SimConfig {
            dynamo_percent: 100,
            requests_per_caller: 40,
            ..config(seed)
        });
        assert!(
            outcome.violation.is_none(),
            "seed {seed}: {}",
            outcome.violation.unwrap()
        );
        assert_eq!(
            outcome.stats.ok + outcome.stats.errors + outcome.stats.cancelled,
            outcome.stats.requests
        );
        // Every attempt is a Dynamo call (a request no instance could take has none).
        assert!(
            outcome.stats.dynamo_requests + outcome.stats.errors >= outcome.stats.requests,
            "{}",
            outcome.stats
        );
    }
}

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

/// Found by a compaction sweep with one worker (seed 784, `--nodes 1 --callers 3
/// --fault-count 6`), a simulator bug not tied to compaction: a reset fault "from the
/// client" reached a worker whose connection was cut off from its peers and draining; the
/// caller's end stayed open (the fault does not close it) and the worker's end, on the reset,
/// closed as an application does — end of stream, and a linger — so when the caller then
/// closed, the worker's linger read that as its answers delivered and the drain reported
/// clean, though the caller's stream ended `Disconnected`. A socket that got a reset is dead:
/// its close now answers the peer with a reset, as a kernel answers a reset connection's
/// segments (the Dynamo connections already did). The drain now reports the request lost.
#[test]
fn a_reset_connection_answers_with_a_reset_and_its_drain_counts_the_loss() {
    let outcome = run(&SimConfig {
        workers: 1,
        callers: 3,
        fault_count: 6,
        ..config(784)
    });
    assert!(
        outcome.violation.is_none(),
        "{}",
        outcome.violation.unwrap()
    );
    assert!(
        outcome.drains.iter().any(|d| d.outcome
            == dynrt_core::shutdown::ShutdownOutcome::RequestsLost
            && d.lost == 1),
        "{:?}",
        outcome.drains
    );
}

/// Found by the compaction sweep (seed 4399, faults compact, kill, store-restart,
/// lease-expiry, drain, slow-store), not caused by compaction: a 1.6.1-style caller asks a
/// Dynamo worker to stop a call (`"stop"` on the call-home connection), and the worker is
/// killed before the stop reaches it. The caller's `CallerStream` took any end of its socket
/// after a stop as a clean end, so the call ended `Ok` though its worker died under it
/// (`stream-ends-once`). Fixed in the core: a failed socket is `CallerStream::handle_reset`,
/// which fails a stopped call that has not seen the final marker (`Truncated`); the runtime's
/// response server tells a read error from an end of stream. The seed now runs clean, and the
/// stopped call is among its errors.
#[test]
fn a_stopped_dynamo_call_whose_worker_dies_is_not_ok() {
    let outcome = run(&SimConfig {
        faults: vec![
            FaultKind::Compact,
            FaultKind::Kill,
            FaultKind::StoreRestart,
            FaultKind::LeaseExpiry,
            FaultKind::Drain,
            FaultKind::SlowStore,
        ],
        trace: true,
        ..config(4399)
    });
    assert!(
        outcome.violation.is_none(),
        "{}",
        outcome.violation.unwrap()
    );
    // Request 59 is the stopped call whose worker died: a typed error now, not `Ok`.
    assert!(
        outcome
            .trace
            .contains("request 59: cancel (Stop) over Dynamo")
    );
    let failed = "request 59 failed: Disconnected: Stream ended before generation completed";
    assert!(outcome.trace.contains(failed), "{}", outcome.trace);
}

/// Found by a compaction sweep with a 3 s TTL (seed 4239, `--ttl 3 --fault-count 6`), not
/// caused by compaction: worker 2's handler hung, it was drained, and its connection to
/// caller 1 stalled (deliveries wait). The handler resumed, the worker wrote its answers,
/// closed with a graceful GOAWAY and lingered; caller 1's keep-alive then gave up (nothing
/// received for 10 s) and it closed — with nothing unread, because the answers had not
/// arrived — so its end of stream went out. When the stall healed, that end of stream reached
/// the worker's linger, which takes end of stream as "the peer read everything"
/// (io-common's mux driver, `poll_linger`, does the same), and the drain reported clean,
/// though the caller's streams ended `Disconnected`. The peer's end of stream was sent before
/// the answers arrived; telling so needs more than the driver reads (e.g. whether its own
/// output is acknowledged when the peer's end of stream comes). Not fixed here (a runtime
/// driver change); this test pins the finding.
#[test]
fn known_finding_a_linger_counts_answers_delivered_at_an_end_of_stream_sent_before_them() {
    let outcome = run(&SimConfig {
        lease_ttl: std::time::Duration::from_secs(3),
        fault_count: 6,
        ..config(4239)
    });
    let v = outcome.violation.expect("the finding replays");
    assert_eq!(v.invariant, Invariant::CleanDrainDelivers, "{v}");
    assert!(v.detail.contains("peer silent"), "{v}");
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

/// A handler that panics on some requests: the run catches the unwind and reports `no-panic`
/// naming the worker whose step panicked (the panic's own message does not), at the virtual
/// time it did, with the trace up to it — the test process does not die. The same seed without
/// the bug is clean.
#[test]
fn planted_bug_handler_panic_is_caught() {
    let caught = (0..40).find_map(|seed| {
        let outcome = run(&SimConfig {
            planted_bug: Some(PlantedBug::PanicInHandler),
            trace: true,
            ..config(seed)
        });
        outcome.violation.clone().map(|v| (seed, v, outcome))
    });
    let (seed, v, outcome) = caught.expect("no seed caught the panicking handler");
    assert_eq!(v.invariant, Invariant::NoPanic, "{v}");
    // "w<slot> panicked handling <event>: the handler failed on request <n>"
    let (node, rest) = v
        .detail
        .split_once(' ')
        .expect("a node, then what happened");
    assert!(
        node.strip_prefix('w')
            .is_some_and(|slot| slot.parse::<usize>().is_ok_and(|slot| slot < 3)),
        "the report names no worker: {v}"
    );
    assert!(
        rest.starts_with("panicked handling ") && rest.contains("the handler failed on request"),
        "{v}"
    );
    assert!(
        v.at > std::time::Duration::ZERO && outcome.events > 0,
        "{v}"
    );
    assert!(
        outcome.trace.contains("INVARIANT no-panic FAILED"),
        "the trace ends without the violation"
    );
    // The report replays: same seed, same panic, same place.
    let again = run(&SimConfig {
        planted_bug: Some(PlantedBug::PanicInHandler),
        ..config(seed)
    });
    assert_eq!(again.violation, Some(v));
    let fixed = run(&config(seed));
    assert!(fixed.violation.is_none(), "{:?}", fixed.violation);
}

/// A caller that returns credit as data arrives rather than as it consumes it: under the
/// slow-consumer fault it holds more of a stream (or a connection) than the credit it granted,
/// and `memory-within-credit` says so. The same seed without the bug is clean.
#[test]
fn planted_bug_release_on_receipt_is_caught() {
    let caught = first_catch(PlantedBug::ReleaseOnReceipt, vec![FaultKind::SlowConsumer]);
    assert!(
        matches!(caught, Some((_, Invariant::MemoryWithinCredit))),
        "{caught:?}"
    );
    let (seed, _) = caught.expect("caught");
    let fixed = run(&SimConfig {
        faults: vec![FaultKind::SlowConsumer],
        ..config(seed)
    });
    assert!(fixed.violation.is_none(), "{:?}", fixed.violation);
}

/// A killed worker whose lease keep-alive lives on: the store keeps renewing the dead
/// instance's lease, with its record under it, past the TTL + RPC timeout a lost lease has to
/// disappear in, and `lease-deregisters` catches the renewal. The same seed without the bug is
/// clean.
#[test]
fn planted_bug_keepalive_outliving_its_worker_is_caught() {
    let caught = first_catch(PlantedBug::KeepAliveOutlivesWorker, vec![FaultKind::Kill]);
    assert!(
        matches!(caught, Some((_, Invariant::LeaseDeregisters))),
        "{caught:?}"
    );
    let (seed, _) = caught.expect("caught");
    let fixed = run(&SimConfig {
        faults: vec![FaultKind::Kill],
        ..config(seed)
    });
    assert!(fixed.violation.is_none(), "{:?}", fixed.violation);
}
