//! The system status server over real HTTP on loopback, and the health-check driver, on smol.
//! The scenarios are shared with dynrt-tokio's tests (`dynrt_io::testing::system_server`).

use dynrt_io::testing::system_server as scenario;
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
    port_zero_binds_a_free_port_and_reports_it,
    binding_a_port_in_use_is_an_error_naming_host_and_port,
    an_invalid_custom_path_is_an_error_naming_it,
    health_is_503_notready_at_start_and_200_once_the_endpoint_is_ready,
    live_stays_200_while_health_is_503_and_turns_503_once_not_live,
    custom_health_and_live_paths_answer_and_the_defaults_then_404,
    an_unknown_path_is_404_route_not_found,
    a_wrong_method_is_405_with_allow_and_head_sends_no_body,
    metrics_after_traffic_hold_the_endpoint_series_and_parse,
    engine_routes_round_trip_and_report_errors,
    metadata_is_served_when_set,
    artifact_traversal_never_reads_outside_the_store,
    without_an_artifact_store_every_artifact_is_404,
    a_hanging_canary_turns_the_endpoint_notready_and_an_answer_recovers_it,
    a_failing_or_empty_canary_turns_the_endpoint_notready,
    traffic_wakes_the_driver_to_cancel_a_canary_in_flight,
    shutdown_finishes_in_flight_requests_and_stops_accepting,
    shutdown_is_bounded_by_the_drain_timeout,
    dropping_the_server_closes_the_port,
    a_panicking_engine_route_answers_500_and_the_server_keeps_serving,
    a_panicking_canary_sender_is_a_failed_canary_and_the_driver_survives,
    the_server_config_comes_from_dyn_system_settings,
    shutdown_closes_idle_keep_alive_connections_at_once,
}
