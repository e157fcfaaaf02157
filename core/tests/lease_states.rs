//! Every lease state × every input: the result and the next state, as a table.

use std::time::{Duration, Instant};

use dynrt_core::kv::LeaseId;
use dynrt_core::lease::{Lease, LeaseCommand, LeaseConfig};

const TTL: Duration = Duration::from_secs(30);

fn id() -> LeaseId {
    LeaseId::new(0xabc).unwrap()
}

fn drain_commands(lease: &mut Lease) -> Vec<LeaseCommand> {
    std::iter::from_fn(|| lease.poll_command()).collect()
}

/// Builds the lease in the named state; returns it and the current virtual time.
fn build(state: &str, t0: Instant) -> (Lease, Instant) {
    let config = LeaseConfig {
        jitter: false,
        ..LeaseConfig::default()
    };
    let mut lease = Lease::new(config, 1, t0).unwrap();
    let mut now = t0;
    let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
    match state {
        "GrantingInFlight" => {}
        "GrantingBackoff" => lease.handle_grant_failed(now).unwrap(),
        "Active" => lease.handle_granted(id(), TTL, now).unwrap(),
        "ActiveWaiting" => {
            lease.handle_granted(id(), TTL, now).unwrap();
            now = s(15.0);
            lease.handle_timeout(now);
        }
        "RenewingInFlight" => {
            lease.handle_granted(id(), TTL, now).unwrap();
            now = s(1.0);
            lease.handle_keepalive_failed(now).unwrap();
        }
        "RenewingBackoff" => {
            lease.handle_granted(id(), TTL, now).unwrap();
            now = s(1.0);
            lease.handle_keepalive_failed(now).unwrap();
            lease.handle_keepalive_failed(now).unwrap();
        }
        "Revoking" => {
            lease.handle_granted(id(), TTL, now).unwrap();
            lease.shutdown();
        }
        "RevokingNone" => lease.shutdown(),
        "Lost" => {
            lease.handle_granted(id(), TTL, now).unwrap();
            now = s(31.0);
            lease.handle_timeout(now);
        }
        "Revoked" => {
            lease.handle_granted(id(), TTL, now).unwrap();
            lease.shutdown();
            lease.handle_revoked(now).unwrap();
        }
        other => panic!("no such state {other}"),
    }
    let _ = drain_commands(&mut lease);
    while lease.poll_event().is_some() {}
    (lease, now)
}

/// Applies the named input; `Ok(true)`/`Ok(false)` for accepted/rejected.
fn apply(input: &str, lease: &mut Lease, now: Instant) -> bool {
    match input {
        "granted" => lease.handle_granted(id(), TTL, now).is_ok(),
        "granted0" => lease.handle_granted(id(), Duration::ZERO, now).is_ok(),
        "grant_failed" => lease.handle_grant_failed(now).is_ok(),
        "ka_ok" => lease.handle_keepalive_ok(TTL, now).is_ok(),
        "ka_ok0" => lease.handle_keepalive_ok(Duration::ZERO, now).is_ok(),
        "ka_failed" => lease.handle_keepalive_failed(now).is_ok(),
        "revoked" => lease.handle_revoked(now).is_ok(),
        "revoke_failed" => lease.handle_revoke_failed(now).is_ok(),
        "timeout_now" => {
            lease.handle_timeout(now);
            true
        }
        "timeout_far" => {
            lease.handle_timeout(now + Duration::from_secs(3600));
            true
        }
        "shutdown" => {
            lease.shutdown();
            true
        }
        other => panic!("no such input {other}"),
    }
}

const INPUTS: [&str; 11] = [
    "granted",
    "granted0",
    "grant_failed",
    "ka_ok",
    "ka_ok0",
    "ka_failed",
    "revoked",
    "revoke_failed",
    "timeout_now",
    "timeout_far",
    "shutdown",
];

/// Per state: for each input in `INPUTS` order, "+" accepted or "-" rejected, and the next
/// state's name.
const TABLE: &[(&str, [(&str, &str); 11])] = &[
    (
        "GrantingInFlight",
        [
            ("+", "Active"),
            ("-", "Granting"),
            ("+", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("+", "Granting"),
            ("+", "Lost"),
            ("+", "Revoking"),
        ],
    ),
    (
        "GrantingBackoff",
        [
            ("-", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("-", "Granting"),
            ("+", "Granting"),
            ("+", "Lost"),
            ("+", "Revoked"),
        ],
    ),
    (
        "Active",
        [
            ("-", "Active"),
            ("-", "Active"),
            ("-", "Active"),
            ("-", "Active"),
            ("-", "Active"),
            ("+", "Renewing"),
            ("-", "Active"),
            ("-", "Active"),
            ("+", "Active"),
            ("+", "Lost"),
            ("+", "Revoking"),
        ],
    ),
    (
        "ActiveWaiting",
        [
            ("-", "Active"),
            ("-", "Active"),
            ("-", "Active"),
            ("+", "Active"),
            ("+", "Lost"),
            ("+", "Renewing"),
            ("-", "Active"),
            ("-", "Active"),
            ("+", "Active"),
            ("+", "Lost"),
            ("+", "Revoking"),
        ],
    ),
    (
        "RenewingInFlight",
        [
            ("-", "Renewing"),
            ("-", "Renewing"),
            ("-", "Renewing"),
            ("+", "Active"),
            ("+", "Lost"),
            ("+", "Renewing"),
            ("-", "Renewing"),
            ("-", "Renewing"),
            ("+", "Renewing"),
            ("+", "Lost"),
            ("+", "Revoking"),
        ],
    ),
    (
        "RenewingBackoff",
        [
            ("-", "Renewing"),
            ("-", "Renewing"),
            ("-", "Renewing"),
            ("-", "Renewing"),
            ("-", "Renewing"),
            ("+", "Renewing"),
            ("-", "Renewing"),
            ("-", "Renewing"),
            ("+", "Renewing"),
            ("+", "Lost"),
            ("+", "Revoking"),
        ],
    ),
    (
        "Revoking",
        [
            ("-", "Revoking"),
            ("-", "Revoking"),
            ("-", "Revoking"),
            ("-", "Revoking"),
            ("-", "Revoking"),
            ("+", "Revoking"),
            ("+", "Revoked"),
            ("+", "Revoked"),
            ("+", "Revoking"),
            ("+", "Revoking"),
            ("+", "Revoking"),
        ],
    ),
    (
        "RevokingNone",
        [
            ("+", "Revoking"),
            ("-", "Revoked"),
            ("+", "Revoked"),
            ("-", "Revoking"),
            ("-", "Revoking"),
            ("-", "Revoking"),
            ("-", "Revoking"),
            ("-", "Revoking"),
            ("+", "Revoking"),
            ("+", "Revoking"),
            ("+", "Revoking"),
        ],
    ),
    (
        "Lost",
        [
            ("-", "Lost"),
            ("-", "Lost"),
            ("-", "Lost"),
            ("-", "Lost"),
            ("-", "Lost"),
            ("+", "Lost"),
            ("-", "Lost"),
            ("-", "Lost"),
            ("+", "Lost"),
            ("+", "Lost"),
            ("+", "Revoking"),
        ],
    ),
    (
        "Revoked",
        [
            ("-", "Revoked"),
            ("-", "Revoked"),
            ("-", "Revoked"),
            ("-", "Revoked"),
            ("-", "Revoked"),
            ("+", "Revoked"),
            ("-", "Revoked"),
            ("-", "Revoked"),
            ("+", "Revoked"),
            ("+", "Revoked"),
            ("+", "Revoked"),
        ],
    ),
];

#[test]
fn every_state_times_every_input_matches_the_transition_table() {
    let t0 = Instant::now();
    let mut mismatches = Vec::new();
    for (state, row) in TABLE {
        for (input, (accepted, next)) in INPUTS.iter().zip(row) {
            let (mut lease, now) = build(state, t0);
            let before = lease.state().name();
            let ok = apply(input, &mut lease, now);
            let got = (if ok { "+" } else { "-" }, lease.state().name());
            if got != (*accepted, *next) {
                mismatches.push(format!(
                    "{state} ({before}) × {input}: expected {accepted} {next}, got {} {}",
                    got.0, got.1
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn a_rejected_input_changes_nothing() {
    let t0 = Instant::now();
    for (state, row) in TABLE {
        for (input, (accepted, _)) in INPUTS.iter().zip(row) {
            if *accepted == "+" || *input == "granted0" {
                continue; // ZeroTtl is rejected *and* handled as a failed grant
            }
            let (mut lease, now) = build(state, t0);
            let before = lease.state().clone();
            let timeout = lease.poll_timeout();
            assert!(!apply(input, &mut lease, now));
            assert_eq!(lease.state(), &before, "{state} × {input}");
            assert_eq!(lease.poll_timeout(), timeout, "{state} × {input}");
            assert_eq!(lease.poll_command(), None, "{state} × {input}");
            assert_eq!(lease.poll_event(), None, "{state} × {input}");
        }
    }
}

#[test]
fn after_any_input_the_next_deadline_is_later_or_output_is_pending() {
    let t0 = Instant::now();
    for (state, _) in TABLE {
        for input in INPUTS {
            let (mut lease, now) = build(state, t0);
            apply(input, &mut lease, now);
            let later = if input == "timeout_far" {
                now + Duration::from_secs(3600)
            } else {
                now
            };
            lease.handle_timeout(later);
            let pending = lease.poll_command().is_some();
            assert!(
                pending || lease.poll_timeout().is_none_or(|t| t > later),
                "{state} × {input}: poll_timeout {:?} is not after {later:?}",
                lease.poll_timeout()
            );
        }
    }
}
