//! `dynrt call`: one request, its items printed as they arrive.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use dynrt_tokio::core::names::{EndpointId, InstanceId};
use dynrt_tokio::io::demo::parse_duration;
use futures_core::Stream;

use crate::setup::{CliError, cli_config, cli_runtime, describe_discovery};

#[derive(Args)]
pub(crate) struct CallArgs {
    /// The endpoint: dyn://namespace.component.endpoint
    endpoint: String,
    /// The request, JSON text sent as the payload's bytes (for `dynrt serve`:
    /// '{"prompt": "hello world", "max_tokens": 4}'). A Dynamo worker receives it as its JSON
    /// request (in the codec its record names); each item's data is printed, a JSON string as
    /// plain text
    request: String,
    /// How long to wait for an instance to appear (10s, 500ms, ...)
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    wait: Duration,
    /// Call this instance (hex id, as `dynrt ls` shows it) instead of routing round robin
    #[arg(long)]
    instance: Option<String>,
}

pub(crate) async fn run(args: CallArgs) -> Result<(), CliError> {
    // A Dynamo 1.6.1 worker may register names dynrt would not create (`parent.child`
    // namespaces, upper case, ...): fall back to the lenient form to call those.
    let id = EndpointId::parse_url(&args.endpoint)
        .or_else(|strict| EndpointId::parse_url_lenient(&args.endpoint).map_err(|_| strict))
        .map_err(|e| CliError::Setup(e.to_string()))?;
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&args.request) {
        return Err(CliError::Setup(format!(
            "the request is not valid JSON ({e}): {}",
            args.request
        )));
    }
    let instance = args
        .instance
        .as_deref()
        .map(InstanceId::parse_hex)
        .transpose()
        .map_err(|e| CliError::Setup(format!("--instance: {e}")))?;
    let config = cli_config("call")?;
    let where_ = describe_discovery(&config);
    let drt = cli_runtime(config).await?;
    let result = call(
        &drt,
        &id,
        instance,
        Bytes::from(args.request),
        args.wait,
        &where_,
    )
    .await;
    drt.shutdown().await;
    result
}

async fn call(
    drt: &crate::setup::CliRuntime,
    id: &EndpointId,
    instance: Option<InstanceId>,
    payload: Bytes,
    wait: Duration,
    where_: &str,
) -> Result<(), CliError> {
    let client = drt.client_for(id.clone());
    let deadline = Instant::now() + wait;
    let not_found = || {
        let which =
            instance.map_or_else(|| "no instance".to_owned(), |i| format!("instance {i} not"));
        CliError::Setup(format!(
            "{which} of {id} found within {wait:?} in the {where_}; is a worker running \
             (`dynrt serve {id}`) with the same DYN_DISCOVERY_BACKEND and DYN_FILE_KV or \
             ETCD_ENDPOINTS?"
        ))
    };
    client
        .wait_for_instances(1, wait)
        .await
        .map_err(|_| not_found())?;
    if let Some(wanted) = instance {
        // Bounded polling: the instance set may still be filling in.
        while !client.instance_ids().contains(&wanted) {
            if Instant::now() >= deadline {
                return Err(not_found());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let start = Instant::now();
    let stream = match instance {
        Some(wanted) => client.direct(wanted, payload).await,
        None => client.round_robin(payload).await,
    }
    .map_err(|e| CliError::Failed(format!("call to {id} failed: {e}")))?;
    let mut stream = std::pin::pin!(stream);
    let mut items = 0u64;
    while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        match item {
            Ok(item) => {
                items += 1;
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{}", show(&item));
                let _ = stdout.flush();
            }
            Err(e) => {
                return Err(CliError::Failed(format!(
                    "call to {id} failed after {items} items: {e}"
                )));
            }
        }
    }
    eprintln!(
        "({items} items in {:.3} ms)",
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// An item as text when it is UTF-8, otherwise its size and its first bytes in hex.
fn show(item: &[u8]) -> String {
    match std::str::from_utf8(item) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            let hex: String = item.iter().take(32).map(|b| format!("{b:02x}")).collect();
            let more = if item.len() > 32 { "…" } else { "" };
            format!("<{} bytes> {hex}{more}", item.len())
        }
    }
}
