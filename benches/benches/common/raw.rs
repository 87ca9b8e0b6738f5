//! The engines driven by hand, without Morph: the baselines of the layer
//! benchmarks and the instances of the memory measurement. Imports of the
//! Morph ABI are linked to stubs (the kernels module imports
//! `morph.host_call` and `morph.host_response`; nothing calls them here).

use serde_json::Value;

/// The context document Morph would pass, for the hand-written ABI steps.
pub const CONTEXT: &str = r#"{"extension_id":"conformance.minimal","action":"run","request_id":"r","user_id":null,"group_id":null,"space_id":null,"config":{}}"#;

/// Splits a packed `(ptr << 32) | len`.
pub fn unpack(packed: i64) -> (usize, usize) {
    let packed = packed as u64;
    ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize)
}

/// Parses the envelope bytes an `execute` returned.
pub fn envelope(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("envelope")
}

/// A wasmtime engine set up for untrusted code as a careful embedder
/// would (epoch interruption on), with or without the pooling allocator
/// (default pool settings), Cranelift or Pulley.
pub fn wasmtime_engine_with(pooling: bool, pulley: bool) -> wasmtime::Engine {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    if pooling {
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
            wasmtime::PoolingAllocationConfig::new(),
        ));
    }
    if pulley {
        config.target("pulley64").expect("pulley target");
    }
    wasmtime::Engine::new(&config).expect("wasmtime engine")
}

/// A wasmtime `InstancePre` of `wasm` with the ABI imports stubbed.
pub fn wasmtime_pre(engine: &wasmtime::Engine, wasm: &[u8]) -> wasmtime::InstancePre<()> {
    let module = wasmtime::Module::new(engine, wasm).expect("module");
    let mut linker = wasmtime::Linker::<()>::new(engine);
    for name in ["host_call", "host_response"] {
        linker
            .func_wrap("morph", name, |_: i32, _: i32| 0i32)
            .expect("stub");
    }
    linker.instantiate_pre(&module).expect("pre")
}

/// A store whose epoch deadline is far away (the engines here have epoch
/// interruption on).
pub fn wasmtime_store(engine: &wasmtime::Engine) -> wasmtime::Store<()> {
    let mut store = wasmtime::Store::new(engine, ());
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

/// The ABI steps by hand on wasmtime: instantiate, `morph_alloc` ×3,
/// write action/params/context, `execute`, read and parse the envelope.
pub fn wasmtime_execute(pre: &wasmtime::InstancePre<()>) -> Value {
    use wasmtime::Store;
    let mut store = wasmtime_store(pre.module().engine());
    let instance = pre.instantiate(&mut store).expect("instance");
    let memory = instance.get_memory(&mut store, "memory").expect("memory");
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut store, "morph_alloc")
        .expect("alloc");
    let place = |store: &mut Store<()>, data: &[u8]| {
        let ptr = alloc.call(&mut *store, data.len() as i32).expect("alloc");
        memory
            .write(&mut *store, ptr as usize, data)
            .expect("write");
        (ptr, data.len() as i32)
    };
    let (a, al) = place(&mut store, b"run");
    let (p, pl) = place(&mut store, b"{}");
    let (c, cl) = place(&mut store, CONTEXT.as_bytes());
    let execute = instance
        .get_typed_func::<(i32, i32, i32, i32, i32, i32), i64>(&mut store, "execute")
        .expect("execute");
    let (ptr, len) = unpack(
        execute
            .call(&mut store, (a, al, p, pl, c, cl))
            .expect("call"),
    );
    let mut out = vec![0u8; len];
    memory.read(&store, ptr, &mut out).expect("read");
    envelope(&out)
}

/// A wasmer engine, module and store-independent imports builder.
pub struct Wasmer {
    /// The Cranelift engine.
    pub engine: wasmer::Engine,
    /// The compiled module.
    pub module: wasmer::Module,
}

impl Wasmer {
    /// Compiles `wasm` with Cranelift.
    pub fn new(wasm: &[u8]) -> Self {
        let engine: wasmer::Engine = wasmer::sys::Cranelift::default().into();
        let module = wasmer::Module::new(&engine, wasm).expect("module");
        Wasmer { engine, module }
    }

    /// A fresh instance in `store`, ABI imports stubbed.
    pub fn instantiate(&self, store: &mut wasmer::Store) -> wasmer::Instance {
        let stub = wasmer::Function::new_typed(store, |_: i32, _: i32| 0i32);
        let imports = wasmer::imports! {
            "morph" => { "host_call" => stub.clone(), "host_response" => stub },
        };
        wasmer::Instance::new(store, &self.module, &imports).expect("instance")
    }

    /// The ABI steps by hand on wasmer (as [`wasmtime_execute`]).
    pub fn execute(&self) -> Value {
        let mut store = wasmer::Store::new(self.engine.clone());
        let instance = self.instantiate(&mut store);
        let memory = instance
            .exports
            .get_memory("memory")
            .expect("memory")
            .clone();
        let alloc = instance
            .exports
            .get_typed_function::<i32, i32>(&store, "morph_alloc")
            .expect("alloc");
        let place = |store: &mut wasmer::Store, data: &[u8]| {
            let ptr = alloc.call(store, data.len() as i32).expect("alloc");
            memory.view(store).write(ptr as u64, data).expect("write");
            (ptr, data.len() as i32)
        };
        let (a, al) = place(&mut store, b"run");
        let (p, pl) = place(&mut store, b"{}");
        let (c, cl) = place(&mut store, CONTEXT.as_bytes());
        let execute = instance
            .exports
            .get_typed_function::<(i32, i32, i32, i32, i32, i32), i64>(&store, "execute")
            .expect("execute");
        let (ptr, len) = unpack(execute.call(&mut store, a, al, p, pl, c, cl).expect("call"));
        let mut out = vec![0u8; len];
        memory
            .view(&store)
            .read(ptr as u64, &mut out)
            .expect("read");
        envelope(&out)
    }
}

/// A wasmi engine and module.
pub struct Wasmi {
    engine: wasmi::Engine,
    module: wasmi::Module,
}

impl Wasmi {
    /// Parses `wasm`.
    pub fn new(wasm: &[u8]) -> Self {
        let engine = wasmi::Engine::default();
        let module = wasmi::Module::new(&engine, wasm).expect("module");
        Wasmi { engine, module }
    }

    /// A fresh store and instance, ABI imports stubbed.
    pub fn instantiate(&self) -> (wasmi::Store<()>, wasmi::Instance) {
        let mut store = wasmi::Store::new(&self.engine, ());
        let mut linker = wasmi::Linker::<()>::new(&self.engine);
        for name in ["host_call", "host_response"] {
            linker
                .func_wrap("morph", name, |_: i32, _: i32| 0i32)
                .expect("stub");
        }
        let instance = linker
            .instantiate_and_start(&mut store, &self.module)
            .expect("instance");
        (store, instance)
    }
}

/// A fresh wasm3 engine, store and instance of `wasm` (wasm3's are
/// `!Send`, so everything is per call), ABI imports stubbed.
pub fn wasm3_instantiate(wasm: &[u8]) -> (wasm3x::Store<()>, wasm3x::Instance) {
    let engine = wasm3x::Engine::default();
    let module = wasm3x::Module::new(&engine, wasm).expect("module");
    let mut store = wasm3x::Store::new(&engine, ());
    let mut linker = wasm3x::Linker::<()>::new(&engine);
    for name in ["host_call", "host_response"] {
        linker
            .func_wrap("morph", name, |_: i32, _: i32| 0i32)
            .expect("stub");
    }
    let instance = linker
        .instantiate_and_start(&mut store, &module)
        .expect("instance");
    (store, instance)
}
