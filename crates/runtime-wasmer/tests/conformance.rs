//! The shared conformance suite on the wasmer backend.

use std::sync::Arc;

use morph_core::{BaseMorphRuntime, EngineRuntime};
use morph_runtime_wasmer::{BACKEND_NAME, WasmerOptions};

fn main() {
    let runtime = EngineRuntime::new(morph_runtime_wasmer::backend(WasmerOptions::default()))
        .map(|r| Arc::new(r) as Arc<dyn BaseMorphRuntime>);
    morph_conformance::main_for_backend(BACKEND_NAME, runtime);
}
