//! The tool's log: the library's `tracing` events on stderr (stdout carries the tool's own
//! output), filtered as `RUST_LOG` says, `info` by default.

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info";

/// Installs the subscriber. A `RUST_LOG` that cannot be used (a bad directive, or bytes that
/// are not UTF-8) is reported and replaced by the default, never a panic.
pub(crate) fn init() {
    let filter = match std::env::var_os(EnvFilter::DEFAULT_ENV) {
        None => EnvFilter::new(DEFAULT_FILTER),
        Some(value) => match value.to_str().map(EnvFilter::try_new) {
            Some(Ok(filter)) => filter,
            Some(Err(error)) => {
                eprintln!("dynrt: warning: RUST_LOG: {error}; using '{DEFAULT_FILTER}'");
                EnvFilter::new(DEFAULT_FILTER)
            }
            None => {
                eprintln!("dynrt: warning: RUST_LOG is not valid UTF-8; using '{DEFAULT_FILTER}'");
                EnvFilter::new(DEFAULT_FILTER)
            }
        },
    };
    // Plain text: the log is read by people and by line-oriented tools.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
