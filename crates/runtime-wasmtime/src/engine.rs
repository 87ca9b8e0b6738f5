//! Compile, link, instantiate, call: wasmtime as a [`WasmEngine`].

use std::sync::Arc;

use morph_core::{MorphError, Result};
use morph_wasm::{
    EngineInstance, GuestContext, GuestExport, Import, NotInstantiated, WasmEngine, WasmType,
    host_fault,
};
use wasmtime::{
    FuncType, Instance, InstancePre, Linker, Memory, Module, ResourceLimiter, Store,
    UpdateDeadline, Val, ValType,
};

use crate::marshal::{map_error, map_instantiation_error, memory_and_context, narrow, widen};
use crate::{EpochTicker, WasmtimeEngine};

/// What a store carries: the execution's context (which also knows the
/// memory cap).
pub struct StoreData(pub GuestContext);

impl ResourceLimiter for StoreData {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.0
            .memory_growing(desired as u64, maximum.map(|m| m as u64))
            .map_err(wasmtime::Error::new)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.0
            .table_growing(desired as u64, maximum.map(|m| m as u64))
            .map_err(wasmtime::Error::new)
    }
}

/// A compiled module, pre-linked: each run instantiates it afresh.
pub struct Linked {
    pre: InstancePre<StoreData>,
    _ticker: Arc<EpochTicker>,
}

fn valtype(t: WasmType) -> ValType {
    match t {
        WasmType::I32 => ValType::I32,
        WasmType::I64 => ValType::I64,
    }
}

impl WasmEngine for WasmtimeEngine {
    type Compiled = Module;
    type Linked = Linked;
    type Instance = WasmtimeInstance;

    fn info(&self) -> morph_core::RuntimeInfo {
        self.runtime_info()
    }

    fn max_memory_bytes(&self) -> u64 {
        self.options.memory_reservation
    }

    fn compile(&self, wasm: &[u8]) -> Result<Module> {
        Module::new(&self.engine, wasm)
            .map_err(|e| MorphError::invalid_module(format!("wasmtime cannot compile it: {e}")))
    }

    fn cache_fingerprint(&self) -> Option<String> {
        Some(self.fingerprint())
    }

    fn serialize(&self, compiled: &Module) -> Result<Vec<u8>> {
        compiled
            .serialize()
            .map_err(|e| MorphError::host_error(format!("wasmtime serialize: {e}")))
    }

    unsafe fn deserialize(&self, artifact: &[u8]) -> Result<Module> {
        // SAFETY: forwarded from this function's contract: `artifact` is
        // what `serialize` wrote on an engine with this fingerprint.
        // wasmtime still checks its version and configuration itself.
        unsafe { Module::deserialize(&self.engine, artifact) }
            .map_err(|e| MorphError::host_error(format!("wasmtime deserialize: {e}")))
    }

    fn link(&self, compiled: Module, imports: Arc<[Import]>) -> Result<Linked> {
        let mut linker = Linker::<StoreData>::new(&self.engine);
        for import in imports.iter() {
            let ty = FuncType::new(
                &self.engine,
                import.params.iter().copied().map(valtype),
                import.results.iter().copied().map(valtype),
            );
            let served = import.clone();
            linker
                .func_new(
                    import.module,
                    &import.name,
                    ty,
                    move |mut caller, params, results| {
                        let args: Vec<i64> = params.iter().map(widen).collect();
                        let (memory, context) = memory_and_context(&mut caller, &served.name)?;
                        let out = context
                            .serve(&served, memory, &args)
                            .map_err(wasmtime::Error::new)?;
                        if let (Some(value), Some(slot), Some(ty)) =
                            (out, results.first_mut(), served.results.first())
                        {
                            *slot = narrow(value, *ty);
                        }
                        Ok(())
                    },
                )
                .map_err(|e| {
                    MorphError::host_error(format!(
                        "linking {}.{}: {e}",
                        import.module, import.name
                    ))
                })?;
        }
        let pre = linker
            .instantiate_pre(&compiled)
            .map_err(|e| host_fault("wasmtime", "link", &e))?;
        Ok(Linked {
            pre,
            _ticker: self.ticker.clone(),
        })
    }

    fn instantiate(
        &self,
        linked: &Linked,
        context: GuestContext,
    ) -> std::result::Result<WasmtimeInstance, Box<NotInstantiated>> {
        let mut context = context;
        let fuel = context.session().fuel();
        let mut store = Store::new(&self.engine, StoreData(context));
        store.limiter(|data| data as &mut dyn ResourceLimiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let session = ctx.data_mut().0.session();
            if session.deadline().expired() {
                let e = session.timeout_error();
                return Err(wasmtime::Error::new(session.fail(e)));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        if let Some(fuel) = fuel
            && let Err(e) = store.set_fuel(fuel)
        {
            let e = MorphError::unsupported(format!("fuel: {e}"));
            return Err(NotInstantiated::new(e, store.into_data().0));
        }
        let instance = match linked.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => {
                let mapped = map_instantiation_error(e, store.data_mut().0.session());
                context = store.into_data().0;
                return Err(NotInstantiated::new(mapped, context));
            }
        };
        match instance.get_memory(&mut store, "memory") {
            Some(memory) => Ok(WasmtimeInstance {
                store,
                instance,
                memory,
            }),
            None => Err(NotInstantiated::new(
                MorphError::invalid_module("export `memory` missing after instantiation"),
                store.into_data().0,
            )),
        }
    }
}

/// One execution's instance and store.
pub struct WasmtimeInstance {
    store: Store<StoreData>,
    instance: Instance,
    memory: Memory,
}

impl EngineInstance for WasmtimeInstance {
    fn call(&mut self, export: GuestExport, args: &[i32]) -> Result<i64> {
        let name = export.name();
        let func = self
            .instance
            .get_func(&mut self.store, name)
            .ok_or_else(|| MorphError::invalid_module(format!("export `{name}` missing")))?;
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results = [Val::I64(0)];
        let results = &mut results[..usize::from(export.result().is_some())];
        func.call(&mut self.store, &params, results)
            .map_err(|e| map_error(e, name, self.store.data_mut().0.session()))?;
        Ok(results.first().map_or(0, widen))
    }

    fn memory(&mut self) -> &mut [u8] {
        self.memory.data_mut(&mut self.store)
    }

    fn context(&mut self) -> &mut GuestContext {
        &mut self.store.data_mut().0
    }

    fn finish(mut self) -> GuestContext {
        let initial = self.store.data_mut().0.session().fuel();
        if let (Some(initial), Ok(left)) = (initial, self.store.get_fuel()) {
            self.store
                .data_mut()
                .0
                .session()
                .note_fuel(initial.saturating_sub(left));
        }
        self.store.into_data().0
    }
}
