//! SIGTERM runs the graceful shutdown. (Its own test binary: a process has one handler.)

use std::time::Duration;

use dynrt_core::shutdown::Phase;
use dynrt_tokio::DistributedRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_runs_the_three_phase_shutdown() {
    let drt = DistributedRuntime::process_local().await.expect("runtime");
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
}
