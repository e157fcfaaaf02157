//! The event plane on tokio (issue 12 part 6): publishers coming and going under a live
//! subscriber, 10 000 events in order, a slow subscriber (drops counted, memory bounded), a
//! malformed peer dropped while others carry on. Shared with dynrt-smol's tests
//! (`dynrt_io::testing::events`).

use dynrt_io::testing::events as scenario;
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
    publishers_come_and_go,
    ten_thousand_events_in_order,
    slow_subscriber_drops_are_counted_and_memory_bounded,
    malformed_peer_is_dropped_and_others_unaffected,
    two_brokers_deliver_each_event_once,
    brokers_found_in_discovery,
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_events_arrive_in_order() {
    let nats = dynrt_testkit::NatsServer::start();
    scenario::nats_events_arrive_in_order(&TokioRuntime::current(), &nats.url()).await;
}
