//! SIGINT/SIGTERM → graceful shutdown.

use std::fmt;

use dynrt_core::shutdown::ShutdownReport;

use super::DistributedRuntime;
use crate::runtime::Runtime;

/// Installing the signal handler failed (one is already installed in this process).
#[derive(Debug)]
pub struct SignalError(String);

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot install the SIGINT/SIGTERM handler: {}", self.0)
    }
}

impl std::error::Error for SignalError {}

impl<R: Runtime> DistributedRuntime<R> {
    /// Runs the three-phase shutdown on the first SIGINT or SIGTERM; a second signal forces
    /// the drain to end at once. Returns a future that completes with the report once the
    /// shutdown (by signal or by a direct call) has finished; the future is what runs the
    /// shutdown, so await or spawn it. The report's [`ShutdownReport::exit_code`] is what the
    /// process should exit with.
    ///
    /// A process has one such handler: calling this twice is an error.
    pub fn shutdown_on_signals(
        &self,
    ) -> Result<impl Future<Output = ShutdownReport> + Send + 'static, SignalError> {
        let (tx, rx) = async_channel::unbounded::<()>();
        ctrlc::set_handler(move || {
            let _ = tx.try_send(());
        })
        .map_err(|e| SignalError(e.to_string()))?;
        let drt = self.clone();
        Ok(async move {
            let _ = rx.recv().await;
            let forcer = drt.clone();
            drt.runtime().spawn(async move {
                // A second signal cuts the drain short.
                if rx.recv().await.is_ok() {
                    forcer.force_shutdown();
                }
            });
            drt.shutdown().await
        })
    }
}
