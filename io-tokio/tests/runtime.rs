//! DistributedRuntime on tokio: routing, in-process calls, failover, graceful shutdown. The
//! scenarios are shared with dynrt-smol's tests (`dynrt_io::testing::runtime`).

use dynrt_io::testing::runtime as scenario;
use dynrt_tokio::TokioRuntime;

macro_rules! scenarios {
    ($($name:ident => $scenario:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            scenario::$scenario(&TokioRuntime::current()).await;
        }
    )*};
}

scenarios! {
    round_robin_random_and_direct_route_among_instances => routing,
    calls_to_the_own_instance_are_served_in_process => local_calls,
    no_instances_is_a_typed_error_naming_the_endpoint => no_instances,
    a_dead_instance_is_reported_down_and_avoided => failover,
    graceful_shutdown_drains_in_flight_work_then_closes => graceful_shutdown,
    a_drain_cut_off_by_the_timeout_reports_what_was_running => shutdown_timeout_report,
    serving_after_shutdown_is_refused => refuses_after_shutdown,
    typed_calls_label_their_payload_msgpack => typed_calls_label_msgpack,
}
