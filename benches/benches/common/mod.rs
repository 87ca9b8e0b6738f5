//! Shared pieces of Morph's benchmarks (each bench target includes this
//! module): the backends under test, the fixtures, and the raw engine code
//! the baselines and the memory measurement use. Kept out of a library so
//! the report command (`src/bin/morph-bench`) does not link the engines.
#![allow(dead_code)]

pub mod raw;

use std::path::PathBuf;
use std::sync::Arc;

use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, Executor, ExtensionArtifact, HostPolicy,
    LoadedExtension, ModuleCache,
};

/// The backends every benchmark compares, in report order.
pub const BACKENDS: &[&str] = &["wasmtime", "wasmtime-pulley", "wasmer", "wasmi", "wasm3"];

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The benchmark kernels extension (`benches/kernels-wasm`).
pub fn kernels_dir() -> PathBuf {
    repo().join("benches/kernels-wasm")
}

/// A conformance fixture directory.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("conformance/fixtures").join(name)
}

/// Reads an extension directory; panics with its path on failure (a
/// benchmark cannot run without it).
pub fn artifact(dir: &std::path::Path) -> ExtensionArtifact {
    ExtensionArtifact::from_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
}

/// A single-threaded tokio runtime to drive the async API.
pub fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Backend `name` as a Morph runtime on `executor`, with `cache` for the
/// engines that can use one.
pub fn backend(
    name: &str,
    executor: Executor,
    cache: Option<Arc<ModuleCache>>,
) -> Arc<dyn BaseMorphRuntime> {
    use morph_runtime_wasmer::{WasmerBackend, WasmerOptions};
    use morph_runtime_wasmtime::{WasmtimeBackend, WasmtimeOptions};
    let wasmtime = |options| {
        let mut backend = WasmtimeBackend::new(options).expect("wasmtime");
        if let Some(cache) = cache.clone() {
            backend = backend.with_cache(cache);
        }
        backend
    };
    match name {
        "wasmtime" => Arc::new(EngineRuntime::with_executor(
            wasmtime(WasmtimeOptions::default()),
            executor,
        )),
        "wasmtime-pulley" => Arc::new(EngineRuntime::with_executor(
            wasmtime(WasmtimeOptions::pulley()),
            executor,
        )),
        "wasmer" => {
            let mut backend = WasmerBackend::new(WasmerOptions::default());
            if let Some(cache) = cache {
                backend = backend.with_cache(cache);
            }
            Arc::new(EngineRuntime::with_executor(backend, executor))
        }
        "wasmi" => Arc::new(EngineRuntime::with_executor(
            morph_runtime_wasmi::WasmiBackend::new(Default::default()),
            executor,
        )),
        "wasm3" => Arc::new(EngineRuntime::with_executor(
            morph_runtime_wasm3::Wasm3Backend::new(Default::default()),
            executor,
        )),
        other => panic!("unknown backend {other}"),
    }
}

/// Backend `name` on the shared execution pool, no cache.
pub fn pooled(name: &str) -> Arc<dyn BaseMorphRuntime> {
    backend(name, Executor::shared().expect("executor"), None)
}

/// Loads `artifact` on `runtime` with an in-memory host and the grant the
/// manifest requests.
pub fn load(
    rt: &tokio::runtime::Runtime,
    runtime: &Arc<dyn BaseMorphRuntime>,
    artifact: &ExtensionArtifact,
) -> Box<dyn LoadedExtension> {
    let policy = HostPolicy::grant_requested(&artifact.manifest);
    rt.block_on(runtime.load(artifact, Arc::new(CapabilityHost::in_memory()), &policy))
        .unwrap_or_else(|e| panic!("{}: load: {e}", runtime.info().name))
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident * 4096)
}
