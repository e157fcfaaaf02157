//! The etcd discovery store on tokio, against a real etcd (started per test on free ports).
//! The scenarios are shared with dynrt-smol: `dynrt_io::discovery::etcd::testing`.

#![cfg(feature = "etcd")]

use dynrt_io::discovery::etcd::testing;
use dynrt_testkit::EtcdServer;
use dynrt_tokio::TokioRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_watch_delete_and_duplicate_create() {
    let etcd = EtcdServer::start();
    let figures = testing::kv_basics(TokioRuntime::current(), etcd.endpoint()).await;
    let mut delete = figures.delete_seen.clone();
    delete.sort();
    println!("tokio: delete -> watcher: {delete:?}");
    println!("tokio: create -> watcher: {:?}", figures.create_seen);
    assert!(
        // Generous for a loaded 2-core machine, yet far below the 30 s lease TTL: a delete
        // that only reached the watcher through lease expiry would fail this.
        delete[delete.len() - 1] < std::time::Duration::from_secs(10),
        "a graceful delete took {:?} to reach a watcher",
        delete[delete.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_see_each_other() {
    let etcd = EtcdServer::start();
    testing::two_stores_see_each_other(TokioRuntime::current(), etcd.endpoint()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_store_disappears_within_ttl_plus_one_second() {
    let etcd = EtcdServer::start();
    let took = testing::crashed_store_expires(TokioRuntime::current(), etcd.endpoint()).await;
    println!("tokio: crash (TTL 3 s) -> watcher sees the delete after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_and_registration_survives_etcd_restart() {
    let mut etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let figures = testing::etcd_restart(TokioRuntime::current(), endpoint, || etcd.restart()).await;
    println!("tokio: after etcd restart: {figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_during_a_watch_gap_resyncs() {
    let etcd = EtcdServer::start();
    let figures = testing::compaction_resync(TokioRuntime::current(), etcd.endpoint()).await;
    println!("tokio: compaction gap: {figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_revoked_elsewhere_is_reported_lost() {
    let etcd = EtcdServer::start();
    let took =
        testing::lease_revoked_elsewhere_is_lost(TokioRuntime::current(), etcd.endpoint()).await;
    println!("tokio: lease revoked elsewhere -> lease_lost after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_etcd_is_a_one_line_error() {
    let endpoint = format!("http://127.0.0.1:{}", dynrt_testkit::free_port());
    let message =
        testing::unreachable_etcd_is_a_clear_error(TokioRuntime::current(), endpoint).await;
    println!("tokio: {message}");
}

/// Current-thread flavour on purpose: the test blocks the only executor thread.
#[tokio::test]
async fn lease_renewal_is_not_starved_by_a_blocked_executor() {
    let etcd = EtcdServer::start();
    testing::renewal_is_not_starved_by_user_work(TokioRuntime::current(), etcd.endpoint()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_longer_than_the_ttl_loses_the_lease() {
    let mut etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let took = testing::long_outage_loses_the_lease(TokioRuntime::current(), endpoint, |up| {
        if up { etcd.restart() } else { etcd.stop() }
    })
    .await;
    println!("tokio: etcd down (TTL 2 s) -> lease_lost after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_register_list_watch_idempotent_and_names_checked() {
    let etcd = EtcdServer::start();
    testing::discovery_scenarios(TokioRuntime::current(), etcd.endpoint()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_kept_by_the_runtime_clock_not_the_wall_clock() {
    let etcd = EtcdServer::start();
    testing::lease_follows_the_runtime_clock(TokioRuntime::current(), etcd.endpoint()).await;
}
