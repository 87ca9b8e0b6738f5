//! Load (instrument and check), instantiate per run, call.

use std::sync::Arc;

use morph_core::wasm::{GuestExport, GuestInstance, WasmModule, drive, instrument};
use morph_core::{
    EffectivePolicy, GuestCall, GuestRun, MorphError, PreparedExtension, Result, Session,
};
use wasm3x::{CompilationMode, Config, Engine, Instance, Memory, Module, Store};

use crate::Wasm3Options;
use crate::imports::linker;

/// An instrumented module wasm3 was shown to compile. wasm3's engine and
/// store are `!Send`, so each run builds its own from these bytes.
pub struct Prepared {
    bytes: Arc<[u8]>,
    validated: WasmModule,
    options: Wasm3Options,
}

fn engine(options: Wasm3Options, mode: CompilationMode) -> Engine {
    let mut config = Config::new();
    config
        .stack_size(options.value_stack_bytes)
        .compilation_mode(mode);
    Engine::new(&config)
}

fn unsupported(e: wasm3x::Error) -> MorphError {
    MorphError::unsupported(format!("wasm3 cannot load this module: {e}"))
}

impl Prepared {
    /// Instruments `module` and compiles every function once (wasm3
    /// compiles lazily at run time), so a module wasm3 cannot run fails at
    /// load with `unsupported`, not in the middle of an execution.
    pub fn new(
        module: &WasmModule,
        policy: &EffectivePolicy,
        options: Wasm3Options,
    ) -> Result<Self> {
        let bytes: Arc<[u8]> =
            instrument::instrument(module.bytes(), policy.limits.max_memory_bytes())?.into();
        let engine = engine(options, CompilationMode::Eager);
        let wasm = Module::new(&engine, &bytes[..]).map_err(unsupported)?;
        let mut store = Store::new(&engine, ());
        linker::<()>(&engine, module)?
            .instantiate(&mut store, &wasm)
            .map_err(unsupported)?;
        Ok(Prepared {
            bytes,
            validated: module.clone(),
            options,
        })
    }

    fn instantiate(&self, engine: &Engine, store: &mut Store<Session>) -> Result<Wasm3Parts> {
        let wasm = Module::new(engine, &self.bytes[..]).map_err(unsupported)?;
        let instance = linker::<Session>(engine, &self.validated)?
            .instantiate_and_start(store, &wasm)
            .map_err(|e| map_error(&e, "instantiation (start function)"))?;
        let memory = instance
            .get_memory(&*store)
            .ok_or_else(|| MorphError::invalid_module("export `memory`: the module has none"))?;
        Ok(Wasm3Parts { instance, memory })
    }
}

struct Wasm3Parts {
    instance: Instance,
    memory: Memory,
}

/// Maps a wasm3 error from calling `export` onto a Morph kind. (A fatal
/// error recorded in the session wins over this in `drive`.)
fn map_error(err: &wasm3x::Error, export: &str) -> MorphError {
    let message = err.to_string();
    if message.contains("stack overflow") {
        MorphError::stack_overflow(format!("`{export}` exhausted the guest stack ({message})"))
    } else {
        MorphError::trap(format!("`{export}` trapped: {message}"))
    }
}

struct Wasm3Instance<'s> {
    store: &'s mut Store<Session>,
    parts: Wasm3Parts,
}

impl GuestInstance for Wasm3Instance<'_> {
    fn call(&mut self, export: GuestExport, args: &[i32]) -> Result<i64> {
        let name = export.name();
        let instance = self.parts.instance;
        let store = &mut *self.store;
        let missing =
            |e: wasm3x::Error| MorphError::invalid_module(format!("export `{name}`: {e}"));
        let result = match (export, args) {
            (GuestExport::Initialize, []) => instance
                .get_typed_func::<(), ()>(&*store, name)
                .map_err(missing)?
                .call(store, ())
                .map(|()| 0),
            (GuestExport::AbiVersion, []) => instance
                .get_typed_func::<(), i32>(&*store, name)
                .map_err(missing)?
                .call(store, ())
                .map(i64::from),
            (GuestExport::Alloc, [size]) => instance
                .get_typed_func::<i32, i32>(&*store, name)
                .map_err(missing)?
                .call(store, *size)
                .map(|p| i64::from(p as u32)),
            (GuestExport::Describe, []) => instance
                .get_typed_func::<(), i64>(&*store, name)
                .map_err(missing)?
                .call(store, ()),
            (GuestExport::Execute, [a, b, c, d, e, f]) => instance
                .get_typed_func::<(i32, i32, i32, i32, i32, i32), i64>(&*store, name)
                .map_err(missing)?
                .call(store, (*a, *b, *c, *d, *e, *f)),
            _ => {
                return Err(MorphError::host_error(format!(
                    "`{name}` called with {} arguments",
                    args.len()
                )));
            }
        };
        result.map_err(|e| map_error(&e, name))
    }

    fn memory(&mut self) -> &mut [u8] {
        self.parts.memory.data_mut(self.store)
    }

    fn session(&mut self) -> &mut Session {
        self.store.data_mut()
    }
}

impl PreparedExtension for Prepared {
    fn run(&self, session: Session, call: GuestCall<'_>) -> GuestRun {
        let engine = engine(self.options, CompilationMode::Lazy);
        let mut store = Store::new(&engine, session);
        let result = self.instantiate(&engine, &mut store).and_then(|parts| {
            let mut live = Wasm3Instance {
                store: &mut store,
                parts,
            };
            drive(&mut live, &self.validated, &call)
        });
        let mut session = store.data_mut().take();
        let result = result.map_err(|e| session.take_fatal().unwrap_or(e));
        GuestRun { session, result }
    }
}
