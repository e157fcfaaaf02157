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
use adapter::system_server::{
    ArtifactRootError, CanarySender, CanaryStream, DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES, HealthCheckDriver, MAX_ARTIFACT_BYTES, MAX_REQUEST_BODY,
    SystemServer, SystemServerConfig, SystemServerError, SystemState,
};
use adapter::zmq::{
    BindError, BrokerConfig, BrokerError, BrokerHandle, Endpoint as ZmqEndpoint, EndpointError,
    PeerError, RecvError, SendError, SendReport, ZmqConfig, ZmqPub, ZmqStats, ZmqSub, ZmqXPub,
    ZmqXSub, parse_endpoint, run_broker,
};
#[cfg(feature = "etcd")]
use adapter::{EtcdConfig, EtcdStore};

/// Names every item an embedder uses, with the types spelled out, so a missing or renamed item
/// in either adapter fails to compile.
#[allow(dead_code, clippy::type_complexity, clippy::too_many_arguments)]
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
    _: Option<(
        ArtifactRootError,
        CanaryStream,
        HealthCheckDriver,
        SystemServerError,
        &dyn CanarySender,
    )>,
    _: Option<(
        BindError,
        BrokerConfig,
        BrokerError,
        BrokerHandle,
        ZmqEndpoint,
    )>,
    _: Option<(EndpointError, PeerError, RecvError, SendError, SendReport)>,
    _: Option<(ZmqConfig, ZmqPub, ZmqStats, ZmqSub, ZmqXPub, ZmqXSub)>,
) {
    let _ = (DEFAULT_BODY_READ_TIMEOUT, DEFAULT_DRAIN_TIMEOUT);
    let _ = (DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS);
    let _ = (
        DEFAULT_MAX_HEADER_BYTES,
        MAX_ARTIFACT_BYTES,
        MAX_REQUEST_BODY,
    );
    let _ = parse_endpoint;
    let _ = run_broker;
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

/// The adapters' public items, read from their sources: the same in both (executor names
/// aside), and every one named in this file, so that the compile check above covers an item
/// added to one adapter only or forgotten here. (The executor types' own constructors,
/// `TokioRuntime::current` and `SmolRuntime::new`, are the one intended difference: the
/// adapters' `runtime` modules are not compared.)
pub(crate) fn public_items_match_and_are_all_named() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tokio = public_items(&root.join("io-tokio/src"), "tokio");
    let smol = public_items(&root.join("io-smol/src"), "smol");
    let only_tokio: Vec<_> = tokio.difference(&smol).collect();
    let only_smol: Vec<_> = smol.difference(&tokio).collect();
    assert!(
        only_tokio.is_empty() && only_smol.is_empty(),
        "public items of one adapter only: dynrt-tokio {only_tokio:?}, dynrt-smol {only_smol:?}"
    );
    let this_file = std::fs::read_to_string(root.join("io-common/tests-shared/adapter_api.rs"))
        .expect("this file is readable");
    let unnamed: Vec<_> = tokio
        .iter()
        .filter_map(|item| item.rsplit("::").next())
        .filter(|name| *name != "*" && *name != "ExecRuntime" && !names(&this_file, name))
        .collect();
    assert!(
        unnamed.is_empty(),
        "public adapter items this file never names (add them to every_item_exists): {unnamed:?}"
    );
}

/// Whether `text` contains `name` as a whole word.
fn names(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// `module::name` for every `pub` item and `pub use` of an adapter's top-level source files
/// (its `runtime` module and binaries aside), with the executor's name replaced by `Exec`.
fn public_items(src: &std::path::Path, executor: &str) -> std::collections::BTreeSet<String> {
    let capitalised = format!("{}{}", executor[..1].to_uppercase(), &executor[1..]);
    let mut items = std::collections::BTreeSet::new();
    let files = std::fs::read_dir(src).expect("the adapter's sources are readable");
    for file in files {
        let path = file.expect("a directory entry").path();
        let module = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if path.extension().is_none_or(|e| e != "rs") || module == "runtime" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        let text = text.replace(&capitalised, "Exec").replace(executor, "exec");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("pub ") {
            let line_start = rest[..at].rfind('\n').map_or(0, |n| n + 1);
            let is_code = rest[line_start..at].trim().is_empty();
            rest = &rest[at + 4..];
            if !is_code || rest.starts_with("(crate)") {
                continue;
            }
            if let Some(used) = rest.strip_prefix("use ") {
                let end = used.find(';').unwrap_or(used.len());
                let path = &used[..end];
                let listed = match path.find('{') {
                    Some(open) => path[open + 1..].trim_end_matches('}').to_owned(),
                    None => path.rsplit("::").next().unwrap_or_default().to_owned(),
                };
                for name in listed.split(',') {
                    let name = name.split(" as ").last().unwrap_or_default().trim();
                    let name = name.rsplit("::").next().unwrap_or_default();
                    if !name.is_empty() {
                        items.insert(format!("{module}::{name}"));
                    }
                }
                continue;
            }
            let mut words = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty());
            let mut keyword = words.next().unwrap_or_default();
            if keyword == "async" {
                keyword = words.next().unwrap_or_default();
            }
            if matches!(
                keyword,
                "fn" | "struct" | "enum" | "type" | "const" | "static" | "trait" | "mod"
            ) && let Some(name) = words.next()
            {
                items.insert(format!("{module}::{name}"));
            }
        }
    }
    items
}
