//! How the runtime applies its settings: the request-plane address it advertises, the
//! settings it refuses at start-up, and the limit settings reaching the servers and clients it
//! builds. Run by both adapters (`tests/settings.rs`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dynrt_core::config::DistributedConfig;
use dynrt_core::discovery::{DiscoveryRecord, Query, Transport};
use dynrt_core::names::TcpTransport;

use super::runtime::{demo_endpoint, runtime_on, serve_generate};
use super::within;
use crate::discovery::MemStore;
use crate::distributed::{DistributedRuntime, RuntimeError, routed_addrs};
use crate::runtime::Runtime;

const LIMIT: Duration = Duration::from_secs(20);

/// A runtime configured by `settings`, on `store` (so no etcd is needed to test what a
/// distributed backend's runtime advertises).
async fn start<R: Runtime>(
    rt: &R,
    store: &MemStore,
    settings: &[(&str, &str)],
) -> Result<DistributedRuntime<R>, RuntimeError> {
    // zmq events unless the settings say otherwise: with etcd's default (NATS) event plane
    // the runtime would need a NATS server, which these checks do not use.
    let all = std::iter::once(("DYN_EVENT_PLANE", "zmq")).chain(settings.iter().copied());
    let config = DistributedConfig::from_settings(all).expect("the settings parse");
    DistributedRuntime::with_backend(rt.clone(), config, Arc::new(store.session(rt))).await
}

/// The address the one endpoint record in `store` advertises.
async fn advertised<R: Runtime>(drt: &DistributedRuntime<R>) -> IpAddr {
    let listing = drt
        .discovery()
        .list(&Query::AllEndpoints)
        .await
        .expect("list");
    let addrs: Vec<IpAddr> = listing
        .records
        .iter()
        .filter_map(|r| match r {
            DiscoveryRecord::Endpoint(r) => Some(&r.transport),
            _ => None,
        })
        .map(|t| match t {
            Transport::Tcp(t) => TcpTransport::parse(t).expect("a tcp transport").addr.ip(),
            other => panic!("unexpected transport {other:?}"),
        })
        .collect();
    assert_eq!(addrs.len(), 1, "{:?}", listing.records);
    addrs[0]
}

/// With a distributed backend and no `DYN_TCP_RPC_HOST`, the worker advertises this host's
/// routed address (what other hosts can reach), not loopback; a client reaches it there. With a
/// local backend it stays on loopback.
pub async fn advertised_address_follows_the_backend<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "advertised address", async {
        let routed = routed_addrs();
        let expected = routed
            .v4
            .map(IpAddr::from)
            .or(routed.v6.map(IpAddr::from))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));

        let store = MemStore::new();
        let worker = start(rt, &store, &[("DYN_DISCOVERY_BACKEND", "etcd")])
            .await
            .expect("starts");
        serve_generate(&worker).await;
        assert_eq!(advertised(&worker).await, expected, "{routed:?}");
        // Another runtime calls it at that address.
        let caller = runtime_on(rt, &store).await;
        let client = super::runtime::demo_endpoint(&caller, "generate")
            .client()
            .await
            .expect("client");
        client
            .wait_for_instances(1, LIMIT)
            .await
            .expect("the worker is seen");
        let (items, end) = client
            .round_robin(Bytes::from_static(b"2"))
            .await
            .expect("call")
            .collect_all()
            .await;
        assert_eq!(items.len(), 2, "{end:?}");
        worker.shutdown().await;
        caller.shutdown().await;

        let store = MemStore::new();
        let local = start(rt, &store, &[("DYN_DISCOVERY_BACKEND", "file")])
            .await
            .expect("starts");
        serve_generate(&local).await;
        assert_eq!(advertised(&local).await, IpAddr::from([127, 0, 0, 1]));
        local.shutdown().await;
    })
    .await;
}

/// Settings a runtime cannot honour are refused at start-up, naming the setting: a host that
/// is not an IP address, a request plane or a discovery backend dynrt does not implement.
pub async fn unusable_settings_are_refused_at_start<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "refused settings", async {
        let store = MemStore::new();
        let cases: [(&[(&str, &str)], &str); 3] = [
            (
                &[("DYN_TCP_RPC_HOST", "eth0")],
                "DYN_TCP_RPC_HOST: 'eth0' is not an IP address",
            ),
            (&[("DYN_REQUEST_PLANE", "nats")], "DYN_REQUEST_PLANE=nats"),
            (&[("DYN_REQUEST_PLANE", "http")], "DYN_REQUEST_PLANE=http"),
        ];
        for (settings, says) in cases {
            match start(rt, &store, settings).await {
                Ok(_) => panic!("{settings:?} started"),
                Err(e) => assert!(e.to_string().contains(says), "{settings:?}: {e}"),
            }
        }
        let kubernetes =
            DistributedConfig::from_settings([("DYN_DISCOVERY_BACKEND", "kubernetes")])
                .expect("parses");
        match DistributedRuntime::new(rt.clone(), kubernetes).await {
            Ok(_) => panic!("a kubernetes runtime started"),
            Err(e) => assert!(
                e.to_string().contains("DYN_DISCOVERY_BACKEND=kubernetes"),
                "{e}"
            ),
        }
    })
    .await;
}

/// The output budget of `drt`'s request-plane server.
fn server_budget<R: Runtime>(drt: &DistributedRuntime<R>) -> crate::mux::OutputBudget {
    let (server, _) = drt.inner().server.as_ref().expect("a server runs");
    server.output_budget().clone()
}

/// One request through a fresh client of `caller` to `demo/backend/generate`: its items, or
/// the error that ended it.
async fn call_once<R: Runtime>(caller: &DistributedRuntime<R>) -> Result<usize, String> {
    let client = demo_endpoint(caller, "generate")
        .client()
        .await
        .map_err(|e| e.to_string())?;
    client
        .wait_for_instances(1, LIMIT)
        .await
        .map_err(|e| e.to_string())?;
    match client.round_robin(Bytes::from_static(b"2")).await {
        Err(e) => Err(e.to_string()),
        Ok(stream) => match stream.collect_all().await {
            (items, None) => Ok(items.len()),
            (_, Some(e)) => Err(e.to_string()),
        },
    }
}

/// `DYN_TCP_MAX_CONNECTIONS` reaches the request-plane server: at 1, a first caller's
/// connection holds the only place, and a second caller (its own connection) is closed at once,
/// so its request fails; the first caller keeps being served. `DYN_TCP_MAX_PROCESS_OUTPUT_BYTES`
/// gives the server a budget of its own; unset, it shares the process's. The other limits reach
/// the configs it builds: `DYN_REQUEST_MAX_ATTEMPTS` its clients' retry budget, the
/// `DYN_SYSTEM_*` limits its status server's settings.
pub async fn connection_cap_setting_reaches_the_server<R: Runtime>(rt: &R) {
    within(rt, LIMIT, "DYN_TCP_MAX_CONNECTIONS", async {
        let store = MemStore::new();
        let worker = start(
            rt,
            &store,
            &[
                ("DYN_DISCOVERY_BACKEND", "mem"),
                ("DYN_TCP_MAX_CONNECTIONS", "1"),
                ("DYN_TCP_MAX_PROCESS_OUTPUT_BYTES", "1048576"),
            ],
        )
        .await
        .expect("starts");
        serve_generate(&worker).await;
        assert_eq!(server_budget(&worker).limit(), 1024 * 1024);
        assert!(
            !server_budget(&worker).same_as(&crate::mux::OutputBudget::process()),
            "a runtime given DYN_TCP_MAX_PROCESS_OUTPUT_BYTES shares the process budget"
        );

        // The first caller's connection is pooled and kept alive: it holds the place.
        let first = runtime_on(rt, &store).await;
        assert_eq!(call_once(&first).await, Ok(2));
        let second = runtime_on(rt, &store).await;
        let refused = call_once(&second).await;
        assert!(
            refused.is_err(),
            "a second connection was served: {refused:?}"
        );
        assert_eq!(
            call_once(&first).await,
            Ok(2),
            "the first caller lost its place"
        );
        second.shutdown().await;
        first.shutdown().await;
        worker.shutdown().await;

        // The same two callers with the default cap are both served (the control).
        let store = MemStore::new();
        let worker = start(rt, &store, &[("DYN_DISCOVERY_BACKEND", "mem")])
            .await
            .expect("starts");
        serve_generate(&worker).await;
        assert!(server_budget(&worker).same_as(&crate::mux::OutputBudget::process()));
        let first = runtime_on(rt, &store).await;
        let second = runtime_on(rt, &store).await;
        assert_eq!(call_once(&first).await, Ok(2));
        assert_eq!(call_once(&second).await, Ok(2));
        second.shutdown().await;
        first.shutdown().await;
        worker.shutdown().await;

        let store = MemStore::new();
        let caller = start(
            rt,
            &store,
            &[
                ("DYN_DISCOVERY_BACKEND", "mem"),
                ("DYN_REQUEST_MAX_ATTEMPTS", "1"),
                ("DYN_SYSTEM_MAX_CONNECTIONS", "3"),
                ("DYN_SYSTEM_HEADER_READ_TIMEOUT", "2"),
                ("DYN_SYSTEM_BODY_READ_TIMEOUT", "4"),
                ("DYN_SYSTEM_MAX_HEADER_BYTES", "2048"),
                ("DYN_SYSTEM_PORT", "0"),
            ],
        )
        .await
        .expect("starts");
        let client = demo_endpoint(&caller, "generate")
            .client()
            .await
            .expect("client");
        assert_eq!(client.retry(), dynrt_core::router::RetryConfig::never());
        let system =
            crate::system_server::SystemServerConfig::from_system_config(&caller.config().system)
                .expect("DYN_SYSTEM_PORT=0 enables the server");
        assert_eq!(system.max_connections, 3);
        assert_eq!(system.header_read_timeout, Duration::from_secs(2));
        assert_eq!(system.body_read_timeout, Duration::from_secs(4));
        assert_eq!(system.max_header_bytes, 2048);
        caller.shutdown().await;
    })
    .await;
}
