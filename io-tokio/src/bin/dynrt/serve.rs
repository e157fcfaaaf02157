//! `dynrt serve`: an example worker serving the demo's token generator on the configured
//! discovery backend, until SIGINT or SIGTERM.

use clap::Args;
use dynrt_tokio::DistributedRuntime;
use dynrt_tokio::core::config::DiscoveryBackend;
use dynrt_tokio::core::discovery::MUX_PROTOCOL_VERSION;
use dynrt_tokio::core::names::EndpointId;
use dynrt_tokio::io::demo::generate_handler;
use tokio::signal::unix::{SignalKind, signal};

use crate::setup::{CliError, describe_discovery, print_warnings};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The endpoint to serve. Requests are JSON: {"prompt": "...", "max_tokens": N}; the
    /// answer streams max_tokens items (default 16), the prompt's words in turn, as UTF-8 text
    #[arg(default_value = "dyn://demo.backend.generate")]
    endpoint: String,
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), CliError> {
    let id = EndpointId::parse_url(&args.endpoint).map_err(|e| CliError::Setup(e.to_string()))?;
    // Listen for signals first: a signal that arrives while the runtime starts must not kill
    // the process before it can leave discovery.
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::Setup(format!("cannot listen for SIGTERM: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::Setup(format!("cannot listen for SIGINT: {e}")))?;

    let drt = DistributedRuntime::from_settings().await?;
    let config = drt.config();
    print_warnings(config);
    if config.discovery_backend == DiscoveryBackend::Mem {
        eprintln!(
            "dynrt: note: DYN_DISCOVERY_BACKEND=mem: only this process can see this worker; \
             use file or etcd to call it from another process"
        );
    }
    let endpoint = drt
        .namespace(id.namespace.as_str())
        .and_then(|ns| ns.component(id.component.as_str()))
        .and_then(|c| c.endpoint(id.endpoint.as_str()))
        .map_err(|e| CliError::Setup(e.to_string()))?;
    endpoint.serve(generate_handler()).await?;

    let address = drt
        .request_plane_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".into());
    println!("serving {id}");
    println!("  instance   {}", drt.instance_id());
    println!(
        "  address    {address} (tcp: mux v{MUX_PROTOCOL_VERSION}, and Dynamo 1.6.1's protocol, json)"
    );
    println!("  discovery  {}", describe_discovery(config));
    println!(
        "try: dynrt call {id} '{{\"prompt\":\"hello world\",\"max_tokens\":4}}'   (Ctrl-C stops)"
    );

    let primary = drt.primary_token();
    let why = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
        () = primary.cancelled() => "the runtime closed (discovery lease lost)",
    };
    println!("stopping: {why}");
    let report = drt.shutdown().await;
    if report.is_clean() {
        println!("shutdown: clean, drained in {:?}", report.drain_time());
    } else {
        let in_flight: u64 = report.in_flight.values().sum();
        println!(
            "shutdown: drain cut off after {:?} with {in_flight} requests in flight ({:?}) and {} \
             graceful tasks running",
            report.drain_time(),
            report.in_flight,
            report.graceful_tasks.len()
        );
    }
    Ok(())
}
