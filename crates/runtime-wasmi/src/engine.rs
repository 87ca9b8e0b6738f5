//! Compile, link, instantiate, call (in fuel slices): wasmi as a
//! [`WasmEngine`].

use std::sync::Arc;

use morph_core::{MorphError, Result};
use morph_wasm::{
    EngineInstance, GuestContext, GuestExport, Import, Instrumentation, NotInstantiated,
    WasmEngine, WasmType,
};
use wasmi::{
    Caller, Func, FuncType, Instance, Linker, Memory, Module, ResourceLimiter, ResumableCall,
    Store, Val, ValType,
};
use wasmi_core::LimiterError;

use crate::WasmiEngine;
use crate::marshal::{fail, map_error, map_instantiation_error, memory_and_context, narrow, widen};

/// What a store carries: the context and fuel accounting.
pub struct StoreData {
    pub context: GuestContext,
    slice: u64,
    /// Fuel handed out so far (all slices, including the current one).
    granted: u64,
}

impl StoreData {
    /// The fuel to add after a slice ran out (a slice, or `shortfall` if
    /// more: what wasmi needs beyond the fuel left to make progress), or
    /// why there is none: the deadline passed, or the host's fuel budget is
    /// spent.
    fn next_slice(&mut self, shortfall: u64) -> Result<u64> {
        let session = self.context.session();
        if session.deadline().expired() {
            let e = session.timeout_error();
            return Err(session.fail(e));
        }
        let slice = self.slice.max(shortfall);
        let slice = match session.fuel() {
            Some(budget) if self.granted >= budget || budget - self.granted < shortfall => {
                let e = MorphError::fuel_exhausted(format!(
                    "the execution used its whole fuel budget of {budget}"
                ));
                return Err(session.fail(e));
            }
            Some(budget) => slice.min(budget - self.granted),
            None => slice,
        };
        self.granted += slice;
        Ok(slice)
    }
}

impl ResourceLimiter for StoreData {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> std::result::Result<bool, LimiterError> {
        self.context
            .memory_growing(desired as u64, maximum.map(|m| m as u64))
            .map_err(|_| LimiterError::ResourceLimiterDeniedAllocation)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> std::result::Result<bool, LimiterError> {
        self.context
            .table_growing(desired as u64, maximum.map(|m| m as u64))
            .map_err(|_| LimiterError::ResourceLimiterDeniedAllocation)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        1
    }
}

/// A compiled module with its linker: each run instantiates it afresh.
pub struct Linked {
    module: Module,
    linker: Linker<StoreData>,
}

fn valtype(t: WasmType) -> ValType {
    match t {
        WasmType::I32 => ValType::I32,
        WasmType::I64 => ValType::I64,
    }
}

impl WasmEngine for WasmiEngine {
    type Compiled = Module;
    type Linked = Linked;
    type Instance = WasmiInstance;

    fn info(&self) -> morph_core::RuntimeInfo {
        crate::info()
    }

    fn instrumentation(&self) -> Instrumentation {
        Instrumentation::Resources
    }

    fn compile(&self, wasm: &[u8]) -> Result<Module> {
        Module::new(&self.engine, wasm)
            .map_err(|e| MorphError::invalid_module(format!("wasmi cannot compile it: {e}")))
    }

    fn link(&self, module: Module, imports: Arc<[Import]>) -> Result<Linked> {
        let mut linker = Linker::<StoreData>::new(&self.engine);
        for import in imports.iter() {
            let ty = FuncType::new(
                import.params.iter().copied().map(valtype),
                import.results.iter().copied().map(valtype),
            );
            let served = import.clone();
            linker
                .func_new(
                    import.module,
                    &import.name,
                    ty,
                    move |mut caller: Caller<'_, StoreData>,
                          params: &[Val],
                          results: &mut [Val]| {
                        let args: Vec<i64> = params.iter().map(widen).collect();
                        let (memory, data) = memory_and_context(&mut caller, &served.name)?;
                        let out = data
                            .context
                            .serve(&served, memory, &args)
                            .map_err(|e| fail(&mut data.context, e))?;
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
        Ok(Linked { module, linker })
    }

    fn instantiate(
        &self,
        linked: &Linked,
        context: GuestContext,
    ) -> std::result::Result<WasmiInstance, Box<NotInstantiated>> {
        let mut data = StoreData {
            context,
            slice: self.options.fuel_slice.max(1),
            granted: 0,
        };
        let first = match data.next_slice(0) {
            Ok(fuel) => fuel,
            Err(e) => return Err(NotInstantiated::new(e, data.context)),
        };
        let mut store = Store::new(&self.engine, data);
        store.limiter(|data| data as &mut dyn ResourceLimiter);
        let live = store
            .set_fuel(first)
            .map_err(|e| MorphError::host_error(format!("wasmi fuel: {e}")))
            .and_then(|()| {
                linked
                    .linker
                    .instantiate_and_start(&mut store, &linked.module)
                    .map_err(|e| map_instantiation_error(&e))
            })
            .and_then(|instance| {
                let memory = instance.get_memory(&store, "memory").ok_or_else(|| {
                    MorphError::invalid_module("export `memory` missing after instantiation")
                })?;
                Ok((instance, memory))
            });
        match live {
            Ok((instance, memory)) => Ok(WasmiInstance {
                store,
                instance,
                memory,
            }),
            Err(e) => {
                let mut context = store.into_data().context;
                let e = context.session().take_fatal().unwrap_or(e);
                Err(NotInstantiated::new(e, context))
            }
        }
    }
}

/// One execution's instance and store.
pub struct WasmiInstance {
    store: Store<StoreData>,
    instance: Instance,
    memory: Memory,
}

impl WasmiInstance {
    fn func(&self, name: &str) -> Result<Func> {
        self.instance
            .get_func(&self.store, name)
            .ok_or_else(|| MorphError::invalid_module(format!("export `{name}` missing")))
    }
}

impl EngineInstance for WasmiInstance {
    /// Calls the export, refuelling slice by slice until it finishes, the
    /// deadline passes or the fuel budget is spent.
    fn call(&mut self, export: GuestExport, args: &[i32]) -> Result<i64> {
        let name = export.name();
        let func = self.func(name)?;
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results = [Val::I64(0)];
        let results = &mut results[..usize::from(export.result().is_some())];
        let store = &mut self.store;
        let mut call = func
            .call_resumable(&mut *store, &params, results)
            .map_err(|e| map_error(&e, name))?;
        loop {
            match call {
                ResumableCall::Finished => break,
                ResumableCall::HostTrap(trap) => return Err(map_error(trap.host_error(), name)),
                ResumableCall::OutOfFuel(paused) => {
                    // wasmi charges a whole basic block (or a bulk copy) up
                    // front and reports all of it as required; what is left
                    // counts towards it.
                    let left = store.get_fuel().unwrap_or(0);
                    let shortfall = paused.required_fuel().saturating_sub(left);
                    let grant = store.data_mut().next_slice(shortfall)?;
                    store
                        .set_fuel(left.saturating_add(grant))
                        .map_err(|e| MorphError::host_error(format!("wasmi fuel: {e}")))?;
                    call = paused
                        .resume(&mut *store, results)
                        .map_err(|e| map_error(&e, name))?;
                }
            }
        }
        Ok(results.first().map_or(0, widen))
    }

    fn memory(&mut self) -> &mut [u8] {
        self.memory.data_mut(&mut self.store)
    }

    fn context(&mut self) -> &mut GuestContext {
        &mut self.store.data_mut().context
    }

    fn finish(mut self) -> GuestContext {
        if self.store.data_mut().context.session().fuel().is_some()
            && let Ok(left) = self.store.get_fuel()
        {
            let used = self.store.data().granted.saturating_sub(left);
            self.store.data_mut().context.session().note_fuel(used);
        }
        self.store.into_data().context
    }
}
