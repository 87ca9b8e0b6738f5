//! The shared conformance suite on the wasm3 backend.

use std::sync::Arc;

use morph_core::{BaseMorphRuntime, EngineRuntime};
use morph_runtime_wasm3::{BACKEND_NAME, Wasm3Options};

fn main() {
    let runtime = EngineRuntime::new(morph_runtime_wasm3::backend(Wasm3Options::default()))
        .map(|r| Arc::new(r) as Arc<dyn BaseMorphRuntime>);
    morph_conformance::main_for_backend(BACKEND_NAME, runtime);
}
