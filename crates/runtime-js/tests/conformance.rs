//! The shared conformance suite on the JavaScript worker backend. The
//! workers are this test binary, re-executed: `main_if_worker` comes first.

use std::sync::Arc;

use morph_core::{BaseMorphRuntime, EngineRuntime};
use morph_runtime_js::{BACKEND_NAME, JsEngine, worker_backend};
use morph_worker::{WorkerOptions, main_if_worker};

fn main() {
    main_if_worker(&[Arc::new(JsEngine)]);
    let runtime = WorkerOptions::new()
        .and_then(|options| EngineRuntime::new(worker_backend(options)))
        .map(|r| Arc::new(r) as Arc<dyn BaseMorphRuntime>);
    morph_conformance::main_for_backend(BACKEND_NAME, runtime);
}
