//! What the subcommands share: errors and exit codes, reading the configuration, starting a
//! runtime for a command-line tool.

use std::fmt;
use std::process::ExitCode;

use dynrt_tokio::TokioRuntime;
use dynrt_tokio::core::config::{DiscoveryBackend, DistributedConfig};
use dynrt_tokio::distributed::{RuntimeError, settings_from_env};

/// The runtime a command-line tool uses (the executor-generic one on tokio).
pub(crate) type CliRuntime = dynrt_tokio::io::DistributedRuntime<TokioRuntime>;

/// How long `ls`, `watch` and `call` try to reach etcd before saying it is unreachable (a
/// worker waits longer: an interactive tool should answer quickly).
#[cfg(feature = "etcd")]
const CLI_ETCD_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a subcommand failed: one line for the user, and the exit code.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The tool could not do what was asked (settings, arguments, discovery): exit 2.
    Setup(String),
    /// A request failed: exit 1.
    Failed(String),
    /// `serve` stopped without a clean shutdown: the report's exit code (3, 4 or 5; see
    /// `dynrt_core::shutdown`).
    Stopped {
        /// What happened, for the user.
        message: String,
        /// The exit code.
        code: u8,
    },
}

impl CliError {
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Self::Setup(_) => ExitCode::from(2),
            Self::Failed(_) => ExitCode::from(1),
            Self::Stopped { code, .. } => ExitCode::from(*code),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Setup(why) | Self::Failed(why) | Self::Stopped { message: why, .. } => {
                f.write_str(why)
            }
        }
    }
}

impl From<RuntimeError> for CliError {
    fn from(error: RuntimeError) -> Self {
        Self::Setup(error.to_string())
    }
}

/// Where discovery lives, for messages: `file store at /tmp/x`, `etcd at http://...`.
pub(crate) fn describe_discovery(config: &DistributedConfig) -> String {
    match config.discovery_backend {
        DiscoveryBackend::Etcd => format!("etcd at {}", config.etcd.endpoints.join(", ")),
        DiscoveryBackend::File => format!(
            "file store at {}",
            config.file_kv_root(&std::env::temp_dir()).display()
        ),
        DiscoveryBackend::Mem => "in-memory store (this process only)".into(),
        other => other.to_string(),
    }
}

/// The configuration of `ls`, `watch` and `call`: the environment's, with no lease attached
/// and no request-plane server (the tool registers nothing). `mem` is refused: an in-memory
/// store belongs to one process, so another process's workers are invisible in it.
pub(crate) fn cli_config(command: &str) -> Result<DistributedConfig, CliError> {
    // Its warnings are logged when the runtime starts.
    let config = DistributedConfig::for_cli(settings_from_env())
        .map_err(|e| CliError::Setup(e.to_string()))?;
    if config.discovery_backend == DiscoveryBackend::Mem {
        return Err(CliError::Setup(format!(
            "DYN_DISCOVERY_BACKEND=mem keeps discovery in one process's memory, so `dynrt \
             {command}` cannot see workers of other processes; use DYN_DISCOVERY_BACKEND=file \
             (with the workers' DYN_FILE_KV) or etcd, or run `dynrt demo` for a cluster in one \
             process"
        )));
    }
    Ok(config)
}

/// Starts a command-line tool's runtime on `config`. etcd gets a short connect timeout, so
/// an unreachable etcd is reported in seconds.
pub(crate) async fn cli_runtime(config: DistributedConfig) -> Result<CliRuntime, CliError> {
    let rt = TokioRuntime::current();
    #[cfg(feature = "etcd")]
    if config.discovery_backend == DiscoveryBackend::Etcd {
        return cli_etcd_runtime(rt, config).await;
    }
    Ok(CliRuntime::new(rt, config).await?)
}

#[cfg(feature = "etcd")]
async fn cli_etcd_runtime(
    rt: TokioRuntime,
    config: DistributedConfig,
) -> Result<CliRuntime, CliError> {
    use std::sync::Arc;

    use dynrt_tokio::io::discovery::KvBackend;
    use dynrt_tokio::{EtcdConfig, EtcdStore};

    let etcd = EtcdConfig {
        connect_timeout: CLI_ETCD_CONNECT_TIMEOUT,
        ..EtcdConfig::from(&config.etcd)
    };
    // The store's message names the endpoints tried and the ways to run without etcd.
    let store = EtcdStore::connect(&rt, etcd)
        .await
        .map_err(|e| CliError::Setup(e.to_string()))?;
    let backend: Arc<dyn KvBackend> = Arc::new(store);
    Ok(CliRuntime::with_backend(rt, config, backend).await?)
}
