//! What stalled and hostile peers can make a smol server hold. The scenarios are shared with
//! dynrt-tokio's tests (`dynrt_io::testing::mux_bounds`).

use dynrt_io::testing::mux_bounds as scenario;
use dynrt_smol::SmolRuntime;

#[test]
fn a_stalled_reader_of_one_byte_items_is_bounded_in_bytes() {
    smol::block_on(scenario::stalled_reader_is_bounded_in_bytes(
        &SmolRuntime::new(),
    ));
}

#[test]
fn stalled_readers_share_the_process_budget() {
    smol::block_on(scenario::stalled_readers_share_the_process_budget(
        &SmolRuntime::new(),
    ));
}

#[test]
fn a_peer_that_stops_reading_is_reaped() {
    smol::block_on(scenario::a_peer_that_stops_reading_is_reaped(
        &SmolRuntime::new(),
    ));
}

#[test]
fn an_oversized_frame_before_the_handshake_closes_the_connection() {
    smol::block_on(
        scenario::an_oversized_frame_before_the_handshake_closes_the_connection(&SmolRuntime::new()),
    );
}
