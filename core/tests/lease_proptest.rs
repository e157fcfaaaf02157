//! The lease machine under random inputs, and against the KV model acting as etcd with latency
//! and outages.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dynrt_core::kv::{Kv, KvConfig, LeaseId};
use dynrt_core::lease::{Lease, LeaseCommand, LeaseConfig, LeaseEvent, LeaseState};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Input {
    Granted { ttl_secs: u64 },
    GrantFailed,
    KeepAliveOk { ttl_secs: u64 },
    KeepAliveFailed,
    Revoked,
    RevokeFailed,
    Shutdown,
    Advance { ms: u64 },
    Timer,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => (0..40u64).prop_map(|ttl_secs| Input::Granted { ttl_secs }),
        1 => Just(Input::GrantFailed),
        1 => (0..40u64).prop_map(|ttl_secs| Input::KeepAliveOk { ttl_secs }),
        1 => Just(Input::KeepAliveFailed),
        1 => Just(Input::Revoked),
        1 => Just(Input::RevokeFailed),
        1 => Just(Input::Shutdown),
        1 => (0..20_000u64).prop_map(|ms| Input::Advance { ms }),
        3 => Just(Input::Timer),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any input sequence: no panic, no busy loop, events in a sane order, deadline monotonic.
    #[test]
    fn random_inputs_keep_the_machine_sane(
        inputs in proptest::collection::vec(input(), 1..80),
        seed in any::<u64>(),
        ttl_secs in 1..60u64,
        budget in proptest::option::of(1..6u32),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let config = LeaseConfig {
            ttl: Duration::from_secs(ttl_secs),
            max_renew_attempts: budget,
            ..LeaseConfig::default()
        };
        let mut lease = Lease::new(config, seed, t0).unwrap();
        let id = LeaseId::new(0x5eed).unwrap();
        let mut events = Vec::new();
        let mut last_deadline = None;
        for input in inputs {
            match input {
                Input::Granted { ttl_secs } => drop(lease.handle_granted(id, Duration::from_secs(ttl_secs), now)),
                Input::GrantFailed => drop(lease.handle_grant_failed(now)),
                Input::KeepAliveOk { ttl_secs } => drop(lease.handle_keepalive_ok(Duration::from_secs(ttl_secs), now)),
                Input::KeepAliveFailed => drop(lease.handle_keepalive_failed(now)),
                Input::Revoked => drop(lease.handle_revoked(now)),
                Input::RevokeFailed => drop(lease.handle_revoke_failed(now)),
                Input::Shutdown => lease.shutdown(),
                Input::Advance { ms } => {
                    now += Duration::from_millis(ms);
                    lease.handle_timeout(now);
                }
                Input::Timer => {
                    if let Some(t) = lease.poll_timeout() {
                        now = now.max(t);
                        lease.handle_timeout(now);
                    }
                }
            }
            lease.handle_timeout(now);
            let mut commands = Vec::new();
            while let Some(c) = lease.poll_command() {
                commands.push(c);
            }
            prop_assert!(
                !commands.is_empty() || lease.poll_timeout().is_none_or(|t| t > now),
                "busy loop: timer {:?} not after {:?} in {:?}", lease.poll_timeout(), now, lease.state()
            );
            for c in &commands {
                if let LeaseCommand::KeepAlive { .. } = c {
                    let renewing = matches!(lease.state(), LeaseState::Renewing { .. });
                    prop_assert!(lease.is_held() || renewing, "keep-alive while {:?}", lease.state());
                }
            }
            while let Some(e) = lease.poll_event() {
                events.push(e);
            }
            match (last_deadline, lease.deadline()) {
                (Some(old), Some(new)) => prop_assert!(new >= old, "deadline went back"),
                (_, Some(new)) => prop_assert!(new > now),
                _ => {}
            }
            last_deadline = lease.deadline().or(last_deadline);
            if let Some(d) = lease.deadline() {
                prop_assert!(d > now, "held past its deadline");
            }
        }
        let granted = |e: &LeaseEvent| matches!(e, LeaseEvent::Granted { .. });
        let lost = |e: &LeaseEvent| matches!(e, LeaseEvent::Lost { .. });
        let revoked = |e: &LeaseEvent| matches!(e, LeaseEvent::Revoked { .. });
        for (name, f) in [("Granted", &granted as &dyn Fn(&LeaseEvent) -> bool), ("Lost", &lost), ("Revoked", &revoked)] {
            prop_assert!(events.iter().filter(|e| f(e)).count() <= 1, "{} twice: {:?}", name, events);
        }
        if let Some(pos) = events.iter().position(granted) {
            let ended_before = events[..pos].iter().any(|e| lost(e) || revoked(e));
            prop_assert!(!ended_before, "Granted after the end: {:?}", events);
        }
    }
}

/// A request in flight to the simulated etcd.
#[derive(Debug)]
enum Pending {
    /// etcd processes the command now.
    Process { cmd: LeaseCommand, generation: u64 },
    /// The answer reaches the machine now.
    Answer { answer: Answer, generation: u64 },
}

#[derive(Debug)]
enum Answer {
    Granted(LeaseId, Duration),
    GrantFailed,
    KeepAlive(Duration),
    KeepAliveFailed,
    Revoked,
    RevokeFailed,
}

struct Sim {
    kv: Kv,
    lease: Lease,
    now: Instant,
    t0: Instant,
    pending: BTreeMap<(Instant, u64), Pending>,
    seq: u64,
    /// Bumped when the keep-alive stream breaks; answers from older streams are dropped.
    generation: u64,
    to_etcd: Duration,
    from_etcd: Duration,
    outages: Vec<(Instant, Instant)>,
    events: Vec<(Instant, LeaseEvent)>,
}

impl Sim {
    fn down(&self, t: Instant) -> bool {
        self.outages.iter().any(|&(from, to)| t >= from && t < to)
    }

    fn schedule(&mut self, at: Instant, p: Pending) {
        self.seq += 1;
        self.pending.insert((at, self.seq), p);
    }

    /// Runs until `end`, checking after every step that a lease the machine holds is alive in
    /// etcd at least until the machine's deadline.
    fn run(&mut self, end: Instant) {
        self.step(); // commands queued before the run (the first Grant, a shutdown's Revoke)
        loop {
            let next = [
                self.lease.poll_timeout(),
                self.kv.poll_timeout(),
                self.pending.keys().next().map(|&(t, _)| t),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|&t| t <= end) else {
                self.now = end;
                self.step();
                return;
            };
            self.now = self.now.max(next);
            self.step();
        }
    }

    fn step(&mut self) {
        let now = self.now;
        self.kv.handle_timeout(now);
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Pending::Process { cmd, generation } => {
                    let answer = self.process(cmd);
                    let at = now + self.from_etcd;
                    self.schedule(at, Pending::Answer { answer, generation });
                }
                Pending::Answer { answer, generation } => self.deliver(answer, generation),
            }
        }
        self.lease.handle_timeout(now);
        while let Some(cmd) = self.lease.poll_command() {
            let at = now + self.to_etcd;
            let generation = self.generation;
            self.schedule(at, Pending::Process { cmd, generation });
        }
        while let Some(e) = self.lease.poll_event() {
            self.events.push((now, e));
        }
        if self.lease.is_held() {
            let id = self.lease.id().unwrap();
            let ours = self.lease.deadline().unwrap();
            assert!(ours > now, "held at or after its own deadline");
            let theirs = self.kv.lease_info(id).map(|info| info.deadline);
            assert!(
                theirs.is_some_and(|t| t >= ours),
                "at {:?} the machine holds {id} until {:?} but etcd has {:?}",
                now - self.t0,
                ours - self.t0,
                theirs.map(|t| t - self.t0)
            );
        }
    }

    fn process(&mut self, cmd: LeaseCommand) -> Answer {
        let down = self.down(self.now);
        match cmd {
            LeaseCommand::Grant { ttl } if !down => {
                let g = self.kv.grant_lease(ttl, self.now).unwrap();
                Answer::Granted(g.id, g.ttl)
            }
            LeaseCommand::Grant { .. } => Answer::GrantFailed,
            LeaseCommand::KeepAlive { id } if !down => {
                Answer::KeepAlive(self.kv.keep_alive(id, self.now).unwrap_or(Duration::ZERO))
            }
            LeaseCommand::KeepAlive { .. } => Answer::KeepAliveFailed,
            LeaseCommand::Revoke { id } if !down => match self.kv.revoke(id) {
                Ok(_) => Answer::Revoked,
                Err(_) => Answer::RevokeFailed,
            },
            LeaseCommand::Revoke { .. } => Answer::RevokeFailed,
        }
    }

    fn deliver(&mut self, answer: Answer, generation: u64) {
        let now = self.now;
        let result = match answer {
            Answer::Granted(id, ttl) => self.lease.handle_granted(id, ttl, now),
            Answer::GrantFailed => self.lease.handle_grant_failed(now),
            Answer::KeepAlive(_) | Answer::KeepAliveFailed if generation != self.generation => {
                return; // the stream it came on is gone
            }
            Answer::KeepAlive(ttl) => self.lease.handle_keepalive_ok(ttl, now),
            Answer::KeepAliveFailed => {
                self.generation += 1;
                self.lease.handle_keepalive_failed(now)
            }
            Answer::Revoked => self.lease.handle_revoked(now),
            Answer::RevokeFailed => self.lease.handle_revoke_failed(now),
        };
        result.expect("the simulated driver answers only outstanding commands");
    }
}

fn simulate(
    seed: u64,
    to_ms: u64,
    from_ms: u64,
    outages: Vec<(u64, u64)>,
    horizon_secs: u64,
) -> Sim {
    let t0 = Instant::now();
    let mut sim = Sim {
        kv: Kv::new(KvConfig {
            lease_id_seed: seed,
            ..KvConfig::default()
        }),
        lease: Lease::new(LeaseConfig::default(), seed, t0).unwrap(),
        now: t0,
        t0,
        pending: BTreeMap::new(),
        seq: 0,
        generation: 0,
        to_etcd: Duration::from_millis(to_ms),
        from_etcd: Duration::from_millis(from_ms),
        outages: outages
            .into_iter()
            .map(|(start, len)| {
                let from = t0 + Duration::from_millis(start);
                (from, from + Duration::from_millis(len))
            })
            .collect(),
        events: Vec::new(),
    };
    sim.run(t0 + Duration::from_secs(horizon_secs));
    sim
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever etcd does, the machine never believes in a lease etcd has already expired.
    #[test]
    fn a_held_lease_is_always_alive_in_etcd(
        seed in any::<u64>(),
        to_ms in 0..300u64,
        from_ms in 0..300u64,
        outages in proptest::collection::vec((0..400_000u64, 0..90_000u64), 0..6),
    ) {
        let mut sim = simulate(seed, to_ms, from_ms, outages, 500);
        sim.lease.shutdown();
        let end = sim.now + Duration::from_secs(10);
        sim.run(end);
        prop_assert!(!sim.lease.is_held());
    }

    /// Outages of up to 10 s, at least a TTL apart, never cost the lease; shutdown revokes it.
    #[test]
    fn short_outages_never_lose_the_lease(
        seed in any::<u64>(),
        to_ms in 0..100u64,
        from_ms in 0..100u64,
        starts in proptest::collection::btree_set(0..20u64, 0..6),
        lens in proptest::collection::vec(0..10_000u64, 6),
    ) {
        // Start of outage i: slot * 40 s plus up to 10 s, so outages stay ≥ 30 s apart.
        let outages = starts
            .iter()
            .zip(&lens)
            .map(|(&slot, &len)| (slot * 40_000 + len % 10_000, len))
            .collect();
        let mut sim = simulate(seed, to_ms, from_ms, outages, 800);
        prop_assert!(
            !sim.events.iter().any(|(_, e)| matches!(e, LeaseEvent::Lost { .. })),
            "lost: {:?}", sim.events
        );
        let id = sim.lease.id().unwrap();
        sim.outages.clear();
        sim.lease.shutdown();
        let end = sim.now + Duration::from_secs(5);
        sim.run(end);
        let confirmed = matches!(sim.events.last(), Some((_, LeaseEvent::Revoked { confirmed: true, .. })));
        prop_assert!(confirmed, "events {:?}", sim.events);
        prop_assert!(sim.kv.lease_info(id).is_none());
    }
}
