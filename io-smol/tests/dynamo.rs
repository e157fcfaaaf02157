//! Dynamo 1.6.1's request plane on smol: a dynrt client calling a Dynamo-only instance, the
//! dynrt worker serving Dynamo's protocol, and a scripted Dynamo worker dying mid-stream. The
//! scenarios are shared with dynrt-tokio's tests (`dynrt_io::testing::dynamo`).

use dynrt_io::testing::dynamo as scenario;
use dynrt_smol::SmolRuntime;

macro_rules! scenarios {
    ($($name:ident => $scenario:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            smol::block_on(scenario::$scenario(&SmolRuntime::new()));
        }
    )*};
}

scenarios! {
    unary_long_stream_and_1_mib_request_in_every_codec => unary_stream_and_large_request,
    handler_errors_reach_the_caller_as_prologue_and_mid_stream_errors => prologue_and_mid_stream_errors,
    stop_kill_and_a_dropped_caller_reach_the_handler => stop_kill_and_dropped_caller,
    unknown_endpoint_and_overload_use_dynamos_ack_texts => unknown_endpoint_and_overload,
    a_non_json_request_for_a_dynamo_worker_is_refused => non_json_request_is_refused,
    a_worker_killed_mid_stream_is_a_disconnect_and_reported_down => worker_killed_mid_stream,
    names_a_dynamo_worker_can_register_are_listed_watched_and_called => peer_names_are_listed_watched_and_called,
    a_dynrt_worker_serves_a_dynamo_caller_in_both_codecs => dynrt_worker_serves_a_dynamo_caller,
    an_answer_whose_caller_never_closes_is_not_counted_delivered => an_answer_whose_caller_never_closes_is_not_counted_delivered,
}
