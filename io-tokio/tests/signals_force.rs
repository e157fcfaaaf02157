//! A second SIGTERM cuts a drain short (`shutdown_on_signals`). Its own test binary: a process
//! has one handler.

use std::time::Duration;

use dynrt_core::shutdown::{EXIT_DRAIN_FORCED, Phase, ShutdownOutcome};
use dynrt_tokio::DistributedRuntime;
use dynrt_tokio::core::config::DistributedConfig;

fn sigterm_self() {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_ends_the_drain() {
    let mut config = DistributedConfig::process_local();
    // Far beyond the test's bound: only the second signal ends this drain in time.
    config.graceful_shutdown_timeout = Duration::from_secs(600);
    let drt = DistributedRuntime::new(config).await.expect("runtime");
    let _stuck = drt.register_graceful_task("stuck").expect("task");
    // The returned future runs the shutdown: spawn it so the test can watch the phases.
    let done = tokio::spawn(drt.shutdown_on_signals().expect("handler installs"));
    sigterm_self();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while drt.phase() != Phase::Draining {
        assert!(
            std::time::Instant::now() < deadline,
            "no drain after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigterm_self();
    let report = tokio::time::timeout(Duration::from_secs(20), done)
        .await
        .expect("the second SIGTERM ended the drain")
        .expect("the shutdown task did not panic");
    assert_eq!(report.outcome(), ShutdownOutcome::Forced, "{report:?}");
    assert_eq!(report.exit_code(), EXIT_DRAIN_FORCED);
    assert_eq!(drt.phase(), Phase::Done);
}
