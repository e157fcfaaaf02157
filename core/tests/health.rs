//! `SystemHealth` in virtual time: the readiness rule, endpoint statuses and the canary machine.

use std::time::{Duration, Instant};

use dynrt_core::health::{
    CanaryConfig, CanaryId, DEFAULT_CANARY_REQUEST_TIMEOUT, DEFAULT_CANARY_WAIT, HealthCommand,
    HealthConfig, HealthConfigError, HealthStatus, RegisterHealthCheckError, SystemHealth,
};
use proptest::prelude::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(3);
const EP: &str = "generate";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn health(starting: HealthStatus, canary: bool, t0: Instant) -> SystemHealth {
    SystemHealth::new(
        HealthConfig {
            starting_status: starting,
            gated_endpoints: Vec::new(),
            canary: canary.then(|| CanaryConfig::new(WAIT, TIMEOUT).unwrap()),
        },
        t0,
    )
}

/// Canaries on, `EP` registered with a payload and on the request plane at `t0`.
fn canary_endpoint(t0: Instant) -> SystemHealth {
    let mut h = health(HealthStatus::NotReady, true, t0);
    h.register_health_check(EP, json!({"prompt": "ping"}), t0)
        .unwrap();
    h.endpoint_registered(EP, t0);
    h
}

fn drain(h: &mut SystemHealth) -> Vec<HealthCommand> {
    std::iter::from_fn(|| h.poll_command()).collect()
}

/// Runs the clock to `now` and returns the canary that went out (panics if none or several).
fn expect_canary(h: &mut SystemHealth, now: Instant) -> CanaryId {
    h.handle_timeout(now);
    match drain(h).as_slice() {
        [
            HealthCommand::SendCanary {
                id,
                endpoint,
                payload,
            },
        ] => {
            assert_eq!(endpoint, EP);
            assert_eq!(payload, &json!({"prompt": "ping"}));
            *id
        }
        other => panic!("expected one SendCanary at {now:?}, got {other:?}"),
    }
}

#[test]
fn defaults_match_dynamo() {
    assert_eq!(DEFAULT_CANARY_WAIT, secs(10));
    assert_eq!(DEFAULT_CANARY_REQUEST_TIMEOUT, secs(3));
    let c = CanaryConfig::default();
    assert_eq!((c.wait(), c.request_timeout()), (secs(10), secs(3)));
    let d = HealthConfig::default();
    assert_eq!(d.starting_status, HealthStatus::NotReady);
    assert!(d.canary.is_none() && d.gated_endpoints.is_empty());
}

#[test]
fn zero_canary_durations_are_rejected() {
    assert_eq!(
        CanaryConfig::new(Duration::ZERO, TIMEOUT),
        Err(HealthConfigError::ZeroDuration {
            what: "canary wait time"
        })
    );
    assert!(CanaryConfig::new(WAIT, Duration::ZERO).is_err());
}

#[test]
fn health_status_parses_exactly_ready_and_notready() {
    assert_eq!("ready".parse::<HealthStatus>(), Ok(HealthStatus::Ready));
    assert_eq!(
        "notready".parse::<HealthStatus>(),
        Ok(HealthStatus::NotReady)
    );
    let err = "Ready".parse::<HealthStatus>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "'Ready' is not a health status (use 'ready' or 'notready')"
    );
    assert!("not_ready".parse::<HealthStatus>().is_err());
    assert!("".parse::<HealthStatus>().is_err());
}

#[test]
fn starting_status_decides_when_no_endpoint_does() {
    let t0 = Instant::now();
    assert!(health(HealthStatus::Ready, false, t0).is_ready());
    assert!(!health(HealthStatus::NotReady, false, t0).is_ready());
    // Canaries on but nothing registered: still the system status.
    assert!(health(HealthStatus::Ready, true, t0).is_ready());
}

#[test]
fn set_system_status_flips_readiness_both_ways() {
    let t0 = Instant::now();
    let mut h = health(HealthStatus::NotReady, false, t0);
    h.set_system_status(HealthStatus::Ready);
    assert!(h.is_ready());
    h.set_system_status(HealthStatus::NotReady);
    assert!(!h.is_ready());
}

#[test]
fn registered_endpoint_without_payload_does_not_override_system_status() {
    // 1.6.1's behaviour: with no health-check target the endpoint map is reported but ignored.
    let t0 = Instant::now();
    let mut h = health(HealthStatus::NotReady, false, t0);
    h.endpoint_registered(EP, t0);
    assert_eq!(h.endpoint_status(EP), Some(HealthStatus::Ready));
    assert!(!h.is_ready());
    h.set_system_status(HealthStatus::Ready);
    assert!(h.is_ready());
}

#[test]
fn payload_endpoint_with_canaries_off_is_ready_once_registered() {
    let t0 = Instant::now();
    let mut h = health(HealthStatus::NotReady, false, t0);
    h.register_health_check(EP, json!({}), t0).unwrap();
    assert_eq!(h.endpoint_status(EP), Some(HealthStatus::NotReady));
    assert!(!h.is_ready());
    h.endpoint_registered(EP, t0);
    assert!(h.is_ready());
    // No scheduler without canaries.
    assert_eq!(h.poll_timeout(), None);
    assert_eq!(h.poll_command(), None);
    assert_eq!(h.traffic_signal(EP).map(|_| ()), None);
}

#[test]
fn targets_gate_readiness_even_when_system_status_is_ready() {
    let t0 = Instant::now();
    let mut h = health(HealthStatus::Ready, false, t0);
    h.register_health_check(EP, json!({}), t0).unwrap();
    assert!(!h.is_ready(), "a registered target that is not ready wins");
    h.endpoint_registered(EP, t0);
    assert!(h.is_ready());
}

#[test]
fn payloadless_endpoint_is_ready_on_registration_with_canaries_on() {
    let t0 = Instant::now();
    let mut h = health(HealthStatus::NotReady, true, t0);
    h.endpoint_registered("rl_system", t0);
    assert!(h.is_ready(), "rule 5: every known endpoint is ready");
    h.set_endpoint_status("other", HealthStatus::NotReady);
    assert!(!h.is_ready());
}

#[test]
fn gated_endpoints_start_with_the_starting_status_and_alone_decide() {
    let t0 = Instant::now();
    let mut h = SystemHealth::new(
        HealthConfig {
            starting_status: HealthStatus::Ready,
            gated_endpoints: vec!["a".into(), "b".into()],
            canary: None,
        },
        t0,
    );
    assert_eq!(h.endpoint_status("a"), Some(HealthStatus::Ready));
    assert!(h.is_ready());
    h.set_endpoint_status("b", HealthStatus::NotReady);
    assert!(!h.is_ready());
    h.set_endpoint_status("b", HealthStatus::Ready);
    // A target outside the gate does not count while a gate is configured.
    h.register_health_check("c", json!({}), t0).unwrap();
    assert!(h.is_ready());
}

#[test]
fn gated_endpoints_start_not_ready_when_canaries_are_on() {
    let t0 = Instant::now();
    let h = SystemHealth::new(
        HealthConfig {
            starting_status: HealthStatus::Ready,
            gated_endpoints: vec!["a".into()],
            canary: Some(CanaryConfig::default()),
        },
        t0,
    );
    assert_eq!(h.endpoint_status("a"), Some(HealthStatus::NotReady));
    assert!(!h.is_ready());
}

#[test]
fn unknown_gated_endpoint_is_not_ready() {
    let t0 = Instant::now();
    let mut h = SystemHealth::new(
        HealthConfig {
            starting_status: HealthStatus::Ready,
            gated_endpoints: vec!["a".into()],
            canary: None,
        },
        t0,
    );
    h.set_endpoint_status("b", HealthStatus::Ready);
    assert!(h.is_ready(), "'a' started ready");
    let mut h2 = SystemHealth::new(
        HealthConfig {
            starting_status: HealthStatus::NotReady,
            gated_endpoints: vec!["a".into()],
            canary: None,
        },
        t0,
    );
    h2.endpoint_registered("b", t0);
    assert!(!h2.is_ready());
    h2.endpoint_registered("a", t0);
    assert!(h2.is_ready());
}

#[test]
fn hold_keeps_process_not_ready_until_released_and_owner_publishes() {
    let t0 = Instant::now();
    let mut h = health(HealthStatus::Ready, false, t0);
    h.hold_readiness(EP);
    h.endpoint_registered(EP, t0);
    assert_ne!(h.endpoint_status(EP), Some(HealthStatus::Ready));
    assert!(!h.is_ready(), "a hold withholds the whole process");
    h.endpoint_registered("sibling", t0);
    assert_eq!(h.endpoint_status("sibling"), Some(HealthStatus::Ready));
    assert!(!h.is_ready());
    h.release_readiness(EP);
    assert!(
        h.is_ready(),
        "release alone lets the system status decide again"
    );
    h.endpoint_registered(EP, t0);
    assert_eq!(h.endpoint_status(EP), Some(HealthStatus::Ready));
}

#[test]
fn second_health_check_payload_is_rejected() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    assert_eq!(
        h.register_health_check(EP, json!(1), t0),
        Err(RegisterHealthCheckError::AlreadyRegistered {
            endpoint: EP.into()
        })
    );
}

#[test]
fn canary_endpoint_waits_for_canary_and_first_item_makes_it_ready() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    assert!(
        !h.is_ready(),
        "registration alone does not make a canary endpoint ready"
    );
    // The first canary goes out right after registration.
    assert_eq!(h.poll_timeout(), Some(t0));
    let id = expect_canary(&mut h, t0);
    assert_eq!(h.canary_in_flight(EP), Some(id));
    assert_eq!(h.poll_timeout(), Some(t0 + TIMEOUT));
    h.handle_canary_item(id, t0 + secs(1));
    assert!(h.is_ready());
    assert_eq!(h.canary_in_flight(EP), None);
    // The rest of the stream ending changes nothing.
    h.handle_canary_end(id, t0 + secs(2));
    assert!(h.is_ready());
    // Next canary one wait after the previous was sent.
    assert_eq!(h.poll_timeout(), Some(t0 + WAIT));
}

#[test]
fn first_canary_waits_a_full_period_when_endpoint_is_not_yet_registered() {
    let t0 = Instant::now();
    let mut h = health(HealthStatus::NotReady, true, t0);
    h.register_health_check(EP, json!({"prompt": "ping"}), t0)
        .unwrap();
    assert_eq!(h.poll_timeout(), Some(t0 + WAIT));
    h.handle_timeout(t0 + WAIT - Duration::from_millis(1));
    assert!(drain(&mut h).is_empty());
    expect_canary(&mut h, t0 + WAIT);
}

#[test]
fn canary_error_marks_endpoint_not_ready() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let id = expect_canary(&mut h, t0);
    h.handle_canary_item(id, t0);
    assert!(h.is_ready());
    let id2 = expect_canary(&mut h, t0 + WAIT);
    assert_ne!(id, id2);
    h.handle_canary_error(id2, t0 + WAIT + secs(1));
    assert_eq!(h.endpoint_status(EP), Some(HealthStatus::NotReady));
    assert!(!h.is_ready());
}

#[test]
fn canary_empty_stream_marks_endpoint_not_ready() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let id = expect_canary(&mut h, t0);
    h.handle_canary_item(id, t0);
    let id2 = expect_canary(&mut h, t0 + WAIT);
    h.handle_canary_end(id2, t0 + WAIT + secs(1));
    assert!(!h.is_ready());
    // And it recovers at the next canary.
    let id3 = expect_canary(&mut h, t0 + WAIT * 2);
    h.handle_canary_item(id3, t0 + WAIT * 2);
    assert!(h.is_ready());
}

#[test]
fn canary_timeout_marks_not_ready_and_cancels_the_request() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let id = expect_canary(&mut h, t0);
    h.handle_canary_item(id, t0);
    let id2 = expect_canary(&mut h, t0 + WAIT);
    h.handle_timeout(t0 + WAIT + TIMEOUT - Duration::from_nanos(1));
    assert!(h.is_ready(), "not yet timed out");
    assert!(drain(&mut h).is_empty());
    h.handle_timeout(t0 + WAIT + TIMEOUT);
    assert!(!h.is_ready());
    assert_eq!(
        drain(&mut h),
        vec![HealthCommand::CancelCanary {
            id: id2,
            endpoint: EP.into()
        }]
    );
    // A late answer of the abandoned canary is ignored.
    h.handle_canary_item(id2, t0 + WAIT + TIMEOUT + secs(1));
    assert!(!h.is_ready());
    // The hung endpoint is probed again one wait after the last canary was sent, and recovers.
    assert_eq!(h.poll_timeout(), Some(t0 + WAIT * 2));
    let id3 = expect_canary(&mut h, t0 + WAIT * 2);
    h.handle_canary_item(id3, t0 + WAIT * 2 + secs(1));
    assert!(h.is_ready());
}

#[test]
fn traffic_resets_the_canary_timer() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let id = expect_canary(&mut h, t0);
    h.handle_canary_item(id, t0);
    let t1 = t0 + secs(7);
    h.record_traffic(EP, t1);
    assert_eq!(h.poll_timeout(), Some(t1 + WAIT));
    h.handle_timeout(t0 + WAIT);
    assert!(
        drain(&mut h).is_empty(),
        "no canary while traffic is recent"
    );
    let t2 = t1 + secs(9);
    h.record_traffic(EP, t2);
    h.handle_timeout(t1 + WAIT);
    assert!(drain(&mut h).is_empty());
    expect_canary(&mut h, t2 + WAIT);
}

#[test]
fn traffic_marks_a_not_ready_canary_endpoint_ready() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let id = expect_canary(&mut h, t0);
    h.handle_canary_error(id, t0);
    assert!(!h.is_ready());
    h.record_traffic(EP, t0 + secs(1));
    assert!(h.is_ready());
}

#[test]
fn traffic_during_a_canary_supersedes_it() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let id = expect_canary(&mut h, t0);
    h.record_traffic(EP, t0 + secs(1));
    assert!(h.is_ready());
    assert_eq!(
        drain(&mut h),
        vec![HealthCommand::CancelCanary {
            id,
            endpoint: EP.into()
        }]
    );
    // The superseded canary can no longer make the endpoint not ready.
    h.handle_canary_error(id, t0 + secs(2));
    h.handle_timeout(t0 + TIMEOUT);
    assert!(h.is_ready());
    assert!(drain(&mut h).is_empty());
    assert_eq!(h.poll_timeout(), Some(t0 + secs(1) + WAIT));
}

#[test]
fn traffic_is_ignored_without_canaries_or_payload() {
    let t0 = Instant::now();
    let mut h = health(HealthStatus::NotReady, false, t0);
    h.register_health_check(EP, json!({}), t0).unwrap();
    h.record_traffic(EP, t0);
    assert_eq!(h.endpoint_status(EP), Some(HealthStatus::NotReady));
    let mut h2 = health(HealthStatus::NotReady, true, t0);
    h2.record_traffic("other", t0);
    assert_eq!(h2.endpoint_status("other"), None);
}

#[test]
fn traffic_signal_skips_the_due_canary_and_marks_ready() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let signal = h.traffic_signal(EP).expect("canary endpoint has a signal");
    let id = expect_canary(&mut h, t0);
    h.handle_canary_error(id, t0);
    assert!(!h.is_ready());
    signal.record();
    signal.record();
    h.handle_timeout(t0 + WAIT);
    assert!(drain(&mut h).is_empty(), "traffic seen: no canary");
    assert!(h.is_ready());
    assert_eq!(h.poll_timeout(), Some(t0 + WAIT * 2));
    // The flag was consumed: the next deadline sends a canary.
    expect_canary(&mut h, t0 + WAIT * 2);
}

#[test]
fn traffic_signal_rescues_a_timed_out_canary() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let signal = h.traffic_signal(EP).unwrap();
    let id = expect_canary(&mut h, t0);
    signal.record();
    h.handle_timeout(t0 + TIMEOUT);
    assert!(h.is_ready());
    assert_eq!(
        drain(&mut h),
        vec![HealthCommand::CancelCanary {
            id,
            endpoint: EP.into()
        }]
    );
}

#[test]
fn timeout_longer_than_wait_sends_next_canary_in_the_same_call() {
    let t0 = Instant::now();
    let mut h = SystemHealth::new(
        HealthConfig {
            starting_status: HealthStatus::NotReady,
            gated_endpoints: Vec::new(),
            canary: Some(CanaryConfig::new(secs(1), secs(5)).unwrap()),
        },
        t0,
    );
    h.register_health_check(EP, json!({"prompt": "ping"}), t0)
        .unwrap();
    h.endpoint_registered(EP, t0);
    let id = expect_canary(&mut h, t0);
    h.handle_timeout(t0 + secs(5));
    let cmds = drain(&mut h);
    assert!(matches!(&cmds[..], [
        HealthCommand::CancelCanary { id: a, .. },
        HealthCommand::SendCanary { id: b, .. },
    ] if *a == id && *b != id));
    assert!(h.poll_timeout().unwrap() > t0 + secs(5));
}

#[test]
fn shutdown_withdraws_readiness_and_stops_canaries() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let id = expect_canary(&mut h, t0);
    h.handle_canary_item(id, t0);
    let id2 = expect_canary(&mut h, t0 + WAIT);
    assert!(h.is_ready());
    h.begin_shutdown(t0 + WAIT + secs(1));
    assert!(!h.is_ready());
    assert_eq!(h.poll_timeout(), Some(t0 + WAIT + secs(1)), "drain first");
    assert_eq!(
        drain(&mut h),
        vec![HealthCommand::CancelCanary {
            id: id2,
            endpoint: EP.into()
        }]
    );
    assert_eq!(h.poll_timeout(), None);
    h.handle_timeout(t0 + WAIT * 5);
    h.record_traffic(EP, t0 + WAIT * 5);
    assert!(drain(&mut h).is_empty());
    assert!(!h.is_ready());
    // Even a system status of ready cannot override shutdown.
    h.set_system_status(HealthStatus::Ready);
    assert!(!h.is_ready());
}

#[test]
fn report_serialises_as_dynamo_health_body() {
    let t0 = Instant::now();
    let mut h = health(HealthStatus::Ready, false, t0);
    h.endpoint_registered("generate", t0);
    h.set_endpoint_status("clear_kv_blocks", HealthStatus::NotReady);
    let report = h.report(t0 + Duration::from_millis(5250));
    assert!(report.is_ready());
    assert_eq!(
        report.to_json(),
        r#"{"endpoints":{"clear_kv_blocks":"notready","generate":"ready"},"status":"ready","uptime":{"secs":5,"nanos":250000000}}"#
    );
    // Uptime never goes negative with a `now` before the start.
    assert_eq!(h.uptime(t0), Duration::ZERO);
}

#[test]
fn report_of_a_fresh_not_ready_process() {
    let t0 = Instant::now();
    let h = health(HealthStatus::NotReady, false, t0);
    assert_eq!(
        h.report(t0).to_json(),
        r#"{"endpoints":{},"status":"notready","uptime":{"secs":0,"nanos":0}}"#
    );
}

#[test]
fn two_endpoints_are_scheduled_independently() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    h.register_health_check("embed", json!({"input": "x"}), t0)
        .unwrap();
    let a = expect_canary(&mut h, t0);
    h.handle_canary_item(a, t0);
    assert!(!h.is_ready(), "'embed' has not been checked yet");
    h.handle_timeout(t0 + WAIT);
    let cmds = drain(&mut h);
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    let ids: Vec<_> = cmds
        .iter()
        .map(|c| match c {
            HealthCommand::SendCanary { id, endpoint, .. } => (endpoint.clone(), *id),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids[0].0, "embed", "deterministic order by endpoint key");
    h.handle_canary_item(ids[0].1, t0 + WAIT);
    h.handle_canary_item(ids[1].1, t0 + WAIT);
    assert!(h.is_ready());
}

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Traffic,
    Signal,
    Item,
    Error,
    End,
    Registered,
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..15_000).prop_map(Op::Advance),
        1 => Just(Op::Traffic),
        1 => Just(Op::Signal),
        2 => Just(Op::Item),
        1 => Just(Op::Error),
        1 => Just(Op::End),
        1 => Just(Op::Registered),
        1 => Just(Op::Shutdown),
    ]
}

proptest! {
    /// After `handle_timeout(t)` and draining commands, the next deadline is later than `t`:
    /// a driver never spins. Also: at most one canary per endpoint is in flight, and every
    /// SendCanary is followed by at most one CancelCanary for the same id.
    #[test]
    fn no_busy_loop_and_one_canary_at_a_time(
        wait_ms in 1u64..20_000,
        timeout_ms in 1u64..20_000,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let t0 = Instant::now();
        let mut h = SystemHealth::new(
            HealthConfig {
                starting_status: HealthStatus::NotReady,
                gated_endpoints: Vec::new(),
                canary: Some(CanaryConfig::new(
                    Duration::from_millis(wait_ms),
                    Duration::from_millis(timeout_ms),
                ).unwrap()),
            },
            t0,
        );
        h.register_health_check(EP, json!({}), t0).unwrap();
        let signal = h.traffic_signal(EP).unwrap();
        let mut now = t0;
        let mut in_flight: Option<CanaryId> = None;
        let mut last_sent: Option<CanaryId> = None;
        let mut cancelled = std::collections::BTreeSet::new();
        for op in ops {
            match op {
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::Traffic => h.record_traffic(EP, now),
                Op::Signal => signal.record(),
                Op::Item => if let Some(id) = last_sent { h.handle_canary_item(id, now) },
                Op::Error => if let Some(id) = last_sent { h.handle_canary_error(id, now) },
                Op::End => if let Some(id) = last_sent { h.handle_canary_end(id, now) },
                Op::Registered => h.endpoint_registered(EP, now),
                Op::Shutdown => h.begin_shutdown(now),
            }
            // A verdict (item, error, end) ends the in-flight canary without a command.
            if h.canary_in_flight(EP).is_none() {
                in_flight = None;
            }
            // The driver loop: drain, fire the timer if due, drain again; then the guard holds.
            loop {
                while let Some(cmd) = h.poll_command() {
                    match cmd {
                        HealthCommand::SendCanary { id, .. } => {
                            prop_assert!(in_flight.is_none(), "second canary while one is in flight");
                            in_flight = Some(id);
                            last_sent = Some(id);
                        }
                        HealthCommand::CancelCanary { id, .. } => {
                            prop_assert_eq!(last_sent, Some(id), "cancels only the latest canary");
                            prop_assert!(cancelled.insert(id), "cancelled twice");
                            in_flight = None;
                        }
                        _ => {}
                    }
                }
                match h.poll_timeout() {
                    Some(deadline) if deadline <= now => {
                        h.handle_timeout(now);
                        let commands_pending = h.poll_timeout() == Some(now);
                        prop_assert!(
                            commands_pending || h.poll_timeout().is_none_or(|d| d > now),
                            "busy loop at {:?}", now - t0
                        );
                        prop_assert!(commands_pending || h.poll_command().is_none());
                    }
                    _ => break,
                }
            }
            prop_assert_eq!(h.canary_in_flight(EP), in_flight);
        }
    }
}

#[test]
fn in_flight_canary_ignores_re_registration_and_stale_ids() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let id = expect_canary(&mut h, t0);
    h.endpoint_registered(EP, t0 + secs(1));
    assert_eq!(
        h.canary_in_flight(EP),
        Some(id),
        "registration does not restart a canary"
    );
    assert_eq!(h.poll_timeout(), Some(t0 + TIMEOUT));
    h.handle_canary_item(id, t0 + secs(1));
    // Idle now: a repeated verdict for the same id is stale.
    h.handle_canary_error(id, t0 + secs(2));
    h.handle_canary_end(id, t0 + secs(2));
    assert!(h.is_ready());
    assert!(drain(&mut h).is_empty());
}

#[test]
fn shutdown_while_idle_stops_the_schedule_without_commands() {
    let t0 = Instant::now();
    let mut h = canary_endpoint(t0);
    let id = expect_canary(&mut h, t0);
    h.handle_canary_item(id, t0);
    h.begin_shutdown(t0 + secs(1));
    assert!(drain(&mut h).is_empty(), "nothing in flight to cancel");
    assert_eq!(h.poll_timeout(), None);
    // Stopped ignores everything.
    h.endpoint_registered(EP, t0 + secs(2));
    h.handle_canary_error(id, t0 + secs(2));
    h.handle_timeout(t0 + WAIT * 3);
    assert!(drain(&mut h).is_empty());
    assert_eq!(h.endpoint_status(EP), Some(HealthStatus::Ready));
    assert!(!h.is_ready(), "shutting down");
    // A payload registered during shutdown gets no schedule.
    h.register_health_check("late", json!({}), t0 + secs(3))
        .unwrap();
    assert_eq!(h.poll_timeout(), None);
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SystemHealth>();
    check::<dynrt_core::health::TrafficSignal>();
    check::<HealthCommand>();
}

/// A dependency's connection shows in the report, first and only once reported; it never
/// changes the verdict.
#[test]
fn dependencies_show_in_the_report_without_changing_the_verdict() {
    use dynrt_core::health::DependencyStatus;
    let t0 = Instant::now();
    let mut h = health(HealthStatus::Ready, false, t0);
    assert!(!h.report(t0).to_json().contains("dependencies"));
    h.set_dependency("nats", DependencyStatus::Disconnected);
    let body: serde_json::Value = serde_json::from_str(&h.report(t0).to_json()).unwrap();
    assert_eq!(body["dependencies"]["nats"], "disconnected", "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    assert!(
        h.report(t0)
            .to_json()
            .starts_with(r#"{"dependencies":{"nats":"disconnected"}"#)
    );
    h.set_dependency("nats", DependencyStatus::Connected);
    let body: serde_json::Value = serde_json::from_str(&h.report(t0).to_json()).unwrap();
    assert_eq!(body["dependencies"]["nats"], "connected", "{body}");
}
