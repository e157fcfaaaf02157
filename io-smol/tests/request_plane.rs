//! The mux request plane over real loopback sockets on smol. The scenarios are shared with
//! dynrt-tokio's tests (`dynrt_io::testing::mux`).

use dynrt_io::testing::mux as scenario;
use dynrt_smol::SmolRuntime;
use dynrt_smol::mux::{ConnConfig, ServerConfig};

async fn server() -> (
    dynrt_smol::mux::MuxServer,
    std::sync::Arc<scenario::Observed>,
) {
    scenario::start_server(&SmolRuntime::new(), ServerConfig::default()).await
}

#[test]
fn unary_request_gets_one_item() {
    smol::block_on(async {
        let (server, _) = server().await;
        scenario::unary(&SmolRuntime::new(), server.local_addr()).await;
    })
}

#[test]
fn streaming_10000_items_arrive_in_order() {
    smol::block_on(async {
        let (server, _) = server().await;
        scenario::streaming(&SmolRuntime::new(), server.local_addr()).await;
    })
}

#[test]
fn large_items_several_at_once_arrive_whole_and_exact() {
    smol::block_on(async {
        let (server, _) = server().await;
        scenario::large_items(&SmolRuntime::new(), server.local_addr()).await;
    })
}

#[test]
fn a_thousand_concurrent_streams_share_one_connection() {
    smol::block_on(async {
        let (server, _) = server().await;
        scenario::concurrent(&SmolRuntime::new(), server.local_addr()).await;
    })
}

#[test]
fn dropping_the_stream_cancels_the_handler() {
    smol::block_on(async {
        let (server, observed) = server().await;
        scenario::cancel_mid_stream(&SmolRuntime::new(), server.local_addr(), &observed).await;
    })
}

#[test]
fn server_death_mid_stream_is_a_prompt_disconnected_error() {
    smol::block_on(async {
        let (server, _) = server().await;
        scenario::server_dies(&SmolRuntime::new(), &server).await;
    })
}

#[test]
fn oversized_request_is_refused_and_the_connection_keeps_serving() {
    smol::block_on(async {
        let config = ServerConfig {
            conn: ConnConfig {
                max_frame_size: 64 * 1024,
                ..ConnConfig::default()
            },
            ..ServerConfig::default()
        };
        let (server, _) = scenario::start_server(&SmolRuntime::new(), config).await;
        scenario::oversized_request(&SmolRuntime::new(), server.local_addr()).await;
    })
}

#[test]
fn handler_errors_reach_the_caller_typed() {
    smol::block_on(async {
        let (server, _) = server().await;
        scenario::handler_error(&SmolRuntime::new(), server.local_addr()).await;
    })
}

#[test]
fn a_stalled_reader_bounds_what_the_server_produces() {
    smol::block_on(async {
        let (server, observed) = server().await;
        scenario::slow_consumer(&SmolRuntime::new(), server.local_addr(), &observed).await;
    })
}

#[test]
fn small_credit_given_back_in_small_amounts_reaches_the_server() {
    smol::block_on(async {
        let (server, _) = server().await;
        scenario::small_credit_comes_back(&SmolRuntime::new(), server.local_addr()).await;
    })
}
