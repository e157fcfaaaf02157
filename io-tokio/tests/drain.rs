//! The drain counts delivery: a request is in flight until its answer is written to the
//! socket. Scenarios shared with dynrt-smol's tests (`dynrt_io::testing::drain`).

use dynrt_io::testing::drain as scenario;
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
    the_drain_waits_until_a_slow_callers_answer_is_written => drain_waits_until_the_answer_is_written,
    an_undelivered_answer_is_in_flight_when_the_drain_times_out => undelivered_answer_is_reported_when_the_drain_times_out,
    a_lost_lease_shuts_down_with_its_own_exit_code => lost_lease_shuts_down_with_its_own_exit_code,
    force_ends_a_drain_at_once => force_ends_a_drain_at_once,
    a_stream_reset_during_the_drain_is_reported_lost => a_stream_reset_during_the_drain_is_reported_lost,
}
