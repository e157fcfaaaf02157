//! How a runtime on tokio applies its settings: the advertised request-plane address, the
//! settings refused at start-up. Shared with dynrt-smol (`dynrt_io::testing::settings`).

use dynrt_io::testing::settings as scenario;
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
    a_distributed_backend_advertises_the_routed_address_a_local_one_loopback =>
        advertised_address_follows_the_backend,
    unusable_settings_are_refused_at_start_naming_them => unusable_settings_are_refused_at_start,
    a_connection_cap_of_one_closes_a_second_callers_connection =>
        connection_cap_setting_reaches_the_server,
}
