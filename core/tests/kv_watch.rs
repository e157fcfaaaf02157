//! Watches on the KV model: snapshot, ordered changes, prefixes, compaction and resync.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::kv::{Kv, KvConfig, OnGap, UnknownWatch, WatchEvent, WatchId, WatchStart};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn kv_with_history(limit: usize) -> Kv {
    Kv::new(KvConfig {
        history_limit: limit,
        ..KvConfig::default()
    })
}

fn drain(kv: &mut Kv, w: WatchId) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while let Some(ev) = kv.poll_watch_event(w).unwrap() {
        let ended = matches!(ev, WatchEvent::Compacted { .. });
        out.push(ev);
        if ended {
            break; // the watch is gone
        }
    }
    out
}

/// A compact picture of an event: kind, key(s), revision.
fn sketch(ev: &WatchEvent) -> String {
    match ev {
        WatchEvent::Snapshot { revision, entries } => format!(
            "snapshot@{revision}[{}]",
            entries
                .iter()
                .map(|e| &*e.key)
                .collect::<Vec<_>>()
                .join(",")
        ),
        WatchEvent::Resync { revision, entries } => format!(
            "resync@{revision}[{}]",
            entries
                .iter()
                .map(|e| &*e.key)
                .collect::<Vec<_>>()
                .join(",")
        ),
        WatchEvent::Put(kv) => format!("put {}@{}", kv.key, kv.mod_revision),
        WatchEvent::Delete { key, revision, .. } => format!("del {key}@{revision}"),
        WatchEvent::Compacted { compact_revision } => format!("compacted<{compact_revision}"),
    }
}

fn sketches(evs: &[WatchEvent]) -> Vec<String> {
    evs.iter().map(sketch).collect()
}

#[test]
fn snapshot_first_then_changes_in_revision_order() {
    let mut kv = kv_with_history(100);
    kv.put("p/b", b("1"), None).unwrap();
    kv.put("p/a", b("1"), None).unwrap();
    let w = kv.watch("p/", WatchStart::Snapshot);
    assert_eq!(sketches(&drain(&mut kv, w)), ["snapshot@3[p/a,p/b]"]);
    kv.put("p/c", b("1"), None).unwrap();
    kv.delete("p/a");
    kv.put("p/b", b("2"), None).unwrap();
    assert_eq!(
        sketches(&drain(&mut kv, w)),
        ["put p/c@4", "del p/a@5", "put p/b@6"]
    );
    assert!(drain(&mut kv, w).is_empty());
}

#[test]
fn snapshot_of_an_empty_prefix_is_an_empty_snapshot() {
    let mut kv = kv_with_history(100);
    let w = kv.watch("nothing/", WatchStart::Snapshot);
    assert_eq!(sketches(&drain(&mut kv, w)), ["snapshot@1[]"]);
}

#[test]
fn the_snapshot_shows_the_state_when_it_is_polled() {
    let mut kv = kv_with_history(100);
    let w = kv.watch("p/", WatchStart::Snapshot);
    kv.put("p/a", b("1"), None).unwrap();
    assert_eq!(
        sketches(&drain(&mut kv, w)),
        ["snapshot@2[p/a]"],
        "a change before the first poll is inside the snapshot, never also a Put"
    );
}

#[test]
fn watch_now_sees_only_later_changes() {
    let mut kv = kv_with_history(100);
    kv.put("p/a", b("1"), None).unwrap();
    let w = kv.watch("p/", WatchStart::Now);
    assert!(drain(&mut kv, w).is_empty());
    kv.put("p/a", b("2"), None).unwrap();
    assert_eq!(sketches(&drain(&mut kv, w)), ["put p/a@3"]);
}

#[test]
fn watch_from_a_revision_replays_history_from_there() {
    let mut kv = kv_with_history(100);
    for v in ["1", "2", "3"] {
        kv.put("p/a", b(v), None).unwrap();
    }
    let w = kv.watch("p/", WatchStart::Revision(3));
    assert_eq!(sketches(&drain(&mut kv, w)), ["put p/a@3", "put p/a@4"]);
    let w0 = kv.watch("p/", WatchStart::Revision(0));
    assert!(drain(&mut kv, w0).is_empty(), "revision 0 means now");
}

#[test]
fn watch_from_a_future_revision_skips_the_changes_before_it() {
    let mut kv = kv_with_history(100);
    let w = kv.watch("p/", WatchStart::Revision(4));
    kv.put("p/a", b("1"), None).unwrap(); // 2
    kv.put("p/a", b("2"), None).unwrap(); // 3
    kv.put("p/a", b("3"), None).unwrap(); // 4
    assert_eq!(sketches(&drain(&mut kv, w)), ["put p/a@4"]);
}

#[test]
fn a_delete_event_carries_the_deleted_entry() {
    let mut kv = kv_with_history(100);
    kv.put("p/a", b("gone"), None).unwrap();
    let w = kv.watch("p/", WatchStart::Now);
    kv.delete("p/a");
    let evs = drain(&mut kv, w);
    let [
        WatchEvent::Delete {
            key,
            revision,
            prev,
        },
    ] = evs.as_slice()
    else {
        panic!("expected one delete, got {evs:?}");
    };
    assert_eq!(&**key, "p/a");
    assert_eq!(*revision, 3);
    assert_eq!(prev.value, b("gone"));
    assert_eq!(prev.mod_revision, 2);
}

#[test]
fn watches_respect_the_prefix_they_were_given() {
    let mut kv = kv_with_history(100);
    let bounded = kv.watch("ns/comp/", WatchStart::Now);
    let raw = kv.watch("ns/comp", WatchStart::Now);
    kv.put("ns/comp/a", b("1"), None).unwrap();
    kv.put("ns/comp2/a", b("1"), None).unwrap();
    kv.put("ns/other", b("1"), None).unwrap();
    assert_eq!(sketches(&drain(&mut kv, bounded)), ["put ns/comp/a@2"]);
    assert_eq!(
        sketches(&drain(&mut kv, raw)),
        ["put ns/comp/a@2", "put ns/comp2/a@3"]
    );
}

#[test]
fn lease_expiry_is_seen_as_deletes_sharing_one_revision_in_key_order() {
    let t0 = Instant::now();
    let mut kv = kv_with_history(100);
    let lease = kv.grant_lease(Duration::from_secs(10), t0).unwrap().id;
    kv.put("p/b", b("1"), Some(lease)).unwrap();
    kv.put("p/a", b("1"), Some(lease)).unwrap();
    let w = kv.watch("p/", WatchStart::Snapshot);
    let _ = drain(&mut kv, w);
    kv.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(sketches(&drain(&mut kv, w)), ["del p/a@4", "del p/b@4"]);
}

#[test]
fn a_slow_watcher_gets_a_resync_instead_of_unbounded_history() {
    let mut kv = kv_with_history(4);
    let slow = kv.watch("p/", WatchStart::Snapshot);
    let fast = kv.watch("p/", WatchStart::Snapshot);
    let _ = drain(&mut kv, slow);
    let _ = drain(&mut kv, fast);
    for i in 0..10u32 {
        kv.put(&format!("p/{}", i % 3), Bytes::from(i.to_string()), None)
            .unwrap();
        let _ = drain(&mut kv, fast);
        assert!(kv.history_len() <= 4, "history stays within its limit");
    }
    let evs = drain(&mut kv, slow);
    assert_eq!(sketches(&evs), ["resync@11[p/0,p/1,p/2]"]);
    let WatchEvent::Resync { entries, .. } = &evs[0] else {
        unreachable!()
    };
    let values: Vec<_> = entries.iter().map(|e| e.value.clone()).collect();
    assert_eq!(values, [b("9"), b("7"), b("8")]);
    kv.put("p/x", b("after"), None).unwrap();
    assert_eq!(sketches(&drain(&mut kv, slow)), ["put p/x@12"]);
}

#[test]
fn a_watcher_that_lost_only_irrelevant_history_is_not_resynced() {
    let mut kv = kv_with_history(2);
    let w = kv.watch("p/", WatchStart::Now);
    for i in 0..10u32 {
        kv.put(&format!("q/{i}"), b("v"), None).unwrap();
    }
    assert!(kv.compact_revision() > 1);
    kv.put("p/a", b("v"), None).unwrap();
    assert_eq!(sketches(&drain(&mut kv, w)), ["put p/a@12"]);
}

#[test]
fn watching_from_a_compacted_revision_resyncs() {
    let mut kv = kv_with_history(100);
    for v in ["1", "2", "3"] {
        kv.put("p/a", b(v), None).unwrap();
    }
    kv.compact(3).unwrap();
    let w = kv.watch("p/", WatchStart::Revision(2));
    assert_eq!(sketches(&drain(&mut kv, w)), ["resync@4[p/a]"]);
    let ok = kv.watch("p/", WatchStart::Revision(3));
    assert_eq!(
        sketches(&drain(&mut kv, ok)),
        ["put p/a@3", "put p/a@4"],
        "the compaction revision itself is still watchable, as in etcd"
    );
}

#[test]
fn with_on_gap_cancel_a_compacted_watch_reports_compacted_and_ends() {
    let mut kv = kv_with_history(100);
    for v in ["1", "2", "3"] {
        kv.put("p/a", b(v), None).unwrap();
    }
    kv.compact(4).unwrap();
    let w = kv.watch_with("p/", WatchStart::Revision(2), OnGap::Cancel);
    assert_eq!(sketches(&drain(&mut kv, w)), ["compacted<4"]);
    assert_eq!(kv.poll_watch_event(w), Err(UnknownWatch { watch: w }));
    assert_eq!(kv.watch_count(), 0);
}

#[test]
fn with_on_gap_cancel_a_slow_watcher_is_cancelled_by_compaction() {
    let mut kv = kv_with_history(100);
    let w = kv.watch_with("p/", WatchStart::Now, OnGap::Cancel);
    kv.put("p/a", b("1"), None).unwrap(); // 2
    kv.put("p/a", b("2"), None).unwrap(); // 3
    kv.compact(3).unwrap();
    assert_eq!(sketches(&drain(&mut kv, w)), ["compacted<3"]);
}

#[test]
fn explicit_compaction_resyncs_a_watcher_that_had_not_read_up() {
    let mut kv = kv_with_history(100);
    let w = kv.watch("p/", WatchStart::Snapshot);
    let _ = drain(&mut kv, w);
    kv.put("p/a", b("1"), None).unwrap(); // 2
    kv.put("p/b", b("1"), None).unwrap(); // 3
    assert!(matches!(
        kv.poll_watch_event(w),
        Ok(Some(WatchEvent::Put(_)))
    ));
    kv.compact(4).unwrap_err();
    kv.put("p/c", b("1"), None).unwrap(); // 4
    kv.compact(4).unwrap();
    assert_eq!(sketches(&drain(&mut kv, w)), ["resync@4[p/a,p/b,p/c]"]);
}

#[test]
fn ready_watches_are_named_once_and_only_when_concerned() {
    let mut kv = kv_with_history(100);
    let snap = kv.watch("p/", WatchStart::Snapshot);
    let p = kv.watch("p/", WatchStart::Now);
    let q = kv.watch("q/", WatchStart::Now);
    assert_eq!(kv.poll_ready_watch(), Some(snap), "a snapshot is owed");
    assert_eq!(kv.poll_ready_watch(), None);
    kv.put("p/a", b("1"), None).unwrap();
    kv.put("p/b", b("1"), None).unwrap();
    let mut ready = Vec::new();
    while let Some(w) = kv.poll_ready_watch() {
        ready.push(w);
    }
    assert_eq!(
        ready,
        [p],
        "the snapshot watch owes its snapshot already; q is not concerned"
    );
    assert_eq!(drain(&mut kv, p).len(), 2);
    assert!(drain(&mut kv, q).is_empty());
}

#[test]
fn cancelled_watches_are_unknown() {
    let mut kv = kv_with_history(100);
    let w = kv.watch("p/", WatchStart::Now);
    assert!(kv.cancel_watch(w));
    assert!(!kv.cancel_watch(w));
    assert_eq!(kv.poll_watch_event(w), Err(UnknownWatch { watch: w }));
    assert_eq!(
        UnknownWatch { watch: w }.to_string(),
        format!(
            "watch #{} does not exist (never created, cancelled, or ended)",
            w.get()
        )
    );
}

#[test]
fn event_revisions_only_increase_for_a_watcher() {
    let t0 = Instant::now();
    let mut kv = kv_with_history(8);
    let w = kv.watch("", WatchStart::Snapshot);
    let lease = kv.grant_lease(Duration::from_secs(3), t0).unwrap().id;
    let (mut last, mut floor) = (0, 0);
    for i in 0..40u64 {
        let key = format!("k{}", i % 5);
        match i % 4 {
            0 => drop(kv.put(&key, b("v"), Some(lease))),
            1 => drop(kv.delete(&key)),
            2 => drop(kv.create(&key, b("v"), None)),
            _ => kv.handle_timeout(t0 + Duration::from_secs(i)),
        }
        if i % 3 == 0 {
            for ev in drain(&mut kv, w) {
                let rev = ev.revision().unwrap();
                assert!(rev >= last, "{ev:?} goes back from {last}");
                if let WatchEvent::Resync { .. } | WatchEvent::Snapshot { .. } = ev {
                    floor = rev;
                } else {
                    assert!(
                        rev > floor,
                        "{ev:?} is not newer than the snapshot at {floor}"
                    );
                }
                last = rev;
            }
        }
    }
}

#[test]
fn poll_next_watch_event_drains_every_watch_in_id_order() {
    let mut kv = kv_with_history(100);
    let wa = kv.watch("a/", WatchStart::Snapshot);
    let wb = kv.watch("b/", WatchStart::Now);
    let quiet = kv.watch("q/", WatchStart::Now);
    kv.put("b/1", b("1"), None).unwrap();
    kv.put("a/1", b("1"), None).unwrap();
    kv.put("b/2", b("1"), None).unwrap();
    let mut got = Vec::new();
    while let Some((w, ev)) = kv.poll_next_watch_event() {
        got.push((w, sketch(&ev)));
    }
    assert_eq!(
        got,
        [
            (wa, "snapshot@4[a/1]".to_owned()),
            (wb, "put b/1@2".to_owned()),
            (wb, "put b/2@4".to_owned()),
        ]
    );
    assert!(drain(&mut kv, quiet).is_empty());
    assert_eq!(kv.poll_next_watch_event(), None);
}
