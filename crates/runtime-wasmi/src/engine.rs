//! Compile, instantiate, call (in fuel slices), limits.

use morph_core::wasm::{
    GuestExport, GuestInstance, HostImport, IMPORT_MODULE, WASI_MODULE, WasiImport, WasmModule,
    WasmType, drive, wasi,
};
use morph_core::{GuestCall, GuestRun, MorphError, PreparedExtension, Result, Session};
use wasmi::{
    Caller, Engine, FuncType, Instance, Linker, Memory, Module, ResourceLimiter, Store, TypedFunc,
    TypedResumableCall, Val, ValType, WasmParams, WasmResults,
};
use wasmi_core::LimiterError;

use crate::WasmiOptions;
use crate::marshal::{fail, map_error, memory_and_state};

/// What a store carries: the session and fuel accounting.
pub struct StoreState {
    pub session: Session,
    slice: u64,
    /// Fuel handed out so far (all slices, including the current one).
    granted: u64,
}

impl StoreState {
    /// The next slice after one ran out, or why there is none: the deadline
    /// passed, or the host's fuel budget is spent.
    fn next_slice(&mut self) -> Result<u64> {
        if self.session.deadline().expired() {
            let e = self.session.timeout_error();
            return Err(self.session.fail(e));
        }
        let slice = match self.session.fuel() {
            Some(budget) if self.granted >= budget => {
                let e = MorphError::fuel_exhausted(format!(
                    "the execution used its whole fuel budget of {budget}"
                ));
                return Err(self.session.fail(e));
            }
            Some(budget) => self.slice.min(budget - self.granted),
            None => self.slice,
        };
        self.granted += slice;
        Ok(slice)
    }
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> std::result::Result<bool, LimiterError> {
        self.session
            .memory_growing(desired as u64, maximum.map(|m| m as u64))
            .map_err(|_| LimiterError::ResourceLimiterDeniedAllocation)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> std::result::Result<bool, LimiterError> {
        self.session
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
pub struct Prepared {
    engine: Engine,
    module: Module,
    linker: Linker<StoreState>,
    validated: WasmModule,
    slice: u64,
}

impl Prepared {
    pub fn new(engine: &Engine, options: WasmiOptions, module: &WasmModule) -> Result<Self> {
        let compiled = Module::new(engine, module.bytes())
            .map_err(|e| MorphError::invalid_module(format!("wasmi cannot compile it: {e}")))?;
        let mut linker = Linker::<StoreState>::new(engine);
        for import in module.imports() {
            link(&mut linker, *import)
                .map_err(|e| MorphError::host_error(format!("linking {}: {e}", import.name())))?;
        }
        for import in module.wasi_imports() {
            link_wasi(&mut linker, import).map_err(|e| {
                MorphError::host_error(format!("linking WASI {}: {e}", import.name))
            })?;
        }
        Ok(Prepared {
            engine: engine.clone(),
            module: compiled,
            linker,
            validated: module.clone(),
            slice: options.fuel_slice.max(1),
        })
    }

    fn instantiate(&self, session: Session) -> (Store<StoreState>, Result<Live>) {
        let mut state = StoreState {
            session,
            slice: self.slice,
            granted: 0,
        };
        let first = state.next_slice();
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state as &mut dyn ResourceLimiter);
        let live = first.and_then(|fuel| {
            store
                .set_fuel(fuel)
                .map_err(|e| MorphError::host_error(format!("wasmi fuel: {e}")))?;
            let instance = self
                .linker
                .instantiate_and_start(&mut store, &self.module)
                .map_err(|e| {
                    let mapped = map_error(&e, "instantiate");
                    store.data_mut().session.take_fatal().unwrap_or(mapped)
                })?;
            let memory = instance.get_memory(&store, "memory").ok_or_else(|| {
                MorphError::invalid_module("export `memory` missing after instantiation")
            })?;
            Ok(Live { instance, memory })
        });
        (store, live)
    }
}

struct Live {
    instance: Instance,
    memory: Memory,
}

struct WasmiInstance {
    store: Store<StoreState>,
    live: Live,
}

impl WasmiInstance {
    fn typed<P: WasmParams, R: WasmResults>(&self, name: &str) -> Result<TypedFunc<P, R>> {
        self.live
            .instance
            .get_typed_func::<P, R>(&self.store, name)
            .map_err(|e| MorphError::invalid_module(format!("export `{name}`: {e}")))
    }

    /// Calls `func`, refuelling slice by slice until it finishes, the
    /// deadline passes or the fuel budget is spent.
    fn call_sliced<P: WasmParams, R: WasmResults>(&mut self, name: &str, params: P) -> Result<R> {
        let func = self.typed::<P, R>(name)?;
        let store = &mut self.store;
        let mut call = func
            .call_resumable(&mut *store, params)
            .map_err(|e| map_error(&e, name))?;
        loop {
            match call {
                TypedResumableCall::Finished(results) => return Ok(results),
                TypedResumableCall::HostTrap(trap) => {
                    return Err(map_error(trap.host_error(), name));
                }
                TypedResumableCall::OutOfFuel(paused) => {
                    let fuel = store.data_mut().next_slice()?;
                    store
                        .set_fuel(fuel)
                        .map_err(|e| MorphError::host_error(format!("wasmi fuel: {e}")))?;
                    call = paused
                        .resume(&mut *store)
                        .map_err(|e| map_error(&e, name))?;
                }
            }
        }
    }
}

impl GuestInstance for WasmiInstance {
    fn call(&mut self, export: GuestExport, args: &[i32]) -> Result<i64> {
        let name = export.name();
        match (export, args) {
            (GuestExport::Initialize, []) => self.call_sliced::<(), ()>(name, ()).map(|()| 0),
            (GuestExport::AbiVersion, []) => self.call_sliced::<(), i32>(name, ()).map(i64::from),
            (GuestExport::Alloc, [size]) => self
                .call_sliced::<i32, i32>(name, *size)
                .map(|p| i64::from(p as u32)),
            (GuestExport::Describe, []) => self.call_sliced::<(), i64>(name, ()),
            (GuestExport::Execute, [a, b, c, d, e, f]) => self
                .call_sliced::<(i32, i32, i32, i32, i32, i32), i64>(name, (*a, *b, *c, *d, *e, *f)),
            _ => Err(MorphError::host_error(format!(
                "`{name}` called with {} arguments",
                args.len()
            ))),
        }
    }

    fn memory(&mut self) -> &mut [u8] {
        self.live.memory.data_mut(&mut self.store)
    }

    fn session(&mut self) -> &mut Session {
        &mut self.store.data_mut().session
    }
}

impl PreparedExtension for Prepared {
    fn run(&self, session: Session, call: GuestCall<'_>) -> GuestRun {
        let (mut store, live) = self.instantiate(session);
        let result = match live {
            Ok(live) => {
                let mut instance = WasmiInstance { store, live };
                let result = drive(&mut instance, &self.validated, &call);
                store = instance.store;
                result
            }
            Err(e) => Err(e),
        };
        if store.data().session.fuel().is_some()
            && let Ok(left) = store.get_fuel()
        {
            let used = store.data().granted.saturating_sub(left);
            store.data_mut().session.note_fuel(used);
        }
        let mut state = store.into_data();
        let result = result.map_err(|e| state.session.take_fatal().unwrap_or(e));
        GuestRun {
            session: state.session,
            result,
        }
    }
}

fn link_pair(
    linker: &mut Linker<StoreState>,
    import: HostImport,
) -> std::result::Result<(), wasmi::errors::LinkerError> {
    linker.func_wrap(
        IMPORT_MODULE,
        import.name(),
        move |mut caller: Caller<'_, StoreState>,
              ptr: i32,
              len: i32|
              -> std::result::Result<i32, wasmi::Error> {
            let (memory, state) = memory_and_state(&mut caller, import.name())?;
            match state
                .session
                .serve_pair(import, memory, ptr as u32, len as u32)
            {
                Ok(n) => Ok(n as i32),
                Err(e) => Err(fail(&mut state.session, e)),
            }
        },
    )?;
    Ok(())
}

fn link(
    linker: &mut Linker<StoreState>,
    import: HostImport,
) -> std::result::Result<(), wasmi::errors::LinkerError> {
    match import {
        HostImport::HostCall | HostImport::HostResponse => link_pair(linker, import),
        HostImport::Log => {
            linker.func_wrap(
                IMPORT_MODULE,
                import.name(),
                |mut caller: Caller<'_, StoreState>,
                 level: i32,
                 ptr: i32,
                 len: i32|
                 -> std::result::Result<(), wasmi::Error> {
                    let (memory, state) = memory_and_state(&mut caller, "log")?;
                    state
                        .session
                        .log(memory, level, ptr as u32, len as u32)
                        .map_err(|e| fail(&mut state.session, e))
                },
            )?;
            Ok(())
        }
    }
}

/// Links one WASI preview 1 import to core's shim, with the type the
/// module declares.
fn link_wasi(
    linker: &mut Linker<StoreState>,
    import: &WasiImport,
) -> std::result::Result<(), wasmi::errors::LinkerError> {
    let valtype = |t: &WasmType| match t {
        WasmType::I32 => ValType::I32,
        WasmType::I64 => ValType::I64,
    };
    let ty = FuncType::new(
        import.params.iter().map(valtype),
        import.results.iter().map(valtype),
    );
    let name = import.name.clone();
    linker.func_new(
        WASI_MODULE,
        &import.name,
        ty,
        move |mut caller: Caller<'_, StoreState>, params: &[Val], results: &mut [Val]| {
            let args: Vec<i64> = params
                .iter()
                .map(|v| match v {
                    Val::I32(x) => i64::from(*x),
                    Val::I64(x) => *x,
                    _ => 0,
                })
                .collect();
            let (memory, state) = memory_and_state(&mut caller, &name)?;
            let errno = wasi::call(&mut state.session, memory, &name, &args)
                .map_err(|e| fail(&mut state.session, e))?;
            if let (Some(errno), Some(slot)) = (errno, results.first_mut()) {
                *slot = Val::I32(errno);
            }
            Ok(())
        },
    )?;
    Ok(())
}
