//! `Attempts`: which outcomes mean "never accepted", the retry budget, no instance offered a
//! request twice, direct calls never moved, and an accepted request never retried.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use dynrt_core::names::InstanceId;
use dynrt_core::router::{
    Attempts, Candidates, Delivery, Outcome, Policy, Refusal, RetryConfig, Router, Verdict,
};
use dynrt_core::wire::mux::ErrorKind;
use proptest::prelude::*;

const EP: &str = "ns/backend/generate";

/// An instance id from its number.
fn i(id: u64) -> InstanceId {
    InstanceId(id)
}

/// Instance ids from their numbers.
fn ids_of<const N: usize>(raw: [u64; N]) -> [InstanceId; N] {
    raw.map(InstanceId)
}

fn budget(n: u32) -> RetryConfig {
    RetryConfig::new(NonZeroU32::new(n).expect("non-zero"))
}

#[test]
fn outcomes_before_the_instance_took_the_request_are_refusals() {
    let refused = [
        (Outcome::ConnectFailed, Refusal::Unreachable),
        (Outcome::ClosedBeforeSent, Refusal::ClosedBeforeSent),
        (
            Outcome::EndedBeforeData(ErrorKind::WORKER_UNAVAILABLE),
            Refusal::Unavailable,
        ),
        (
            Outcome::EndedBeforeData(ErrorKind::WORKER_OVERLOADED),
            Refusal::Overloaded,
        ),
    ];
    for (outcome, refusal) in refused {
        assert_eq!(
            outcome.delivery(),
            Delivery::Refused(refusal),
            "{outcome:?}"
        );
    }
}

#[test]
fn anything_the_instance_may_have_acted_on_is_accepted() {
    let accepted = [
        Outcome::Answered,
        Outcome::ClosedAfterSent,
        Outcome::EndedBeforeData(ErrorKind::DISCONNECTED),
        Outcome::EndedBeforeData(ErrorKind::INVALID_REQUEST),
        Outcome::EndedBeforeData(ErrorKind::INTERNAL),
        Outcome::EndedBeforeData(ErrorKind::CANCELLED),
        Outcome::EndedBeforeData(ErrorKind::RESOURCE_EXHAUSTED),
        Outcome::EndedBeforeData(ErrorKind(0xbeef)),
    ];
    for outcome in accepted {
        assert_eq!(outcome.delivery(), Delivery::Accepted, "{outcome:?}");
    }
}

#[test]
fn only_an_overloaded_instance_is_not_reported_down() {
    assert!(Refusal::Unreachable.reports_down());
    assert!(Refusal::ClosedBeforeSent.reports_down());
    assert!(Refusal::Unavailable.reports_down());
    assert!(!Refusal::Overloaded.reports_down());
}

#[test]
fn a_refused_connect_moves_the_request_to_the_other_instance() {
    let ids = ids_of([1, 2]);
    for seed in 0..20 {
        let mut router = Router::new(EP, seed);
        let mut attempts = Attempts::new(Policy::RoundRobin, RetryConfig::default());
        let first = attempts.choose(&mut router, Candidates::new(&ids)).unwrap();
        assert_eq!(
            attempts.handle_outcome(Outcome::ConnectFailed),
            Verdict::Retry(Refusal::Unreachable)
        );
        let second = attempts.choose(&mut router, Candidates::new(&ids)).unwrap();
        assert_ne!(first, second);
        assert_eq!(
            attempts.handle_outcome(Outcome::Answered),
            Verdict::Accepted
        );
        assert_eq!(attempts.tried(), [first, second]);
    }
}

#[test]
fn the_budget_bounds_the_attempts() {
    let ids: Vec<InstanceId> = (1..=10).map(InstanceId).collect();
    let mut router = Router::new(EP, 3);
    let mut attempts = Attempts::new(Policy::Random, budget(3));
    for _ in 0..2 {
        attempts.choose(&mut router, Candidates::new(&ids)).unwrap();
        assert!(matches!(
            attempts.handle_outcome(Outcome::ClosedBeforeSent),
            Verdict::Retry(_)
        ));
    }
    attempts.choose(&mut router, Candidates::new(&ids)).unwrap();
    assert_eq!(
        attempts.handle_outcome(Outcome::ConnectFailed),
        Verdict::GiveUp(Refusal::Unreachable)
    );
    assert_eq!(attempts.attempts(), 3);
}

#[test]
fn never_retrying_gives_up_at_the_first_refusal() {
    let mut router = Router::new(EP, 3);
    let mut attempts = Attempts::new(Policy::RoundRobin, RetryConfig::never());
    attempts
        .choose(&mut router, Candidates::new(&ids_of([1, 2])))
        .unwrap();
    assert_eq!(
        attempts.handle_outcome(Outcome::EndedBeforeData(ErrorKind::WORKER_OVERLOADED)),
        Verdict::GiveUp(Refusal::Overloaded)
    );
}

#[test]
fn a_direct_call_is_never_moved_to_another_instance() {
    let mut router = Router::new(EP, 3);
    let mut attempts = Attempts::new(Policy::Direct(i(2)), RetryConfig::default());
    assert_eq!(
        attempts.choose(&mut router, Candidates::new(&ids_of([1, 2]))),
        Ok(i(2))
    );
    assert_eq!(
        attempts.handle_outcome(Outcome::ConnectFailed),
        Verdict::GiveUp(Refusal::Unreachable)
    );
}

#[test]
fn when_every_instance_refused_choosing_fails() {
    let ids = ids_of([1, 2]);
    let mut router = Router::new(EP, 3);
    let mut attempts = Attempts::new(Policy::RoundRobin, budget(5));
    for _ in 0..2 {
        attempts.choose(&mut router, Candidates::new(&ids)).unwrap();
        assert!(matches!(
            attempts.handle_outcome(Outcome::ConnectFailed),
            Verdict::Retry(_)
        ));
    }
    assert!(attempts.choose(&mut router, Candidates::new(&ids)).is_err());
}

#[test]
fn retries_respect_the_callers_down_marks() {
    let ids = ids_of([1, 2, 3]);
    let down = BTreeSet::from(ids_of([3]));
    let mut router = Router::new(EP, 11);
    let mut attempts = Attempts::new(Policy::RoundRobin, budget(5));
    let mut seen = BTreeSet::new();
    while let Ok(id) = attempts.choose(&mut router, Candidates::new(&ids).down(&down)) {
        seen.insert(id);
        assert!(matches!(
            attempts.handle_outcome(Outcome::ConnectFailed),
            Verdict::Retry(_)
        ));
    }
    assert_eq!(seen, BTreeSet::from(ids_of([1, 2])));
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::ConnectFailed),
        Just(Outcome::ClosedBeforeSent),
        Just(Outcome::ClosedAfterSent),
        Just(Outcome::Answered),
        any::<u16>().prop_map(|k| Outcome::EndedBeforeData(ErrorKind(k))),
        Just(Outcome::EndedBeforeData(ErrorKind::WORKER_UNAVAILABLE)),
        Just(Outcome::EndedBeforeData(ErrorKind::WORKER_OVERLOADED)),
    ]
}

proptest! {
    /// Whatever the instances answer: no instance is offered the request twice, the attempts
    /// stay within the budget, an accepted request ends the attempts, and a refusal is retried
    /// exactly when budget and policy allow.
    #[test]
    fn attempts_are_bounded_distinct_and_stop_at_acceptance(
        ids in proptest::collection::btree_set(0u64..16, 1..8),
        max in 1u32..6,
        seed: u64,
        random in any::<bool>(),
        outcomes in proptest::collection::vec(outcome(), 1..10),
    ) {
        let ids: Vec<_> = ids.into_iter().map(InstanceId).collect();
        let policy = if random { Policy::Random } else { Policy::RoundRobin };
        let mut router = Router::new(EP, seed);
        let mut attempts = Attempts::new(policy, budget(max));
        for outcome in outcomes {
            let Ok(id) = attempts.choose(&mut router, Candidates::new(&ids)) else {
                // Only when every instance was tried.
                prop_assert_eq!(attempts.tried().len(), ids.len());
                break;
            };
            prop_assert!(ids.contains(&id));
            match attempts.handle_outcome(outcome) {
                Verdict::Accepted => {
                    prop_assert_eq!(outcome.delivery(), Delivery::Accepted);
                    break;
                }
                Verdict::Retry(refusal) => {
                    prop_assert_eq!(outcome.delivery(), Delivery::Refused(refusal));
                    prop_assert!(attempts.attempts() < max);
                }
                Verdict::GiveUp(refusal) => {
                    prop_assert_eq!(outcome.delivery(), Delivery::Refused(refusal));
                    prop_assert_eq!(attempts.attempts(), max);
                    break;
                }
            }
        }
        let distinct: BTreeSet<_> = attempts.tried().iter().collect();
        prop_assert_eq!(distinct.len(), attempts.tried().len());
        prop_assert!(attempts.attempts() <= max);
    }
}
