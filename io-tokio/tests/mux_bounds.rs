//! What stalled and hostile peers can make a tokio server hold. The scenarios are shared with
//! dynrt-smol's tests (`dynrt_io::testing::mux_bounds`).

use dynrt_io::testing::mux_bounds as scenario;
use dynrt_tokio::TokioRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_of_one_byte_items_is_bounded_in_bytes() {
    scenario::stalled_reader_is_bounded_in_bytes(&TokioRuntime::current()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_share_the_process_budget() {
    scenario::stalled_readers_share_the_process_budget(&TokioRuntime::current()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_reaped() {
    scenario::a_peer_that_stops_reading_is_reaped(&TokioRuntime::current()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_before_the_handshake_closes_the_connection() {
    scenario::an_oversized_frame_before_the_handshake_closes_the_connection(
        &TokioRuntime::current(),
    )
    .await;
}
