//! `Router`: each policy's distribution, down/restore, direct, busy threshold, errors.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::num::NonZeroU32;

use dynrt_core::names::InstanceId;
use dynrt_core::router::{Candidates, Policy, RouteError, Router};
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

fn router(seed: u64) -> Router {
    Router::new(EP, seed)
}

/// A router whose round-robin position is `id` (its first choice is random, so tests of the
/// order fix it by a choice among `[id]` alone).
fn after(id: u64) -> Router {
    let id = i(id);
    let mut r = router(1);
    assert_eq!(r.round_robin(Candidates::new(&[id])), Ok(id));
    r
}

fn busy(threshold: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(threshold)
}

fn round_robin_n(r: &mut Router, c: Candidates<'_>, n: usize) -> Vec<InstanceId> {
    (0..n).map(|_| r.round_robin(c).unwrap()).collect()
}

#[test]
fn round_robin_cycles_in_ascending_order() {
    let ids = ids_of([0x10, 0x20, 0x30]);
    let mut r = after(0x30);
    assert_eq!(
        round_robin_n(&mut r, Candidates::new(&ids), 7),
        ids_of([0x10, 0x20, 0x30, 0x10, 0x20, 0x30, 0x10])
    );
}

#[test]
fn round_robin_order_does_not_depend_on_list_order() {
    let ids = ids_of([0x30, 0x10, 0x20]);
    let mut r = after(0x30);
    assert_eq!(
        round_robin_n(&mut r, Candidates::new(&ids), 4),
        ids_of([0x10, 0x20, 0x30, 0x10])
    );
}

#[test]
fn round_robin_keeps_its_place_when_instances_come_and_go() {
    let mut r = after(9);
    assert_eq!(r.round_robin(Candidates::new(&ids_of([1, 5, 9]))), Ok(i(1)));
    assert_eq!(r.round_robin(Candidates::new(&ids_of([1, 5, 9]))), Ok(i(5)));
    // 7 appears between 5 and 9: it is next, nobody is skipped.
    assert_eq!(
        r.round_robin(Candidates::new(&ids_of([1, 5, 7, 9]))),
        Ok(i(7))
    );
    // 9 disappears while it was next: wrap to the lowest.
    assert_eq!(r.round_robin(Candidates::new(&ids_of([1, 5, 7]))), Ok(i(1)));
    // The previous choice itself disappears: continue above it.
    assert_eq!(r.round_robin(Candidates::new(&ids_of([5, 7]))), Ok(i(5)));
    assert_eq!(r.round_robin(Candidates::new(&ids_of([7]))), Ok(i(7)));
    assert_eq!(r.round_robin(Candidates::new(&ids_of([7]))), Ok(i(7)));
}

#[test]
fn round_robin_skips_instances_reported_down_until_restored() {
    let ids = ids_of([1, 2, 3]);
    let mut down = BTreeSet::from(ids_of([2]));
    let mut r = after(3);
    assert_eq!(
        round_robin_n(&mut r, Candidates::new(&ids).down(&down), 4),
        ids_of([1, 3, 1, 3])
    );
    down.remove(&i(2));
    // Restored, 2 rejoins at its place in the order (after 3 comes 1, then 2).
    assert_eq!(
        round_robin_n(&mut r, Candidates::new(&ids).down(&down), 4),
        ids_of([1, 2, 3, 1])
    );
}

#[test]
fn round_robin_starts_at_a_seeded_random_instance() {
    // Issue 9 item 5: every new process called the lowest id. One router per process, each
    // with its own seed: the first choices cover every instance, about evenly.
    let ids = ids_of([0x10, 0x20, 0x30, 0x40]);
    let mut firsts = BTreeMap::new();
    for seed in 0..400 {
        let first = router(seed).round_robin(Candidates::new(&ids)).unwrap();
        *firsts.entry(first).or_insert(0u32) += 1;
    }
    assert_eq!(firsts.keys().copied().collect::<Vec<_>>(), ids);
    for (id, n) in firsts {
        // Expected 100 each; 50..150 is more than 5 standard deviations wide.
        assert!((50..150).contains(&n), "{id:x} first {n} times of 400");
    }
    // The same seed, the same start.
    let first = |seed| router(seed).round_robin(Candidates::new(&ids)).unwrap();
    assert_eq!(first(5), first(5));
}

#[test]
fn round_robin_first_choice_skips_down_instances() {
    let down = BTreeSet::from(ids_of([1, 3]));
    for seed in 0..50 {
        let mut r = router(seed);
        assert_eq!(
            r.round_robin(Candidates::new(&ids_of([1, 2, 3])).down(&down)),
            Ok(i(2))
        );
    }
}

#[test]
fn random_is_deterministic_by_seed() {
    let ids = ids_of([1, 2, 3, 4, 5, 6, 7, 8]);
    let draw = |seed| {
        let mut r = router(seed);
        (0..64)
            .map(|_| r.random(Candidates::new(&ids)).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(42), draw(42));
    assert_ne!(draw(42), draw(43));
}

#[test]
fn random_covers_every_instance_about_evenly() {
    let ids: Vec<InstanceId> = (100..110).map(InstanceId).collect();
    let mut r = router(7);
    let mut counts = BTreeMap::new();
    let draws = 10_000;
    for _ in 0..draws {
        *counts
            .entry(r.random(Candidates::new(&ids)).unwrap())
            .or_insert(0u32) += 1;
    }
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), ids);
    for (id, n) in counts {
        // Expected 1000 each; 800..1200 is more than 6 standard deviations wide.
        assert!(
            (800..1200).contains(&n),
            "instance {id} drawn {n} times of {draws}"
        );
    }
}

#[test]
fn random_skips_down_and_busy_instances() {
    let ids = ids_of([1, 2, 3, 4]);
    let down = HashSet::from(ids_of([1]));
    let load = HashMap::from([(i(3), 2)]);
    let mut r = router(3);
    r.set_busy_threshold(busy(2));
    let c = Candidates::new(&ids).down(&down).in_flight(&load);
    let chosen: BTreeSet<_> = (0..200).map(|_| r.random(c).unwrap()).collect();
    assert_eq!(chosen, BTreeSet::from(ids_of([2, 4])));
}

#[test]
fn direct_returns_a_discovered_instance() {
    let r = router(1);
    assert_eq!(
        r.direct(Candidates::new(&ids_of([1, 0xab])), i(0xab)),
        Ok(i(0xab))
    );
}

#[test]
fn direct_to_a_missing_instance_names_it_in_hex() {
    let r = router(1);
    let err = r
        .direct(Candidates::new(&ids_of([1, 2])), i(0xdead_beef))
        .unwrap_err();
    assert_eq!(
        err,
        RouteError::NotAvailable {
            endpoint: EP.to_owned(),
            id: i(0xdead_beef)
        }
    );
    assert_eq!(
        err.to_string(),
        "instance deadbeef is not available for endpoint ns/backend/generate"
    );
    assert!(r.direct(Candidates::new(&[]), i(1)).is_err());
}

#[test]
fn direct_reaches_an_instance_reported_down_as_dynamo_does() {
    let down = BTreeSet::from(ids_of([2]));
    let r = router(1);
    assert_eq!(
        r.direct(Candidates::new(&ids_of([1, 2])).down(&down), i(2)),
        Ok(i(2))
    );
}

#[test]
fn direct_refuses_a_busy_instance() {
    let load = BTreeMap::from([(i(2), 5)]);
    let mut r = router(1);
    r.set_busy_threshold(busy(5));
    let ids = ids_of([1, 2]);
    let c = Candidates::new(&ids).in_flight(&load);
    let err = r.direct(c, i(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "instance 2 of endpoint ns/backend/generate is busy (5 requests in flight, threshold 5)"
    );
    assert_eq!(r.direct(c, i(1)), Ok(i(1)));
}

#[test]
fn busy_threshold_skips_instances_at_or_above_it() {
    let ids = ids_of([1, 2, 3]);
    let load = |id: InstanceId| if id == i(2) { 4 } else { 3 };
    let mut r = after(3);
    r.set_busy_threshold(busy(4));
    assert_eq!(r.busy_threshold(), busy(4));
    assert_eq!(
        round_robin_n(&mut r, Candidates::new(&ids).in_flight(&load), 4),
        ids_of([1, 3, 1, 3])
    );
    // Without a threshold the counts are not read at all.
    r.set_busy_threshold(None);
    assert_eq!(
        round_robin_n(&mut r, Candidates::new(&ids).in_flight(&load), 3),
        ids_of([1, 2, 3])
    );
}

#[test]
fn all_busy_is_its_own_error() {
    let ids = ids_of([1, 2, 3]);
    let down = BTreeSet::from(ids_of([3]));
    let load = |_| 9;
    let mut r = router(1);
    r.set_busy_threshold(busy(9));
    let c = Candidates::new(&ids).down(&down).in_flight(&load);
    let expected = RouteError::AllBusy {
        endpoint: EP.to_owned(),
        instances: 2,
        threshold: 9,
    };
    assert_eq!(r.round_robin(c), Err(expected.clone()));
    assert_eq!(r.random(c), Err(expected.clone()));
    assert_eq!(
        expected.to_string(),
        "all 2 instances of endpoint ns/backend/generate are busy (9 requests in flight each), retry later"
    );
}

#[test]
fn no_instances_errors_name_the_endpoint() {
    let mut r = router(1);
    let err = r.round_robin(Candidates::new(&[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no instances for endpoint ns/backend/generate"
    );
    assert_eq!(r.random(Candidates::new(&[])), Err(err));
}

#[test]
fn everything_down_is_no_instances_and_says_so() {
    let mut r = router(1);
    r.set_busy_threshold(busy(1));
    let down = |_| true;
    let err = r
        .round_robin(Candidates::new(&ids_of([1, 2])).down(&down))
        .unwrap_err();
    assert_eq!(
        err,
        RouteError::NoInstances {
            endpoint: EP.to_owned(),
            down: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "no instances for endpoint ns/backend/generate (all 2 instances reported down)"
    );
    assert_eq!(
        r.random(Candidates::new(&ids_of([1])).down(&down))
            .unwrap_err()
            .to_string(),
        "no instances for endpoint ns/backend/generate (1 instance reported down)"
    );
}

#[test]
fn a_failed_round_robin_does_not_move_the_position() {
    let mut r = after(3);
    assert_eq!(r.round_robin(Candidates::new(&ids_of([1, 2, 3]))), Ok(i(1)));
    assert!(r.round_robin(Candidates::new(&[])).is_err());
    assert_eq!(r.round_robin(Candidates::new(&ids_of([1, 2, 3]))), Ok(i(2)));
}

#[test]
fn choose_dispatches_on_the_policy() {
    let ids = ids_of([4, 8]);
    let mut a = router(9);
    let mut b = router(9);
    let c = Candidates::new(&ids);
    assert_eq!(a.choose(Policy::RoundRobin, c), b.round_robin(c));
    assert_eq!(a.choose(Policy::Random, c), b.random(c));
    assert_eq!(a.choose(Policy::Direct(i(8)), c), Ok(i(8)));
    assert_eq!(a.endpoint(), EP);
}

proptest! {
    /// Whatever the set, the down marks and the loads, a choice is always a usable instance,
    /// and an error only when no instance is usable.
    #[test]
    fn choices_are_always_usable(
        ids in proptest::collection::btree_set(0u64..32, 0..12),
        down in proptest::collection::btree_set(0u64..32, 0..12),
        loads in proptest::collection::btree_map(0u64..32, 0u32..4, 0..12),
        threshold in 0u32..4,
        seed: u64,
        ops in proptest::collection::vec(0u8..3, 1..40),
    ) {
        let ids: Vec<_> = ids.into_iter().map(InstanceId).collect();
        let down: BTreeSet<_> = down.into_iter().map(InstanceId).collect();
        let loads: BTreeMap<_, _> = loads.into_iter().map(|(id, n)| (InstanceId(id), n)).collect();
        let mut r = Router::new(EP, seed);
        r.set_busy_threshold(NonZeroU32::new(threshold));
        let c = Candidates::new(&ids).down(&down).in_flight(&loads);
        let usable = |id: &InstanceId| {
            !down.contains(id) && (threshold == 0 || loads.get(id).copied().unwrap_or(0) < threshold)
        };
        let any_usable = ids.iter().any(usable);
        for op in ops {
            let result = match op {
                0 => r.round_robin(c),
                1 => r.random(c),
                _ => r.direct(c, i(seed % 32)),
            };
            match result {
                Ok(id) if op < 2 => prop_assert!(ids.contains(&id) && usable(&id)),
                Ok(id) => prop_assert!(ids.contains(&id)),
                Err(_) if op < 2 => prop_assert!(!any_usable),
                Err(_) => {}
            }
        }
    }

    /// With a fixed set, k full cycles of round-robin choose every usable instance k times.
    #[test]
    fn round_robin_is_fair(ids in proptest::collection::btree_set(any::<u64>(), 1..10), k in 1usize..5) {
        let ids: Vec<_> = ids.into_iter().map(InstanceId).collect();
        let mut r = Router::new(EP, 0);
        let picks = round_robin_n(&mut r, Candidates::new(&ids), ids.len() * k);
        // From wherever the seeded first choice fell, the ascending cycle.
        let start = ids.iter().position(|&id| id == picks[0]).expect("a discovered id");
        let expected: Vec<_> = ids.iter().copied().cycle().skip(start).take(ids.len() * k).collect();
        prop_assert_eq!(picks, expected);
    }
}
