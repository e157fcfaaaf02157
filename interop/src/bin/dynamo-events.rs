//! The event plane of the real `dynamo-runtime` 1.6.1: `pub <ns> <component> <topic>`
//! publishes `{"i": n}` for n = 0, 1, … every 10 ms until killed; `sub <ns> <component> <topic>
//! <count>` prints `EVENT <publisher id> <sequence> <payload json>` for `count` events and
//! exits. Transport and discovery from the environment, as any Dynamo process.
//!
//! stdout: `READY <publisher id>` (pub) or `READY` (sub) once set up.

use std::time::Duration;

use dynamo_runtime::transports::event_plane::{EventPublisher, EventSubscriber};
use dynamo_runtime::{DistributedRuntime, Runtime};
use dynrt_interop::event;
use serde_json::{Value, json};

async fn run(rt: Runtime, args: Vec<String>) -> anyhow::Result<()> {
    let drt = DistributedRuntime::from_settings(rt).await?;
    let [mode, ns, component, topic] =
        <[String; 4]>::try_from(args.get(..4).unwrap_or_default().to_vec())
            .map_err(|_| anyhow::anyhow!("usage: pub|sub <ns> <component> <topic> [count]"))?;
    let component = drt.namespace(ns)?.component(component)?;
    match mode.as_str() {
        "pub" => {
            let publisher = EventPublisher::for_component(&component, topic).await?;
            event(&format!("READY {}", publisher.publisher_id()));
            for i in 0u64.. {
                publisher.publish(&json!({ "i": i })).await?;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        }
        "sub" => {
            let count: u64 = args.get(4).map_or(Ok(10), |c| c.parse())?;
            let mut subscriber = EventSubscriber::for_component(&component, topic)
                .await?
                .typed::<Value>();
            event("READY");
            for _ in 0..count {
                let Some(item) = subscriber.next().await else {
                    anyhow::bail!("the subscription ended");
                };
                match item {
                    Ok((envelope, value)) => event(&format!(
                        "EVENT {} {} {value}",
                        envelope.publisher_id, envelope.sequence
                    )),
                    Err(e) => event(&format!("ERROR {e:#}")),
                }
            }
            event("END");
            Ok(())
        }
        other => anyhow::bail!("unknown mode {other}: pub or sub"),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    tokio_rt.block_on(async {
        let rt = Runtime::from_current()?;
        let result = run(rt, args).await;
        if let Err(e) = &result {
            event(&format!("FAILED {e:#}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        result
    })
}
