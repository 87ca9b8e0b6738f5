//! The shared conformance suite on wasmtime's Pulley interpreter.

use std::sync::Arc;

use morph_core::{BaseMorphRuntime, EngineRuntime};
use morph_runtime_wasmtime::{PULLEY_BACKEND_NAME, WasmtimeOptions};

fn main() {
    let runtime = morph_runtime_wasmtime::backend(WasmtimeOptions::pulley())
        .and_then(EngineRuntime::new)
        .map(|r| Arc::new(r) as Arc<dyn BaseMorphRuntime>);
    morph_conformance::main_for_backend(PULLEY_BACKEND_NAME, runtime);
}
