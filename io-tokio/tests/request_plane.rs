//! The mux request plane over real loopback sockets on tokio. The scenarios are shared with
//! dynrt-smol's tests (`dynrt_io::testing::mux`).

use dynrt_io::testing::mux as scenario;
use dynrt_tokio::TokioRuntime;
use dynrt_tokio::mux::{ConnConfig, ServerConfig};

async fn server() -> (
    dynrt_tokio::mux::MuxServer,
    std::sync::Arc<scenario::Observed>,
) {
    scenario::start_server(&TokioRuntime::current(), ServerConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_request_gets_one_item() {
    let (server, _) = server().await;
    scenario::unary(&TokioRuntime::current(), server.local_addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_10000_items_arrive_in_order() {
    let (server, _) = server().await;
    scenario::streaming(&TokioRuntime::current(), server.local_addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_items_several_at_once_arrive_whole_and_exact() {
    let (server, _) = server().await;
    scenario::large_items(&TokioRuntime::current(), server.local_addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_streams_share_one_connection() {
    let (server, _) = server().await;
    scenario::concurrent(&TokioRuntime::current(), server.local_addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_cancels_the_handler() {
    let (server, observed) = server().await;
    scenario::cancel_mid_stream(&TokioRuntime::current(), server.local_addr(), &observed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_death_mid_stream_is_a_prompt_disconnected_error() {
    let (server, _) = server().await;
    scenario::server_dies(&TokioRuntime::current(), &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_is_refused_and_the_connection_keeps_serving() {
    let config = ServerConfig {
        conn: ConnConfig {
            max_frame_size: 64 * 1024,
            ..ConnConfig::default()
        },
        ..ServerConfig::default()
    };
    let (server, _) = scenario::start_server(&TokioRuntime::current(), config).await;
    scenario::oversized_request(&TokioRuntime::current(), server.local_addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_reach_the_caller_typed() {
    let (server, _) = server().await;
    scenario::handler_error(&TokioRuntime::current(), server.local_addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_bounds_what_the_server_produces() {
    let (server, observed) = server().await;
    scenario::slow_consumer(&TokioRuntime::current(), server.local_addr(), &observed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_credit_given_back_in_small_amounts_reaches_the_server() {
    let (server, _) = server().await;
    scenario::small_credit_comes_back(&TokioRuntime::current(), server.local_addr()).await;
}
