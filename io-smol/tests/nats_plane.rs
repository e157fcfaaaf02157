#![cfg(feature = "nats")]
//! The NATS request plane on smol, against a real nats-server (testkit). The scenarios are
//! shared with dynrt-tokio's tests (`dynrt_io::testing::nats_plane`).

use dynrt_io::testing::nats_plane as scenario;
use dynrt_smol::SmolRuntime;
use dynrt_testkit::NatsServer;

macro_rules! scenarios {
    ($($name:ident => $scenario:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let nats = NatsServer::start();
            smol::block_on(scenario::$scenario(&SmolRuntime::new(), &nats.url()));
        }
    )*};
}

scenarios! {
    unary_and_100_item_stream_over_the_nats_plane => unary_and_stream,
    a_request_above_max_payload_is_refused_before_sending_naming_both_sizes => payload_above_max_payload_is_refused,
    no_responders_is_a_typed_error_and_the_instance_is_reported_down => no_responders_is_typed_and_reported_down,
    a_tcp_plane_caller_of_a_nats_worker_is_told_why => tcp_caller_of_a_nats_worker_is_told_why,
}

#[test]
fn a_nats_server_restart_mid_traffic_fails_calls_typed_and_recovers() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    let (tx, rx) = std::sync::mpsc::channel::<NatsServer>();
    // The restart runs on a plain thread; the server comes back to this test to be dropped.
    let restart = move || {
        nats.restart();
        let _ = tx.send(nats);
    };
    smol::block_on(scenario::server_restart_mid_traffic(
        &SmolRuntime::new(),
        &url,
        restart,
    ));
    drop(rx.recv());
}
