//! Random operation sequences: the KV model against a plain BTreeMap reference, and watchers
//! that rebuild the state from their events alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::kv::{Kv, KvConfig, LeaseId, WatchEvent, WatchId, WatchStart};
use proptest::prelude::*;

const KEYS: [&str; 6] = ["a/1", "a/2", "a/10", "ab/1", "b/1", "b"];
const PREFIXES: [&str; 5] = ["a/", "a", "b/", "", "ab/"];

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: usize,
        val: u8,
        lease: Option<usize>,
    },
    Create {
        key: usize,
        val: u8,
        lease: Option<usize>,
    },
    Cas {
        key: usize,
        stale: bool,
        val: u8,
        lease: Option<usize>,
    },
    Delete {
        key: usize,
    },
    DeletePrefix {
        prefix: usize,
    },
    Grant {
        ttl_secs: u64,
    },
    KeepAlive {
        lease: usize,
    },
    Revoke {
        lease: usize,
    },
    Advance {
        ms: u64,
    },
    Compact {
        back: u64,
    },
    Poll {
        watcher: usize,
        n: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let lease = proptest::option::of(0..4usize);
    prop_oneof![
        4 => (key.clone(), any::<u8>(), lease.clone()).prop_map(|(key, val, lease)| Op::Put { key, val, lease }),
        3 => (key.clone(), any::<u8>(), lease.clone()).prop_map(|(key, val, lease)| Op::Create { key, val, lease }),
        2 => (key.clone(), any::<bool>(), any::<u8>(), lease).prop_map(|(key, stale, val, lease)| Op::Cas { key, stale, val, lease }),
        3 => key.prop_map(|key| Op::Delete { key }),
        1 => (0..PREFIXES.len()).prop_map(|prefix| Op::DeletePrefix { prefix }),
        2 => (0..8u64).prop_map(|ttl_secs| Op::Grant { ttl_secs }),
        2 => (0..4usize).prop_map(|lease| Op::KeepAlive { lease }),
        1 => (0..4usize).prop_map(|lease| Op::Revoke { lease }),
        3 => (0..4000u64).prop_map(|ms| Op::Advance { ms }),
        1 => (0..6u64).prop_map(|back| Op::Compact { back }),
        4 => (0..PREFIXES.len(), 0..6usize).prop_map(|(watcher, n)| Op::Poll { watcher, n }),
    ]
}

/// The reference: the simplest thing that could be etcd.
#[derive(Default)]
struct Model {
    revision: u64,
    /// key → (value, lease, create_revision, mod_revision, version)
    map: BTreeMap<String, (Bytes, Option<LeaseId>, u64, u64, u64)>,
    /// lease → (ttl, deadline)
    leases: BTreeMap<LeaseId, (Duration, Instant)>,
}

impl Model {
    fn write(&mut self, key: &str, value: Bytes, lease: Option<LeaseId>) {
        self.revision += 1;
        let rev = self.revision;
        let (create, version) = match self.map.get(key) {
            Some(&(_, _, create, _, version)) => (create, version + 1),
            None => (rev, 1),
        };
        self.map
            .insert(key.to_owned(), (value, lease, create, rev, version));
    }

    fn lease_ok(&self, lease: Option<LeaseId>) -> bool {
        lease.is_none_or(|l| self.leases.contains_key(&l))
    }

    fn delete_where(&mut self, pred: impl Fn(&str, Option<LeaseId>) -> bool) {
        let before = self.map.len();
        self.map.retain(|k, v| !pred(k, v.1));
        if self.map.len() != before {
            self.revision += 1;
        }
    }

    fn expire(&mut self, now: Instant) {
        let mut due: Vec<(Instant, LeaseId)> = self
            .leases
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, (_, deadline))| (*deadline, *id))
            .collect();
        due.sort();
        for (_, id) in due {
            self.leases.remove(&id);
            self.delete_where(|_, l| l == Some(id));
        }
    }
}

/// What a watcher has rebuilt from its events.
struct Replica {
    id: WatchId,
    prefix: &'static str,
    state: BTreeMap<String, Bytes>,
    last: u64,
    floor: u64,
}

impl Replica {
    fn apply(&mut self, ev: WatchEvent) {
        let rev = ev
            .revision()
            .expect("Resync watches never report Compacted");
        assert!(
            rev >= self.last,
            "{ev:?} goes back from revision {}",
            self.last
        );
        match ev {
            WatchEvent::Snapshot { revision, entries }
            | WatchEvent::Resync { revision, entries } => {
                self.state = entries
                    .into_iter()
                    .map(|e| (e.key.to_string(), e.value))
                    .collect();
                self.floor = revision;
            }
            WatchEvent::Put(kv) => {
                assert!(rev > self.floor);
                assert!(kv.key.starts_with(self.prefix));
                self.state.insert(kv.key.to_string(), kv.value);
            }
            WatchEvent::Delete { key, .. } => {
                assert!(rev > self.floor);
                assert!(key.starts_with(self.prefix));
                assert!(
                    self.state.remove(&*key).is_some(),
                    "delete of {key} it never saw"
                );
            }
            WatchEvent::Compacted { .. } => unreachable!(),
        }
        self.last = rev;
    }
}

fn check_same(kv: &Kv, model: &Model) {
    assert_eq!(kv.revision(), model.revision + 1, "revision");
    let real: BTreeMap<String, (Bytes, Option<LeaseId>, u64, u64, u64)> = kv
        .range("")
        .map(|e| {
            (
                e.key.to_string(),
                (
                    e.value.clone(),
                    e.lease,
                    e.create_revision,
                    e.mod_revision,
                    e.version,
                ),
            )
        })
        .collect();
    let expected: BTreeMap<_, _> = model
        .map
        .iter()
        .map(|(k, (v, l, c, m, ver))| (k.clone(), (v.clone(), *l, c + 1, m + 1, *ver)))
        .collect();
    assert_eq!(real, expected);
    let real_leases: Vec<_> = kv.leases().collect();
    let model_leases: Vec<_> = model.leases.keys().copied().collect();
    assert_eq!(real_leases, model_leases);
    for (id, (_, deadline)) in &model.leases {
        assert_eq!(kv.lease_info(*id).unwrap().deadline, *deadline);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operations_match_the_reference_and_watchers_rebuild_the_state(
        ops in proptest::collection::vec(op(), 1..120),
        history_limit in 1usize..24,
        seed in any::<u64>(),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut kv = Kv::new(KvConfig { history_limit, lease_id_seed: seed, ..KvConfig::default() });
        // The model counts revisions from 0; the store starts at 1 like etcd.
        let mut model = Model::default();
        let mut granted: Vec<LeaseId> = Vec::new();
        let mut replicas: Vec<Replica> = PREFIXES
            .iter()
            .map(|&prefix| Replica {
                id: kv.watch(prefix, WatchStart::Snapshot),
                prefix,
                state: BTreeMap::new(),
                last: 0,
                floor: 0,
            })
            .collect();
        let pick = |granted: &[LeaseId], i: Option<usize>| {
            i.and_then(|i| (!granted.is_empty()).then(|| granted[i % granted.len()]))
        };

        for op in ops {
            match op {
                Op::Put { key, val, lease } => {
                    let lease = pick(&granted, lease);
                    let ok = kv.put(KEYS[key], Bytes::from(vec![val]), lease).is_ok();
                    prop_assert_eq!(ok, model.lease_ok(lease));
                    if ok { model.write(KEYS[key], Bytes::from(vec![val]), lease); }
                }
                Op::Create { key, val, lease } => {
                    let lease = pick(&granted, lease);
                    let ok = kv.create(KEYS[key], Bytes::from(vec![val]), lease).is_ok();
                    prop_assert_eq!(ok, !model.map.contains_key(KEYS[key]) && model.lease_ok(lease));
                    if ok { model.write(KEYS[key], Bytes::from(vec![val]), lease); }
                }
                Op::Cas { key, stale, val, lease } => {
                    let lease = pick(&granted, lease);
                    let current = model.map.get(KEYS[key]).map(|e| e.3 + 1);
                    let expected = current.unwrap_or(0) - u64::from(stale && current.is_some());
                    let ok = kv.compare_and_swap(KEYS[key], expected, Bytes::from(vec![val]), lease).is_ok();
                    prop_assert_eq!(ok, current.is_some() && !stale && model.lease_ok(lease));
                    if ok { model.write(KEYS[key], Bytes::from(vec![val]), lease); }
                }
                Op::Delete { key } => {
                    let out = kv.delete(KEYS[key]);
                    prop_assert_eq!(out.deleted.is_some(), model.map.contains_key(KEYS[key]));
                    model.delete_where(|k, _| k == KEYS[key]);
                }
                Op::DeletePrefix { prefix } => {
                    let (_, deleted) = kv.delete_prefix(PREFIXES[prefix]);
                    let expected = model.map.keys().filter(|k| k.starts_with(PREFIXES[prefix])).count();
                    prop_assert_eq!(deleted.len(), expected);
                    model.delete_where(|k, _| k.starts_with(PREFIXES[prefix]));
                }
                Op::Grant { ttl_secs } => {
                    let g = kv.grant_lease(Duration::from_secs(ttl_secs), now).unwrap();
                    model.expire(now);
                    let ttl = Duration::from_secs(ttl_secs.max(2));
                    prop_assert_eq!(g.ttl, ttl);
                    model.leases.insert(g.id, (ttl, now + ttl));
                    granted.push(g.id);
                }
                Op::KeepAlive { lease } => {
                    if let Some(id) = pick(&granted, Some(lease)) {
                        let real = kv.keep_alive(id, now);
                        model.expire(now);
                        match model.leases.get_mut(&id) {
                            Some((ttl, deadline)) => {
                                prop_assert_eq!(real, Ok(*ttl));
                                *deadline = now + *ttl;
                            }
                            None => prop_assert!(real.is_err()),
                        }
                    }
                }
                Op::Revoke { lease } => {
                    if let Some(id) = pick(&granted, Some(lease)) {
                        let real = kv.revoke(id);
                        prop_assert_eq!(real.is_ok(), model.leases.remove(&id).is_some());
                        model.delete_where(|_, l| l == Some(id));
                    }
                }
                Op::Advance { ms } => {
                    now += Duration::from_millis(ms);
                    kv.handle_timeout(now);
                    model.expire(now);
                    prop_assert!(kv.poll_timeout().is_none_or(|t| t > now), "busy-loop guard");
                }
                Op::Compact { back } => {
                    let target = kv.revision().saturating_sub(back);
                    let before = kv.compact_revision();
                    let result = kv.compact(target);
                    prop_assert_eq!(result.is_ok(), target > before);
                }
                Op::Poll { watcher, n } => {
                    let r = &mut replicas[watcher];
                    for _ in 0..n {
                        match kv.poll_watch_event(r.id).unwrap() {
                            Some(ev) => r.apply(ev),
                            None => break,
                        }
                    }
                }
            }
            check_same(&kv, &model);
            prop_assert!(kv.history_len() <= history_limit);
        }

        for r in &mut replicas {
            while let Some(ev) = kv.poll_watch_event(r.id).unwrap() {
                r.apply(ev);
            }
            let expected: BTreeMap<String, Bytes> = kv
                .range(r.prefix)
                .map(|e| (e.key.to_string(), e.value.clone()))
                .collect();
            prop_assert_eq!(&r.state, &expected, "watcher on {:?}", r.prefix);
            prop_assert!(r.last <= kv.revision());
        }
    }
}
