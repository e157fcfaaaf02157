//! Fuzz support, not a stable API: [`peer_ops`] drives a [`PeerTable`] with an operation
//! sequence decoded from fuzzer bytes — calls, dial outcomes in any order (late, duplicated,
//! for forgotten addresses), connections dying, time passing — and checks after every step:
//!
//! - at most one dial per address is current, and only its report changes the address;
//! - a call never waits past a deadline that has already passed, so no address hangs;
//! - a pooled connection is handed out only while usable; a failure only before its
//!   `retry_at`, with the count of failures in a row (reset by a connection);
//! - `poll_timeout` is never later than a deadline in the table, and after
//!   `handle_timeout(t)` it is later than `t` (the busy-loop guard).

use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Acquire, DialTicket, PeerConfig, PeerState, PeerTable, PooledConn};

/// A connection whose usability the operations switch off.
#[derive(Debug, Clone)]
struct Link(Rc<Cell<bool>>);

impl PooledConn for Link {
    fn is_usable(&self) -> bool {
        self.0.get()
    }
}

const ADDRS: u16 = 4;

fn addr(byte: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 9000 + u16::from(byte) % ADDRS))
}

/// Runs the operations encoded in `data` against one table, at virtual time from `start`.
pub fn peer_ops(data: &[u8], start: Instant) {
    let config = PeerConfig::new(Duration::from_millis(500))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(300));
    let mut table = PeerTable::new(config);
    let mut now = start;
    let mut tickets: Vec<DialTicket> = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    for pair in data.chunks(2) {
        let (op, arg) = (pair[0], pair.get(1).copied().unwrap_or(0));
        let before = snapshot(&table);
        match op % 8 {
            0 => {
                let a = addr(arg);
                let before_state = table.state(a).cloned();
                match table.acquire(a, now) {
                    Acquire::Ready(link) => assert!(link.is_usable(), "an unusable link lent"),
                    Acquire::Dial(ticket) => {
                        assert!(ticket.deadline() > now, "a dial born expired");
                        // Failures in a row carry over from a failure, and only from one.
                        let carried = match before_state {
                            Some(PeerState::Failed(failure)) => failure.failures,
                            _ => 0,
                        };
                        assert!(
                            matches!(table.state(a), Some(PeerState::Dialing { failures, .. }) if *failures == carried),
                            "failures in a row not carried into the dial"
                        );
                        tickets.push(ticket);
                    }
                    Acquire::Wait { until, dial } => {
                        assert!(until > now, "told to wait for an expired {dial}");
                    }
                    Acquire::Failed(failure) => {
                        assert!(failure.retry_at > now, "a failure past its retry_at");
                        assert!(failure.failures >= 1, "a failure counts itself");
                    }
                }
                check_one_current_dial(&table, &tickets, a);
            }
            1..=3 if !tickets.is_empty() => {
                let ticket = tickets.remove(usize::from(arg) % tickets.len());
                let a = ticket.addr();
                let current = matches!(
                    table.state(a),
                    Some(PeerState::Dialing { dial, deadline, .. })
                        if *dial == ticket.dial() && *deadline > now
                );
                let applied = match op % 8 {
                    1 => {
                        let link = Link(Rc::new(Cell::new(true)));
                        links.push(link.clone());
                        table.handle_connected(ticket, link, now)
                    }
                    2 => table.handle_failed(ticket, "refused", now),
                    _ => table.handle_abandoned(ticket, now),
                };
                if applied && op % 8 == 2 {
                    let dialing_failures = match before.iter().find(|(b, _)| *b == a) {
                        Some((_, PeerState::Dialing { failures, .. })) => *failures,
                        other => panic!("applied a report to {other:?}"),
                    };
                    let expected = dialing_failures + 1;
                    assert!(
                        matches!(table.state(a), Some(PeerState::Failed(f))
                            if f.failures == expected && f.retry_at == now + config.backoff(expected)),
                        "a failed dial is not recorded with its backoff"
                    );
                }
                assert_eq!(applied, current, "only the current dial's report applies");
                if !applied {
                    // A stale report changes nothing but an expiry that was due anyway.
                    let after = snapshot(&table);
                    if before.iter().all(|(_, s)| !is_expired_dial(s, now)) {
                        assert_eq!(before, after, "a stale report changed the table");
                    }
                }
            }
            4 => table.forget(addr(arg)),
            5 => now += Duration::from_millis(u64::from(arg) * 4),
            6 => {
                table.handle_timeout(now);
                if let Some(next) = table.poll_timeout() {
                    assert!(next > now, "busy loop: next deadline {next:?} at {now:?}");
                }
            }
            7 if !links.is_empty() => {
                let index = usize::from(arg) % links.len();
                links[index].0.set(false);
            }
            _ => {}
        }
        check_timeout_bound(&table);
    }
}

type Snapshot = Vec<(SocketAddr, PeerState<bool>)>;

fn snapshot(table: &PeerTable<Link>) -> Snapshot {
    let mut all: Snapshot = (0..ADDRS)
        .map(|i| SocketAddr::from((Ipv4Addr::LOCALHOST, 9000 + i)))
        .filter_map(|a| {
            let state = match table.state(a)? {
                PeerState::Dialing {
                    dial,
                    deadline,
                    failures,
                } => PeerState::Dialing {
                    dial: *dial,
                    deadline: *deadline,
                    failures: *failures,
                },
                PeerState::Connected { conn, dial } => PeerState::Connected {
                    conn: conn.is_usable(),
                    dial: *dial,
                },
                PeerState::Failed(failure) => PeerState::Failed(failure.clone()),
            };
            Some((a, state))
        })
        .collect();
    all.sort_by_key(|(a, _)| *a);
    all
}

fn is_expired_dial(state: &PeerState<bool>, now: Instant) -> bool {
    matches!(state, PeerState::Dialing { deadline, .. } if *deadline <= now)
}

/// Of the tickets handed out for `a`, at most one names the dial in flight.
fn check_one_current_dial(table: &PeerTable<Link>, tickets: &[DialTicket], a: SocketAddr) {
    let current = tickets
        .iter()
        .filter(|t| {
            t.addr() == a
                && matches!(table.state(a), Some(PeerState::Dialing { dial, .. }) if *dial == t.dial())
        })
        .count();
    assert!(current <= 1, "{current} current dials for {a}");
}

/// `poll_timeout` is no later than any deadline in the table.
fn check_timeout_bound(table: &PeerTable<Link>) {
    let keep = table.config().backoff_max;
    for i in 0..ADDRS {
        let a = SocketAddr::from((Ipv4Addr::LOCALHOST, 9000 + i));
        let deadline = match table.state(a) {
            Some(PeerState::Dialing { deadline, .. }) => *deadline,
            Some(PeerState::Failed(failure)) => failure.retry_at + keep,
            _ => continue,
        };
        let next = table.poll_timeout();
        assert!(
            next.is_some_and(|t| t <= deadline),
            "poll_timeout {next:?} is later than {a}'s deadline {deadline:?}"
        );
    }
}
