//! A caller built on dynrt (tokio): finds `<ns>.<component>.<endpoint>` through dynrt's
//! discovery and calls it through a dynrt `Client` (round robin), configured from the
//! environment as the `dynrt` tool is (no lease, no request-plane server). Same events as
//! `dynamo-caller`: `INSTANCE <record JSON>` (with `--list`), `PROLOGUE_ERROR <text>`,
//! `ITEM <data JSON>`, `ERROR <text>`, `STOP`/`KILL`/`DROP`, `END`, `TIMEOUT`.

use bytes::Bytes;
use dynrt_interop::{Action, CALL_TIMEOUT, CallArgs, DISCOVERY_WAIT, LINGER, event};
use dynrt_tokio::TokioRuntime;
use dynrt_tokio::core::config::DistributedConfig;
use dynrt_tokio::core::discovery::DiscoveryRecord;
use dynrt_tokio::distributed::settings_from_env;
use dynrt_tokio::io::distributed::CallStream;
use futures::StreamExt;

type Drt = dynrt_tokio::io::DistributedRuntime<TokioRuntime>;

async fn run(args: CallArgs) -> anyhow::Result<()> {
    let config = DistributedConfig::for_cli(settings_from_env())?;
    let drt = Drt::new(TokioRuntime::current(), config).await?;
    let [ns, component, endpoint] = &args.names;
    let client = drt
        .namespace(ns)
        .and_then(|ns| ns.component(component))
        .and_then(|c| c.endpoint(endpoint))?
        .client()
        .await?;
    let instances = client.wait_for_instances(1, DISCOVERY_WAIT).await?;
    if args.list {
        for instance in instances.iter() {
            // The record as 1.6.1 stores it (tagged with "type"), like dynamo-caller prints.
            let record = DiscoveryRecord::from(instance.to_record(client.endpoint()));
            event(&format!(
                "INSTANCE {}",
                String::from_utf8_lossy(&record.to_json())
            ));
        }
        return Ok(());
    }
    let request = dynrt_interop::read_request(&args.request)?;
    let mut stream = match client.round_robin(Bytes::from(request)).await {
        Ok(stream) => stream,
        Err(e) => {
            event(&format!("PROLOGUE_ERROR {e}"));
            return Ok(());
        }
    };
    let mut seen = 0u64;
    let mut acted = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(data) => {
                event(&format!("ITEM {}", String::from_utf8_lossy(&data)));
                seen += 1;
            }
            Err(e) => event(&format!("ERROR {e}")),
        }
        if let Some((k, action)) = args.after
            && !acted
            && seen >= k
        {
            acted = true;
            match action {
                Action::Stop => {
                    event("STOP");
                    cancel(&mut stream, false);
                }
                Action::Kill => {
                    event("KILL");
                    cancel(&mut stream, true);
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

/// Stops (`kill` false) or kills the call.
fn cancel(stream: &mut CallStream, kill: bool) {
    use dynrt_tokio::io::mux::CancelMode;
    stream.cancel(if kill {
        CancelMode::Kill
    } else {
        CancelMode::Stop
    });
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
        let code = match tokio::time::timeout(CALL_TIMEOUT, run(args)).await {
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
        std::process::ExitCode::from(code)
    })
}
