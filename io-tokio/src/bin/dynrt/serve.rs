//! `dynrt serve`: an example worker serving the demo's token generator on the configured
//! discovery backend, until SIGINT or SIGTERM (then it drains; a second signal cuts the drain
//! short) or until its discovery lease is lost. Its exit code says how the shutdown went
//! (`ShutdownReport::exit_code`): 0 clean, 3 the drain was cut off by its time limit, 4 the
//! lease was lost, 5 a second signal cut the drain short with requests running, 6 the drain
//! finished but requests were reset during it (their answers never reached their callers).

use std::time::Duration;

use clap::Args;
use dynrt_tokio::DistributedRuntime;
use dynrt_tokio::core::config::DiscoveryBackend;
use dynrt_tokio::core::discovery::MUX_PROTOCOL_VERSION;
use dynrt_tokio::core::names::EndpointId;
use dynrt_tokio::core::shutdown::{ShutdownOutcome, ShutdownReport};
use dynrt_tokio::io::demo::generate_handler;
use tokio::signal::unix::{SignalKind, signal};

use crate::setup::{CliError, describe_discovery};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The endpoint to serve. Requests are JSON: {"prompt": "...", "max_tokens": N}; the
    /// answer streams max_tokens items (default 16), the prompt's words in turn, as UTF-8 text
    #[arg(default_value = "dyn://demo.backend.generate")]
    endpoint: String,
}

/// What a canary sends to the generator: the smallest request it answers with one item.
fn health_check_payload() -> serde_json::Value {
    serde_json::json!({"prompt": "ping", "max_tokens": 1})
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), CliError> {
    let id = EndpointId::parse_url(&args.endpoint).map_err(|e| CliError::Setup(e.to_string()))?;
    // Listen for signals first: a signal that arrives while the runtime starts must not kill
    // the process before it can leave discovery.
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::Setup(format!("cannot listen for SIGTERM: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::Setup(format!("cannot listen for SIGINT: {e}")))?;

    let drt = DistributedRuntime::from_env().await?;
    // The runtime logged the configuration's warnings as it started.
    let config = drt.config();
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
    // With a health-check payload, as Dynamo's workers serve: the endpoint then gates
    // readiness, so `/health` turns 200 once it is registered (or, with canaries on, once a
    // canary answers). Without one, readiness would be DYN_SYSTEM_STARTING_HEALTH_STATUS
    // (not ready) for the process's whole life.
    endpoint
        .serve_with_health_check(generate_handler(), health_check_payload())
        .await?;

    println!("serving {id}");
    println!("  instance   {}", drt.instance_id());
    match drt.request_plane_addr() {
        Some(address) => println!(
            "  address    {address} (tcp: mux v{MUX_PROTOCOL_VERSION}, and Dynamo 1.6.1's protocol, json)"
        ),
        // The NATS plane: requests arrive on the instance's subject.
        None => println!(
            "  subject    {} (nats: Dynamo 1.6.1's protocol, json)",
            id.nats_subject(drt.instance_id())
        ),
    }
    println!("  discovery  {}", describe_discovery(config));
    println!(
        "try: dynrt call {id} '{{\"prompt\":\"hello world\",\"max_tokens\":4}}'   (Ctrl-C stops)"
    );

    // Cancelled when the shutdown begins for any reason: here, a lost lease.
    let stopping = drt.child_token();
    let why = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
        () = stopping.cancelled() => "the discovery lease was lost",
    };
    println!("stopping: {why}");
    let limit = drt.config().graceful_shutdown_timeout;
    let shutdown = drt.shutdown();
    tokio::pin!(shutdown);
    // A second signal ends the drain at once (the drain stays bounded by its limit anyway).
    let report = loop {
        let signal = tokio::select! {
            report = &mut shutdown => break report,
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        println!("stopping now: second signal ({signal}), the drain is cut short");
        drt.force_shutdown();
    };
    report_shutdown(&report, limit)
}

/// Prints how the shutdown went; an error carrying its exit code unless it was clean.
fn report_shutdown(report: &ShutdownReport, limit: Duration) -> Result<(), CliError> {
    let drain = report.drain_time();
    let running = || {
        let in_flight: u64 = report.in_flight.values().sum();
        format!(
            "{in_flight} requests in flight ({:?}) and {} graceful tasks running",
            report.in_flight,
            report.graceful_tasks.len()
        )
    };
    let (line, why) = match report.outcome() {
        ShutdownOutcome::Clean => {
            println!("shutdown: clean, drained in {drain:?}");
            return Ok(());
        }
        ShutdownOutcome::DeadlineHit => (
            format!("drain cut off by its {limit:?} limit with {}", running()),
            format!(
                "the drain was cut off by its time limit ({limit:?}, \
                 DYN_RUNTIME_GRACEFUL_SHUTDOWN_TIMEOUT_SECS)"
            ),
        ),
        ShutdownOutcome::Forced => (
            format!(
                "drain cut short by a second signal after {drain:?} with {}",
                running()
            ),
            "a second signal cut the drain short".to_owned(),
        ),
        ShutdownOutcome::RequestsLost => (
            format!(
                "drained in {drain:?}, but {} requests were reset during the drain ({:?})",
                report.lost.values().sum::<u64>(),
                report.lost
            ),
            "requests were reset during the drain (a caller stopped reading or a connection \
             failed): their answers never reached their callers"
                .to_owned(),
        ),
        _ => (
            if report.is_clean() {
                format!("discovery lease lost; drained in {drain:?}")
            } else if !report.is_running() {
                format!(
                    "discovery lease lost; drained in {drain:?}, but {} requests were reset \
                     during the drain ({:?})",
                    report.lost.values().sum::<u64>(),
                    report.lost
                )
            } else {
                format!(
                    "discovery lease lost; drain ended after {drain:?} with {}",
                    running()
                )
            },
            "the discovery lease was lost, so the worker stopped".to_owned(),
        ),
    };
    println!("shutdown: {line}");
    Err(CliError::Stopped {
        message: why,
        code: report.exit_code(),
    })
}
