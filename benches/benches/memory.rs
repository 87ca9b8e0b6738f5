//! Memory per live instance on every backend: the resident-set growth of a
//! process while it holds N fresh instances of the kernels module, before
//! any guest code runs (raw engine APIs; wasmtime and Pulley with the
//! pooling allocator, whose copy-on-write memory images cost nothing until
//! written). Each backend is measured in a process of its own, so one
//! backend's freed heap cannot hide another's growth. Not a criterion
//! benchmark: it prints a table and writes
//! `<target dir>/morph-bench/memory.json` for `morph-bench`.
//! Run: `cargo bench -p morph-benches --bench memory`.

use std::any::Any;
use std::path::PathBuf;

mod common;

use common::{BACKENDS, kernels_dir, raw, rss_bytes};
use serde_json::json;

const INSTANCES: usize = 100;

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--backend") {
        let name = args.get(i + 1).expect("--backend NAME");
        println!("{}", measure(name));
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut results = serde_json::Map::new();
    for name in BACKENDS {
        let out = std::process::Command::new(&exe)
            .args(["--backend", name])
            .output()
            .expect("measuring process");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let delta: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("RSS growth");
        let per_instance = delta as f64 / INSTANCES as f64;
        println!(
            "{name:16} {INSTANCES} instances: RSS +{:.1} MiB, {:.1} KiB each",
            delta as f64 / (1 << 20) as f64,
            per_instance / 1024.0
        );
        results.insert(
            name.to_string(),
            json!({"rss_delta_bytes": delta, "per_instance_bytes": per_instance}),
        );
    }
    let out = target_dir().join("morph-bench");
    std::fs::create_dir_all(&out).expect("output dir");
    let doc = json!({"instances": INSTANCES, "backends": results});
    std::fs::write(out.join("memory.json"), doc.to_string()).expect("write memory.json");
    println!("wrote {}", out.join("memory.json").display());
}
