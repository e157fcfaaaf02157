//! InstanceSet: every input in every state, resync diffs, down/restore in virtual time, and a
//! property test that the events replay to the state.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dynrt_core::discovery::{
    DiscoveryRecord, DownReport, EndpointRecord, Instance, InstanceEvent, InstanceSet, RecordError,
    Transport, WatchError,
};
use dynrt_core::names::{EndpointId, InstanceId, TcpRoute, TcpTransport};
use proptest::prelude::*;

const INTERVAL: Duration = Duration::from_secs(5);

fn endpoint() -> EndpointId {
    EndpointId::new("ns", "comp", "ep").unwrap()
}

/// The key and value of instance `id` listening on `port` (the port stands for "the record").
fn rec(id: u64, port: u16) -> (String, Vec<u8>) {
    let route = TcpRoute::new(InstanceId(id), endpoint());
    let transport = TcpTransport::new(([10, 0, 0, 1], port).into(), &route);
    let record = DiscoveryRecord::from(EndpointRecord::new(
        &endpoint(),
        InstanceId(id),
        Transport::Tcp(transport.to_string()),
    ));
    (record.key(), record.to_json())
}

fn key(id: u64) -> String {
    rec(id, 0).0
}

fn instance(id: u64, port: u16) -> Instance {
    let (_, value) = rec(id, port);
    Instance::from_json(&value, &endpoint(), InstanceId(id)).unwrap()
}

fn drain(set: &mut InstanceSet) -> Vec<InstanceEvent> {
    std::iter::from_fn(|| set.poll_event()).collect()
}

fn ids<'a>(it: impl Iterator<Item = &'a Instance>) -> Vec<u64> {
    it.map(|i| i.id.0).collect()
}

fn added(id: u64, port: u16) -> InstanceEvent {
    InstanceEvent::Added(instance(id, port))
}

fn removed(id: u64) -> InstanceEvent {
    InstanceEvent::Removed(InstanceId(id))
}

/// A synced set holding instances `ids` (port 1000 + id), events drained.
fn synced(ids: &[u64], t0: Instant) -> InstanceSet {
    let mut set = InstanceSet::new(endpoint(), INTERVAL);
    let skipped = set.handle_snapshot(ids.iter().map(|&id| rec(id, 1000 + id as u16)), t0);
    assert!(skipped.is_empty());
    drain(&mut set);
    set
}

// ---- construction and snapshot -------------------------------------------------------------

#[test]
fn new_set_awaits_a_snapshot_and_knows_its_prefix() {
    let set = InstanceSet::new(endpoint(), INTERVAL);
    assert!(!set.is_synced());
    assert!(set.is_empty());
    assert_eq!(set.prefix(), "v1/instances/ns/comp/ep/");
    assert_eq!(set.endpoint(), &endpoint());
    assert_eq!(set.reconcile_interval(), INTERVAL);
    assert_eq!(set.poll_timeout(), None);
}

#[test]
fn snapshot_adds_every_instance_in_id_order() {
    let t0 = Instant::now();
    let mut set = InstanceSet::new(endpoint(), INTERVAL);
    let skipped = set.handle_snapshot([rec(3, 3), rec(1, 1), rec(2, 2)], t0);
    assert!(skipped.is_empty());
    assert!(set.is_synced());
    assert_eq!(drain(&mut set), [added(1, 1), added(2, 2), added(3, 3)]);
    assert_eq!(ids(set.instances()), [1, 2, 3]);
    assert_eq!(ids(set.available()), [1, 2, 3]);
    assert_eq!(set.get(InstanceId(2)), Some(&instance(2, 2)));
}

#[test]
fn empty_snapshot_syncs_with_no_events() {
    let mut set = InstanceSet::new(endpoint(), INTERVAL);
    let skipped = set.handle_snapshot(Vec::<(String, Vec<u8>)>::new(), Instant::now());
    assert!(skipped.is_empty());
    assert!(set.is_synced());
    assert_eq!(drain(&mut set), []);
}

#[test]
fn snapshot_skips_bad_entries_and_reports_each() {
    let t0 = Instant::now();
    let mut set = InstanceSet::new(endpoint(), INTERVAL);
    let skipped = set.handle_snapshot(
        [
            rec(1, 1),
            ("v1/instances/ns/comp/other/2".to_owned(), rec(2, 2).1),
            ("v1/instances/ns/comp/ep/0x3".to_owned(), rec(3, 3).1),
            (key(4), b"{not json".to_vec()),
            (key(5), rec(6, 6).1),
        ],
        t0,
    );
    assert_eq!(ids(set.instances()), [1]);
    assert_eq!(skipped.len(), 4);
    assert_eq!(
        skipped[0].to_string(),
        "key 'v1/instances/ns/comp/other/2' is not under 'v1/instances/ns/comp/ep/'"
    );
    assert!(matches!(skipped[1], WatchError::BadId { .. }));
    assert!(matches!(
        &skipped[2],
        WatchError::BadRecord {
            source: RecordError::Json { .. },
            ..
        }
    ));
    assert_eq!(
        skipped[3].to_string(),
        "key 'v1/instances/ns/comp/ep/5': discovery record field instance_id is '6' but its key says '5'"
    );
}

#[test]
fn duplicate_keys_in_a_snapshot_keep_the_last_value() {
    let mut set = InstanceSet::new(endpoint(), INTERVAL);
    let skipped = set.handle_snapshot([rec(1, 1), rec(1, 2)], Instant::now());
    assert!(skipped.is_empty());
    assert_eq!(drain(&mut set), [added(1, 2)]);
}

// ---- puts ----------------------------------------------------------------------------------

#[test]
fn put_of_a_new_instance_adds_it() {
    let t0 = Instant::now();
    let mut set = synced(&[], t0);
    let (k, v) = rec(7, 7);
    set.handle_put(&k, &v, t0).unwrap();
    assert_eq!(drain(&mut set), [added(7, 7)]);
    assert!(set.is_available(InstanceId(7)));
}

#[test]
fn put_before_the_snapshot_is_applied() {
    let t0 = Instant::now();
    let mut set = InstanceSet::new(endpoint(), INTERVAL);
    let (k, v) = rec(7, 7);
    set.handle_put(&k, &v, t0).unwrap();
    assert!(!set.is_synced());
    assert_eq!(drain(&mut set), [added(7, 7)]);
}

#[test]
fn put_of_the_same_record_changes_nothing() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    let (k, v) = rec(1, 1001);
    set.handle_put(&k, &v, t0).unwrap();
    assert_eq!(drain(&mut set), []);
}

#[test]
fn put_of_a_changed_record_re_announces_it() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    let (k, v) = rec(1, 2222);
    set.handle_put(&k, &v, t0).unwrap();
    assert_eq!(drain(&mut set), [added(1, 2222)]);
    assert_eq!(set.get(InstanceId(1)), Some(&instance(1, 2222)));
    assert_eq!(set.len(), 1);
}

#[test]
fn malformed_put_for_a_known_instance_keeps_the_last_good_record() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    let err = set.handle_put(&key(1), b"[]", t0).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("key 'v1/instances/ns/comp/ep/1': discovery record is not valid"),
        "{err}"
    );
    assert_eq!(drain(&mut set), []);
    assert_eq!(set.get(InstanceId(1)), Some(&instance(1, 1001)));
}

#[test]
fn put_of_another_record_type_is_rejected() {
    let t0 = Instant::now();
    let mut set = synced(&[], t0);
    let err = set
        .handle_put(&key(1), br#"{"type":"Model","namespace":"ns"}"#, t0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key 'v1/instances/ns/comp/ep/1': discovery record has type 'Model', expected 'Endpoint'"
    );
    assert!(set.is_empty());
}

#[test]
fn put_under_a_foreign_or_bad_key_is_rejected() {
    let t0 = Instant::now();
    let mut set = synced(&[], t0);
    let (_, v) = rec(1, 1);
    let err = set
        .handle_put("v1/instances/ns/comp/ep2/1", &v, t0)
        .unwrap_err();
    assert!(matches!(err, WatchError::ForeignKey { .. }));
    let err = set
        .handle_put("v1/instances/ns/comp/ep/1/extra", &v, t0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key 'v1/instances/ns/comp/ep/1/extra': instance id '1/extra': character '/' at 1 is not a lowercase hex digit"
    );
    assert!(set.is_empty());
    assert_eq!(drain(&mut set), []);
}

#[test]
fn changed_record_restores_a_down_instance() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    set.report_down(InstanceId(1), t0);
    drain(&mut set);
    let (k, v) = rec(1, 2222);
    set.handle_put(&k, &v, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(drain(&mut set), [added(1, 2222)]);
    assert!(set.is_available(InstanceId(1)));
    assert_eq!(set.poll_timeout(), None, "its deadline is gone");
}

#[test]
fn same_record_leaves_a_down_instance_down() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    set.report_down(InstanceId(1), t0);
    drain(&mut set);
    let (k, v) = rec(1, 1001);
    set.handle_put(&k, &v, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(drain(&mut set), []);
    assert!(!set.is_available(InstanceId(1)));
}

// ---- deletes -------------------------------------------------------------------------------

#[test]
fn delete_of_a_known_instance_removes_it() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2], t0);
    set.handle_delete(&key(1), t0).unwrap();
    assert_eq!(drain(&mut set), [removed(1)]);
    assert_eq!(ids(set.instances()), [2]);
}

#[test]
fn delete_of_an_unknown_instance_does_nothing() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    set.handle_delete(&key(9), t0).unwrap();
    assert_eq!(drain(&mut set), []);
    assert_eq!(set.len(), 1);
}

#[test]
fn delete_of_a_down_instance_removes_it_and_its_deadline() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    set.report_down(InstanceId(1), t0);
    drain(&mut set);
    set.handle_delete(&key(1), t0).unwrap();
    assert_eq!(drain(&mut set), [removed(1)]);
    assert_eq!(set.poll_timeout(), None);
    set.handle_timeout(t0 + INTERVAL);
    assert_eq!(drain(&mut set), [], "no Restored for a removed instance");
}

#[test]
fn delete_under_a_bad_key_is_rejected() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    assert!(matches!(
        set.handle_delete("v1/mdc/ns/comp/ep/1", t0),
        Err(WatchError::ForeignKey { .. })
    ));
    assert!(matches!(
        set.handle_delete("v1/instances/ns/comp/ep/", t0),
        Err(WatchError::BadId { .. })
    ));
    assert_eq!(set.len(), 1);
}

// ---- resync --------------------------------------------------------------------------------

#[test]
fn resync_removes_missing_adds_new_and_re_announces_changed() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2, 3], t0);
    // 1 unchanged, 2 changed, 3 gone, 4 new.
    let skipped = set.handle_resync([rec(4, 4), rec(2, 2222), rec(1, 1001)], t0);
    assert!(skipped.is_empty());
    assert_eq!(drain(&mut set), [removed(3), added(2, 2222), added(4, 4)]);
    assert_eq!(ids(set.instances()), [1, 2, 4]);
}

#[test]
fn resync_to_the_same_state_emits_nothing() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2], t0);
    let skipped = set.handle_resync([rec(2, 1002), rec(1, 1001)], t0);
    assert!(skipped.is_empty());
    assert_eq!(drain(&mut set), []);
}

#[test]
fn empty_resync_removes_everything() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2], t0);
    let skipped = set.handle_resync(Vec::<(String, Vec<u8>)>::new(), t0);
    assert!(skipped.is_empty());
    assert_eq!(drain(&mut set), [removed(1), removed(2)]);
    assert!(set.is_empty() && set.is_synced());
}

#[test]
fn resync_keeps_down_state_of_unchanged_instances() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2], t0);
    set.report_down(InstanceId(1), t0);
    drain(&mut set);
    let skipped = set.handle_resync([rec(1, 1001), rec(2, 1002)], t0 + Duration::from_secs(1));
    assert!(skipped.is_empty());
    assert_eq!(drain(&mut set), []);
    assert_eq!(ids(set.available()), [2]);
    assert_eq!(set.down_until(InstanceId(1)), Some(t0 + INTERVAL));
}

#[test]
fn resync_with_an_unreadable_value_keeps_the_known_record() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2], t0);
    let skipped = set.handle_resync(
        [(key(1), b"garbage".to_vec()), (key(3), b"garbage".to_vec())],
        t0,
    );
    assert_eq!(skipped.len(), 2);
    // 1 is still in the store (only its value is unreadable): kept. 2 is gone. 3 never known.
    assert_eq!(drain(&mut set), [removed(2)]);
    assert_eq!(ids(set.instances()), [1]);
    assert_eq!(set.get(InstanceId(1)), Some(&instance(1, 1001)));
}

#[test]
fn second_snapshot_behaves_as_a_resync() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2], t0);
    let skipped = set.handle_snapshot([rec(2, 1002), rec(3, 3)], t0);
    assert!(skipped.is_empty());
    assert_eq!(drain(&mut set), [removed(1), added(3, 3)]);
}

#[test]
fn resync_before_a_snapshot_behaves_as_the_snapshot() {
    let mut set = InstanceSet::new(endpoint(), INTERVAL);
    let skipped = set.handle_resync([rec(1, 1)], Instant::now());
    assert!(skipped.is_empty());
    assert!(set.is_synced());
    assert_eq!(drain(&mut set), [added(1, 1)]);
}

// ---- down and restore in virtual time ------------------------------------------------------

#[test]
fn report_down_hides_until_the_reconcile_interval_passes() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2], t0);
    assert_eq!(set.report_down(InstanceId(1), t0), DownReport::MarkedDown);
    assert_eq!(drain(&mut set), [InstanceEvent::Down(InstanceId(1))]);
    assert_eq!(ids(set.instances()), [1, 2], "still known");
    assert_eq!(ids(set.available()), [2]);
    assert_eq!(set.available_len(), 1);
    assert_eq!(set.poll_timeout(), Some(t0 + INTERVAL));

    set.handle_timeout(t0 + INTERVAL - Duration::from_millis(1));
    assert_eq!(drain(&mut set), []);
    assert!(!set.is_available(InstanceId(1)));

    set.handle_timeout(t0 + INTERVAL);
    assert_eq!(drain(&mut set), [InstanceEvent::Restored(InstanceId(1))]);
    assert_eq!(ids(set.available()), [1, 2]);
    assert_eq!(set.poll_timeout(), None);
}

#[test]
fn reporting_twice_keeps_the_first_deadline() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    set.report_down(InstanceId(1), t0);
    assert_eq!(
        set.report_down(InstanceId(1), t0 + Duration::from_secs(3)),
        DownReport::AlreadyDown
    );
    assert_eq!(drain(&mut set), [InstanceEvent::Down(InstanceId(1))]);
    assert_eq!(set.poll_timeout(), Some(t0 + INTERVAL));
}

#[test]
fn reporting_an_unknown_instance_does_nothing() {
    let t0 = Instant::now();
    let mut set = synced(&[1], t0);
    assert_eq!(set.report_down(InstanceId(9), t0), DownReport::Unknown);
    assert_eq!(drain(&mut set), []);
    assert_eq!(set.poll_timeout(), None);
}

#[test]
fn zero_interval_never_hides_an_instance() {
    // 1.6.1: DYN_RUNTIME_INHIBITED_DURATION_SECS=0 disables local worker inhibition.
    let t0 = Instant::now();
    let mut set = InstanceSet::new(endpoint(), Duration::ZERO);
    let _ = set.handle_snapshot([rec(1, 1)], t0);
    drain(&mut set);
    assert_eq!(set.report_down(InstanceId(1), t0), DownReport::Disabled);
    assert_eq!(drain(&mut set), []);
    assert!(set.is_available(InstanceId(1)));
}

#[test]
fn restores_happen_in_deadline_order_and_on_any_input() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2, 3], t0);
    set.report_down(InstanceId(3), t0);
    set.report_down(InstanceId(1), t0 + Duration::from_secs(1));
    set.report_down(InstanceId(2), t0 + Duration::from_secs(2));
    drain(&mut set);
    // A late delete of an unrelated key still restores what is due first.
    set.handle_delete(&key(9), t0 + Duration::from_secs(6))
        .unwrap();
    assert_eq!(
        drain(&mut set),
        [
            InstanceEvent::Restored(InstanceId(3)),
            InstanceEvent::Restored(InstanceId(1))
        ]
    );
    assert_eq!(set.poll_timeout(), Some(t0 + Duration::from_secs(7)));
}

#[test]
fn put_and_report_down_restore_due_instances_first() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2], t0);
    set.report_down(InstanceId(1), t0);
    drain(&mut set);
    let later = t0 + INTERVAL;
    assert_eq!(
        set.report_down(InstanceId(1), later),
        DownReport::MarkedDown
    );
    assert_eq!(
        drain(&mut set),
        [
            InstanceEvent::Restored(InstanceId(1)),
            InstanceEvent::Down(InstanceId(1))
        ]
    );
    assert_eq!(set.poll_timeout(), Some(later + INTERVAL));
}

#[test]
fn resync_that_removes_a_down_instance_clears_its_deadline() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2], t0);
    set.report_down(InstanceId(1), t0);
    drain(&mut set);
    let _ = set.handle_resync([rec(2, 1002)], t0);
    assert_eq!(drain(&mut set), [removed(1)]);
    assert_eq!(set.poll_timeout(), None);
}

#[test]
fn after_handle_timeout_the_next_deadline_is_later_or_none() {
    let t0 = Instant::now();
    let mut set = synced(&[1, 2, 3], t0);
    set.report_down(InstanceId(1), t0);
    set.report_down(InstanceId(2), t0); // same deadline
    set.report_down(InstanceId(3), t0 + Duration::from_millis(1));
    let mut now = t0;
    let mut turns = 0;
    while let Some(deadline) = set.poll_timeout() {
        now = deadline;
        set.handle_timeout(now);
        drain(&mut set);
        if let Some(next) = set.poll_timeout() {
            assert!(
                next > now,
                "busy loop: next deadline {next:?} is not after {now:?}"
            );
        }
        turns += 1;
        assert!(turns < 10, "the timer never settles");
    }
    assert_eq!(turns, 2);
    assert_eq!(now, t0 + INTERVAL + Duration::from_millis(1));
    assert_eq!(set.available_len(), 3);
}

#[test]
fn time_going_backwards_restores_nothing_early() {
    let t0 = Instant::now() + Duration::from_secs(60);
    let mut set = synced(&[1], t0);
    set.report_down(InstanceId(1), t0);
    drain(&mut set);
    set.handle_timeout(t0 - Duration::from_secs(30));
    assert_eq!(drain(&mut set), []);
    assert_eq!(set.poll_timeout(), Some(t0 + INTERVAL));
}

// ---- property: events replay to the state --------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Put instance `id` with record variant `port`; `seen` says whether the watch delivers it.
    Put {
        id: u64,
        port: u16,
        seen: bool,
    },
    /// Delete instance `id`; `seen` as above.
    Delete {
        id: u64,
        seen: bool,
    },
    /// A put of garbage under `id`'s key (the store keeps its previous value, as when only the
    /// watch's copy is corrupt).
    Garbage {
        id: u64,
    },
    ReportDown {
        id: u64,
    },
    Advance {
        millis: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..8, 0u16..3, proptest::bool::weighted(0.8)).prop_map(|(id, port, seen)| Op::Put { id, port, seen }),
        2 => (0u64..8, proptest::bool::weighted(0.8)).prop_map(|(id, seen)| Op::Delete { id, seen }),
        1 => (0u64..8).prop_map(|id| Op::Garbage { id }),
        2 => (0u64..8).prop_map(|id| Op::ReportDown { id }),
        2 => (0u64..7000).prop_map(|millis| Op::Advance { millis }),
    ]
}

/// What a consumer holds after applying the events.
#[derive(Default)]
struct Replay(BTreeMap<InstanceId, (Instance, bool)>);

impl Replay {
    fn apply(&mut self, events: Vec<InstanceEvent>) {
        for event in events {
            match event {
                InstanceEvent::Added(i) => {
                    self.0.insert(i.id, (i, true));
                }
                InstanceEvent::Removed(id) => {
                    assert!(self.0.remove(&id).is_some(), "Removed for unknown {id}");
                }
                InstanceEvent::Down(id) => {
                    let entry = self.0.get_mut(&id).expect("Down for a known instance");
                    assert!(entry.1, "Down for an instance already down");
                    entry.1 = false;
                }
                InstanceEvent::Restored(id) => {
                    let entry = self.0.get_mut(&id).expect("Restored for a known instance");
                    assert!(!entry.1, "Restored for an instance not down");
                    entry.1 = true;
                }
            }
        }
    }

    fn check(&self, set: &InstanceSet) {
        let all: Vec<&Instance> = self.0.values().map(|(i, _)| i).collect();
        let avail: Vec<&Instance> = self
            .0
            .values()
            .filter(|(_, up)| *up)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(set.instances().collect::<Vec<_>>(), all);
        assert_eq!(set.available().collect::<Vec<_>>(), avail);
        assert_eq!(set.available_len(), avail.len());
    }
}

proptest! {
    #[test]
    fn puts_deletes_then_resync_converge_and_events_replay(ops in proptest::collection::vec(op(), 0..60)) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut set = InstanceSet::new(endpoint(), INTERVAL);
        let mut store: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut replay = Replay::default();
        let _ = set.handle_snapshot(Vec::<(String, Vec<u8>)>::new(), now);

        for op in ops {
            match op {
                Op::Put { id, port, seen } => {
                    let (k, v) = rec(id, port);
                    store.insert(id, v.clone());
                    if seen {
                        set.handle_put(&k, &v, now).unwrap();
                    }
                }
                Op::Delete { id, seen } => {
                    store.remove(&id);
                    if seen {
                        set.handle_delete(&key(id), now).unwrap();
                    }
                }
                Op::Garbage { id } => {
                    let before: Vec<Instance> = set.instances().cloned().collect();
                    let result = set.handle_put(&key(id), br#"{"type":"#, now);
                    prop_assert!(result.is_err());
                    prop_assert_eq!(set.instances().cloned().collect::<Vec<_>>(), before);
                }
                Op::ReportDown { id } => {
                    let _ = set.report_down(InstanceId(id), now);
                }
                Op::Advance { millis } => {
                    now += Duration::from_millis(millis);
                    set.handle_timeout(now);
                    if let Some(next) = set.poll_timeout() {
                        prop_assert!(next > now, "busy-loop guard");
                    }
                }
            }
            replay.apply(drain(&mut set));
            replay.check(&set);
        }

        // The watch missed some changes; a resync to the store's final state repairs them.
        let skipped = set.handle_resync(store.iter().map(|(id, v)| (key(*id), v.clone())), now);
        prop_assert!(skipped.is_empty());
        replay.apply(drain(&mut set));
        replay.check(&set);
        let expected: Vec<Instance> = store
            .iter()
            .map(|(id, v)| Instance::from_json(v, &endpoint(), InstanceId(*id)).unwrap())
            .collect();
        prop_assert_eq!(set.instances().cloned().collect::<Vec<_>>(), expected);

        // Every hidden instance is back after one interval, and then the timer is idle.
        now += INTERVAL;
        set.handle_timeout(now);
        replay.apply(drain(&mut set));
        replay.check(&set);
        prop_assert_eq!(set.available_len(), set.len());
        prop_assert_eq!(set.poll_timeout(), None);
    }
}

#[test]
fn set_prefix_is_the_endpoint_query_prefix() {
    use dynrt_core::discovery::Query;
    let set = InstanceSet::new(endpoint(), INTERVAL);
    assert_eq!(set.prefix(), Query::Endpoint(endpoint()).prefix());
    assert!(Query::Endpoint(endpoint()).matches_key(&key(0x2a)));
}
