//! A tokio client calls a smol server, and a smol client calls a tokio server, over real
//! loopback sockets. (The adapters never depend on each other; this crate sees both.)

use dynrt_io::testing::mux as scenario;
use dynrt_smol::SmolRuntime;
use dynrt_tokio::TokioRuntime;
use dynrt_tokio::mux::ServerConfig;

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn tokio_client_calls_smol_server() {
    let smol_rt = SmolRuntime::new();
    let (server, observed) =
        smol::block_on(scenario::start_server(&smol_rt, ServerConfig::default()));
    let addr = server.local_addr();
    tokio_runtime().block_on(async {
        let rt = TokioRuntime::current();
        scenario::unary(&rt, addr).await;
        scenario::streaming(&rt, addr).await;
        scenario::concurrent(&rt, addr).await;
        scenario::cancel_mid_stream(&rt, addr, &observed).await;
        scenario::handler_error(&rt, addr).await;
    });
}

#[test]
fn smol_client_calls_tokio_server() {
    let tokio_rt = tokio_runtime();
    let (server, observed) = tokio_rt.block_on(async {
        scenario::start_server(&TokioRuntime::current(), ServerConfig::default()).await
    });
    let addr = server.local_addr();
    smol::block_on(async {
        let rt = SmolRuntime::new();
        scenario::unary(&rt, addr).await;
        scenario::streaming(&rt, addr).await;
        scenario::concurrent(&rt, addr).await;
        scenario::cancel_mid_stream(&rt, addr, &observed).await;
        scenario::handler_error(&rt, addr).await;
    });
    drop(server);
    drop(tokio_rt);
}
