//! Routing on smol (issue 9 item 5): fresh clients spread over the instances, refusals are
//! retried elsewhere within the budget, accepted requests never. The scenarios are shared with
//! dynrt-tokio's tests (`dynrt_io::testing::routing`).

use dynrt_io::testing::routing as scenario;
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
    fresh_clients_spread_over_instances => fresh_clients_spread_over_instances,
    a_refused_connect_is_retried_on_another_instance => refused_connect_is_retried_elsewhere,
    an_overloaded_answer_is_retried_and_not_reported_down => overloaded_answer_is_retried_and_not_reported_down,
    an_accepted_request_is_never_retried => accepted_request_is_never_retried,
    a_kill_while_retrying_reaches_the_next_instance => kill_while_retrying_reaches_the_next_instance,
}
