//! SIGTERM runs the graceful shutdown, which stops the runtime's status server too. (Its own
//! test binary: a process has one handler.)

use std::time::Duration;

use dynrt_core::shutdown::Phase;
use dynrt_io::testing::system as scenario;
use dynrt_tokio::DistributedRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_runs_the_three_phase_shutdown_and_stops_the_status_server() {
    let drt = DistributedRuntime::new(scenario::config())
        .await
        .expect("runtime with a status server");
    let addr = drt
        .system_server_addr()
        .expect("DYN_SYSTEM_PORT=0 starts it");
    let done = drt.shutdown_on_signals().expect("handler installs");
    assert!(
        drt.shutdown_on_signals().is_err(),
        "a second handler is refused"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let report = tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("shutdown finished after SIGTERM");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(drt.phase(), Phase::Done);
    let live = scenario::get(addr, "/live").await;
    assert!(
        live.is_err(),
        "the status server outlived the shutdown: {live:?}"
    );
}
