//! Compile (instrumented), link, instantiate, call: wasmer as a
//! [`WasmEngine`].

use std::sync::Arc;

use morph_core::{MorphError, Result};
use morph_wasm::{
    EngineInstance, GuestContext, GuestExport, Import, Instrumentation, NotInstantiated,
    WasmEngine, WasmType, host_fault,
};
use wasmer::{
    Function, FunctionEnv, FunctionEnvMut, FunctionType, Imports, Instance, InstantiationError,
    LinkError, Memory, Module, RuntimeError, Store, Type, Value,
};

use crate::marshal::{map_error, narrow, widen, with_memory};
use crate::{WASMER_VERSION, WasmerEngine};

/// What a store's function environment carries.
pub struct StoreData {
    pub context: GuestContext,
    pub memory: Option<Memory>,
}

/// A compiled module and the imports to define in each run's store.
pub struct Linked {
    module: Module,
    imports: Arc<[Import]>,
}

fn valtype(t: WasmType) -> Type {
    match t {
        WasmType::I32 => Type::I32,
        WasmType::I64 => Type::I64,
    }
}

impl WasmEngine for WasmerEngine {
    type Compiled = Module;
    type Linked = Linked;
    type Instance = WasmerInstance;

    fn info(&self) -> morph_core::RuntimeInfo {
        crate::info()
    }

    fn instrumentation(&self) -> Instrumentation {
        Instrumentation::Full
    }

    fn max_memory_bytes(&self) -> u64 {
        self.options.memory_reservation
    }

    fn compile(&self, wasm: &[u8]) -> Result<Module> {
        Module::new(&self.engine, wasm)
            .map_err(|e| MorphError::invalid_module(format!("wasmer cannot compile it: {e}")))
    }

    fn cache_fingerprint(&self) -> Option<String> {
        // Artifacts embed the memory layout (bound and guard), which
        // `deterministic_id` does not cover.
        Some(format!(
            "wasmer-{WASMER_VERSION}-{}-{:x}-{:x}",
            self.engine.deterministic_id(),
            self.options.memory_reservation,
            self.options.memory_guard
        ))
    }

    fn serialize(&self, compiled: &Module) -> Result<Vec<u8>> {
        compiled
            .serialize()
            .map(|b| b.to_vec())
            .map_err(|e| MorphError::host_error(format!("wasmer serialize: {e}")))
    }

    unsafe fn deserialize(&self, artifact: &[u8]) -> Result<Module> {
        // SAFETY: forwarded from this function's contract: `artifact` is
        // what `serialize` wrote on an engine with this fingerprint.
        unsafe { Module::deserialize(&self.engine, artifact.to_vec()) }
            .map_err(|e| MorphError::host_error(format!("wasmer deserialize: {e}")))
    }

    fn link(&self, module: Module, imports: Arc<[Import]>) -> Result<Linked> {
        Ok(Linked { module, imports })
    }

    fn instantiate(
        &self,
        linked: &Linked,
        context: GuestContext,
    ) -> std::result::Result<WasmerInstance, Box<NotInstantiated>> {
        let mut store = Store::new(self.engine.clone());
        let env = FunctionEnv::new(
            &mut store,
            StoreData {
                context,
                memory: None,
            },
        );
        let imports = imports(&mut store, &env, &linked.imports);
        let live = Instance::new(&mut store, &linked.module, &imports)
            .map_err(instantiation_error)
            .and_then(|instance| {
                let memory = instance
                    .exports
                    .get_memory("memory")
                    .map_err(|e| MorphError::invalid_module(format!("export `memory`: {e}")))?
                    .clone();
                Ok((instance, memory))
            });
        match live {
            Ok((instance, memory)) => {
                env.as_mut(&mut store).memory = Some(memory.clone());
                Ok(WasmerInstance {
                    store,
                    env,
                    instance,
                    memory,
                })
            }
            Err(e) => {
                let mut context = env.as_mut(&mut store).context.take();
                let e = context.session().take_fatal().unwrap_or(e);
                Err(NotInstantiated::new(e, context))
            }
        }
    }
}

/// Classifies wasmer's refusal to instantiate as [`host_fault`] says: a
/// trap is the guest's (mapped as for a call); a link, resource, CPU
/// feature or store error is the host's.
fn instantiation_error(e: InstantiationError) -> MorphError {
    match e {
        InstantiationError::Start(trap) | InstantiationError::Link(LinkError::Trap(trap)) => {
            map_error(trap, "instantiation")
        }
        other => host_fault("wasmer", "instantiate", &other),
    }
}

/// Host functions for `imports`, each serving the context in `env`.
fn imports(store: &mut Store, env: &FunctionEnv<StoreData>, imports: &[Import]) -> Imports {
    let mut defined = Imports::new();
    for import in imports {
        let ty = FunctionType::new(
            import
                .params
                .iter()
                .copied()
                .map(valtype)
                .collect::<Vec<_>>(),
            import
                .results
                .iter()
                .copied()
                .map(valtype)
                .collect::<Vec<_>>(),
        );
        let served = import.clone();
        let function = Function::new_with_env(
            store,
            env,
            ty,
            move |mut env: FunctionEnvMut<StoreData>,
                  params: &[Value]|
                  -> std::result::Result<Vec<Value>, RuntimeError> {
                let args: Vec<i64> = params.iter().map(widen).collect();
                let out = with_memory(&mut env, &served, |memory, context| {
                    context.serve(&served, memory, &args)
                })?;
                Ok(match (out, served.results.first()) {
                    (Some(value), Some(ty)) => vec![narrow(value, *ty)],
                    _ => Vec::new(),
                })
            },
        );
        defined.define(import.module, &import.name, function);
    }
    defined
}

/// One execution's instance and store.
pub struct WasmerInstance {
    store: Store,
    env: FunctionEnv<StoreData>,
    instance: Instance,
    memory: Memory,
}

impl EngineInstance for WasmerInstance {
    fn call(&mut self, export: GuestExport, args: &[i32]) -> Result<i64> {
        let name = export.name();
        let func = self
            .instance
            .exports
            .get_function(name)
            .map_err(|e| MorphError::invalid_module(format!("export `{name}`: {e}")))?;
        let params: Vec<Value> = args.iter().map(|a| Value::I32(*a)).collect();
        let results = func
            .call(&mut self.store, &params)
            .map_err(|e| map_error(e, name))?;
        Ok(results.first().map_or(0, widen))
    }

    fn memory(&mut self) -> &mut [u8] {
        let view = self.memory.view(&self.store);
        let (ptr, len) = (view.data_ptr(), view.data_size() as usize);
        // SAFETY: the slice borrows `self` mutably, so no export call (the
        // only thing that could grow or touch the memory) can run while it
        // lives; memories are never shared (no threads).
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    fn context(&mut self) -> &mut GuestContext {
        &mut self.env.as_mut(&mut self.store).context
    }

    fn finish(mut self) -> GuestContext {
        self.env.as_mut(&mut self.store).context.take()
    }
}
