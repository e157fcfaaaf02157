//! A worker built on dynrt (tokio): serves `<ns>.<component>.<endpoint>` (argv) with the
//! interop handler, configured from the environment. Same events as `dynamo-worker`:
//! `READY <instance id, hex>`, `REQUEST <op>`, `COMPLETED sent=<n>` or `CANCELLED sent=<n>
//! stopped=<bool> killed=<bool>`.

use bytes::Bytes;
use dynrt_interop::{Op, Reply, event};
use dynrt_tokio::DistributedRuntime;
use dynrt_tokio::io::mux::{BoxItemStream, HandlerError, RequestContext, handler_fn};
use serde_json::Value;

/// Reports how a request's stream ended when the runtime drops it.
struct EndGuard {
    ctx: RequestContext,
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

fn handle(payload: Bytes, ctx: RequestContext) -> BoxItemStream {
    let op = serde_json::from_slice::<Value>(&payload)
        .map_err(|e| format!("interop: request is not JSON: {e}"))
        .and_then(|request| Op::parse(&request));
    let op = match op {
        Ok(op) => op,
        Err(e) => {
            return Box::pin(futures::stream::once(async {
                Err(HandlerError::invalid_request(e))
            }));
        }
    };
    event(&format!("REQUEST {}", op.name()));
    let replies = match op.replies() {
        Ok(replies) => replies,
        Err(e) => {
            return Box::pin(futures::stream::once(async {
                Err(HandlerError::internal(e))
            }));
        }
    };
    let delay = op.delay();
    let guard = EndGuard {
        ctx,
        sent: 0,
        finished: false,
    };
    Box::pin(futures::stream::unfold(
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
                Reply::Item(value) => Ok(Bytes::from(value.to_string())),
                Reply::Error(message) => Err(HandlerError::internal(message)),
            };
            Some((item, (replies, guard)))
        },
    ))
}

async fn run(names: [String; 3]) -> anyhow::Result<()> {
    let drt = DistributedRuntime::from_env().await?;
    let [ns, component, endpoint] = names;
    let endpoint = drt
        .namespace(&ns)
        .and_then(|ns| ns.component(&component))
        .and_then(|c| c.endpoint(&endpoint))?;
    endpoint.serve(handler_fn(handle)).await?;
    event(&format!("READY {:x}", drt.instance_id().0));
    // Serve until killed; the test harness ends this process.
    std::future::pending::<()>().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let names = dynrt_interop::endpoint_args()?;
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    tokio_rt.block_on(async {
        let result = run(names).await;
        if let Err(e) = &result {
            event(&format!("FAILED {e:#}"));
        }
        result
    })
}
