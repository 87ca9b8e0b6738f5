//! Per-operation costs on every backend, and Morph's layers against the
//! raw engine APIs doing the same ABI steps by hand.
//!
//! - `compile_cold`: load of the kernels extension (validation, compile).
//!   For `js` and `python`: load of `benches/kernels-js` / `kernels-py`,
//!   which starts the extension's first worker process (the bench binary
//!   re-executed, the engine warmed, the script loaded, `describe()` run);
//!   dropping it kills and reaps the worker, inside the timing as the
//!   other backends' unload is.
//! - `load_cached`: the same load from a warm `ModuleCache` (the engines
//!   that serialize: wasmtime, wasmtime-pulley, wasmer; scripts have no
//!   compiled-module cache).
//! - `instantiate`: a fresh instance of the kernels module, raw engine API
//!   (wasmtime and Pulley with the pooling allocator and epochs; wasm3
//!   includes creating its engine and parsing, which it needs per store).
//!   Not for scripts: there is no raw instance, every execution runs in a
//!   warm worker.
//! - `noop_execute`: Morph `execute` of the minimal fixture's no-op action
//!   (fresh instance, every layer, the thread hop); for scripts the
//!   fixture's JavaScript / Python twin on a warm worker (fresh realm or
//!   module namespace, the script run again, a round trip to the worker).
//! - `host_call_small` / `host_call_64k`: one `data.set` host-call round
//!   trip with a 16-byte / 64 KiB value: an execute making 100 calls minus
//!   one making none, divided by 100 (so the execute itself drops out; the
//!   guest building and serialising the value stays in). For scripts every
//!   call crosses the worker's pipe both ways.
//! - `layers`: raw engine, Morph's engine glue alone, Morph inline (no
//!   hop), Morph on the pool, and the hop alone, on wasmtime and wasmer.
//!
//! Run: `cargo bench -p morph-benches --bench ops`.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
mod common;

use common::raw::{self, CONTEXT};
use common::{
    BACKENDS, SCRIPT_BACKENDS, artifact, backend, fixture, kernels_dir, kernels_dir_for, load,
    minimal_for, pooled, tokio,
};
use morph_core::host::{CallState, ExtensionScope};
use morph_core::{
    Backend, CapabilityHost, Deadline, EntryCode, ExecutionContext, Executor, GuestCall,
    HostPolicy, Session,
};
use morph_host::ModuleCache;
use serde_json::json;

fn slow_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

/// Every backend: wasm, then scripts.
fn all_backends() -> impl Iterator<Item = &'static str> {
    BACKENDS.iter().chain(SCRIPT_BACKENDS).copied()
}

fn loads(c: &mut Criterion) {
    let rt = tokio();
    let kernels = artifact(&kernels_dir());
    let executor = Executor::shared().expect("executor");
    let mut group = slow_group(c, "compile_cold");
    for name in all_backends() {
        let runtime = backend(name, executor.clone(), None);
        let extension = artifact(&kernels_dir_for(name));
        group.bench_function(name, |b| b.iter(|| load(&rt, &runtime, &extension)));
    }
    group.finish();

    let dir = tempfile::tempdir().expect("temp dir");
    let cache = Arc::new(
        ModuleCache::open(&dir.path().join("cache"), &dir.path().join("keys/k")).expect("cache"),
    );
    let mut group = slow_group(c, "load_cached");
    for name in ["wasmtime", "wasmtime-pulley", "wasmer"] {
        let runtime = backend(name, executor.clone(), Some(cache.clone()));
        load(&rt, &runtime, &kernels);
        group.bench_function(name, |b| b.iter(|| load(&rt, &runtime, &kernels)));
    }
    group.finish();
}

fn instantiate(c: &mut Criterion) {
    let wasm = std::fs::read(kernels_dir().join("extension.wasm")).expect("kernels wasm");
    let mut group = c.benchmark_group("instantiate");
    for (name, pulley) in [("wasmtime", false), ("wasmtime-pulley", true)] {
        let engine = raw::wasmtime_engine_with(true, pulley);
        let pre = raw::wasmtime_pre(&engine, &wasm);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut store = raw::wasmtime_store(&engine);
                let instance = pre.instantiate(&mut store).expect("instance");
                (store, instance)
            })
        });
    }
    let wasmer = raw::Wasmer::new(&wasm);
    group.bench_function("wasmer", |b| {
        b.iter(|| {
            let mut store = wasmer::Store::new(wasmer.engine.clone());
            let instance = wasmer.instantiate(&mut store);
            (store, instance)
        })
    });
    let wasmi = raw::Wasmi::new(&wasm);
    group.bench_function("wasmi", |b| b.iter(|| wasmi.instantiate()));
    group.bench_function("wasm3", |b| b.iter(|| raw::wasm3_instantiate(&wasm)));
    group.finish();
}

fn calls(c: &mut Criterion) {
    let rt = tokio();
    let ctx = ExecutionContext::default();
    let mut group = c.benchmark_group("noop_execute");
    for name in all_backends() {
        let ext = load(&rt, &pooled(name), &minimal_for(name));
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(ext.execute("run", json!({}), &ctx))
                    .expect("run")
            })
        });
    }
    group.finish();

    const CALLS: u64 = 100;
    for (group_name, bytes) in [("host_call_small", 16), ("host_call_64k", 64 << 10)] {
        let mut group = c.benchmark_group(group_name);
        group.sample_size(20);
        for name in all_backends() {
            let ext = load(&rt, &pooled(name), &artifact(&kernels_dir_for(name)));
            let timed = |count: u64, iters: u64| {
                let params = json!({"count": count, "bytes": bytes});
                let started = Instant::now();
                for _ in 0..iters {
                    rt.block_on(ext.execute("host_calls", params.clone(), &ctx))
                        .expect("host calls");
                }
                started.elapsed()
            };
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    timed(CALLS, iters).saturating_sub(timed(0, iters)) / CALLS as u32
                })
            });
        }
        group.finish();
    }
}

/// Morph's engine glue alone: `PreparedExtension::run` with a session, no
/// param validation, context building, audit or thread hop.
fn engine_run(backend: impl Backend) -> impl FnMut() -> serde_json::Value {
    let minimal = artifact(&fixture("minimal"));
    let policy = HostPolicy::allow_requested().resolve(&minimal.manifest);
    let code = EntryCode::Wasm {
        origin: "minimal".into(),
        text: true,
        bytes: minimal.entry.as_slice().into(),
    };
    let prepared = backend.prepare(&code, &policy).expect("prepare");
    let host = Arc::new(CapabilityHost::in_memory());
    let scope = Arc::new(ExtensionScope {
        extension_id: minimal.manifest.extension_id.clone(),
        policy: policy.clone(),
        events: Vec::new(),
        unenforced: Vec::new(),
    });
    move || {
        let session = Session::new(
            host.clone(),
            CallState::new(scope.clone(), "run", "r"),
            policy.limits,
            None,
            Deadline::after(Duration::from_secs(30)),
        );
        let call = GuestCall::Execute {
            action: "run",
            params: b"{}",
            context: CONTEXT.as_bytes(),
        };
        let bytes = prepared.run(session, call).result.expect("run");
        morph_core::abi::decode_envelope(&bytes, "execute() result").expect("envelope")
    }
}

fn layers(c: &mut Criterion) {
    let rt = tokio();
    let minimal = artifact(&fixture("minimal"));
    let wasm = wat::parse_file(fixture("minimal").join("extension.wat")).expect("wat");
    let ctx = ExecutionContext::default();
    let mut group = c.benchmark_group("layers");

    let pre = raw::wasmtime_pre(&raw::wasmtime_engine_with(false, false), &wasm);
    group.bench_function("raw_wasmtime", |b| b.iter(|| raw::wasmtime_execute(&pre)));
    let pre = raw::wasmtime_pre(&raw::wasmtime_engine_with(true, false), &wasm);
    group.bench_function("raw_wasmtime_pooling", |b| {
        b.iter(|| raw::wasmtime_execute(&pre))
    });
    let wasmer = raw::Wasmer::new(&wasm);
    group.bench_function("raw_wasmer", |b| b.iter(|| wasmer.execute()));

    let mut run =
        engine_run(morph_runtime_wasmtime::backend(Default::default()).expect("wasmtime"));
    group.bench_function("engine_run_wasmtime", |b| b.iter(&mut run));
    let mut run = engine_run(morph_runtime_wasmer::backend(Default::default()));
    group.bench_function("engine_run_wasmer", |b| b.iter(&mut run));

    for name in ["wasmtime", "wasmer"] {
        let inline = load(&rt, &backend(name, Executor::inline(), None), &minimal);
        group.bench_function(format!("inline_{name}"), |b| {
            b.iter(|| {
                rt.block_on(inline.execute("run", json!({}), &ctx))
                    .expect("run")
            })
        });
        let pooled_ext = load(&rt, &pooled(name), &minimal);
        group.bench_function(format!("execute_{name}"), |b| {
            b.iter(|| {
                rt.block_on(pooled_ext.execute("run", json!({}), &ctx))
                    .expect("run")
            })
        });
    }

    let executor = Executor::shared().expect("executor");
    group.bench_function("hop", |b| {
        b.iter(|| rt.block_on(executor.run(|| Ok(1u8))).expect("hop"))
    });
    group.finish();
}

fn main() {
    common::main_if_worker();
    let mut criterion = Criterion::default().configure_from_args();
    layers(&mut criterion);
    calls(&mut criterion);
    instantiate(&mut criterion);
    loads(&mut criterion);
    criterion.final_summary();
}
