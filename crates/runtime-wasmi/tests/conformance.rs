//! The shared conformance suite on the wasmi backend.

use std::sync::Arc;

use morph_core::{BaseMorphRuntime, EngineRuntime};
use morph_runtime_wasmi::{BACKEND_NAME, WasmiOptions};

fn main() {
    let runtime = EngineRuntime::new(morph_runtime_wasmi::backend(WasmiOptions::default()))
        .map(|r| Arc::new(r) as Arc<dyn BaseMorphRuntime>);
    morph_conformance::main_for_backend(BACKEND_NAME, runtime);
}
