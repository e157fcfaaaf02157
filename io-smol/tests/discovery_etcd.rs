//! The etcd discovery store on smol, against a real etcd (started per test on free ports).
//! The scenarios are shared with dynrt-tokio: `dynrt_io::discovery::etcd::testing`.

#![cfg(feature = "etcd")]

use dynrt_io::discovery::etcd::testing;
use dynrt_smol::SmolRuntime;
use dynrt_testkit::EtcdServer;

#[test]
fn create_list_watch_delete_and_duplicate_create() {
    let etcd = EtcdServer::start();
    let figures = smol::block_on(testing::kv_basics(SmolRuntime::new(), etcd.endpoint()));
    let mut delete = figures.delete_seen.clone();
    delete.sort();
    println!("smol: delete -> watcher: {delete:?}");
    println!("smol: create -> watcher: {:?}", figures.create_seen);
    assert!(
        // Generous for a loaded 2-core machine, yet far below the 30 s lease TTL: a delete
        // that only reached the watcher through lease expiry would fail this.
        delete[delete.len() - 1] < std::time::Duration::from_secs(10),
        "a graceful delete took {:?} to reach a watcher",
        delete[delete.len() - 1]
    );
}

#[test]
fn two_stores_see_each_other() {
    let etcd = EtcdServer::start();
    smol::block_on(testing::two_stores_see_each_other(
        SmolRuntime::new(),
        etcd.endpoint(),
    ));
}

#[test]
fn crashed_store_disappears_within_ttl_plus_one_second() {
    let etcd = EtcdServer::start();
    let took = smol::block_on(testing::crashed_store_expires(
        SmolRuntime::new(),
        etcd.endpoint(),
    ));
    println!("smol: crash (TTL 3 s) -> watcher sees the delete after {took:?}");
}

#[test]
fn watch_resumes_and_registration_survives_etcd_restart() {
    let mut etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let figures = smol::block_on(testing::etcd_restart(SmolRuntime::new(), endpoint, || {
        etcd.restart()
    }));
    println!("smol: after etcd restart: {figures:?}");
}

#[test]
fn compaction_during_a_watch_gap_resyncs() {
    let etcd = EtcdServer::start();
    let figures = smol::block_on(testing::compaction_resync(
        SmolRuntime::new(),
        etcd.endpoint(),
    ));
    println!("smol: compaction gap: {figures:?}");
}

#[test]
fn lease_revoked_elsewhere_is_reported_lost() {
    let etcd = EtcdServer::start();
    let took = smol::block_on(testing::lease_revoked_elsewhere_is_lost(
        SmolRuntime::new(),
        etcd.endpoint(),
    ));
    println!("smol: lease revoked elsewhere -> lease_lost after {took:?}");
}

#[test]
fn unreachable_etcd_is_a_one_line_error() {
    let endpoint = format!("http://127.0.0.1:{}", dynrt_testkit::free_port());
    let message = smol::block_on(testing::unreachable_etcd_is_a_clear_error(
        SmolRuntime::new(),
        endpoint,
    ));
    println!("smol: {message}");
}

/// The test blocks the thread that runs it (smol's `block_on`).
#[test]
fn lease_renewal_is_not_starved_by_a_blocked_executor() {
    let etcd = EtcdServer::start();
    smol::block_on(testing::renewal_is_not_starved_by_user_work(
        SmolRuntime::new(),
        etcd.endpoint(),
    ));
}

#[test]
fn etcd_down_longer_than_the_ttl_loses_the_lease() {
    let mut etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let took = smol::block_on(testing::long_outage_loses_the_lease(
        SmolRuntime::new(),
        endpoint,
        |up| {
            if up { etcd.restart() } else { etcd.stop() }
        },
    ));
    println!("smol: etcd down (TTL 2 s) -> lease_lost after {took:?}");
}

#[test]
fn discovery_register_list_watch_idempotent_and_names_checked() {
    let etcd = EtcdServer::start();
    smol::block_on(testing::discovery_scenarios(
        SmolRuntime::new(),
        etcd.endpoint(),
    ));
}

#[test]
fn the_lease_is_kept_by_the_runtime_clock_not_the_wall_clock() {
    let etcd = EtcdServer::start();
    smol::block_on(testing::lease_follows_the_runtime_clock(
        SmolRuntime::new(),
        etcd.endpoint(),
    ));
}
