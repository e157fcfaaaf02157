//! The adapters' public API, item for item: this file is compiled twice, by
//! `io-tokio/tests/adapter_api.rs` and `io-smol/tests/adapter_api.rs`, each of which names its
//! crate `adapter`. It builds against both, so a program written for one executor moves to the
//! other by changing the one import (`use dynrt_tokio as adapter` ↔ `use dynrt_smol as adapter`).
//! The only names that differ are the executor types themselves (`TokioRuntime`,
//! `SmolRuntime`), which an embedder using the adapters' constructors never writes.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{StreamExt, stream};

use crate::adapter;
use adapter::core::config::{DistributedConfig as CoreConfig, HealthStatus};
use adapter::core::names::InstanceId;
use adapter::discovery::{Discovery, FileStore, InstanceWatch, MemSession, SharedInstances};
use adapter::distributed::{
    CallStream, Client, ClientError, Component, DistributedConfig, DistributedRuntime, Endpoint,
    GracefulTask, Namespace, RuntimeError, TypedStream, settings_from_env,
};
use adapter::mux::{
    ConnConfig, Connector, Handlers, MuxServer, RequestHeader, ServerConfig, connector, handler_fn,
    serve,
};
use adapter::system_server::{SystemServer, SystemServerConfig, SystemState};
#[cfg(feature = "etcd")]
use adapter::{EtcdConfig, EtcdStore};

/// Names every item an embedder uses, with the types spelled out, so a missing or renamed item
/// in either adapter fails to compile.
#[allow(dead_code, clippy::type_complexity)]
fn every_item_exists(
    _: Option<(
        Discovery,
        FileStore,
        InstanceWatch,
        MemSession,
        SharedInstances,
    )>,
    _: Option<(CallStream, Client, ClientError, Component, Endpoint)>,
    _: Option<(GracefulTask, Namespace, RuntimeError, TypedStream<u32>)>,
    _: Option<(
        Connector,
        MuxServer,
        SystemServer,
        SystemServerConfig,
        SystemState,
    )>,
) {
    // One health enum, one instance id.
    let _: HealthStatus = CoreConfig::default().system.starting_health_status;
    let _: InstanceId = InstanceId(1);
    let _: CoreConfig = DistributedConfig::default();
    let _ = settings_from_env;
    let _ = DistributedRuntime::from_env;
    let _ = DistributedRuntime::new;
    let _ = DistributedRuntime::process_local;
    let _ = DistributedRuntime::with_backend;
    #[cfg(feature = "etcd")]
    let _: Option<(EtcdConfig, EtcdStore)> = None;
}

/// A process-local runtime serves an endpoint and calls it through a client; a connector with
/// the adapter's one name calls a bare request-plane server.
pub(crate) async fn same_code_on_either_executor() {
    let drt: DistributedRuntime = DistributedRuntime::process_local()
        .await
        .expect("a process-local runtime starts");
    let ns: Namespace = drt.namespace("adapter-api").expect("valid name");
    let component: Component = ns.component("check").expect("valid name");
    let endpoint: Endpoint = component.endpoint("echo").expect("valid name");
    endpoint
        .serve(handler_fn(|payload: Bytes, _ctx| {
            stream::iter([Ok(payload)])
        }))
        .await
        .expect("serve registers");
    let client: Client = endpoint.client().await.expect("client");
    client
        .wait_for_instances(1, Duration::from_secs(10))
        .await
        .expect("the instance appears");
    assert_eq!(client.instance_ids(), vec![drt.instance_id()]);
    let (items, error) = client
        .round_robin(Bytes::from_static(b"ping"))
        .await
        .expect("call")
        .collect_all()
        .await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(items, vec![Bytes::from_static(b"ping")]);

    let handlers = Handlers::new();
    handlers.insert(
        "echo",
        handler_fn(|payload: Bytes, _ctx| stream::iter([Ok(payload)])),
    );
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let server = serve(any_port, handlers, ServerConfig::default())
        .await
        .expect("bind");
    let dialer: Connector = connector(ConnConfig::default());
    let header = RequestHeader::new("adapter-api")
        .to_msgpack()
        .expect("encodable header");
    let mut response = dialer
        .call(
            server.local_addr(),
            "echo",
            header,
            Bytes::from_static(b"pong"),
        )
        .await
        .expect("call");
    let item = response
        .next()
        .await
        .expect("one item")
        .expect("not an error");
    assert_eq!(item, Bytes::from_static(b"pong"));

    // The runtime owns its services and has one shutdown; the generic runtime it wraps
    // converts both ways.
    assert_eq!(drt.system_server_addr(), None);
    let generic: adapter::io::DistributedRuntime<_> = drt.clone().into();
    let drt = DistributedRuntime::from(generic);
    drt.shutdown().await;
}
