//! Memory per live instance on every backend: the resident-set growth of a
//! process while it holds N fresh instances of the kernels module, before
//! any guest code runs (raw engine APIs; wasmtime and Pulley with the
//! pooling allocator, whose copy-on-write memory images cost nothing until
//! written). Each backend is measured in a process of its own, so one
//! backend's freed heap cannot hide another's growth. Not a criterion
//! benchmark: it prints a table and writes
//! `<target dir>/morph-bench/memory.json` for `morph-bench`.
//!
//! Scripts (`js`, `python`) have no raw instance: a live extension is a
//! loaded Morph extension with its one warm worker process (started, engine
//! warm, script loaded, `describe()` run). Its cost is the host's RSS
//! growth plus the worker's own resident set (`VmRSS` of
//! `/proc/<pid>/status`); the workers' proportional set size (`Pss` of
//! `/proc/<pid>/smaps_rollup`, which splits pages shared between processes,
//! such as the binary's code and libpython, among them) is recorded too.
//!
//! Run: `cargo bench -p morph-benches --bench memory`.
#![forbid(unsafe_code)]

use std::any::Any;
use std::path::PathBuf;

mod common;

use common::{
    BACKENDS, SCRIPT_BACKENDS, artifact, child_pids, kernels_dir, kernels_dir_for, load, pooled,
    proc_kib_field, raw, rss_bytes, tokio,
};
use serde_json::{Value, json};

/// Live wasm instances per measurement.
const INSTANCES: usize = 100;

/// Live script extensions (each with its worker process) per measurement.
const SCRIPT_INSTANCES: usize = 10;

/// `<target dir>`: `CARGO_TARGET_DIR`, else three levels above this binary
/// (`<target>/release/deps/memory-…`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Holds `n` instances made by `make` and returns the RSS growth.
fn rss_delta(n: usize, mut make: impl FnMut() -> Box<dyn Any>) -> u64 {
    let before = rss_bytes().unwrap_or(0);
    let live: Vec<Box<dyn Any>> = (0..n).map(|_| make()).collect();
    let after = rss_bytes().unwrap_or(0);
    drop(live);
    after.saturating_sub(before)
}

/// Measures script backend `name` in this process: loads one extension
/// (one-time costs), then [`SCRIPT_INSTANCES`] more, and adds the host's
/// RSS growth to the resident sets of their workers.
fn measure_script(name: &str) -> Value {
    let rt = tokio();
    let runtime = pooled(name);
    let kernels = artifact(&kernels_dir_for(name));
    let first = load(&rt, &runtime, &kernels);
    let earlier = child_pids();
    let before = rss_bytes().unwrap_or(0);
    let live: Vec<_> = (0..SCRIPT_INSTANCES)
        .map(|_| load(&rt, &runtime, &kernels))
        .collect();
    let host = rss_bytes().unwrap_or(0).saturating_sub(before);
    let workers: Vec<u32> = child_pids()
        .into_iter()
        .filter(|pid| !earlier.contains(pid))
        .collect();
    assert_eq!(
        workers.len(),
        SCRIPT_INSTANCES,
        "{name}: expected one worker process per loaded extension"
    );
    let sum = |file: &str, field: &str| -> Option<u64> {
        workers
            .iter()
            .map(|pid| proc_kib_field(*pid, file, field))
            .sum()
    };
    let worker_rss = sum("status", "VmRSS").expect("VmRSS of a worker");
    let worker_pss = sum("smaps_rollup", "Pss");
    drop(live);
    drop(first);
    json!({
        "instances": SCRIPT_INSTANCES,
        "host_rss_delta_bytes": host,
        "worker_rss_bytes": worker_rss,
        "worker_pss_bytes": worker_pss,
        "rss_delta_bytes": host + worker_rss,
    })
}

/// Measures backend `name` in this process: the RSS growth in bytes.
fn measure(name: &str) -> u64 {
    let wasm = std::fs::read(kernels_dir().join("extension.wasm")).expect("kernels wasm");
    match name {
        "wasmtime" | "wasmtime-pulley" => {
            let engine = raw::wasmtime_engine_with(true, name == "wasmtime-pulley");
            let pre = raw::wasmtime_pre(&engine, &wasm);
            rss_delta(INSTANCES, || {
                let mut store = raw::wasmtime_store(&engine);
                let instance = pre.instantiate(&mut store).expect("instance");
                Box::new((store, instance))
            })
        }
        "wasmer" => {
            let wasmer = raw::Wasmer::new(&wasm);
            rss_delta(INSTANCES, || {
                let mut store = wasmer::Store::new(wasmer.engine.clone());
                let instance = wasmer.instantiate(&mut store);
                Box::new((store, instance))
            })
        }
        "wasmi" => {
            let wasmi = raw::Wasmi::new(&wasm);
            rss_delta(INSTANCES, || Box::new(wasmi.instantiate()))
        }
        "wasm3" => rss_delta(INSTANCES, || Box::new(raw::wasm3_instantiate(&wasm))),
        other => panic!("unknown backend {other}"),
    }
}

/// Measures backend `name` in this process, as the JSON of its line of
/// `memory.json` (without `per_instance_bytes`).
fn measure_any(name: &str) -> Value {
    if SCRIPT_BACKENDS.contains(&name) {
        measure_script(name)
    } else {
        json!({"instances": INSTANCES, "rss_delta_bytes": measure(name)})
    }
}

fn main() {
    common::main_if_worker();
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--backend") {
        let name = args.get(i + 1).expect("--backend NAME");
        println!("{}", measure_any(name));
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut results = serde_json::Map::new();
    for name in BACKENDS.iter().chain(SCRIPT_BACKENDS) {
        let out = std::process::Command::new(&exe)
            .args(["--backend", name])
            .output()
            .expect("measuring process");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut entry: Value =
            serde_json::from_slice(&out.stdout).expect("the measuring process's JSON line");
        let delta = entry["rss_delta_bytes"].as_u64().expect("RSS growth");
        let instances = entry["instances"].as_u64().expect("instances");
        let per_instance = delta as f64 / instances as f64;
        println!(
            "{name:16} {instances} instances: RSS +{:.1} MiB, {:.1} KiB each",
            delta as f64 / (1 << 20) as f64,
            per_instance / 1024.0
        );
        entry["per_instance_bytes"] = json!(per_instance);
        results.insert(name.to_string(), entry);
    }
    let out = target_dir().join("morph-bench");
    std::fs::create_dir_all(&out).expect("output dir");
    let doc = json!({"instances": INSTANCES, "backends": results});
    std::fs::write(out.join("memory.json"), doc.to_string()).expect("write memory.json");
    println!("wrote {}", out.join("memory.json").display());
}
