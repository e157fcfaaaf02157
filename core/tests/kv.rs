//! The KV model's operations, revisions, errors and leases, in virtual time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_core::kv::{
    BucketName, BucketNameError, CasError, CompactError, CreateError, GrantError, Kv, KvConfig,
    LeaseId, LeaseNotFound, MAX_LEASE_TTL, PutError,
};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn kv() -> Kv {
    Kv::new(KvConfig::default())
}

#[test]
fn fresh_store_is_empty_at_revision_one() {
    let kv = kv();
    assert_eq!(kv.revision(), 1);
    assert!(kv.is_empty());
    assert_eq!(kv.compact_revision(), 0);
    assert_eq!(kv.poll_timeout(), None);
}

#[test]
fn put_new_key_sets_create_and_mod_revision_and_version_one() {
    let mut kv = kv();
    let out = kv.put("a", b("1"), None).unwrap();
    assert_eq!(out.revision, 2);
    assert_eq!(out.prev, None);
    let e = kv.get("a").unwrap();
    assert_eq!(
        (e.create_revision, e.mod_revision, e.version, e.lease),
        (2, 2, 1, None)
    );
    assert_eq!(e.value, b("1"));
    assert_eq!(kv.revision(), 2);
}

#[test]
fn put_overwrite_bumps_revision_and_version_even_with_same_value() {
    let mut kv = kv();
    kv.put("a", b("1"), None).unwrap();
    let out = kv.put("a", b("1"), None).unwrap();
    assert_eq!(out.revision, 3);
    assert_eq!(out.prev.as_ref().map(|p| p.mod_revision), Some(2));
    let e = kv.get("a").unwrap();
    assert_eq!((e.create_revision, e.mod_revision, e.version), (2, 3, 2));
}

#[test]
fn put_rejects_empty_key_and_unknown_lease_without_changing_anything() {
    let mut kv = kv();
    assert_eq!(kv.put("", b("x"), None), Err(PutError::EmptyKey));
    let ghost = LeaseId::new(42).unwrap();
    let err = kv.put("a", b("x"), Some(ghost)).unwrap_err();
    assert_eq!(
        err,
        PutError::LeaseNotFound {
            key: "a".into(),
            source: LeaseNotFound { lease: ghost }
        }
    );
    assert_eq!(
        err.to_string(),
        "put 'a': lease 2a not found (never granted, revoked, or expired)"
    );
    assert_eq!(kv.revision(), 1);
    assert!(kv.is_empty());
}

#[test]
fn create_if_absent_succeeds_once_then_reports_the_stored_entry() {
    let mut kv = kv();
    assert_eq!(kv.create("k", b("first"), None), Ok(2));
    kv.put("k", b("second"), None).unwrap();
    let err = kv.create("k", b("third"), None).unwrap_err();
    let CreateError::AlreadyExists { current } = &err else {
        panic!("expected AlreadyExists, got {err:?}");
    };
    assert_eq!(current.value, b("second"));
    assert_eq!(
        (
            current.create_revision,
            current.mod_revision,
            current.version
        ),
        (2, 3, 2)
    );
    assert_eq!(
        err.to_string(),
        "key 'k' already exists (created at revision 2, modified at revision 3, version 2)"
    );
    assert_eq!(
        kv.revision(),
        3,
        "a failed create does not advance the revision"
    );
    assert_eq!(kv.get("k").unwrap().value, b("second"));
}

#[test]
fn create_after_delete_starts_a_new_generation() {
    let mut kv = kv();
    kv.create("k", b("1"), None).unwrap();
    kv.put("k", b("2"), None).unwrap();
    kv.delete("k");
    let rev = kv.create("k", b("3"), None).unwrap();
    let e = kv.get("k").unwrap();
    assert_eq!(
        (e.create_revision, e.mod_revision, e.version),
        (rev, rev, 1)
    );
}

#[test]
fn create_rejects_empty_key_and_unknown_lease() {
    let mut kv = kv();
    assert_eq!(kv.create("", b("x"), None), Err(CreateError::EmptyKey));
    let ghost = LeaseId::new(7).unwrap();
    assert!(matches!(
        kv.create("k", b("x"), Some(ghost)),
        Err(CreateError::LeaseNotFound { source: LeaseNotFound { lease }, .. }) if lease == ghost
    ));
    assert!(kv.is_empty());
    assert_eq!(kv.revision(), 1);
}

#[test]
fn compare_and_swap_writes_only_at_the_expected_mod_revision() {
    let mut kv = kv();
    let r1 = kv.create("k", b("v1"), None).unwrap();
    let r2 = kv.compare_and_swap("k", r1, b("v2"), None).unwrap();
    assert_eq!(r2, r1 + 1);
    let e = kv.get("k").unwrap();
    assert_eq!(
        (e.value.clone(), e.version, e.mod_revision),
        (b("v2"), 2, r2)
    );

    let err = kv.compare_and_swap("k", r1, b("v3"), None).unwrap_err();
    let CasError::Conflict { expected, current } = &err else {
        panic!("expected Conflict, got {err:?}");
    };
    assert_eq!(*expected, r1);
    assert_eq!(current.mod_revision, r2);
    assert_eq!(
        err.to_string(),
        format!("compare-and-swap 'k': expected modification revision {r1}, found {r2}")
    );
    assert_eq!(kv.revision(), r2);
    assert_eq!(kv.get("k").unwrap().value, b("v2"));
}

#[test]
fn compare_and_swap_never_creates_a_missing_key() {
    let mut kv = kv();
    assert_eq!(
        kv.compare_and_swap("k", 0, b("v"), None),
        Err(CasError::Missing { key: "k".into() })
    );
    assert_eq!(
        kv.compare_and_swap("", 0, b("v"), None),
        Err(CasError::EmptyKey)
    );
    assert!(kv.is_empty());
    assert_eq!(kv.revision(), 1);
}

#[test]
fn compare_and_swap_with_unknown_lease_changes_nothing() {
    let mut kv = kv();
    let r = kv.create("k", b("v"), None).unwrap();
    let ghost = LeaseId::new(9).unwrap();
    assert!(matches!(
        kv.compare_and_swap("k", r, b("w"), Some(ghost)),
        Err(CasError::LeaseNotFound { .. })
    ));
    assert_eq!(kv.get("k").unwrap().value, b("v"));
    assert_eq!(kv.revision(), r);
}

#[test]
fn delete_existing_key_bumps_revision_and_returns_it() {
    let mut kv = kv();
    kv.put("k", b("v"), None).unwrap();
    let out = kv.delete("k");
    assert_eq!(out.revision, 3);
    assert_eq!(out.deleted.unwrap().value, b("v"));
    assert!(kv.get("k").is_none());
}

#[test]
fn delete_of_a_missing_key_does_not_advance_the_revision() {
    let mut kv = kv();
    kv.put("k", b("v"), None).unwrap();
    let out = kv.delete("nope");
    assert_eq!(out.revision, 2);
    assert_eq!(out.deleted, None);
    assert_eq!(kv.revision(), 2);
}

#[test]
fn delete_prefix_removes_everything_under_it_in_one_revision() {
    let mut kv = kv();
    for k in ["p/a", "p/b", "q/a"] {
        kv.put(k, b("v"), None).unwrap();
    }
    let (rev, deleted) = kv.delete_prefix("p/");
    assert_eq!(rev, 5);
    assert_eq!(
        deleted.iter().map(|e| &*e.key).collect::<Vec<_>>(),
        ["p/a", "p/b"]
    );
    assert_eq!(kv.len(), 1);
    let (rev, deleted) = kv.delete_prefix("p/");
    assert_eq!((rev, deleted.len()), (5, 0), "nothing deleted, no revision");
}

#[test]
fn range_is_a_raw_prefix_in_key_order() {
    let mut kv = kv();
    for k in ["ns/comp2/x", "ns/comp/b", "ns/comp/a", "ns/com", "other"] {
        kv.put(k, b("v"), None).unwrap();
    }
    let keys = |p: &str| kv.range(p).map(|e| e.key.to_string()).collect::<Vec<_>>();
    assert_eq!(keys("ns/comp/"), ["ns/comp/a", "ns/comp/b"]);
    assert_eq!(
        keys("ns/comp"),
        ["ns/comp/a", "ns/comp/b", "ns/comp2/x"],
        "like etcd, a prefix without '/' has no path boundary"
    );
    assert_eq!(keys("").len(), 5);
    assert!(keys("zzz").is_empty());
}

#[test]
fn bucket_prefix_has_a_path_boundary() {
    let mut kv = kv();
    let a = BucketName::new("v1/inst").unwrap();
    let ab = BucketName::new("v1/instances").unwrap();
    kv.put(&a.key("ns/c/e/1"), b("a"), None).unwrap();
    kv.put(&ab.key("ns/c/e/2"), b("ab"), None).unwrap();
    let in_a: Vec<_> = kv.range(&a.prefix()).map(|e| e.key.to_string()).collect();
    assert_eq!(in_a, ["v1/inst/ns/c/e/1"]);
    assert_eq!(a.relative("v1/inst/ns/c/e/1"), Some("ns/c/e/1"));
    assert_eq!(a.relative("v1/instances/ns/c/e/2"), None);
    assert_eq!(a.relative("v1/inst"), None);
}

#[test]
fn bucket_names_are_validated_with_errors_naming_the_problem() {
    assert_eq!(BucketName::new(""), Err(BucketNameError::Empty));
    let err = BucketName::new("v1//x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "bucket name 'v1//x': empty segment at 3 (no leading, trailing or double '/')"
    );
    assert!(matches!(
        BucketName::new("/v1"),
        Err(BucketNameError::EmptySegment { at: 0, .. })
    ));
    assert!(matches!(
        BucketName::new("v1/"),
        Err(BucketNameError::EmptySegment { .. })
    ));
    assert!(matches!(
        BucketName::new("v1/../etc"),
        Err(BucketNameError::DotSegment { segment, .. }) if segment == ".."
    ));
    let err = BucketName::new("v1/in stances").unwrap_err();
    assert_eq!(
        err,
        BucketNameError::BadCharacter {
            name: "v1/in stances".into(),
            character: ' ',
            at: 5
        }
    );
    assert!(
        err.to_string()
            .contains("character ' ' at 5 is not allowed")
    );
    assert_eq!(BucketName::new("v1/mdc").unwrap().as_str(), "v1/mdc");
}

#[test]
fn open_bucket_is_idempotent_and_queryable() {
    let mut kv = kv();
    let name = BucketName::new("v1/mdc").unwrap();
    assert!(!kv.has_bucket(&name));
    assert!(kv.open_bucket(&name));
    assert!(!kv.open_bucket(&name));
    assert!(kv.has_bucket(&name));
    assert_eq!(kv.buckets().collect::<Vec<_>>(), [&name]);
    assert_eq!(kv.revision(), 1, "buckets are not revisioned data");
}

#[test]
fn grant_raises_short_ttls_to_the_minimum_and_rejects_huge_ones() {
    let t0 = Instant::now();
    let mut kv = kv();
    let g = kv.grant_lease(Duration::from_millis(300), t0).unwrap();
    assert_eq!(g.ttl, secs(2));
    assert_eq!(kv.lease_info(g.id).unwrap().deadline, t0 + secs(2));
    let g0 = kv.grant_lease(Duration::ZERO, t0).unwrap();
    assert_eq!(g0.ttl, secs(2));
    let too_big = MAX_LEASE_TTL + secs(1);
    let err = kv.grant_lease(too_big, t0).unwrap_err();
    assert_eq!(
        err,
        GrantError::TtlTooLarge {
            ttl: too_big,
            max: MAX_LEASE_TTL
        }
    );
    assert_eq!(
        err.to_string(),
        "lease TTL of 9000000001 s exceeds the maximum of 9000000000 s"
    );
    assert_eq!(kv.revision(), 1, "leases do not advance the revision");
}

#[test]
fn lease_ids_are_nonzero_positive_unique_and_reproducible_by_seed() {
    let t0 = Instant::now();
    let ids = |seed| {
        let mut kv = Kv::new(KvConfig {
            lease_id_seed: seed,
            ..KvConfig::default()
        });
        (0..200)
            .map(|_| kv.grant_lease(secs(10), t0).unwrap().id.get())
            .collect::<Vec<_>>()
    };
    let a = ids(1);
    assert_eq!(a, ids(1));
    assert_ne!(a, ids(2));
    let mut sorted = a.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), a.len());
    assert!(a.iter().all(|&id| id != 0 && i64::try_from(id).is_ok()));
}

#[test]
fn lease_id_prints_as_lowercase_hex() {
    assert_eq!(
        LeaseId::new(0x694d_9a2b_c1f0).unwrap().to_string(),
        "694d9a2bc1f0"
    );
    assert_eq!(LeaseId::new(0), None);
}

#[test]
fn lease_expiry_deletes_its_keys_at_the_deadline_and_not_before() {
    let t0 = Instant::now();
    let mut kv = kv();
    let lease = kv.grant_lease(secs(10), t0).unwrap().id;
    kv.put("a", b("1"), Some(lease)).unwrap();
    kv.put("b", b("2"), Some(lease)).unwrap();
    kv.put("c", b("3"), None).unwrap();
    assert_eq!(kv.poll_timeout(), Some(t0 + secs(10)));

    kv.handle_timeout(t0 + secs(10) - Duration::from_nanos(1));
    assert_eq!(kv.len(), 3, "one nanosecond early nothing expires");
    let before = kv.revision();

    kv.handle_timeout(t0 + secs(10));
    assert_eq!(kv.len(), 1);
    assert!(kv.get("c").is_some());
    assert_eq!(
        kv.revision(),
        before + 1,
        "all keys of a lease go in one revision"
    );
    assert_eq!(kv.lease_info(lease), None);
    assert_eq!(kv.poll_timeout(), None);
}

#[test]
fn keep_alive_moves_the_deadline() {
    let t0 = Instant::now();
    let mut kv = kv();
    let lease = kv.grant_lease(secs(10), t0).unwrap().id;
    kv.put("a", b("1"), Some(lease)).unwrap();
    assert_eq!(kv.keep_alive(lease, t0 + secs(8)), Ok(secs(10)));
    assert_eq!(kv.poll_timeout(), Some(t0 + secs(18)));
    kv.handle_timeout(t0 + secs(17));
    assert!(kv.get("a").is_some());
    kv.handle_timeout(t0 + secs(18));
    assert!(kv.get("a").is_none());
}

#[test]
fn an_expired_lease_cannot_be_kept_alive_even_before_the_timer_fires() {
    let t0 = Instant::now();
    let mut kv = kv();
    let lease = kv.grant_lease(secs(5), t0).unwrap().id;
    kv.put("a", b("1"), Some(lease)).unwrap();
    assert_eq!(
        kv.keep_alive(lease, t0 + secs(5)),
        Err(LeaseNotFound { lease })
    );
    assert!(kv.get("a").is_none(), "expired at its deadline on the way");
}

#[test]
fn revoke_deletes_the_leases_keys_in_one_revision() {
    let t0 = Instant::now();
    let mut kv = kv();
    let lease = kv.grant_lease(secs(10), t0).unwrap().id;
    for k in ["x/2", "x/1", "x/3"] {
        kv.put(k, b("v"), Some(lease)).unwrap();
    }
    let info = kv.lease_info(lease).unwrap();
    assert_eq!(
        info.keys.iter().map(|k| &**k).collect::<Vec<_>>(),
        ["x/1", "x/2", "x/3"]
    );
    let rev = kv.revoke(lease).unwrap();
    assert_eq!(rev, 5);
    assert!(kv.is_empty());
    assert_eq!(kv.revoke(lease), Err(LeaseNotFound { lease }));
    assert_eq!(
        kv.keep_alive(lease, t0 + secs(1)),
        Err(LeaseNotFound { lease })
    );
}

#[test]
fn revoking_a_lease_without_keys_does_not_advance_the_revision() {
    let t0 = Instant::now();
    let mut kv = kv();
    let lease = kv.grant_lease(secs(10), t0).unwrap().id;
    assert_eq!(kv.revoke(lease), Ok(1));
}

#[test]
fn a_put_moves_a_key_between_leases_and_a_plain_put_detaches_it() {
    let t0 = Instant::now();
    let mut kv = kv();
    let short = kv.grant_lease(secs(5), t0).unwrap().id;
    let long = kv.grant_lease(secs(50), t0).unwrap().id;
    kv.put("moved", b("v"), Some(short)).unwrap();
    kv.put("moved", b("v"), Some(long)).unwrap();
    kv.put("freed", b("v"), Some(short)).unwrap();
    kv.put("freed", b("v"), None).unwrap();
    kv.put("deleted", b("v"), Some(short)).unwrap();
    kv.delete("deleted");
    assert!(kv.lease_info(short).unwrap().keys.is_empty());

    let rev = kv.revision();
    kv.handle_timeout(t0 + secs(5));
    assert_eq!(kv.revision(), rev, "the short lease held no keys any more");
    assert!(kv.get("moved").is_some());
    assert!(kv.get("freed").is_some());
    assert_eq!(kv.get("moved").unwrap().lease, Some(long));
    assert_eq!(kv.get("freed").unwrap().lease, None);
}

#[test]
fn leases_due_together_expire_one_revision_each_earliest_first() {
    let t0 = Instant::now();
    let mut kv = kv();
    let late = kv.grant_lease(secs(7), t0).unwrap().id;
    let early = kv.grant_lease(secs(3), t0).unwrap().id;
    kv.put("late", b("v"), Some(late)).unwrap();
    kv.put("early", b("v"), Some(early)).unwrap();
    let w = kv.watch("", dynrt_core::kv::WatchStart::Now);
    kv.handle_timeout(t0 + secs(60));
    let mut deletes = Vec::new();
    while let Some(ev) = kv.poll_watch_event(w).unwrap() {
        if let dynrt_core::kv::WatchEvent::Delete { key, revision, .. } = ev {
            deletes.push((key.to_string(), revision));
        }
    }
    assert_eq!(deletes, [("early".to_owned(), 4), ("late".to_owned(), 5)]);
}

#[test]
fn after_handle_timeout_the_next_deadline_is_later() {
    let t0 = Instant::now();
    let mut kv = kv();
    for ttl in [3, 3, 5, 9] {
        let id = kv.grant_lease(secs(ttl), t0).unwrap().id;
        kv.put(&format!("k{ttl}-{id}"), b("v"), Some(id)).unwrap();
    }
    let mut now = t0;
    while let Some(t) = kv.poll_timeout() {
        assert!(t > now || now == t0);
        now = t;
        kv.handle_timeout(now);
        assert!(kv.poll_timeout().is_none_or(|next| next > now));
    }
    assert!(kv.is_empty());
}

#[test]
fn compaction_is_refused_for_future_or_already_compacted_revisions() {
    let mut kv = kv();
    kv.put("a", b("1"), None).unwrap();
    kv.put("a", b("2"), None).unwrap();
    assert_eq!(
        kv.compact(4),
        Err(CompactError::FutureRevision {
            requested: 4,
            current: 3
        })
    );
    assert_eq!(kv.compact(3), Ok(()));
    assert_eq!(kv.compact_revision(), 3);
    let err = kv.compact(2).unwrap_err();
    assert_eq!(
        err,
        CompactError::AlreadyCompacted {
            requested: 2,
            compact_revision: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "cannot compact to revision 2: already compacted to 3"
    );
    assert_eq!(kv.get("a").unwrap().value, b("2"), "compaction keeps data");
}
