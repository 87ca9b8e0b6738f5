//! Per-call cost of `execute` on every backend, and Morph against the raw
//! wasmtime API doing the same ABI steps by hand (fresh instance from an
//! `InstancePre`, place action/params/context through `morph_alloc`, call
//! `execute`, read and parse the envelope). Also the execution-thread hop
//! alone. Run: `cargo bench -p morph-benches --bench execute`.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ExecutionContext, Executor, ExtensionArtifact,
    HostPolicy, LoadedExtension,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> std::path::PathBuf {
    morph_conformance::Suite::bundled()
        .expect("suite")
        .root
        .join("fixtures")
        .join(name)
}

fn load(
    rt: &tokio::runtime::Runtime,
    runtime: Arc<dyn BaseMorphRuntime>,
) -> Box<dyn LoadedExtension> {
    let artifact = ExtensionArtifact::from_dir(&fixture("minimal")).expect("fixture");
    let policy = HostPolicy::grant_requested(&artifact.manifest);
    rt.block_on(runtime.load(&artifact, Arc::new(CapabilityHost::in_memory()), &policy))
        .expect("load")
}

fn backends() -> Vec<(&'static str, Arc<dyn BaseMorphRuntime>)> {
    use morph_runtime_wasmtime::{WasmtimeBackend, WasmtimeOptions};
    let wasmtime = |o| -> Arc<dyn BaseMorphRuntime> {
        Arc::new(EngineRuntime::new(WasmtimeBackend::new(o).expect("wasmtime")).expect("runtime"))
    };
    vec![
        ("wasmtime", wasmtime(WasmtimeOptions::default())),
        ("wasmtime-pulley", wasmtime(WasmtimeOptions::pulley())),
        (
            "wasmer",
            Arc::new(
                EngineRuntime::new(morph_runtime_wasmer::WasmerBackend::new(Default::default()))
                    .expect("wasmer"),
            ),
        ),
        (
            "wasmi",
            Arc::new(
                EngineRuntime::new(morph_runtime_wasmi::WasmiBackend::new(Default::default()))
                    .expect("wasmi"),
            ),
        ),
    ]
}

fn noop_execute(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let mut group = c.benchmark_group("noop_execute");
    for (name, runtime) in backends() {
        let ext = load(&rt, runtime);
        let ctx = ExecutionContext::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(ext.execute("run", json!({}), &ctx))
                    .expect("run")
            })
        });
    }
    group.finish();
}

/// The same ABI steps as Morph, by hand on wasmtime.
fn raw_wasmtime(c: &mut Criterion) {
    use wasmtime::{Engine, Linker, Module, Store};
    let engine = Engine::default();
    let bytes = wat::parse_file(fixture("minimal").join("extension.wat")).expect("wat");
    let module = Module::new(&engine, bytes).expect("module");
    let pre = Linker::<()>::new(&engine)
        .instantiate_pre(&module)
        .expect("pre");
    let context = json!({"extension_id": "conformance.minimal", "action": "run", "request_id": "r",
        "user_id": null, "group_id": null, "space_id": null, "config": {}})
    .to_string();
    c.bench_function("raw_wasmtime_instance_pre", |b| {
        b.iter(|| {
            let mut store = Store::new(&engine, ());
            let instance = pre.instantiate(&mut store).expect("instance");
            let memory = instance.get_memory(&mut store, "memory").expect("memory");
            let alloc = instance
                .get_typed_func::<i32, i32>(&mut store, "morph_alloc")
                .expect("alloc");
            let place = |store: &mut Store<()>, data: &[u8]| {
                let ptr = alloc
                    .call(&mut *store, data.len() as i32)
                    .expect("alloc call");
                memory
                    .write(&mut *store, ptr as usize, data)
                    .expect("write");
                (ptr, data.len() as i32)
            };
            let (a, al) = place(&mut store, b"run");
            let (p, pl) = place(&mut store, b"{}");
            let (x, xl) = place(&mut store, context.as_bytes());
            let execute = instance
                .get_typed_func::<(i32, i32, i32, i32, i32, i32), i64>(&mut store, "execute")
                .expect("execute");
            let packed = execute
                .call(&mut store, (a, al, p, pl, x, xl))
                .expect("call") as u64;
            let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
            let mut out = vec![0u8; len];
            memory.read(&store, ptr, &mut out).expect("read");
            let v: Value = serde_json::from_slice(&out).expect("envelope");
            v
        })
    });
}

fn thread_hop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    let executor = Executor::shared().expect("executor");
    c.bench_function("execution_thread_hop", |b| {
        b.iter(|| rt.block_on(executor.run(|| Ok(1u8))).expect("hop"))
    });
}

criterion_group!(benches, noop_execute, raw_wasmtime, thread_hop);
criterion_main!(benches);
