//! dynrt-tokio's public API is dynrt-smol's, item for item: the shared file compiles and runs
//! against both (see `io-common/tests-shared/adapter_api.rs`).

use dynrt_tokio as adapter;

#[path = "../../io-common/tests-shared/adapter_api.rs"]
mod api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_embedder_code_runs_on_tokio() {
    api::same_code_on_either_executor().await;
}

#[test]
fn the_adapters_public_items_are_the_same_and_all_compiled_here() {
    api::public_items_match_and_are_all_named();
}
