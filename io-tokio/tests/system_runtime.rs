//! A `DistributedRuntime` started with `DYN_SYSTEM_PORT=0` on tokio answers `/health`, `/live`
//! and `/metrics` through start, load, a stuck endpoint and shutdown. The scenario is shared
//! with dynrt-smol's tests (`dynrt_io::testing::system`).

use std::net::TcpListener;

use dynrt_io::testing::system as scenario;
use dynrt_tokio::TokioRuntime;
use dynrt_tokio::distributed::{DistributedConfig, DistributedRuntime, RuntimeError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_live_and_metrics_through_start_load_stuck_and_shutdown() {
    let drt = DistributedRuntime::new(scenario::config())
        .await
        .expect("runtime with a system server");
    let addr = drt
        .system_server_addr()
        .expect("DYN_SYSTEM_PORT=0 starts the server");
    assert_ne!(addr.port(), 0);
    let text = scenario::lifecycle(&drt, addr).await;
    // `/metrics` after the load parses as Prometheus text, with the endpoint's series labelled.
    let requests = scenario::requests_total(&text, 13.0);
    assert!(requests.labels.get("worker_id").is_some());
    // The server answered until the runtime's shutdown returned; this one also stops it.
    drt.shutdown().await;
    scenario::wait_for_closed(&TokioRuntime::current(), addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_system_port_no_server() {
    let drt = DistributedRuntime::new(DistributedConfig::process_local())
        .await
        .expect("runtime");
    assert_eq!(drt.system_server_addr(), None);
    assert!(drt.system_state().is_none());
    drt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_system_port_is_an_error_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut config = scenario::config();
    config.system.port = Some(port);
    match DistributedRuntime::new(config).await {
        Err(RuntimeError::SystemServer(why)) => {
            assert!(why.contains(&format!("127.0.0.1:{port}")), "{why}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("the port is taken"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metrics_can_be_turned_off() {
    scenario::request_metrics_off(&TokioRuntime::current()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_the_status_server() {
    scenario::lost_lease_stops_the_status_server(&TokioRuntime::current()).await;
}
