//! A second SIGTERM cuts a drain short (`shutdown_on_signals`). Its own test binary: a process
//! has one handler.

use std::time::{Duration, Instant};

use dynrt_core::config::DistributedConfig;
use dynrt_core::shutdown::{EXIT_DRAIN_FORCED, Phase, ShutdownOutcome};
use dynrt_smol::DistributedRuntime;

fn sigterm_self() {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn a_second_sigterm_ends_the_drain() {
    smol::block_on(async {
        let mut config = DistributedConfig::process_local();
        // Far beyond the test's bound: only the second signal ends this drain in time.
        config.graceful_shutdown_timeout = Duration::from_secs(600);
        let drt = DistributedRuntime::new(config).await.expect("runtime");
        let _stuck = drt.register_graceful_task("stuck").expect("task");
        // The returned future runs the shutdown: spawn it so the test can watch the phases.
        let done = smol::spawn(drt.shutdown_on_signals().expect("handler installs"));
        sigterm_self();
        let deadline = Instant::now() + Duration::from_secs(20);
        while drt.phase() != Phase::Draining {
            assert!(Instant::now() < deadline, "no drain after SIGTERM");
            smol::Timer::after(Duration::from_millis(10)).await;
        }
        sigterm_self();
        let report = futures_lite::future::or(async { Some(done.await) }, async {
            smol::Timer::after(Duration::from_secs(20)).await;
            None
        })
        .await
        .expect("the second SIGTERM ended the drain");
        assert_eq!(report.outcome(), ShutdownOutcome::Forced, "{report:?}");
        assert_eq!(report.exit_code(), EXIT_DRAIN_FORCED);
        assert_eq!(drt.phase(), Phase::Done);
    });
}
