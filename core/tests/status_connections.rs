//! The status server's connection table: every state × input, and random operation sequences
//! against a reference model (never above the cap, never sheds a busy connection, always sheds
//! the one idle longest, refuses only when all are busy).

use std::num::NonZeroUsize;

use dynrt_core::status::connections::{Admission, ConnectionId, ConnectionTable};
use proptest::prelude::*;

fn table(cap: usize) -> ConnectionTable {
    ConnectionTable::new(NonZeroUsize::new(cap).expect("cap > 0"))
}

fn served(admission: Admission) -> ConnectionId {
    match admission {
        Admission::Serve { id } => id,
        other => panic!("expected Serve, got {other:?}"),
    }
}

#[test]
fn below_the_cap_every_connection_is_served_idle() {
    let mut t = table(3);
    let ids: Vec<_> = (0..3).map(|_| served(t.admit())).collect();
    assert_eq!(t.open(), 3);
    assert_eq!(t.busy(), 0);
    assert!(ids.iter().all(|id| t.is_open(*id) && !t.is_busy(*id)));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in accept order");
}

#[test]
fn at_the_cap_the_connection_idle_longest_is_shed_for_the_new_one() {
    let mut t = table(3);
    let [a, b, c] = [served(t.admit()), served(t.admit()), served(t.admit())];
    // `a` served a request after `b` and `c` were accepted: `b` is now idle longest.
    t.request_started(a);
    t.request_finished(a);
    let Admission::ServeShedding { id: d, shed } = t.admit() else {
        panic!("at the cap with idle connections: shed one");
    };
    assert_eq!(shed, b);
    assert!(!t.is_open(b) && t.is_open(d));
    assert_eq!(t.open(), 3);
    assert!(matches!(t.admit(), Admission::ServeShedding { shed, .. } if shed == c));
    assert!(matches!(t.admit(), Admission::ServeShedding { shed, .. } if shed == a));
    assert_eq!(t.shed_total(), 3);
}

#[test]
fn a_busy_connection_is_never_shed_and_all_busy_refuses() {
    let mut t = table(2);
    let [a, b] = [served(t.admit()), served(t.admit())];
    t.request_started(a);
    let Admission::ServeShedding { id: c, shed } = t.admit() else {
        panic!("shed b")
    };
    assert_eq!(shed, b);
    t.request_started(c);
    assert_eq!(t.busy(), 2);
    assert_eq!(t.admit(), Admission::Refuse);
    assert_eq!(t.admit(), Admission::Refuse);
    assert_eq!(t.refused_total(), 2);
    assert!(t.is_open(a) && t.is_open(c));
    // A finished request makes its connection sheddable again.
    t.request_finished(c);
    assert!(matches!(t.admit(), Admission::ServeShedding { shed, .. } if shed == c));
}

#[test]
fn closing_frees_the_slot_whatever_the_state() {
    let mut t = table(2);
    let [a, b] = [served(t.admit()), served(t.admit())];
    t.request_started(b);
    t.closed(a); // idle
    t.closed(b); // busy
    assert_eq!(t.open(), 0);
    assert_eq!(t.busy(), 0);
    served(t.admit());
    served(t.admit());
}

#[test]
fn reports_about_shed_or_closed_connections_change_nothing() {
    let mut t = table(1);
    let a = served(t.admit());
    let Admission::ServeShedding { id: b, shed } = t.admit() else {
        panic!("shed a")
    };
    assert_eq!(shed, a);
    // The shed connection's task still reports as it winds down.
    t.request_started(a);
    t.request_finished(a);
    t.closed(a);
    assert!(!t.is_open(a));
    assert_eq!(t.open(), 1);
    assert!(t.is_open(b) && !t.is_busy(b));
    // Double reports on a live one are harmless too.
    t.request_started(b);
    t.request_started(b);
    assert_eq!(t.busy(), 1);
    t.request_finished(b);
    t.request_finished(b);
    assert_eq!(t.busy(), 0);
    t.closed(b);
    t.closed(b);
    assert_eq!(t.open(), 0);
}

#[derive(Debug, Clone)]
enum Op {
    Admit,
    Start(usize),
    Finish(usize),
    Close(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Admit),
        2 => (0usize..64).prop_map(Op::Start),
        2 => (0usize..64).prop_map(Op::Finish),
        1 => (0usize..64).prop_map(Op::Close),
    ]
}

/// The reference: open connections with their state, idle ones with the step they became idle.
#[derive(Default)]
struct Model {
    open: Vec<(ConnectionId, Option<u64>)>,
    step: u64,
}

proptest! {
    #[test]
    fn the_table_matches_the_model(cap in 1usize..6, ops in prop::collection::vec(op(), 0..200)) {
        let mut t = table(cap);
        let mut model = Model::default();
        let mut seen: Vec<ConnectionId> = Vec::new();
        for op in ops {
            model.step += 1;
            match op {
                Op::Admit => {
                    let longest_idle = model
                        .open
                        .iter()
                        .filter_map(|(id, idle)| idle.map(|since| (since, *id)))
                        .min();
                    match t.admit() {
                        Admission::Serve { id } => {
                            prop_assert!(model.open.len() < cap);
                            model.open.push((id, Some(model.step)));
                            seen.push(id);
                        }
                        Admission::ServeShedding { id, shed } => {
                            prop_assert_eq!(model.open.len(), cap);
                            prop_assert_eq!(Some(shed), longest_idle.map(|(_, id)| id));
                            model.open.retain(|(open, _)| *open != shed);
                            model.open.push((id, Some(model.step)));
                            seen.push(id);
                        }
                        Admission::Refuse => {
                            prop_assert_eq!(model.open.len(), cap);
                            prop_assert!(longest_idle.is_none(), "refused with an idle connection");
                        }
                    }
                }
                Op::Start(i) | Op::Finish(i) | Op::Close(i) if seen.is_empty() => { let _ = i; }
                Op::Start(i) => {
                    let id = seen[i % seen.len()];
                    t.request_started(id);
                    if let Some(entry) = model.open.iter_mut().find(|(open, _)| *open == id) {
                        entry.1 = None;
                    }
                }
                Op::Finish(i) => {
                    let id = seen[i % seen.len()];
                    t.request_finished(id);
                    if let Some(entry) = model.open.iter_mut().find(|(open, _)| *open == id)
                        && entry.1.is_none()
                    {
                        entry.1 = Some(model.step);
                    }
                }
                Op::Close(i) => {
                    let id = seen[i % seen.len()];
                    t.closed(id);
                    model.open.retain(|(open, _)| *open != id);
                }
            }
            prop_assert!(t.open() <= cap);
            prop_assert_eq!(t.open(), model.open.len());
            prop_assert_eq!(t.busy(), model.open.iter().filter(|(_, idle)| idle.is_none()).count());
            for (id, idle) in &model.open {
                prop_assert!(t.is_open(*id));
                prop_assert_eq!(t.is_busy(*id), idle.is_none());
            }
        }
    }
}
