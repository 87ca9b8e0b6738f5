//! A fault of Morph's own at instantiation (here: a host function it
//! failed to link for a module validation accepted) is `host_error` with
//! the engine's message, never a guest kind (`trap`, `invalid_module`,
//! `unsupported`), whether the engine finds it at load or at the first
//! call of the import (`morph_wasm::testing` holds the test).

use morph_runtime_wasm3::{Wasm3Engine, Wasm3Options};

#[tokio::test]
async fn a_host_function_morph_failed_to_link_is_host_error() {
    // wasm3 links lazily and does not name the import: it has no body.
    morph_wasm::testing::assert_a_missing_link_is_host_error(
        || Wasm3Engine::new(Wasm3Options::default()),
        "function body is missing",
    )
    .await;
}
