//! The request plane as an application sees it: a worker `DistributedRuntime` serving
//! `bench/backend/echo` and `bench/backend/stream`, and a caller runtime calling them through
//! a `Client`, both in this process. On the TCP plane two dynrt runtimes speak dynrt's mux; on
//! the NATS plane (`DYN_REQUEST_PLANE=nats`) each request is a NATS message to the instance's
//! subject, acknowledged by the worker, and the answer comes back over the call-home TCP
//! stream (Dynamo 1.6.1's protocol). The TCP plane through the same client is the baseline
//! the NATS figures are divided by.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynrt_tokio::core::config::DistributedConfig;
use dynrt_tokio::io::Runtime;
use dynrt_tokio::io::discovery::MemStore;
use dynrt_tokio::io::distributed::{Client, DistributedRuntime, Endpoint};
use dynrt_tokio::io::mux::handler_fn;
use futures_lite::{StreamExt, stream};

use super::{SMALL, STREAM_ITEMS};

/// Which request plane the worker serves on.
#[derive(Clone)]
pub(crate) enum Plane {
    /// dynrt's mux over TCP (`DYN_REQUEST_PLANE=tcp` between dynrt runtimes).
    Tcp,
    /// NATS at this URL.
    Nats(String),
}

impl Plane {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Nats(_) => "nats",
        }
    }

    fn config(&self) -> DistributedConfig {
        let mut config = match self {
            Self::Tcp => DistributedConfig::process_local(),
            Self::Nats(url) => DistributedConfig::from_settings([
                ("DYN_DISCOVERY_BACKEND", "mem"),
                ("DYN_REQUEST_PLANE", "nats"),
                ("NATS_SERVER", url.as_str()),
            ])
            .expect("a NATS-plane configuration"),
        };
        config.graceful_shutdown_timeout = Duration::from_secs(5);
        config
    }
}

/// A worker and a caller on one plane, with the caller's clients.
pub(crate) struct Pair<R: Runtime> {
    pub(crate) plane: Plane,
    pub(crate) echo: Client<R>,
    pub(crate) stream: Client<R>,
    runtimes: [DistributedRuntime<R>; 2],
}

/// A 64-byte request: a JSON string (the NATS plane carries JSON requests, as Dynamo does).
pub(crate) fn payload() -> Bytes {
    let mut json = vec![b'x'; SMALL];
    json[0] = b'"';
    json[SMALL - 1] = b'"';
    Bytes::from(json)
}

async fn runtime<R: Runtime>(rt: &R, store: &MemStore, plane: &Plane) -> DistributedRuntime<R> {
    DistributedRuntime::with_backend(rt.clone(), plane.config(), Arc::new(store.session(rt)))
        .await
        .unwrap_or_else(|e| panic!("a {}-plane runtime: {e}", plane.name()))
}

fn endpoint<R: Runtime>(drt: &DistributedRuntime<R>, name: &str) -> Endpoint<R> {
    drt.namespace("bench")
        .and_then(|ns| ns.component("backend"))
        .and_then(|c| c.endpoint(name))
        .expect("names")
}

/// A client of `bench/backend/<name>` that sees the worker.
async fn client<R: Runtime>(caller: &DistributedRuntime<R>, name: &str) -> Client<R> {
    let client = endpoint(caller, name).client().await.expect("client");
    client
        .wait_for_instances(1, Duration::from_secs(10))
        .await
        .expect("the worker appears");
    client
}

/// Starts the worker (echo, and a stream of `STREAM_ITEMS` items of 64 bytes) and the
/// caller, and waits until the caller sees the worker.
pub(crate) async fn start<R: Runtime>(rt: &R, plane: Plane) -> Pair<R> {
    let store = MemStore::new();
    let worker = runtime(rt, &store, &plane).await;
    let caller = runtime(rt, &store, &plane).await;
    endpoint(&worker, "echo")
        .serve(handler_fn(|p: Bytes, _| stream::once(Ok(p))))
        .await
        .expect("serve echo");
    endpoint(&worker, "stream")
        .serve(handler_fn(|_p: Bytes, _| {
            stream::iter((0..STREAM_ITEMS).map(|_| Ok(Bytes::from_static(&[b'1'; SMALL]))))
        }))
        .await
        .expect("serve stream");
    let (echo, stream) = (
        client(&caller, "echo").await,
        client(&caller, "stream").await,
    );
    let pair = Pair {
        plane,
        echo,
        stream,
        runtimes: [worker, caller],
    };
    // One call each before anything is timed: connections, pools and subscriptions are made.
    call(&pair.echo, payload()).await;
    call(&pair.stream, payload()).await;
    pair
}

impl<R: Runtime> Pair<R> {
    /// Shuts both runtimes down (the worker's subscription and records go).
    pub(crate) async fn shutdown(self) {
        for drt in self.runtimes {
            drt.shutdown().await;
        }
    }
}

/// One call, reading every item; returns the bytes received.
pub(crate) async fn call<R: Runtime>(client: &Client<R>, payload: Bytes) -> usize {
    let mut items = client.round_robin(payload).await.expect("call");
    let mut n = 0;
    while let Some(item) = items.next().await {
        n += item.expect("item").len();
    }
    n
}

/// `total` calls one after another; the time taken.
pub(crate) async fn sequential<R: Runtime>(client: &Client<R>, total: u64) -> Duration {
    let payload = payload();
    let started = Instant::now();
    for _ in 0..total {
        call(client, payload.clone()).await;
    }
    started.elapsed()
}

/// `total` calls spread over `width` concurrent tasks; the time taken.
pub(crate) async fn in_flight<R: Runtime>(
    rt: &R,
    client: &Client<R>,
    total: u64,
    width: usize,
) -> Duration {
    let (done_tx, done_rx) = async_channel::bounded::<()>(width);
    let started = Instant::now();
    for w in 0..width as u64 {
        let share = total / width as u64 + u64::from(w < total % width as u64);
        let (client, done_tx) = (client.clone(), done_tx.clone());
        rt.spawn(async move {
            let payload = payload();
            for _ in 0..share {
                call(&client, payload.clone()).await;
            }
            let _ = done_tx.send(()).await;
        });
    }
    drop(done_tx);
    while done_rx.recv().await.is_ok() {}
    started.elapsed()
}
