//! dynrt-smol's public API is dynrt-tokio's, item for item: the shared file compiles and runs
//! against both (see `io-common/tests-shared/adapter_api.rs`).

use dynrt_smol as adapter;

#[path = "../../io-common/tests-shared/adapter_api.rs"]
mod api;

#[test]
fn the_shared_embedder_code_runs_on_smol() {
    smol::block_on(api::same_code_on_either_executor());
}

#[test]
fn the_adapters_public_items_are_the_same_and_all_compiled_here() {
    api::public_items_match_and_are_all_named();
}
