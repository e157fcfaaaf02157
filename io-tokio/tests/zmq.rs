//! ZMQ sockets on tokio (issue 12 part 2): our sockets with each other and with a real libzmq
//! peer (python3-zmq), through our broker and libzmq's, against bad peers. The scenarios are
//! shared with dynrt-smol's tests (`dynrt_io::testing::zmq`).

use dynrt_io::testing::zmq as scenario;
use dynrt_tokio::TokioRuntime;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            scenario::$name(&TokioRuntime::current()).await;
        }
    )*};
}

scenarios! {
    pub_to_sub_in_order,
    subscriber_follows_publishers_coming_and_going,
    subscriber_redials_a_restarted_publisher,
    slow_receiver_drops_are_counted_and_bounded,
    full_peer_queue_drops_are_counted_and_others_unaffected,
    malformed_peer_is_dropped_and_others_unaffected,
    silent_peer_is_dropped_at_the_handshake_timeout,
    libzmq_pub_to_our_sub,
    our_pub_to_libzmq_sub,
    broker_between_libzmq_and_our_sockets,
    libzmq_broker_between_our_sockets,
}
