//! The shared conformance suite on the wasmtime backend.

use std::sync::Arc;

use morph_core::{BaseMorphRuntime, EngineRuntime};
use morph_runtime_wasmtime::{BACKEND_NAME, WasmtimeOptions};

fn main() {
    let runtime = morph_runtime_wasmtime::backend(WasmtimeOptions::default())
        .and_then(EngineRuntime::new)
        .map(|r| Arc::new(r) as Arc<dyn BaseMorphRuntime>);
    morph_conformance::main_for_backend(BACKEND_NAME, runtime);
}
