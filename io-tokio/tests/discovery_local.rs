//! Discovery without external services (the memory and file stores) on tokio. Mirrors
//! `io-smol/tests/discovery_local.rs`; the assertions live in `dynrt_io::testing`.

use std::time::Duration;

use dynrt_io::testing as t;
use dynrt_tokio::TokioRuntime;

/// A test run on a two-worker tokio runtime, with `rt` its `TokioRuntime`.
macro_rules! local_test {
    ($name:ident, |$rt:ident| $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let $rt = TokioRuntime::current();
            $body.await
        }
    };
}

const RECONCILE: Duration = Duration::from_secs(5);
const SHORT_RECONCILE: Duration = Duration::from_millis(200);
const TTL: Duration = Duration::from_secs(10);

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

// ----- memory store -----

local_test!(mem_backend_basics, |rt| async {
    let (_store, a, _b) = t::mem_pair(&rt, RECONCILE);
    t::backend_basics(a.backend().as_ref()).await;
});

local_test!(mem_backend_watch, |rt| async {
    let (_store, a, _b) = t::mem_pair(&rt, RECONCILE);
    t::backend_watch(&rt, a.backend().as_ref()).await;
});

local_test!(mem_register_list_watch, |rt| async {
    let (_store, a, b) = t::mem_pair(&rt, RECONCILE);
    let seen = t::register_list_watch(&rt, &a, &b).await;
    eprintln!("mem: unregister seen by the other session after {seen:?}");
});

local_test!(mem_reregister_and_conflict, |rt| async {
    let (_store, a, b) = t::mem_pair(&rt, RECONCILE);
    t::reregister_and_conflict(&rt, &a, &b).await;
});

local_test!(mem_invalid_names_rejected, |rt| async {
    let (_store, a, _b) = t::mem_pair(&rt, RECONCILE);
    t::invalid_names_rejected(&a).await;
});

local_test!(mem_two_sessions_see_each_other, |rt| async {
    let (_store, a, b) = t::mem_pair(&rt, RECONCILE);
    t::two_runtimes_see_each_other(&rt, &a, &b).await;
});

local_test!(mem_shared_report_down_and_restore, |rt| async {
    let (_store, a, _b) = t::mem_pair(&rt, SHORT_RECONCILE);
    t::shared_report_down_and_restore(&a).await;
});

local_test!(mem_shared_restore_follows_the_runtime_clock, |rt| async {
    t::manual_clock::shared_restore_follows_the_runtime_clock(&rt).await;
});

local_test!(mem_malformed_entries_are_skipped, |rt| async {
    let (_store, a, _b) = t::mem_pair(&rt, RECONCILE);
    t::malformed_entries_are_skipped(&rt, &a).await;
});

local_test!(mem_record_watch, |rt| async {
    let (_store, a, b) = t::mem_pair(&rt, RECONCILE);
    t::record_watch(&rt, &a, &b).await;
});

local_test!(mem_dropped_session_disappears, |rt| async {
    t::mem_dropped_session_disappears(&rt).await;
});

local_test!(mem_revoke_is_lease_lost, |rt| async {
    t::mem_revoke_is_lease_lost(&rt).await;
});

local_test!(mem_watches_end, |rt| async {
    t::mem_watches_end(&rt).await;
});

// ----- file store -----

local_test!(file_backend_basics, |rt| async {
    let dir = temp_dir();
    let a = t::file_discovery(&rt, dir.path(), TTL);
    t::backend_basics(a.backend().as_ref()).await;
});

local_test!(file_backend_watch, |rt| async {
    let dir = temp_dir();
    let a = t::file_discovery(&rt, dir.path(), TTL);
    t::backend_watch(&rt, a.backend().as_ref()).await;
});

local_test!(file_graceful_unregister_seen_quickly, |rt| async {
    let dir = temp_dir();
    let seen = t::file_unregister_latency(&rt, dir.path()).await;
    eprintln!(
        "file: unregister seen by the other runtime after {:?} (median of {}), {:?} at worst",
        seen[seen.len() / 2],
        seen.len(),
        seen[seen.len() - 1]
    );
});

local_test!(file_reregister_and_conflict, |rt| async {
    let dir = temp_dir();
    let a = t::file_discovery(&rt, dir.path(), TTL);
    let b = t::file_discovery(&rt, dir.path(), TTL);
    t::reregister_and_conflict(&rt, &a, &b).await;
});

local_test!(file_invalid_names_rejected, |rt| async {
    let dir = temp_dir();
    let a = t::file_discovery(&rt, dir.path(), TTL);
    t::invalid_names_rejected(&a).await;
});

local_test!(file_two_runtimes_see_each_other, |rt| async {
    let dir = temp_dir();
    let a = t::file_discovery(&rt, dir.path(), TTL);
    let b = t::file_discovery(&rt, dir.path(), TTL);
    t::two_runtimes_see_each_other(&rt, &a, &b).await;
});

local_test!(file_malformed_entries_are_skipped, |rt| async {
    let dir = temp_dir();
    let a = t::file_discovery(&rt, dir.path(), TTL);
    t::malformed_entries_are_skipped(&rt, &a).await;
});

local_test!(file_record_watch, |rt| async {
    let dir = temp_dir();
    let a = t::file_discovery(&rt, dir.path(), TTL);
    let b = t::file_discovery(&rt, dir.path(), TTL);
    t::record_watch(&rt, &a, &b).await;
});

local_test!(file_layout_matches_dynamo, |rt| async {
    let dir = temp_dir();
    t::file_layout_matches_dynamo(&rt, dir.path()).await;
});

local_test!(file_stale_file_expires, |rt| async {
    let dir = temp_dir();
    t::file_stale_file_expires(&rt, dir.path()).await;
});

local_test!(file_owner_keeps_files_fresh, |rt| async {
    let dir = temp_dir();
    t::file_owner_keeps_files_fresh(&rt, dir.path()).await;
});

local_test!(file_shutdown_deletes_owned_files, |rt| async {
    let dir = temp_dir();
    t::file_shutdown_deletes_owned_files(&rt, dir.path()).await;
});

local_test!(file_create_if_absent_across_stores, |rt| async {
    let dir = temp_dir();
    t::file_create_if_absent_across_stores(&rt, dir.path()).await;
});

local_test!(file_owned_file_removed_is_lease_lost, |rt| async {
    let dir = temp_dir();
    t::file_owned_file_removed_is_lease_lost(&rt, dir.path()).await;
});
