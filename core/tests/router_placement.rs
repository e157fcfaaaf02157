//! `Placement`: which outcomes mean "never accepted", the retry budget, no instance offered a
//! request twice, direct calls never moved, an accepted request never retried, which
//! instances are reported down, and every state × every input of the transition table.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use dynrt_core::names::InstanceId;
use dynrt_core::router::{
    Candidates, ChooseError, Delivery, Outcome, Placement, PlacementEvent, PlacementState, Policy,
    Refusal, RetryConfig, Router, Verdict,
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
        let mut placement = Placement::new(Policy::RoundRobin, RetryConfig::default());
        let first = placement
            .choose(&mut router, Candidates::new(&ids))
            .unwrap();
        assert_eq!(
            placement.handle_outcome(Outcome::ConnectFailed).unwrap(),
            Verdict::Retry(Refusal::Unreachable)
        );
        let second = placement
            .choose(&mut router, Candidates::new(&ids))
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(
            placement.handle_outcome(Outcome::Answered).unwrap(),
            Verdict::Accepted
        );
        assert_eq!(placement.tried(), [first, second]);
    }
}

#[test]
fn the_budget_bounds_the_attempts() {
    let ids: Vec<InstanceId> = (1..=10).map(InstanceId).collect();
    let mut router = Router::new(EP, 3);
    let mut placement = Placement::new(Policy::Random, budget(3));
    for _ in 0..2 {
        placement
            .choose(&mut router, Candidates::new(&ids))
            .unwrap();
        assert!(matches!(
            placement.handle_outcome(Outcome::ClosedBeforeSent).unwrap(),
            Verdict::Retry(_)
        ));
    }
    placement
        .choose(&mut router, Candidates::new(&ids))
        .unwrap();
    assert_eq!(
        placement.handle_outcome(Outcome::ConnectFailed).unwrap(),
        Verdict::GiveUp(Refusal::Unreachable)
    );
    assert_eq!(placement.attempts(), 3);
}

#[test]
fn never_retrying_gives_up_at_the_first_refusal() {
    let mut router = Router::new(EP, 3);
    let mut placement = Placement::new(Policy::RoundRobin, RetryConfig::never());
    placement
        .choose(&mut router, Candidates::new(&ids_of([1, 2])))
        .unwrap();
    assert_eq!(
        placement
            .handle_outcome(Outcome::EndedBeforeData(ErrorKind::WORKER_OVERLOADED))
            .unwrap(),
        Verdict::GiveUp(Refusal::Overloaded)
    );
}

#[test]
fn a_direct_call_is_never_moved_to_another_instance() {
    let mut router = Router::new(EP, 3);
    let mut placement = Placement::new(Policy::Direct(i(2)), RetryConfig::default());
    assert_eq!(
        placement.choose(&mut router, Candidates::new(&ids_of([1, 2]))),
        Ok(i(2))
    );
    assert_eq!(
        placement.handle_outcome(Outcome::ConnectFailed).unwrap(),
        Verdict::GiveUp(Refusal::Unreachable)
    );
}

#[test]
fn when_every_instance_refused_choosing_fails() {
    let ids = ids_of([1, 2]);
    let mut router = Router::new(EP, 3);
    let mut placement = Placement::new(Policy::RoundRobin, budget(5));
    for _ in 0..2 {
        placement
            .choose(&mut router, Candidates::new(&ids))
            .unwrap();
        assert!(matches!(
            placement.handle_outcome(Outcome::ConnectFailed).unwrap(),
            Verdict::Retry(_)
        ));
    }
    let last = *placement.tried().last().unwrap();
    assert!(matches!(
        placement.choose(&mut router, Candidates::new(&ids)),
        Err(ChooseError::Exhausted {
            instance,
            refusal: Refusal::Unreachable,
            ..
        }) if instance == last
    ));
    assert_eq!(
        placement.state(),
        PlacementState::GaveUp {
            last_refusal: Some((last, Refusal::Unreachable))
        }
    );
}

#[test]
fn retries_respect_the_callers_down_marks() {
    let ids = ids_of([1, 2, 3]);
    let down = BTreeSet::from(ids_of([3]));
    let mut router = Router::new(EP, 11);
    let mut placement = Placement::new(Policy::RoundRobin, budget(5));
    let mut seen = BTreeSet::new();
    while let Ok(id) = placement.choose(&mut router, Candidates::new(&ids).down(&down)) {
        seen.insert(id);
        assert!(matches!(
            placement.handle_outcome(Outcome::ConnectFailed).unwrap(),
            Verdict::Retry(_)
        ));
    }
    assert_eq!(seen, BTreeSet::from(ids_of([1, 2])));
}

fn events(placement: &mut Placement) -> Vec<PlacementEvent> {
    std::iter::from_fn(|| placement.poll_event()).collect()
}

/// The inputs of the transition table, applied to a request in some state.
#[derive(Debug, Clone, Copy)]
enum Input {
    ChooseFinds,
    ChooseFindsNone,
    Accepted,
    Refused,
    Overloaded,
    AnswerFailed { transport: bool },
}

const INPUTS: [Input; 7] = [
    Input::ChooseFinds,
    Input::ChooseFindsNone,
    Input::Accepted,
    Input::Refused,
    Input::Overloaded,
    Input::AnswerFailed { transport: true },
    Input::AnswerFailed { transport: false },
];

/// A round-robin request over `[1, 2]` with budget 2, brought to each state.
fn in_each_state() -> Vec<(&'static str, Placement, Router)> {
    let ids = ids_of([1, 2]);
    let fresh = || {
        (
            Placement::new(Policy::RoundRobin, budget(2)),
            Router::new(EP, 5),
        )
    };
    let mut all = Vec::new();
    let (d, r) = fresh();
    all.push(("choosing, first", d, r));
    let (mut d, mut r) = fresh();
    d.choose(&mut r, Candidates::new(&ids)).unwrap();
    all.push(("offered", d.clone(), r.clone()));
    let _ = d.handle_outcome(Outcome::ConnectFailed).unwrap();
    let _ = events(&mut d);
    all.push(("choosing, after a refusal", d.clone(), r.clone()));
    let (mut a, mut ra) = fresh();
    a.choose(&mut ra, Candidates::new(&ids)).unwrap();
    let _ = a.handle_outcome(Outcome::Answered).unwrap();
    all.push(("accepted", a, ra));
    d.choose(&mut r, Candidates::new(&ids)).unwrap();
    let _ = d.handle_outcome(Outcome::ConnectFailed).unwrap();
    let _ = events(&mut d);
    all.push(("gave up", d, r));
    all
}

/// Every state × every input: the next state and the events are the module doc's table, and
/// an input that is not legal in a state changes nothing.
#[test]
fn every_state_answers_every_input_as_the_table_says() {
    let ids = ids_of([1, 2]);
    for (name, placement, router) in in_each_state() {
        for input in INPUTS {
            let (mut d, mut r) = (placement.clone(), router.clone());
            let before = d.state();
            let legal = match input {
                Input::ChooseFinds => d.choose(&mut r, Candidates::new(&ids)).is_ok(),
                Input::ChooseFindsNone => {
                    // Everything is down: nothing can be chosen.
                    let all_down = |_: InstanceId| true;
                    match d.choose(&mut r, Candidates::new(&ids).down(&all_down)) {
                        Err(ChooseError::Misuse(_)) => false,
                        Err(_) => true,
                        Ok(id) => panic!("{name}: chose {id:?} with everything down"),
                    }
                }
                Input::Accepted => d.handle_outcome(Outcome::Answered).is_ok(),
                Input::Refused => d.handle_outcome(Outcome::ClosedBeforeSent).is_ok(),
                Input::Overloaded => d
                    .handle_outcome(Outcome::EndedBeforeData(ErrorKind::WORKER_OVERLOADED))
                    .is_ok(),
                Input::AnswerFailed { transport } => d.handle_answer_failed(transport).is_ok(),
            };
            let after = d.state();
            let events = events(&mut d);
            let context = format!("{name} × {input:?}: {before:?} → {after:?}, {events:?}");
            match (before, input) {
                (PlacementState::Choosing { .. }, Input::ChooseFinds) => {
                    assert!(legal, "{context}");
                    assert!(matches!(after, PlacementState::Offered { .. }), "{context}");
                    assert!(events.is_empty(), "{context}");
                }
                (PlacementState::Choosing { last_refusal }, Input::ChooseFindsNone) => {
                    assert!(legal, "{context}");
                    assert_eq!(after, PlacementState::GaveUp { last_refusal }, "{context}");
                    assert!(events.is_empty(), "{context}");
                }
                (PlacementState::Offered { instance }, Input::Accepted) => {
                    assert!(legal, "{context}");
                    assert_eq!(after, PlacementState::Accepted { instance }, "{context}");
                    assert!(events.is_empty(), "{context}");
                }
                (PlacementState::Offered { instance }, Input::Refused | Input::Overloaded) => {
                    assert!(legal, "{context}");
                    let refusal = if matches!(input, Input::Refused) {
                        Refusal::ClosedBeforeSent
                    } else {
                        Refusal::Overloaded
                    };
                    // Budget 2: the first refusal retries, the second gives up.
                    let last_refusal = Some((instance, refusal));
                    let expected = if d.attempts() < 2 {
                        PlacementState::Choosing { last_refusal }
                    } else {
                        PlacementState::GaveUp { last_refusal }
                    };
                    assert_eq!(after, expected, "{context}");
                    let down = refusal
                        .reports_down()
                        .then_some(PlacementEvent::ReportDown(instance));
                    assert_eq!(events, down.into_iter().collect::<Vec<_>>(), "{context}");
                }
                (PlacementState::Accepted { instance }, Input::AnswerFailed { transport }) => {
                    assert!(legal, "{context}");
                    assert_eq!(after, before, "{context}");
                    let down = transport.then_some(PlacementEvent::ReportDown(instance));
                    assert_eq!(events, down.into_iter().collect::<Vec<_>>(), "{context}");
                }
                _ => {
                    assert!(!legal, "{context}: should be refused as a misuse");
                    assert_eq!(after, before, "{context}");
                    assert!(events.is_empty(), "{context}");
                }
            }
        }
    }
}

#[test]
fn a_refused_instance_is_reported_down_unless_it_was_only_busy() {
    let ids = ids_of([1, 2, 3]);
    let mut router = Router::new(EP, 1);
    let mut placement = Placement::new(Policy::Random, budget(3));
    let busy = placement
        .choose(&mut router, Candidates::new(&ids))
        .unwrap();
    let _ = placement
        .handle_outcome(Outcome::EndedBeforeData(ErrorKind::WORKER_OVERLOADED))
        .unwrap();
    assert_eq!(events(&mut placement), vec![]);
    let draining = placement
        .choose(&mut router, Candidates::new(&ids))
        .unwrap();
    let _ = placement
        .handle_outcome(Outcome::EndedBeforeData(ErrorKind::WORKER_UNAVAILABLE))
        .unwrap();
    assert_eq!(
        events(&mut placement),
        vec![PlacementEvent::ReportDown(draining)]
    );
    let taker = placement
        .choose(&mut router, Candidates::new(&ids))
        .unwrap();
    assert_eq!(
        placement.handle_outcome(Outcome::ClosedAfterSent),
        Ok(Verdict::Accepted)
    );
    // The connection died after the request was written: the request stays with the instance,
    // which is reported down for the transport failure.
    placement.handle_answer_failed(true).unwrap();
    assert_eq!(
        events(&mut placement),
        vec![PlacementEvent::ReportDown(taker)]
    );
    assert_eq!(placement.tried(), [busy, draining, taker]);
}

#[test]
fn a_direct_call_reaches_an_instance_reported_down() {
    let ids = ids_of([1, 2]);
    let down = BTreeSet::from(ids_of([2]));
    let mut router = Router::new(EP, 1);
    let mut placement = Placement::new(Policy::Direct(i(2)), RetryConfig::default());
    assert_eq!(
        placement.choose(&mut router, Candidates::new(&ids).down(&down)),
        Ok(i(2))
    );
    // A routed call skips it.
    let mut routed = Placement::new(Policy::RoundRobin, RetryConfig::default());
    for _ in 0..4 {
        assert_eq!(
            routed.choose(&mut router, Candidates::new(&ids).down(&down)),
            Ok(i(1))
        );
        routed = Placement::new(Policy::RoundRobin, RetryConfig::default());
    }
}

#[test]
fn with_nothing_discovered_the_route_error_is_the_callers() {
    let mut router = Router::new(EP, 1);
    let mut placement = Placement::new(Policy::RoundRobin, RetryConfig::default());
    assert!(matches!(
        placement.choose(&mut router, Candidates::new(&[])),
        Err(ChooseError::NoRoute(_))
    ));
    assert_eq!(
        placement.state(),
        PlacementState::GaveUp { last_refusal: None }
    );
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
    /// stay within the budget, an accepted request ends the attempts, a refusal is retried
    /// exactly when budget and policy allow, and exactly the refusing instances that are not
    /// merely busy are reported down.
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
        let mut placement = Placement::new(policy, budget(max));
        for outcome in outcomes {
            let Ok(id) = placement.choose(&mut router, Candidates::new(&ids)) else {
                // Only when every instance was tried.
                prop_assert_eq!(placement.tried().len(), ids.len());
                break;
            };
            prop_assert!(ids.contains(&id));
            let verdict = placement.handle_outcome(outcome).unwrap();
            let reported: Vec<_> = std::iter::from_fn(|| placement.poll_event()).collect();
            let down = match outcome.delivery() {
                Delivery::Refused(refusal) if refusal.reports_down() => vec![PlacementEvent::ReportDown(id)],
                _ => vec![],
            };
            prop_assert_eq!(reported, down);
            match verdict {
                Verdict::Accepted => {
                    prop_assert_eq!(outcome.delivery(), Delivery::Accepted);
                    break;
                }
                Verdict::Retry(refusal) => {
                    prop_assert_eq!(outcome.delivery(), Delivery::Refused(refusal));
                    prop_assert!(placement.attempts() < max);
                }
                Verdict::GiveUp(refusal) => {
                    prop_assert_eq!(outcome.delivery(), Delivery::Refused(refusal));
                    prop_assert_eq!(placement.attempts(), max);
                    break;
                }
            }
        }
        let distinct: BTreeSet<_> = placement.tried().iter().collect();
        prop_assert_eq!(distinct.len(), placement.tried().len());
        prop_assert!(placement.attempts() <= max);
    }
}
