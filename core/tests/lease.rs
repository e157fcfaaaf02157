//! The process lease in virtual time: schedule, deadline, retries, loss, shutdown.

use std::time::{Duration, Instant};

use dynrt_core::kv::LeaseId;
use dynrt_core::lease::{
    Backoff, Lease, LeaseCommand, LeaseConfig, LeaseConfigError, LeaseEvent, LeaseInputError,
    LeaseState, LostReason,
};

const TTL: Duration = Duration::from_secs(30);

fn id() -> LeaseId {
    LeaseId::new(0x694d_9a2b).unwrap()
}

fn no_jitter() -> LeaseConfig {
    LeaseConfig {
        jitter: false,
        ..LeaseConfig::default()
    }
}

/// A lease plus a virtual clock.
struct Harness {
    lease: Lease,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new(config: LeaseConfig, seed: u64) -> Self {
        let t0 = Instant::now();
        let lease = Lease::new(config, seed, t0).unwrap();
        Self { lease, t0, now: t0 }
    }

    /// Granted at t0 with the default TTL; the grant command and event consumed.
    fn active(config: LeaseConfig) -> Self {
        Self::active_seeded(config, 1)
    }

    fn active_seeded(config: LeaseConfig, seed: u64) -> Self {
        let mut h = Self::new(config, seed);
        assert_eq!(h.commands(), [LeaseCommand::Grant { ttl: TTL }]);
        h.lease.handle_granted(id(), TTL, h.t0).unwrap();
        assert_eq!(h.events(), [LeaseEvent::Granted { id: id(), ttl: TTL }]);
        h
    }

    fn secs(&self, s: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(s)
    }

    fn since_t0(&self, t: Instant) -> f64 {
        (t - self.t0).as_secs_f64()
    }

    fn commands(&mut self) -> Vec<LeaseCommand> {
        std::iter::from_fn(|| self.lease.poll_command()).collect()
    }

    fn events(&mut self) -> Vec<LeaseEvent> {
        std::iter::from_fn(|| self.lease.poll_event()).collect()
    }

    /// Sleeps until the next timer and fires it; returns the time it fired at.
    fn fire(&mut self) -> Option<Instant> {
        let t = self.lease.poll_timeout()?;
        assert!(t >= self.now, "a timer in the past: {t:?} < {:?}", self.now);
        self.now = t;
        self.lease.handle_timeout(t);
        Some(t)
    }
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn defaults_match_dynamo_1_6_1() {
    let c = LeaseConfig::default();
    assert_eq!(c.ttl, Duration::from_secs(30)); // DEFAULT_LEASE_TTL_SECS
    assert_eq!(c.keepalive_divisor, 2); // sleeps half the time left
    assert_eq!(
        c.renew_backoff,
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(5),
            min: Duration::from_millis(50),
        }
    );
    assert_eq!(c.max_renew_attempts, None);
    assert_eq!(c.grant_backoff.initial, Duration::from_secs(1));
    assert_eq!(c.grant_backoff.max, Duration::from_secs(30));
    assert_eq!(c.grant_timeout, Duration::from_secs(120));
    assert!(c.jitter);
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn a_new_lease_asks_for_a_grant_with_the_configured_ttl() {
    let mut h = Harness::new(
        LeaseConfig {
            ttl: Duration::from_secs(12),
            ..LeaseConfig::default()
        },
        1,
    );
    assert_eq!(
        h.commands(),
        [LeaseCommand::Grant {
            ttl: Duration::from_secs(12)
        }]
    );
    assert!(matches!(
        h.lease.state(),
        LeaseState::Granting {
            attempt: 1,
            retry_at: None,
            ..
        }
    ));
    assert_eq!(h.lease.id(), None);
    assert!(!h.lease.is_held());
}

#[test]
fn an_answered_lease_is_renewed_every_half_ttl_for_ten_minutes() {
    let mut h = Harness::active(LeaseConfig::default());
    let mut sent_at = Vec::new();
    while h.now < h.secs(600.0) {
        h.fire().unwrap();
        for cmd in h.commands() {
            assert_eq!(cmd, LeaseCommand::KeepAlive { id: id() });
            sent_at.push(h.since_t0(h.now));
            h.lease.handle_keepalive_ok(TTL, h.now).unwrap();
        }
        assert!(h.lease.deadline().unwrap() > h.now + Duration::from_secs(14));
    }
    assert!(h.events().is_empty(), "never lost");
    let expected: Vec<f64> = (1..=40).map(|i| 15.0 * f64::from(i)).collect();
    assert_eq!(sent_at, expected);
}

#[test]
fn granted_ttl_from_etcd_drives_the_schedule() {
    let mut h = Harness::new(
        LeaseConfig {
            ttl: Duration::from_secs(1),
            ..LeaseConfig::default()
        },
        1,
    );
    let _ = h.commands();
    // etcd raises TTLs below its minimum to 2 s.
    h.lease
        .handle_granted(id(), Duration::from_secs(2), h.t0)
        .unwrap();
    assert_eq!(h.lease.deadline(), Some(h.secs(2.0)));
    assert_eq!(h.lease.poll_timeout(), Some(h.secs(1.0)));
}

#[test]
fn the_deadline_counts_from_when_the_keepalive_was_sent() {
    let mut h = Harness::active(LeaseConfig::default());
    assert_eq!(h.fire(), Some(h.secs(15.0)));
    assert_eq!(h.commands(), [LeaseCommand::KeepAlive { id: id() }]);
    // The answer takes 2 s to arrive: etcd renewed somewhere in between.
    h.lease.handle_keepalive_ok(TTL, h.secs(17.0)).unwrap();
    assert_eq!(h.lease.deadline(), Some(h.secs(45.0)));
    assert_eq!(h.lease.poll_timeout(), Some(h.secs(31.0)));
}

#[test]
fn the_deadline_starts_from_when_the_grant_was_sent() {
    let mut h = Harness::new(LeaseConfig::default(), 1);
    let _ = h.commands();
    h.lease.handle_granted(id(), TTL, h.secs(3.0)).unwrap();
    assert_eq!(h.lease.deadline(), Some(h.secs(30.0)));
}

#[test]
fn a_grant_answered_after_its_ttl_is_lost_at_once() {
    let mut h = Harness::new(LeaseConfig::default(), 1);
    let _ = h.commands();
    h.lease.handle_granted(id(), TTL, h.secs(31.0)).unwrap();
    assert_eq!(
        h.events(),
        [
            LeaseEvent::Granted { id: id(), ttl: TTL },
            LeaseEvent::Lost {
                id: Some(id()),
                reason: LostReason::DeadlinePassed
            }
        ]
    );
}

#[test]
fn unanswered_keepalives_are_resent_at_half_the_time_left_then_the_lease_is_lost_at_the_deadline() {
    let mut h = Harness::active(LeaseConfig::default());
    let mut sends = Vec::new();
    while h.fire().is_some() {
        for cmd in h.commands() {
            assert_eq!(cmd, LeaseCommand::KeepAlive { id: id() });
            sends.push(h.since_t0(h.now));
        }
        if !h.lease.is_held() {
            break;
        }
    }
    assert!(approx(sends[0], 15.0) && approx(sends[1], 22.5) && approx(sends[2], 26.25));
    assert!(
        sends.len() <= 8,
        "at most 8 unanswered keep-alives: {sends:?}"
    );
    assert!(sends.iter().all(|&s| s < 30.0));
    assert_eq!(h.now, h.secs(30.0), "lost exactly at the deadline");
    assert_eq!(
        h.events(),
        [LeaseEvent::Lost {
            id: Some(id()),
            reason: LostReason::DeadlinePassed
        }]
    );
    assert_eq!(h.lease.poll_timeout(), None);
}

#[test]
fn a_keepalive_answered_with_ttl_zero_means_the_lease_is_gone() {
    let mut h = Harness::active(LeaseConfig::default());
    h.fire();
    let _ = h.commands();
    h.lease.handle_keepalive_ok(Duration::ZERO, h.now).unwrap();
    assert_eq!(
        h.events(),
        [LeaseEvent::Lost {
            id: Some(id()),
            reason: LostReason::Expired
        }]
    );
    assert!(matches!(h.lease.state(), LeaseState::Lost { .. }));
}

#[test]
fn a_failed_keepalive_is_retried_at_once_then_with_growing_backoff_until_the_deadline() {
    let mut h = Harness::active(no_jitter());
    h.fire(); // 15 s: keep-alive
    let _ = h.commands();
    h.lease.handle_keepalive_failed(h.now).unwrap();
    let mut attempts = Vec::new();
    loop {
        for cmd in h.commands() {
            assert_eq!(cmd, LeaseCommand::KeepAlive { id: id() });
            attempts.push(h.since_t0(h.now));
            h.lease.handle_keepalive_failed(h.now).unwrap();
        }
        if h.fire().is_none() || !h.lease.is_held() {
            break;
        }
    }
    // Immediate, then 0.5, 1, 2, 4 s, then capped at half the time left.
    let expected = [15.0, 15.5, 16.5, 18.5, 22.5, 26.25, 28.125];
    assert!(attempts.len() > expected.len(), "attempts {attempts:?}");
    for (got, want) in attempts.iter().zip(expected) {
        assert!(approx(*got, want), "attempts {attempts:?}");
    }
    assert!(attempts.iter().all(|&a| a < 30.0));
    let gaps: Vec<f64> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|&g| g >= 0.05 - 1e-9),
        "never below the 50 ms floor: {gaps:?}"
    );
    assert_eq!(h.now, h.secs(30.0));
    assert_eq!(
        h.events(),
        [LeaseEvent::Lost {
            id: Some(id()),
            reason: LostReason::DeadlinePassed
        }]
    );
}

#[test]
fn renewal_recovers_when_a_retry_succeeds() {
    let mut h = Harness::active(no_jitter());
    h.fire();
    let _ = h.commands();
    h.lease.handle_keepalive_failed(h.now).unwrap(); // retry at once
    let _ = h.commands();
    h.lease.handle_keepalive_failed(h.now).unwrap(); // retry in 0.5 s
    assert!(matches!(
        h.lease.state(),
        LeaseState::Renewing { attempt: 1, .. }
    ));
    assert_eq!(h.fire(), Some(h.secs(15.5)));
    assert_eq!(h.commands(), [LeaseCommand::KeepAlive { id: id() }]);
    h.lease.handle_keepalive_ok(TTL, h.secs(15.6)).unwrap();
    assert!(matches!(h.lease.state(), LeaseState::Active { .. }));
    assert_eq!(h.lease.deadline(), Some(h.secs(45.5)));
    assert_eq!(h.lease.poll_timeout(), Some(h.secs(15.6 + 14.95)));
    assert!(h.events().is_empty());
}

#[test]
fn an_unanswered_renewal_attempt_counts_as_failed_and_is_repeated() {
    let mut h = Harness::active(no_jitter());
    h.fire();
    let _ = h.commands();
    h.lease.handle_keepalive_failed(h.secs(15.0)).unwrap();
    assert_eq!(h.commands().len(), 1, "attempt 1 at once");
    // No answer: the next attempt goes out at half the time left.
    assert_eq!(h.fire(), Some(h.secs(22.5)));
    assert_eq!(h.commands(), [LeaseCommand::KeepAlive { id: id() }]);
    assert!(matches!(
        h.lease.state(),
        LeaseState::Renewing { attempt: 2, .. }
    ));
    // The late answer to attempt 1 proves the lease alive from 15 s.
    h.lease.handle_keepalive_ok(TTL, h.secs(23.0)).unwrap();
    assert_eq!(h.lease.deadline(), Some(h.secs(45.0)));
    // The answer to attempt 2 moves it further.
    h.lease.handle_keepalive_ok(TTL, h.secs(23.0)).unwrap();
    assert_eq!(h.lease.deadline(), Some(h.secs(52.5)));
}

#[test]
fn a_spent_retry_budget_loses_the_lease_before_the_deadline() {
    let mut h = Harness::active(LeaseConfig {
        max_renew_attempts: Some(3),
        ..no_jitter()
    });
    h.fire();
    let _ = h.commands();
    h.lease.handle_keepalive_failed(h.now).unwrap();
    let mut sent = 0;
    while h.lease.is_held() {
        sent += h.commands().len();
        h.lease.handle_keepalive_failed(h.now).unwrap();
        if h.lease.is_held() {
            h.fire();
        }
    }
    assert_eq!(sent, 3);
    assert!(h.now < h.secs(30.0));
    assert_eq!(
        h.events(),
        [LeaseEvent::Lost {
            id: Some(id()),
            reason: LostReason::RetryBudgetSpent { attempts: 3 }
        }]
    );
}

#[test]
fn grant_failures_back_off_from_one_second_and_give_up_after_the_grant_timeout() {
    let mut h = Harness::new(no_jitter(), 1);
    let mut grants = Vec::new();
    loop {
        for cmd in h.commands() {
            assert_eq!(cmd, LeaseCommand::Grant { ttl: TTL });
            grants.push(h.since_t0(h.now));
            h.lease.handle_grant_failed(h.now).unwrap();
        }
        if h.fire().is_none() {
            break;
        }
    }
    assert_eq!(grants, [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0]);
    assert_eq!(h.now, h.secs(120.0));
    assert_eq!(
        h.events(),
        [LeaseEvent::Lost {
            id: None,
            reason: LostReason::GrantFailed { attempts: 8 }
        }]
    );
}

#[test]
fn a_grant_that_never_answers_gives_up_and_a_late_lease_is_revoked() {
    let mut h = Harness::new(LeaseConfig::default(), 1);
    let _ = h.commands();
    assert_eq!(h.fire(), Some(h.secs(120.0)));
    assert_eq!(
        h.events(),
        [LeaseEvent::Lost {
            id: None,
            reason: LostReason::GrantFailed { attempts: 1 }
        }]
    );
    h.lease.handle_granted(id(), TTL, h.secs(121.0)).unwrap();
    assert_eq!(h.commands(), [LeaseCommand::Revoke { id: id() }]);
    assert!(h.events().is_empty(), "no Granted after Lost");
    h.lease.handle_revoked(h.now).unwrap();
    assert!(matches!(h.lease.state(), LeaseState::Lost { .. }));
}

#[test]
fn a_grant_with_ttl_zero_is_rejected_and_retried() {
    let mut h = Harness::new(no_jitter(), 1);
    let _ = h.commands();
    assert_eq!(
        h.lease.handle_granted(id(), Duration::ZERO, h.t0),
        Err(LeaseInputError::ZeroTtl { id: id() })
    );
    assert_eq!(h.fire(), Some(h.secs(1.0)));
    assert_eq!(h.commands(), [LeaseCommand::Grant { ttl: TTL }]);
}

#[test]
fn shutdown_revokes_the_lease_and_reports_it() {
    let mut h = Harness::active(LeaseConfig::default());
    h.lease.shutdown();
    assert_eq!(h.commands(), [LeaseCommand::Revoke { id: id() }]);
    assert_eq!(h.lease.poll_timeout(), None);
    h.lease.handle_revoked(h.now).unwrap();
    assert_eq!(
        h.events(),
        [LeaseEvent::Revoked {
            id: Some(id()),
            confirmed: true
        }]
    );
    h.lease.shutdown();
    assert!(h.commands().is_empty(), "shutdown is idempotent");
    assert!(h.events().is_empty());
}

#[test]
fn a_failed_revoke_still_finishes_shutdown_unconfirmed() {
    let mut h = Harness::active(LeaseConfig::default());
    h.lease.shutdown();
    let _ = h.commands();
    h.lease.handle_revoke_failed(h.now).unwrap();
    assert_eq!(
        h.events(),
        [LeaseEvent::Revoked {
            id: Some(id()),
            confirmed: false
        }]
    );
}

#[test]
fn shutdown_while_a_grant_is_in_flight_revokes_the_lease_when_it_arrives() {
    let mut h = Harness::new(LeaseConfig::default(), 1);
    let _ = h.commands();
    h.lease.shutdown();
    assert!(h.commands().is_empty());
    h.lease.handle_granted(id(), TTL, h.secs(0.1)).unwrap();
    assert_eq!(h.commands(), [LeaseCommand::Revoke { id: id() }]);
    h.lease.handle_revoked(h.secs(0.2)).unwrap();
    assert_eq!(
        h.events(),
        [LeaseEvent::Revoked {
            id: Some(id()),
            confirmed: true
        }]
    );
}

#[test]
fn shutdown_while_waiting_to_retry_a_grant_finishes_at_once() {
    let mut h = Harness::new(LeaseConfig::default(), 1);
    let _ = h.commands();
    h.lease.handle_grant_failed(h.t0).unwrap();
    h.lease.shutdown();
    assert!(h.commands().is_empty());
    assert_eq!(
        h.events(),
        [LeaseEvent::Revoked {
            id: None,
            confirmed: true
        }]
    );
    assert_eq!(h.lease.poll_timeout(), None);
}

#[test]
fn shutdown_after_loss_still_tries_to_revoke() {
    let mut h = Harness::active(LeaseConfig::default());
    h.lease.handle_timeout(h.secs(30.0));
    let _ = h.events();
    h.lease.shutdown();
    assert_eq!(h.commands(), [LeaseCommand::Revoke { id: id() }]);
    h.lease.handle_revoke_failed(h.now).unwrap();
    assert_eq!(
        h.events(),
        [LeaseEvent::Revoked {
            id: Some(id()),
            confirmed: false
        }]
    );
}

#[test]
fn late_keepalive_answers_after_shutdown_are_ignored_but_stray_ones_are_errors() {
    let mut h = Harness::active(LeaseConfig::default());
    assert_eq!(
        h.lease.handle_keepalive_ok(TTL, h.now),
        Err(LeaseInputError::Unexpected {
            input: "keep-alive ok",
            state: "Active"
        })
    );
    h.fire();
    let _ = h.commands();
    h.lease.shutdown();
    assert_eq!(h.lease.handle_keepalive_ok(TTL, h.now), Ok(()));
    assert!(matches!(h.lease.state(), LeaseState::Revoking { .. }));
    assert!(h.lease.handle_keepalive_ok(TTL, h.now).is_err());
    assert_eq!(
        LeaseInputError::Unexpected {
            input: "granted",
            state: "Active"
        }
        .to_string(),
        "lease: granted is not expected in state Active (no such command is outstanding)"
    );
}

/// The times of the renewal attempts under constant failure.
fn failure_schedule(seed: u64) -> Vec<Duration> {
    let mut h = Harness::active_seeded(LeaseConfig::default(), seed);
    h.now = h.secs(1.0);
    h.lease.handle_keepalive_failed(h.now).unwrap();
    let mut times = Vec::new();
    while h.lease.is_held() {
        for _ in h.commands() {
            times.push(h.now - h.t0);
            h.lease.handle_keepalive_failed(h.now).unwrap();
        }
        h.fire();
    }
    times
}

#[test]
fn backoff_jitter_is_reproducible_by_seed_and_stays_in_its_band() {
    let a = failure_schedule(42);
    assert_eq!(a, failure_schedule(42));
    assert_ne!(a, failure_schedule(43));
    // Without jitter the gaps would be 0.5, 1, 2, 4 s; with it each lies in [d/2, d].
    let gaps: Vec<f64> = a.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    assert!(gaps.len() >= 4, "attempts {a:?}");
    for (gap, d) in gaps.iter().zip([0.5, 1.0, 2.0, 4.0]) {
        assert!(
            *gap >= d / 2.0 - 1e-9 && *gap <= d + 1e-9,
            "gap {gap} outside [{}, {d}]",
            d / 2.0
        );
    }
    assert!(a.iter().all(|t| *t < TTL));
}

#[test]
fn invalid_configurations_are_rejected_with_the_field_named() {
    let bad = |c: LeaseConfig| Lease::new(c, 0, Instant::now()).unwrap_err();
    assert_eq!(
        bad(LeaseConfig {
            ttl: Duration::from_millis(1500),
            ..LeaseConfig::default()
        }),
        LeaseConfigError::TtlNotWholeSeconds {
            ttl: Duration::from_millis(1500)
        }
    );
    assert!(matches!(
        bad(LeaseConfig {
            ttl: Duration::ZERO,
            ..LeaseConfig::default()
        }),
        LeaseConfigError::TtlNotWholeSeconds { .. }
    ));
    assert!(matches!(
        bad(LeaseConfig {
            ttl: Duration::from_secs(9_000_000_001),
            ..LeaseConfig::default()
        }),
        LeaseConfigError::TtlTooLarge { .. }
    ));
    let err = bad(LeaseConfig {
        keepalive_divisor: 1,
        ..LeaseConfig::default()
    });
    assert_eq!(
        err.to_string(),
        "lease keepalive_divisor 1 must be at least 2"
    );
    let err = bad(LeaseConfig {
        min_keepalive_interval: Duration::ZERO,
        ..LeaseConfig::default()
    });
    assert_eq!(
        err.to_string(),
        "lease min_keepalive_interval must not be zero"
    );
    assert!(matches!(
        bad(LeaseConfig {
            max_renew_attempts: Some(0),
            ..LeaseConfig::default()
        }),
        LeaseConfigError::Zero {
            field: "max_renew_attempts"
        }
    ));
    assert!(matches!(
        bad(LeaseConfig {
            renew_backoff: Backoff {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(5),
                min: Duration::from_millis(50),
            },
            ..LeaseConfig::default()
        }),
        LeaseConfigError::BackoffOrder {
            field: "renew_backoff",
            ..
        }
    ));
}
