//! `dynrt ls` and `dynrt watch`: the instances registered under a prefix.

use clap::Args;
use dynrt_tokio::core::discovery::{
    DiscoveryKey, DiscoveryRecord, EndpointRecord, Query, Transport,
};
use dynrt_tokio::core::names::{ComponentName, EndpointId, Namespace, TcpTransport};
use dynrt_tokio::io::discovery::RecordEvent;
use futures_core::Stream;
use tokio::signal::unix::{SignalKind, signal};

use crate::setup::{CliError, cli_config, cli_runtime};

#[derive(Args)]
pub(crate) struct LsArgs {
    /// What to list: dyn://namespace, dyn://namespace.component or
    /// dyn://namespace.component.endpoint (default: everything)
    prefix: Option<String>,
}

/// The query for `dyn://ns[.comp[.ep]]` (the `dyn://` is optional; nothing means all).
fn query(prefix: Option<&str>) -> Result<Query, CliError> {
    let Some(input) = prefix else {
        return Ok(Query::AllEndpoints);
    };
    let body = input.strip_prefix("dyn://").unwrap_or(input);
    let bad = |why: String| CliError::Setup(format!("'{input}': {why}"));
    if body.is_empty() {
        return Ok(Query::AllEndpoints);
    }
    let parts: Vec<&str> = body.split('.').collect();
    match parts.as_slice() {
        [ns] => Ok(Query::NamespaceEndpoints(
            Namespace::new(*ns).map_err(|e| bad(e.to_string()))?,
        )),
        [ns, comp] => Ok(Query::ComponentEndpoints(
            Namespace::new(*ns).map_err(|e| bad(e.to_string()))?,
            ComponentName::new(*comp).map_err(|e| bad(e.to_string()))?,
        )),
        [_, _, _] => Ok(Query::Endpoint(
            EndpointId::parse_url(input).map_err(|e| CliError::Setup(e.to_string()))?,
        )),
        _ => Err(bad("expected dyn://namespace[.component[.endpoint]]".into())),
    }
}

/// The columns of one instance: endpoint, instance id, address, protocol.
fn columns(record: &EndpointRecord) -> [String; 4] {
    let endpoint = record
        .endpoint_id()
        .map(|id| id.to_string())
        .unwrap_or_else(|_| {
            format!(
                "{}/{}/{}",
                record.namespace, record.component, record.endpoint
            )
        });
    let (address, plane) = match &record.transport {
        Transport::Tcp(t) => (
            TcpTransport::parse(t)
                .map(|t| t.addr.to_string())
                .unwrap_or_else(|_| t.clone()),
            "tcp",
        ),
        Transport::Nats(subject) => (format!("nats:{subject}"), "nats"),
    };
    let codec = record.request_plane_codec.unwrap_or_default().name();
    let protocol = match record.mux_version() {
        Some(v) => format!("mux v{v}"),
        None => format!("dynamo {plane} ({codec})"),
    };
    [endpoint, record.instance_id.to_string(), address, protocol]
}

pub(crate) async fn list(args: LsArgs) -> Result<(), CliError> {
    let query = query(args.prefix.as_deref())?;
    let drt = cli_runtime(cli_config("ls")?).await?;
    let listing = drt.discovery().list(&query).await;
    drt.shutdown().await;
    let listing = listing.map_err(|e| CliError::Setup(format!("discovery: {e}")))?;
    for skipped in &listing.skipped {
        eprintln!("dynrt: {skipped}");
    }
    let rows: Vec<[String; 4]> = listing
        .records
        .iter()
        .filter_map(|r| match r {
            DiscoveryRecord::Endpoint(r) => Some(columns(r)),
            _ => None,
        })
        .collect();
    if rows.is_empty() {
        eprintln!(
            "no instances under {}",
            args.prefix.as_deref().unwrap_or("dyn://")
        );
        return Ok(());
    }
    let header = ["ENDPOINT", "INSTANCE", "ADDRESS", "PROTOCOL"].map(str::to_owned);
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    Ok(())
}

pub(crate) async fn watch(args: LsArgs) -> Result<(), CliError> {
    let query = query(args.prefix.as_deref())?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::Setup(format!("cannot listen for SIGTERM: {e}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::Setup(format!("cannot listen for SIGINT: {e}")))?;
    let drt = cli_runtime(cli_config("watch")?).await?;
    let result = async {
        let mut events = drt
            .discovery()
            .list_and_watch(&query)
            .await
            .map_err(|e| CliError::Setup(format!("discovery: {e}")))?;
        eprintln!(
            "watching {} (Ctrl-C stops)",
            args.prefix.as_deref().unwrap_or("dyn://")
        );
        loop {
            let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut events).poll_next(cx));
            let event = tokio::select! {
                event = next => event,
                _ = interrupt.recv() => return Ok(()),
                _ = terminate.recv() => return Ok(()),
            };
            for skipped in events.take_skipped() {
                eprintln!("dynrt: {skipped}");
            }
            match event {
                Some(RecordEvent::Added(DiscoveryRecord::Endpoint(r))) => {
                    println!("+ {}", columns(&r).join("  "));
                }
                Some(RecordEvent::Added(_)) => {}
                Some(RecordEvent::Removed(DiscoveryKey::Instance { endpoint, instance })) => {
                    println!("- {endpoint}  {instance}");
                }
                Some(RecordEvent::Removed(_)) => {}
                None => return Err(CliError::Setup("discovery: the watch ended".into())),
            }
        }
    }
    .await;
    drt.shutdown().await;
    result
}
