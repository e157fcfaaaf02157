//! The event plane on smol (issue 12 part 6): publishers coming and going under a live
//! subscriber, 10 000 events in order, a slow subscriber (drops counted, memory bounded), a
//! malformed peer dropped while others carry on. Shared with dynrt-tokio's tests
//! (`dynrt_io::testing::events`).

use dynrt_io::testing::events as scenario;
use dynrt_smol::SmolRuntime;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            smol::block_on(scenario::$name(&SmolRuntime::new()));
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
#[test]
fn nats_events_arrive_in_order() {
    let nats = dynrt_testkit::NatsServer::start();
    smol::block_on(scenario::nats_events_arrive_in_order(
        &SmolRuntime::new(),
        &nats.url(),
    ));
}
