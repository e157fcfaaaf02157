//! A caller built on the real `dynamo-runtime` 1.6.1: finds `<ns>.<component>.<endpoint>`
//! through 1.6.1's own discovery client and calls it through its `PushRouter` (round robin),
//! configured from the environment as any Dynamo process is.
//!
//! stdout, one event a line: `INSTANCE <record JSON>` per instance (with `--list`, then exit);
//! `PROLOGUE_ERROR <text>` when the call fails before a stream; `ITEM <data JSON>` per data
//! item; `ERROR <text>` per error item; `STOP`/`KILL`/`DROP` when acting after K items; `END`
//! when the stream ends. `TIMEOUT` and exit code 3 when something takes longer than the
//! crate's bounds.

use std::time::Duration;

use dynamo_runtime::engine::AsyncEngineContextProvider;
use dynamo_runtime::pipeline::SingleIn;
use dynamo_runtime::pipeline::network::egress::push_router::{PushRouter, RouterMode};
use dynamo_runtime::protocols::annotated::Annotated;
use dynamo_runtime::protocols::maybe_error::MaybeError;
use dynamo_runtime::{DistributedRuntime, Runtime};
use dynrt_interop::{Action, CALL_TIMEOUT, CallArgs, DISCOVERY_WAIT, LINGER, event};
use futures::StreamExt;
use serde_json::Value;

async fn run(rt: Runtime, args: CallArgs) -> anyhow::Result<()> {
    let drt = DistributedRuntime::from_settings(rt).await?;
    let [ns, component, endpoint] = args.names.clone();
    let endpoint = drt.namespace(ns)?.component(component)?.endpoint(endpoint);
    let client = endpoint.client().await?;
    // Discovered is not yet routable: discovery and routing publish on separate tasks, and a
    // call made in between fails with "No workers available".
    let instances = tokio::time::timeout(DISCOVERY_WAIT, client.wait_for_routable_instances())
        .await
        .map_err(|_| anyhow::anyhow!("no instance appeared in {DISCOVERY_WAIT:?}"))??;
    if args.list {
        for instance in &instances {
            event(&format!("INSTANCE {}", serde_json::to_string(instance)?));
        }
        return Ok(());
    }
    let request: Value = serde_json::from_slice(&dynrt_interop::read_request(&args.request)?)?;
    let router =
        PushRouter::<Value, Annotated<Value>>::from_client(client, RouterMode::RoundRobin).await?;
    let mut stream = match router.round_robin(SingleIn::new(request)).await {
        Ok(stream) => stream,
        Err(e) => {
            event(&format!("PROLOGUE_ERROR {e:#}"));
            return Ok(());
        }
    };
    let mut seen = 0u64;
    let mut acted = false;
    while let Some(item) = stream.next().await {
        if let Some(error) = item.err() {
            event(&format!("ERROR {error}"));
        } else if let Some(data) = &item.data {
            event(&format!("ITEM {data}"));
            seen += 1;
        } else {
            event(&format!("OTHER {}", serde_json::to_string(&item)?));
        }
        if let Some((k, action)) = args.after
            && !acted
            && seen >= k
        {
            acted = true;
            let ctx = stream.context();
            match action {
                Action::Stop => {
                    event("STOP");
                    ctx.stop_generating();
                }
                Action::Kill => {
                    event("KILL");
                    ctx.kill();
                }
                Action::Drop => {
                    event("DROP");
                    drop(stream);
                    tokio::time::sleep(LINGER).await;
                    return Ok(());
                }
            }
        }
    }
    event("END");
    if acted {
        // Stay connected a moment: exiting at once resets the connection, and the worker may
        // then see a failed write (a stop) before it reads the kill that was sent first.
        tokio::time::sleep(LINGER).await;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match CallArgs::from_env() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    tokio_rt.block_on(async {
        let rt = Runtime::from_current().expect("dynamo runtime on the current tokio runtime");
        let code = match tokio::time::timeout(CALL_TIMEOUT, run(rt.clone(), args)).await {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => {
                event(&format!("FAILED {e:#}"));
                1
            }
            Err(_) => {
                event("TIMEOUT");
                3
            }
        };
        rt.shutdown();
        tokio::time::sleep(Duration::from_millis(10)).await;
        std::process::ExitCode::from(code)
    })
}
