//! `dynrt publish` and `dynrt subscribe`: the operator's view of the event plane.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use dynrt_tokio::core::config::DistributedConfig;
use dynrt_tokio::core::discovery::EventScope;
use dynrt_tokio::core::discovery::records::EventEndpoint;
use dynrt_tokio::distributed::settings_from_env;
use dynrt_tokio::io::demo::parse_duration;
use dynrt_tokio::io::events::{EventPublisher, EventSubscriber};

use crate::setup::{CliError, cli_config, cli_runtime};

#[derive(Args)]
pub(crate) struct PublishArgs {
    /// The scope: dyn://namespace, dyn://namespace.component or
    /// dyn://namespace.component.endpoint
    scope: String,
    /// The topic (e.g. kv-events)
    topic: String,
    /// The event, JSON text; published as MessagePack (what Dynamo's typed subscribers decode)
    event: String,
    /// How long to wait for a subscriber to connect before publishing (direct ZMQ delivers
    /// only to subscribers already connected)
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    wait: Duration,
    /// Publish the event again at this interval (each with the next sequence number) until
    /// Ctrl-C, instead of once
    #[arg(long, value_parser = parse_duration)]
    every: Option<Duration>,
}

#[derive(Args)]
pub(crate) struct SubscribeArgs {
    /// The scope: dyn://namespace, dyn://namespace.component or
    /// dyn://namespace.component.endpoint
    scope: String,
    /// The topic
    topic: String,
    /// Stop after this many events (default: run until Ctrl-C)
    #[arg(long)]
    count: Option<u64>,
}

/// `dyn://ns[.comp[.ep]]` as an event scope.
fn scope(input: &str) -> Result<EventScope, CliError> {
    let body = input.strip_prefix("dyn://").unwrap_or(input);
    let parts: Vec<&str> = body.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(CliError::Setup(format!(
            "'{input}': expected dyn://namespace[.component[.endpoint]]"
        )));
    }
    match parts[..] {
        [ns] => Ok(EventScope::Namespace { name: ns.into() }),
        [ns, comp] => Ok(EventScope::Component {
            namespace: ns.into(),
            component: comp.into(),
        }),
        [ns, comp, ep] => Ok(EventScope::Endpoint {
            endpoint: EventEndpoint {
                namespace: ns.into(),
                component: comp.into(),
                name: ep.into(),
            },
        }),
        _ => Err(CliError::Setup(format!(
            "'{input}': expected dyn://namespace[.component[.endpoint]]"
        ))),
    }
}

pub(crate) async fn publish(args: PublishArgs) -> Result<(), CliError> {
    let scope = scope(&args.scope)?;
    let event: serde_json::Value = serde_json::from_str(&args.event).map_err(|e| {
        CliError::Setup(format!("the event is not valid JSON ({e}): {}", args.event))
    })?;
    // A publisher registers its channel, which needs the process lease: not a tool's
    // configuration (`cli_config` attaches none), but the same checks.
    cli_config("publish")?;
    let config = DistributedConfig::from_settings(settings_from_env())
        .map_err(|e| CliError::Setup(e.to_string()))?;
    let drt = cli_runtime(config).await?;
    let result = async {
        let publisher = EventPublisher::new(&drt, scope, args.topic.clone())
            .await
            .map_err(|e| CliError::Setup(e.to_string()))?;
        let deadline = Instant::now() + args.wait;
        while publisher.subscribers() == Some(0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sequence = publisher.next_sequence();
        publisher
            .publish(&event)
            .await
            .map_err(|e| CliError::Failed(e.to_string()))?;
        if let Some(every) = args.every {
            eprintln!(
                "publishing to {} topic {} as publisher {} every {every:?}; Ctrl-C stops",
                args.scope,
                args.topic,
                publisher.publisher_id()
            );
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
                publisher
                    .publish(&event)
                    .await
                    .map_err(|e| CliError::Failed(e.to_string()))?;
            }
        }
        // Give the socket a moment to write before the process closes it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        eprintln!(
            "published to {} topic {} as publisher {} sequence {sequence} over {}{}",
            args.scope,
            args.topic,
            publisher.publisher_id(),
            publisher.transport(),
            match publisher.subscribers() {
                Some(n) => format!(" ({n} subscribers connected)"),
                None => String::new(),
            }
        );
        Ok(())
    }
    .await;
    drt.shutdown().await;
    result
}

pub(crate) async fn subscribe(args: SubscribeArgs) -> Result<(), CliError> {
    let scope = scope(&args.scope)?;
    let drt = cli_runtime(cli_config("subscribe")?).await?;
    let result = async {
        let mut subscriber = EventSubscriber::subscribe(&drt, scope, args.topic.clone())
            .await
            .map_err(|e| CliError::Setup(e.to_string()))?;
        eprintln!(
            "subscribed to {} topic {} over {}; Ctrl-C stops",
            args.scope,
            args.topic,
            subscriber.transport()
        );
        let mut seen = 0u64;
        loop {
            if args.count.is_some_and(|n| seen >= n) {
                return Ok(());
            }
            let item = tokio::select! {
                item = subscriber.next() => item,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            let Some(item) = item else { return Ok(()) };
            match item {
                Ok(event) => {
                    seen += 1;
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(
                        out,
                        "{} {} {}",
                        event.publisher_id,
                        event.sequence,
                        show(&event.payload)
                    );
                    let _ = out.flush();
                }
                Err(e) => eprintln!("dynrt: {e}"),
            }
        }
    }
    .await;
    drt.shutdown().await;
    result
}

/// A payload as JSON when it is MessagePack (what `publish` sends), else as text or hex.
fn show(payload: &[u8]) -> String {
    if let Ok(value) = rmp_serde::from_slice::<serde_json::Value>(payload) {
        return value.to_string();
    }
    match std::str::from_utf8(payload) {
        Ok(text) => format!("{text:?}"),
        Err(_) => {
            let hex: String = payload
                .iter()
                .take(32)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("<{} bytes> {hex}", payload.len())
        }
    }
}
