//! Connections on tokio: an abandoned dial does not wedge its address (issue 9 item 8), the
//! server's connection cap (item 3). The scenarios are shared with dynrt-smol's tests
//! (`dynrt_io::testing::connections`).

use dynrt_io::testing::connections as scenario;
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
    a_call_dropped_mid_dial_does_not_wedge_the_address => dropped_dial_does_not_wedge_the_address,
    a_forget_during_a_dial_does_not_hang_its_waiters => forget_during_dial_does_not_hang_the_waiters,
    the_waiters_of_a_failed_dial_share_its_failure_and_the_address_is_dialled_after_the_backoff => a_failed_dial_is_shared_and_retried_after_the_backoff,
    the_connection_cap_closes_new_connections_and_spares_open_ones => connection_cap_closes_new_connections_and_spares_open_ones,
}
