//! The shared conformance suite on the Python backend (worker processes:
//! this test binary is also the worker program).

use std::sync::Arc;

use morph_core::{BaseMorphRuntime, EngineRuntime};
use morph_runtime_python::{BACKEND_NAME, PythonEngine, worker_backend};
use morph_worker::{WorkerOptions, main_if_worker};

fn main() {
    main_if_worker(&[Arc::new(PythonEngine)]);
    let runtime = WorkerOptions::new()
        .and_then(|options| EngineRuntime::new(worker_backend(options)))
        .map(|r| Arc::new(r) as Arc<dyn BaseMorphRuntime>);
    morph_conformance::main_for_backend(BACKEND_NAME, runtime);
}
