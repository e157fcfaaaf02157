//! `PeerTable`: every state × every input of the module doc's table, the backoff, the dial
//! that never reports, stale reports, and random operation sequences with the fuzz target's
//! invariants.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use dynrt_core::peers::{
    Acquire, DialError, DialTicket, PeerConfig, PeerState, PeerTable, PooledConn,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Link(Rc<Cell<bool>>);

impl Link {
    fn new() -> Self {
        Self(Rc::new(Cell::new(true)))
    }
}

impl PooledConn for Link {
    fn is_usable(&self) -> bool {
        self.0.get()
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);
const INITIAL: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(2);

fn addr() -> SocketAddr {
    "127.0.0.1:9000".parse().expect("an address")
}

fn table() -> PeerTable<Link> {
    PeerTable::new(PeerConfig::new(TIMEOUT).with_backoff(INITIAL, MAX))
}

fn dial(table: &mut PeerTable<Link>, now: Instant) -> DialTicket {
    match table.acquire(addr(), now) {
        Acquire::Dial(ticket) => ticket,
        other => panic!("expected a dial, got {other:?}"),
    }
}

/// What an acquire answered, without its borrow.
#[derive(Debug, PartialEq)]
enum Answer {
    Ready,
    Dial,
    Wait(Instant),
    Failed(u32, Instant),
}

fn answer(table: &mut PeerTable<Link>, now: Instant, keep: &mut Vec<DialTicket>) -> Answer {
    match table.acquire(addr(), now) {
        Acquire::Ready(_) => Answer::Ready,
        Acquire::Dial(ticket) => {
            keep.push(ticket);
            Answer::Dial
        }
        Acquire::Wait { until, .. } => Answer::Wait(until),
        Acquire::Failed(failure) => Answer::Failed(failure.failures, failure.retry_at),
    }
}

#[test]
fn idle_dials_then_waiters_wait_until_the_deadline() {
    let t0 = Instant::now();
    let mut peers = table();
    let ticket = dial(&mut peers, t0);
    assert_eq!(ticket.deadline(), t0 + TIMEOUT);
    let mut keep = Vec::new();
    assert_eq!(
        answer(&mut peers, t0 + Duration::from_secs(1), &mut keep),
        Answer::Wait(t0 + TIMEOUT)
    );
    assert!(keep.is_empty());
    assert!(peers.handle_connected(ticket, Link::new(), t0));
    assert_eq!(answer(&mut peers, t0, &mut keep), Answer::Ready);
}

#[test]
fn the_waiters_of_a_failed_dial_share_its_failure() {
    let t0 = Instant::now();
    let mut peers = table();
    let ticket = dial(&mut peers, t0);
    assert!(peers.handle_failed(ticket, "connection refused", t0));
    let mut keep = Vec::new();
    for _ in 0..3 {
        assert_eq!(
            answer(&mut peers, t0, &mut keep),
            Answer::Failed(1, t0 + INITIAL)
        );
    }
    match peers.state(addr()) {
        Some(PeerState::Failed(failure)) => {
            assert_eq!(
                failure.error,
                DialError::Failed("connection refused".into())
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(keep.is_empty(), "nobody dials during the backoff");
}

#[test]
fn the_backoff_doubles_up_to_its_cap_and_a_connection_resets_it() {
    let mut now = Instant::now();
    let mut peers = table();
    let mut expected = Vec::new();
    let mut seen = Vec::new();
    for failures in 1..=7u32 {
        let ticket = dial(&mut peers, now);
        assert!(peers.handle_failed(ticket, "refused", now));
        let Some(PeerState::Failed(failure)) = peers.state(addr()) else {
            panic!("failed")
        };
        assert_eq!(failure.failures, failures);
        seen.push(failure.retry_at - now);
        expected.push((INITIAL * 2u32.pow(failures - 1)).min(MAX));
        now = failure.retry_at;
    }
    assert_eq!(seen, expected);
    let ticket = dial(&mut peers, now);
    assert!(peers.handle_connected(ticket, Link::new(), now));
    // The connection dies; the next failure starts the backoff afresh.
    let Some(PeerState::Connected { conn, .. }) = peers.state(addr()) else {
        panic!("connected")
    };
    conn.0.set(false);
    let ticket = dial(&mut peers, now);
    assert!(peers.handle_failed(ticket, "refused", now));
    assert!(matches!(
        peers.state(addr()),
        Some(PeerState::Failed(f)) if f.failures == 1 && f.retry_at == now + INITIAL
    ));
}

/// The place where a dropped dial hung an address: a dial whose future is never polled again
/// (and never dropped) reports nothing. The waiters wait only until its deadline; then the
/// table records the dial as timed out, they fail with that, and after the backoff a call dials
/// again. The stuck dial's late report changes nothing.
#[test]
fn a_dial_that_never_reports_cannot_hang_its_address() {
    let t0 = Instant::now();
    let mut peers = table();
    let stuck = dial(&mut peers, t0);
    let mut keep = Vec::new();
    let Answer::Wait(until) = answer(&mut peers, t0, &mut keep) else {
        panic!("waits")
    };
    assert_eq!(
        answer(&mut peers, until, &mut keep),
        Answer::Failed(1, until + INITIAL)
    );
    assert!(matches!(
        peers.state(addr()),
        Some(PeerState::Failed(f)) if f.error == DialError::TimedOut(TIMEOUT)
    ));
    assert_eq!(answer(&mut peers, until + INITIAL, &mut keep), Answer::Dial);
    let current = keep.pop().expect("a new dial");
    assert!(!peers.handle_connected(stuck, Link::new(), until + INITIAL));
    assert!(matches!(
        peers.state(addr()),
        Some(PeerState::Dialing { dial, .. }) if *dial == current.dial()
    ));
    assert!(peers.handle_connected(current, Link::new(), until + INITIAL));
}

#[test]
fn handle_timeout_expires_dials_and_prunes_old_failures_and_dead_connections() {
    let t0 = Instant::now();
    let mut peers = table();
    let ticket = dial(&mut peers, t0);
    assert_eq!(peers.poll_timeout(), Some(t0 + TIMEOUT));
    peers.handle_timeout(t0 + TIMEOUT);
    assert!(matches!(peers.state(addr()), Some(PeerState::Failed(_))));
    let next = peers.poll_timeout().expect("the failure's expiry");
    assert!(next > t0 + TIMEOUT, "busy loop");
    peers.handle_timeout(next);
    assert!(peers.state(addr()).is_none(), "an old failure is forgotten");
    assert_eq!(peers.poll_timeout(), None);
    assert!(!peers.handle_failed(ticket, "late", next), "stale");
    assert!(peers.is_empty());

    let ticket = dial(&mut peers, next);
    let link = Link::new();
    assert!(peers.handle_connected(ticket, link.clone(), next));
    peers.handle_timeout(next);
    assert_eq!(peers.len(), 1, "a usable connection stays");
    link.0.set(false);
    peers.handle_timeout(next);
    assert!(peers.is_empty(), "a dead connection goes");
}

#[test]
fn an_abandoned_dial_frees_its_address_for_the_next_call() {
    let t0 = Instant::now();
    let mut peers = table();
    let ticket = dial(&mut peers, t0);
    assert!(peers.handle_abandoned(ticket, t0));
    let next = dial(&mut peers, t0);
    assert!(peers.handle_connected(next, Link::new(), t0));
}

#[test]
fn forget_during_a_dial_makes_its_report_stale() {
    let t0 = Instant::now();
    let mut peers = table();
    let ticket = dial(&mut peers, t0);
    peers.forget(addr());
    let newer = dial(&mut peers, t0);
    assert!(
        !peers.handle_connected(ticket, Link::new(), t0),
        "not pooled"
    );
    assert!(peers.handle_connected(newer, Link::new(), t0));
}

/// The states of the table, each built from a fresh table at `t0`.
fn in_each_state(t0: Instant) -> Vec<(&'static str, PeerTable<Link>, Option<DialTicket>)> {
    let mut all = Vec::new();
    all.push(("idle", table(), None));
    let mut t = table();
    let ticket = dial(&mut t, t0);
    all.push(("dialing", t, Some(ticket)));
    let mut t = table();
    let ticket = dial(&mut t, t0);
    assert!(t.handle_connected(ticket, Link::new(), t0));
    all.push(("connected", t, None));
    let mut t = table();
    let ticket = dial(&mut t, t0);
    let link = Link::new();
    assert!(t.handle_connected(ticket, link.clone(), t0));
    link.0.set(false);
    all.push(("connected, unusable", t, None));
    let mut t = table();
    let ticket = dial(&mut t, t0);
    assert!(t.handle_failed(ticket, "refused", t0));
    all.push(("failed", t, None));
    all
}

#[derive(Debug, Clone, Copy)]
enum Input {
    Acquire(Duration),
    Connected,
    Failed,
    Abandoned,
    StaleReport,
    Forget,
    Timeout(Duration),
}

const INPUTS: [Input; 10] = [
    Input::Acquire(Duration::ZERO),
    Input::Acquire(INITIAL),
    Input::Acquire(TIMEOUT),
    Input::Connected,
    Input::Failed,
    Input::Abandoned,
    Input::StaleReport,
    Input::Forget,
    Input::Timeout(Duration::ZERO),
    Input::Timeout(TIMEOUT),
];

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Idle,
    Dialing,
    Connected,
    Unusable,
    Failed(u32),
}

fn kind(table: &PeerTable<Link>) -> Kind {
    match table.state(addr()) {
        None => Kind::Idle,
        Some(PeerState::Dialing { .. }) => Kind::Dialing,
        Some(PeerState::Connected { conn, .. }) if conn.is_usable() => Kind::Connected,
        Some(PeerState::Connected { .. }) => Kind::Unusable,
        Some(PeerState::Failed(f)) => Kind::Failed(f.failures),
    }
}

/// Every state × every input: the next state is the module doc's table. A report needs the
/// state's own ticket, so reports to a state without a dial in flight use a stale ticket and
/// must change nothing.
#[test]
fn every_state_answers_every_input_as_the_table_says() {
    let t0 = Instant::now();
    for input in INPUTS {
        for (name, mut peers, ticket) in in_each_state(t0) {
            let before = kind(&peers);
            // A ticket of a later dial of another table: stale everywhere here.
            let stale = {
                let mut other = table();
                let first = dial(&mut other, t0);
                assert!(other.handle_abandoned(first, t0));
                dial(&mut other, t0)
            };
            let mut keep = Vec::new();
            let context = format!("{name} × {input:?}");
            let answered = match input {
                Input::Acquire(after) => Some(answer(&mut peers, t0 + after, &mut keep)),
                Input::Connected => {
                    let applied = match ticket {
                        Some(t) => peers.handle_connected(t, Link::new(), t0),
                        None => peers.handle_connected(stale, Link::new(), t0),
                    };
                    assert_eq!(applied, before == Kind::Dialing, "{context}");
                    None
                }
                Input::Failed => {
                    let applied = match ticket {
                        Some(t) => peers.handle_failed(t, "refused", t0),
                        None => peers.handle_failed(stale, "refused", t0),
                    };
                    assert_eq!(applied, before == Kind::Dialing, "{context}");
                    None
                }
                Input::Abandoned => {
                    let applied = match ticket {
                        Some(t) => peers.handle_abandoned(t, t0),
                        None => peers.handle_abandoned(stale, t0),
                    };
                    assert_eq!(applied, before == Kind::Dialing, "{context}");
                    None
                }
                Input::StaleReport => {
                    assert!(!peers.handle_failed(stale, "late", t0), "{context}");
                    None
                }
                Input::Forget => {
                    peers.forget(addr());
                    None
                }
                Input::Timeout(after) => {
                    peers.handle_timeout(t0 + after);
                    if let Some(next) = peers.poll_timeout() {
                        assert!(next > t0 + after, "{context}: busy loop");
                    }
                    None
                }
            };
            let after = kind(&peers);
            let expected = match (&before, input) {
                (_, Input::Forget) => (Kind::Idle, None),
                (Kind::Idle, Input::Acquire(_)) => (Kind::Dialing, Some(Answer::Dial)),
                (Kind::Dialing, Input::Acquire(d)) if d < TIMEOUT => {
                    (Kind::Dialing, Some(Answer::Wait(t0 + TIMEOUT)))
                }
                (Kind::Dialing, Input::Acquire(d)) => {
                    (Kind::Failed(1), Some(Answer::Failed(1, t0 + d + INITIAL)))
                }
                (Kind::Dialing, Input::Connected) => (Kind::Connected, None),
                (Kind::Dialing, Input::Failed) => (Kind::Failed(1), None),
                (Kind::Dialing, Input::Abandoned) => (Kind::Idle, None),
                (Kind::Dialing, Input::Timeout(d)) if d >= TIMEOUT => (Kind::Failed(1), None),
                (Kind::Connected, Input::Acquire(_)) => (Kind::Connected, Some(Answer::Ready)),
                (Kind::Unusable, Input::Acquire(_)) => (Kind::Dialing, Some(Answer::Dial)),
                (Kind::Unusable, Input::Timeout(_)) => (Kind::Idle, None),
                (Kind::Failed(n), Input::Acquire(d)) if d < INITIAL => {
                    (Kind::Failed(*n), Some(Answer::Failed(*n, t0 + INITIAL)))
                }
                (Kind::Failed(_), Input::Acquire(_)) => (Kind::Dialing, Some(Answer::Dial)),
                (Kind::Failed(_), Input::Timeout(d)) if t0 + d >= t0 + INITIAL + MAX => {
                    (Kind::Idle, None)
                }
                (same, _) => (same.clone(), None),
            };
            assert_eq!((after, answered), expected, "{context}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random calls, reports (late, stale, duplicated), forgets, dying connections and time:
    /// the fuzz target's invariants hold after every step.
    #[test]
    fn random_operations_keep_the_invariants(ops in proptest::collection::vec(any::<u8>(), 0..400)) {
        dynrt_core::peers::fuzzing::peer_ops(&ops, Instant::now());
    }
}

/// With no backoff configured, a failed or timed-out dial is followed at once by a new one.
#[test]
fn without_a_backoff_the_next_call_dials_at_once() {
    let t0 = Instant::now();
    let mut peers = PeerTable::<Link>::new(
        PeerConfig::new(TIMEOUT).with_backoff(Duration::ZERO, Duration::ZERO),
    );
    let ticket = dial(&mut peers, t0);
    assert!(peers.handle_failed(ticket, "refused", t0));
    let stuck = dial(&mut peers, t0);
    let next = dial(&mut peers, t0 + TIMEOUT);
    assert_ne!(
        stuck.dial(),
        next.dial(),
        "the stuck dial timed out and a new one went out"
    );
    assert!(!peers.handle_abandoned(stuck, t0 + TIMEOUT));
    assert!(peers.handle_connected(next, Link::new(), t0 + TIMEOUT));
}
