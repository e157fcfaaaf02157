//! Graceful tasks and the three-phase shutdown, driving `dynrt_core::shutdown`.

use std::sync::{MutexGuard, Weak};
use std::time::Duration;

use dynrt_core::shutdown::{
    Phase, Shutdown, ShutdownCommand, ShutdownEvent, ShutdownOutcome, ShutdownReport, TaskId,
};

/// How long phase 3 waits, after a clean drain, for connections to write their last frames and
/// close by themselves before it cuts them.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How often it looks.
const CLOSE_POLL: Duration = Duration::from_millis(2);
use futures_lite::future;

use super::error::RuntimeError;
use super::{DistributedRuntime, Inner};
use crate::runtime::{self, Runtime};

impl<R: Runtime> Inner<R> {
    pub(crate) fn lock_shutdown(&self) -> MutexGuard<'_, Shutdown> {
        self.shutdown.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Long-running work the shutdown drain waits for; report it finished by dropping the guard.
#[must_use = "the drain waits for this task until the guard is dropped"]
pub struct GracefulTask<R: Runtime> {
    id: TaskId,
    drt: Weak<Inner<R>>,
}

impl<R: Runtime> Drop for GracefulTask<R> {
    fn drop(&mut self) {
        if let Some(inner) = self.drt.upgrade() {
            let _ = inner
                .lock_shutdown()
                .graceful_task_done(self.id, inner.rt.now());
            inner.drain_changed.notify(usize::MAX);
        }
    }
}

impl<R: Runtime> DistributedRuntime<R> {
    /// Registers work that shutdown waits for (bounded by the graceful-shutdown timeout).
    pub fn register_graceful_task(
        &self,
        name: impl Into<String>,
    ) -> Result<GracefulTask<R>, RuntimeError> {
        let id = self
            .inner()
            .lock_shutdown()
            .register_graceful_task(name)
            .map_err(|_| RuntimeError::ShuttingDown)?;
        Ok(GracefulTask {
            id,
            drt: std::sync::Arc::downgrade(self.inner()),
        })
    }

    /// The shutdown phase the runtime is in.
    pub fn phase(&self) -> Phase {
        self.inner().lock_shutdown().phase()
    }

    /// Whether the process counts as live (`/live`): until shutdown phase 3.
    pub fn is_live(&self) -> bool {
        self.inner().lock_shutdown().is_live()
    }

    /// Shuts down in three phases: (1) stop accepting — leave discovery, GOAWAY every
    /// connection, refuse new requests; (2) wait for requests in flight and graceful tasks,
    /// at most the graceful-shutdown timeout; (3) revoke the lease and close connections.
    /// Returns what was still running when the drain ended. Calling it again waits for the
    /// same shutdown.
    ///
    /// A request is in flight until its answer is written to the socket and, its connection
    /// going away, the caller has closed it (or until its stream is reset), not merely until its
    /// handler has produced the last item: a slow caller keeps the drain waiting, up to the
    /// timeout. The report's [`ShutdownReport::exit_code`] is what a
    /// process should exit with (non-zero when the drain was cut off, forced with work running,
    /// or the shutdown began because the discovery lease was lost).
    pub async fn shutdown(&self) -> ShutdownReport {
        let inner = self.inner();
        if inner.lock_shutdown().begin(inner.rt.now()) {
            tracing::info!("shutdown: stopping new work, then draining");
        }
        inner.drain_changed.notify(usize::MAX);
        loop {
            let listener = inner.drain_changed.listen();
            let (commands, events, deadline, report) = {
                let mut shutdown = inner.lock_shutdown();
                shutdown.handle_timeout(inner.rt.now());
                let commands: Vec<_> = std::iter::from_fn(|| shutdown.poll_command()).collect();
                let events: Vec<_> = std::iter::from_fn(|| shutdown.poll_event()).collect();
                let report = (shutdown.phase() == Phase::Done)
                    .then(|| shutdown.report().cloned())
                    .flatten();
                (commands, events, shutdown.poll_timeout(), report)
            };
            for event in events {
                let ShutdownEvent::Entered(phase) = event else {
                    continue;
                };
                match phase {
                    Phase::StopAccepting => inner.children.cancel(),
                    Phase::Closing => inner.primary.cancel(),
                    _ => {}
                }
            }
            for command in &commands {
                self.execute(*command).await;
            }
            if let Some(report) = report {
                // Last, the status server and canary driver: `/live` answers until here.
                super::services::stop_services(self).await;
                log_report(&report);
                return report;
            }
            if !commands.is_empty() {
                continue;
            }
            match deadline {
                Some(deadline) => {
                    future::or(listener, runtime::sleep_until(&inner.rt, deadline)).await;
                }
                None => listener.await,
            }
        }
    }

    async fn execute(&self, command: ShutdownCommand) {
        let inner = self.inner();
        match command {
            ShutdownCommand::LeaveDiscovery => {
                let records = std::mem::take(
                    &mut *inner.registered.lock().unwrap_or_else(|p| p.into_inner()),
                );
                for record in &records {
                    let _ = inner.discovery.unregister(record).await;
                }
            }
            ShutdownCommand::GoAwayConnections => {
                if let Some((server, _)) = &inner.server {
                    server.goaway();
                }
            }
            ShutdownCommand::RevokeLease => inner.discovery.shutdown().await,
            ShutdownCommand::CloseConnections => {
                if let Some((server, _)) = &inner.server {
                    // After a drain that ended with nothing running (clean, or with requests
                    // lost during it) every answer left is written to its socket; the
                    // connections (GOAWAY exchanged in phase 1) close by themselves once the
                    // peers have answered the GOAWAY. Give them a moment, then cut what is left.
                    let drained = inner
                        .lock_shutdown()
                        .report()
                        .is_some_and(|report| !report.is_running());
                    let deadline = inner.rt.now() + CLOSE_GRACE;
                    while drained && server.open_connections() > 0 && inner.rt.now() < deadline {
                        runtime::sleep_until(&inner.rt, inner.rt.now() + CLOSE_POLL).await;
                    }
                    server.abort();
                }
            }
            // `/health` answers not ready from now on; canaries stop (those in flight are
            // abandoned by the health-check driver the listener wakes).
            ShutdownCommand::WithdrawReadiness => {
                inner.update_health(|health, now| health.begin_shutdown(now));
            }
            // The components' NATS services stop answering `$SRV`; the connection is flushed
            // and closed.
            ShutdownCommand::CloseClients => {
                #[cfg(feature = "nats")]
                inner.nats.close().await;
            }
            // Refusing new requests is what `Tracked` does once the phase moved on.
            ShutdownCommand::RefuseNewRequests => {}
            _ => {}
        }
        inner.drain_changed.notify(usize::MAX);
    }

    /// Cuts a drain short (for a second SIGINT/SIGTERM): phase 3 begins at once, and the
    /// report of the running [`Self::shutdown`] is marked forced. Starts the shutdown first if
    /// it had not begun; then call [`Self::shutdown`] to carry it out. Does nothing from
    /// phase 3 on.
    pub fn force_shutdown(&self) {
        let inner = self.inner();
        let phase = {
            let mut shutdown = inner.lock_shutdown();
            shutdown.force(inner.rt.now());
            shutdown.phase()
        };
        tracing::warn!(%phase, "shutdown forced: the drain is cut short");
        inner.drain_changed.notify(usize::MAX);
    }

    /// Shuts down when the discovery lease is lost for good (its registrations are gone); the
    /// report's cause is then [`ShutdownCause::LeaseLost`](dynrt_core::shutdown::ShutdownCause).
    pub(crate) fn watch_lease(&self) {
        let lost = self.discovery().lease_lost();
        let drt = std::sync::Arc::downgrade(self.inner());
        self.runtime().spawn(async move {
            lost.await;
            if let Some(inner) = drt.upgrade() {
                let drt = Self { inner };
                let began = drt
                    .inner()
                    .lock_shutdown()
                    .handle_lease_lost(drt.runtime().now());
                if began {
                    tracing::warn!(
                        instance = %drt.instance_id(),
                        "the discovery lease was lost: this instance's registrations are gone; \
                         shutting down"
                    );
                    drt.shutdown().await;
                }
            }
        });
    }
}

/// Logs how the shutdown went: info when clean, warn otherwise.
fn log_report(report: &ShutdownReport) {
    let drain = report.drain_time();
    match report.outcome() {
        ShutdownOutcome::Clean => tracing::info!(?drain, "shutdown: clean"),
        outcome => tracing::warn!(
            ?outcome,
            cause = %report.cause,
            ?drain,
            in_flight = ?report.in_flight,
            lost = ?report.lost,
            graceful_tasks = report.graceful_tasks.len(),
            "shutdown: not clean"
        ),
    }
}
