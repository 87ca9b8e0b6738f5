//! Compile, instantiate, call, limits.

use morph_core::wasm::{
    GuestExport, GuestInstance, HostImport, IMPORT_MODULE, WASI_MODULE, WasiImport, WasmModule,
    WasmType, drive, wasi,
};
use morph_core::{
    GuestCall, GuestRun, ModuleCache, MorphError, PreparedExtension, Result, Session,
};
use wasmtime::{
    Caller, Engine, FuncType, Instance, InstancePre, Linker, Memory, Module, ResourceLimiter,
    Store, UpdateDeadline, Val, ValType,
};

use std::sync::Arc;

use crate::EpochTicker;
use crate::marshal::{export_name, map_error, memory_and_state};

/// What a store carries: the session (which also knows the memory cap).
pub struct StoreState {
    pub session: Session,
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.session
            .memory_growing(desired as u64, maximum.map(|m| m as u64))
            .map_err(wasmtime::Error::new)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.session
            .table_growing(desired as u64, maximum.map(|m| m as u64))
            .map_err(wasmtime::Error::new)
    }
}

/// A compiled module, pre-linked: each run instantiates it afresh.
pub struct Prepared {
    engine: Engine,
    _ticker: Arc<EpochTicker>,
    pre: InstancePre<StoreState>,
    module: WasmModule,
}

impl Prepared {
    pub fn new(
        engine: &Engine,
        ticker: Arc<EpochTicker>,
        module: &WasmModule,
        cache: Option<(&ModuleCache, String)>,
    ) -> Result<Self> {
        let (cache, fingerprint) = match &cache {
            Some((cache, fingerprint)) => (Some(*cache), fingerprint.as_str()),
            None => (None, ""),
        };
        let (compiled, _) = ModuleCache::load(
            cache,
            fingerprint,
            module.bytes(),
            // SAFETY: `ModuleCache::load` passes only bytes whose keyed MAC
            // checked out under this installation's key, i.e. an artifact
            // this installation serialized from this engine configuration;
            // wasmtime still checks version and configuration itself.
            |artifact| unsafe { Module::deserialize(engine, artifact) }.map_err(|e| e.to_string()),
            || {
                Module::new(engine, module.bytes()).map_err(|e| {
                    MorphError::invalid_module(format!("wasmtime cannot compile it: {e}"))
                })
            },
            |compiled| compiled.serialize().map_err(|e| e.to_string()),
        )?;
        let mut linker = Linker::<StoreState>::new(engine);
        for import in module.imports() {
            link(&mut linker, *import)
                .map_err(|e| MorphError::host_error(format!("linking {}: {e}", import.name())))?;
        }
        for import in module.wasi_imports() {
            link_wasi(&mut linker, engine, import).map_err(|e| {
                MorphError::host_error(format!("linking WASI {}: {e}", import.name))
            })?;
        }
        let pre = linker
            .instantiate_pre(&compiled)
            .map_err(|e| MorphError::invalid_module(format!("cannot link: {e}")))?;
        Ok(Prepared {
            engine: engine.clone(),
            _ticker: ticker,
            pre,
            module: module.clone(),
        })
    }

    fn instantiate(&self, session: Session) -> (Store<StoreState>, Result<Live>) {
        let fuel = session.fuel();
        let mut store = Store::new(&self.engine, StoreState { session });
        store.limiter(|state| state as &mut dyn ResourceLimiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let session = &mut ctx.data_mut().session;
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
            return (store, Err(e));
        }
        let live = match self.pre.instantiate(&mut store) {
            Ok(instance) => match instance.get_memory(&mut store, "memory") {
                Some(memory) => Ok(Live { instance, memory }),
                None => Err(MorphError::invalid_module(
                    "export `memory` missing after instantiation",
                )),
            },
            Err(e) => {
                let mapped = map_error(e, "instantiate", &store.data().session);
                Err(store.data_mut().session.take_fatal().unwrap_or(mapped))
            }
        };
        (store, live)
    }
}

struct Live {
    instance: Instance,
    memory: Memory,
}

struct WasmtimeInstance {
    store: Store<StoreState>,
    live: Live,
}

impl GuestInstance for WasmtimeInstance {
    fn call(&mut self, export: GuestExport, args: &[i32]) -> Result<i64> {
        let name = export_name(export);
        let store = &mut self.store;
        let instance = self.live.instance;
        let result = match (export, args) {
            (GuestExport::Initialize, []) => instance
                .get_typed_func::<(), ()>(&mut *store, name)
                .and_then(|f| f.call(&mut *store, ()))
                .map(|()| 0),
            (GuestExport::AbiVersion, []) => instance
                .get_typed_func::<(), i32>(&mut *store, name)
                .and_then(|f| f.call(&mut *store, ()))
                .map(i64::from),
            (GuestExport::Alloc, [size]) => instance
                .get_typed_func::<i32, i32>(&mut *store, name)
                .and_then(|f| f.call(&mut *store, *size))
                .map(|p| i64::from(p as u32)),
            (GuestExport::Describe, []) => instance
                .get_typed_func::<(), i64>(&mut *store, name)
                .and_then(|f| f.call(&mut *store, ())),
            (GuestExport::Execute, [a, b, c, d, e, f]) => instance
                .get_typed_func::<(i32, i32, i32, i32, i32, i32), i64>(&mut *store, name)
                .and_then(|func| func.call(&mut *store, (*a, *b, *c, *d, *e, *f))),
            _ => {
                return Err(MorphError::host_error(format!(
                    "`{name}` called with {} arguments",
                    args.len()
                )));
            }
        };
        result.map_err(|e| map_error(e, name, &store.data().session))
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
                let mut instance = WasmtimeInstance { store, live };
                let result = drive(&mut instance, &self.module, &call);
                store = instance.store;
                result
            }
            Err(e) => Err(e),
        };
        if let (Some(initial), Ok(left)) = (store.data().session.fuel(), store.get_fuel()) {
            store
                .data_mut()
                .session
                .note_fuel(initial.saturating_sub(left));
        }
        GuestRun {
            session: store.into_data().session,
            result,
        }
    }
}

fn link_pair(linker: &mut Linker<StoreState>, import: HostImport) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import.name(),
        move |mut caller: Caller<'_, StoreState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let (memory, state) = memory_and_state(&mut caller, import.name())?;
            let n = state
                .session
                .serve_pair(import, memory, ptr as u32, len as u32)
                .map_err(wasmtime::Error::new)?;
            Ok(n as i32)
        },
    )?;
    Ok(())
}

fn link(linker: &mut Linker<StoreState>, import: HostImport) -> wasmtime::Result<()> {
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
                 -> wasmtime::Result<()> {
                    let (memory, state) = memory_and_state(&mut caller, "log")?;
                    state
                        .session
                        .log(memory, level, ptr as u32, len as u32)
                        .map_err(wasmtime::Error::new)
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
    engine: &Engine,
    import: &WasiImport,
) -> wasmtime::Result<()> {
    let valtype = |t: &WasmType| match t {
        WasmType::I32 => ValType::I32,
        WasmType::I64 => ValType::I64,
    };
    let ty = FuncType::new(
        engine,
        import.params.iter().map(valtype),
        import.results.iter().map(valtype),
    );
    let name = import.name.clone();
    linker.func_new(
        WASI_MODULE,
        &import.name,
        ty,
        move |mut caller, params, results| {
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
                .map_err(wasmtime::Error::new)?;
            if let (Some(errno), Some(slot)) = (errno, results.first_mut()) {
                *slot = Val::I32(errno);
            }
            Ok(())
        },
    )?;
    Ok(())
}
