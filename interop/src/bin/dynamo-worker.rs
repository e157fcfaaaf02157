//! A worker built on the real `dynamo-runtime` 1.6.1: serves `<ns>.<component>.<endpoint>`
//! (argv) with the interop handler (see the crate docs for the requests it takes), configured
//! from the environment exactly as any Dynamo process is.
//!
//! stdout, one event a line: `READY <instance id, hex>` once the endpoint is registered, then
//! per request `REQUEST <op>`, and `COMPLETED sent=<n>` or `CANCELLED sent=<n> stopped=<bool>
//! killed=<bool>` when its stream ends.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Error, anyhow};
use async_trait::async_trait;
use dynamo_runtime::engine::{AsyncEngine, AsyncEngineContext, AsyncEngineContextProvider};
use dynamo_runtime::pipeline::network::Ingress;
use dynamo_runtime::pipeline::{ManyOut, ResponseStream, SingleIn};
use dynamo_runtime::protocols::annotated::Annotated;
use dynamo_runtime::{DistributedRuntime, Runtime};
use dynrt_interop::{Op, Reply, event};
use serde_json::Value;

struct Engine;

/// Reports how a request's stream ended when the runtime drops it (after the last item, or
/// early when the caller stopped, killed or went away).
struct EndGuard {
    ctx: Arc<dyn AsyncEngineContext>,
    sent: usize,
    finished: bool,
}

impl EndGuard {
    /// Every item was handed over: the stream ended by itself.
    fn complete(&mut self) {
        self.finished = true;
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if self.finished {
            event(&format!("COMPLETED sent={}", self.sent));
        } else {
            event(&format!(
                "CANCELLED sent={} stopped={} killed={}",
                self.sent,
                self.ctx.is_stopped(),
                self.ctx.is_killed()
            ));
        }
    }
}

#[async_trait]
impl AsyncEngine<SingleIn<Value>, ManyOut<Annotated<Value>>, Error> for Engine {
    async fn generate(&self, input: SingleIn<Value>) -> Result<ManyOut<Annotated<Value>>, Error> {
        let (request, context) = input.into_parts();
        let ctx = context.context();
        let op = Op::parse(&request).map_err(|e| anyhow!(e))?;
        event(&format!("REQUEST {}", op.name()));
        let replies = op.replies().map_err(|e| anyhow!(e))?;
        let delay = op.delay();
        let guard = EndGuard {
            ctx: ctx.clone(),
            sent: 0,
            finished: false,
        };
        let stream = futures::stream::unfold(
            (replies.into_iter(), guard),
            move |(mut replies, mut guard)| async move {
                if guard.ctx.is_stopped() {
                    return None;
                }
                if guard.sent > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                    if guard.ctx.is_stopped() {
                        return None;
                    }
                }
                let Some(reply) = replies.next() else {
                    guard.complete();
                    return None;
                };
                guard.sent += 1;
                let item = match reply {
                    Reply::Item(value) => Annotated::from_data(value),
                    Reply::Error(message) => Annotated::from_error(message),
                };
                Some((item, (replies, guard)))
            },
        );
        Ok(ResponseStream::new(Box::pin(stream), ctx))
    }
}

async fn run(rt: Runtime, names: [String; 3]) -> anyhow::Result<()> {
    let drt = DistributedRuntime::from_settings(rt).await?;
    let [ns, component, endpoint] = names;
    let endpoint = drt.namespace(ns)?.component(component)?.endpoint(endpoint);
    let ingress = Ingress::for_engine(Arc::new(Engine))?;
    let serving = endpoint
        .endpoint_builder()
        .handler(ingress)
        .graceful_shutdown(false)
        .start_with_registration()
        .await?;
    event(&format!("READY {:x}", drt.connection_id()));
    // Serve until killed; the test harness ends this process.
    std::future::pending::<()>().await;
    drop(serving);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let names = dynrt_interop::endpoint_args()?;
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    tokio_rt.block_on(async {
        let rt = Runtime::from_current()?;
        let result = run(rt, names).await;
        if let Err(e) = &result {
            event(&format!("FAILED {e:#}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        result
    })
}
