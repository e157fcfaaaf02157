//! The system status server under hostile load (idle sockets beyond the cap, slow heads and
//! bodies, oversized heads, every connection busy), on smol. The scenarios are shared with
//! dynrt-tokio's tests (`dynrt_io::testing::status_load`).

use dynrt_io::testing::status_load as scenario;
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
    probes_answer_with_four_times_the_cap_in_idle_sockets,
    probes_answer_with_1100_idle_sockets_at_the_default_cap,
    slow_and_idle_heads_are_dropped_after_the_header_read_timeout,
    a_trickled_body_gets_408_after_the_body_read_timeout,
    an_oversized_head_gets_431_and_a_normal_one_is_served,
    at_the_cap_with_every_connection_busy_a_new_one_gets_503,
    a_recently_active_keep_alive_connection_outlives_older_idle_sockets,
    unworkable_limits_are_errors_naming_the_setting,
}
