//! Shared pieces of Morph's benchmarks (each bench target includes this
//! module): the backends under test, the fixtures, and the raw engine code
//! the baselines and the memory measurement use. Kept out of a library so
//! the report command (`src/bin/morph-bench`) does not link the engines.
//!
//! JavaScript and Python run in worker processes, and a worker is the bench
//! binary itself re-executed: every bench's `main` calls
//! [`main_if_worker`] first.
#![allow(dead_code)]

pub mod raw;

use std::path::PathBuf;
use std::sync::Arc;

use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, Executor, ExtensionArtifact, HostPolicy,
    LoadedExtension, RuntimeKind, ScriptEngine,
};
use morph_host::ModuleCache;
use morph_worker::WorkerOptions;

/// The wasm backends every benchmark compares, in report order.
pub const BACKENDS: &[&str] = &["wasmtime", "wasmtime-pulley", "wasmer", "wasmi", "wasm3"];

/// The script backends (each extension in a warm worker process), in
/// report order after [`BACKENDS`].
pub const SCRIPT_BACKENDS: &[&str] = &["js", "python"];

/// Serves as a JavaScript or Python worker and exits when this process was
/// started as one (the worker backends re-execute the bench binary);
/// returns at once otherwise. Call first thing in `main`.
pub fn main_if_worker() {
    let engines: [Arc<dyn ScriptEngine>; 2] = [
        Arc::new(morph_runtime_js::JsEngine),
        Arc::new(morph_runtime_python::PythonEngine),
    ];
    morph_worker::main_if_worker(&engines);
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The benchmark kernels extension (`benches/kernels-wasm`).
pub fn kernels_dir() -> PathBuf {
    repo().join("benches/kernels-wasm")
}

/// The kernels extension a backend runs: `benches/kernels-js` for `js`,
/// `benches/kernels-py` for `python`, the wasm one otherwise.
pub fn kernels_dir_for(backend: &str) -> PathBuf {
    match backend {
        "js" => repo().join("benches/kernels-js"),
        "python" => repo().join("benches/kernels-py"),
        _ => kernels_dir(),
    }
}

/// The minimal conformance fixture for `backend`: its wasm original, or its
/// JavaScript / Python twin (`extension.js`, `extension.py` beside it).
pub fn minimal_for(backend: &str) -> ExtensionArtifact {
    let dir = fixture("minimal");
    let kind = match backend {
        "js" => RuntimeKind::Js,
        "python" => RuntimeKind::Python,
        _ => return artifact(&dir),
    };
    let mut manifest = ExtensionArtifact::from_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .manifest;
    manifest.runtime = kind;
    manifest.entry = None;
    let entry_path = dir.join(manifest.entry_file());
    let entry = std::fs::read(&entry_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", entry_path.display()));
    let mut artifact = ExtensionArtifact::from_parts(manifest, entry);
    artifact.dir = Some(dir);
    artifact
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
    use morph_runtime_wasmer::WasmerOptions;
    use morph_runtime_wasmtime::WasmtimeOptions;
    let wasmtime = |options| {
        let mut backend = morph_runtime_wasmtime::backend(options).expect("wasmtime");
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
            let mut backend = morph_runtime_wasmer::backend(WasmerOptions::default());
            if let Some(cache) = cache {
                backend = backend.with_cache(cache);
            }
            Arc::new(EngineRuntime::with_executor(backend, executor))
        }
        "wasmi" => Arc::new(EngineRuntime::with_executor(
            morph_runtime_wasmi::backend(Default::default()),
            executor,
        )),
        "wasm3" => Arc::new(EngineRuntime::with_executor(
            morph_runtime_wasm3::backend(Default::default()),
            executor,
        )),
        "js" => Arc::new(EngineRuntime::with_executor(
            morph_runtime_js::worker_backend(worker_options()),
            executor,
        )),
        "python" => Arc::new(EngineRuntime::with_executor(
            morph_runtime_python::worker_backend(worker_options()),
            executor,
        )),
        other => panic!("unknown backend {other}"),
    }
}

/// Worker processes running this bench binary (see [`main_if_worker`]).
fn worker_options() -> WorkerOptions {
    WorkerOptions::new().expect("worker options")
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
    let policy = HostPolicy::allow_requested();
    rt.block_on(runtime.load(artifact, Arc::new(CapabilityHost::in_memory()), &policy))
        .unwrap_or_else(|e| panic!("{}: load: {e}", runtime.info().name))
}

/// Resident set size of this process in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident * 4096)
}

/// The ids of this process's live child processes (Linux: every
/// `/proc/<pid>/stat` whose parent id is ours). In the benches these are
/// the script workers.
pub fn child_pids() -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parent_of(&stat))
                == Some(me)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The parent id in the text of `/proc/<pid>/stat`: the second field after
/// the command name (which is in parentheses and may hold spaces).
fn parent_of(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// A `<field>:   <n> kB` line of a `/proc/<pid>` file, in bytes.
pub fn proc_kib_field(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib * 1024)
    })
}
