//! Load (instrument and check), instantiate per run, call.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use morph_core::wasm::{GuestExport, GuestInstance, WasmModule, drive, instrument};
use morph_core::{
    EffectivePolicy, GuestCall, GuestRun, MorphError, PreparedExtension, Result, Session,
};
use wasm3x::{CompilationMode, Config, Engine, Instance, Linker, Memory, Module, Store};

use crate::Wasm3Options;
use crate::imports::linker;

/// An instrumented module wasm3 was shown to compile. wasm3's engine and
/// store are `!Send`: each execution thread keeps its own engine, module
/// and linker for it ([`Loaded`]), and each run gets a fresh store.
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

    /// This thread's engine, parsed module and linker for this extension,
    /// made on first use.
    fn loaded(&self) -> Result<Loaded> {
        LOADED.with(|cell| {
            let mut loaded = cell.borrow_mut();
            loaded.retain(|l| l.bytes.strong_count() > 0);
            let key = Arc::as_ptr(&self.bytes);
            if let Some(l) = loaded
                .iter()
                .find(|l| std::ptr::addr_eq(l.bytes.as_ptr(), key))
            {
                return Ok(l.clone());
            }
            let engine = engine(self.options, CompilationMode::Lazy);
            let module = Module::new(&engine, &self.bytes[..]).map_err(unsupported)?;
            let linker = Rc::new(linker::<Session>(&engine, &self.validated)?);
            if loaded.len() >= LOADED_PER_THREAD {
                loaded.remove(0);
            }
            let entry = Loaded {
                bytes: Arc::downgrade(&self.bytes),
                engine,
                module,
                linker,
            };
            loaded.push(entry.clone());
            Ok(entry)
        })
    }

    fn instantiate(&self, loaded: &Loaded, store: &mut Store<Session>) -> Result<Wasm3Parts> {
        let instance = loaded
            .linker
            .instantiate_and_start(store, &loaded.module)
            .map_err(|e| map_error(&e, "instantiation (start function)"))?;
        let memory = instance
            .get_memory(&*store)
            .ok_or_else(|| MorphError::invalid_module("export `memory`: the module has none"))?;
        Ok(Wasm3Parts { instance, memory })
    }
}

/// What a run needs besides its store, kept per execution thread. wasm3's
/// engine, module and linker are `!Send`, so they cannot live in
/// [`Prepared`]; rebuilding them for every run cost an engine, a second
/// parse of the module and the linker's host-function table each time.
/// The `Weak` names the extension: it keeps the bytes' allocation (so the
/// address cannot be reused) and shows when the extension is gone.
#[derive(Clone)]
struct Loaded {
    bytes: Weak<[u8]>,
    engine: Engine,
    module: Module,
    linker: Rc<Linker<Session>>,
}

/// Most extensions one execution thread keeps loaded (oldest dropped
/// first; entries of dropped extensions go at the next lookup).
const LOADED_PER_THREAD: usize = 16;

thread_local! {
    static LOADED: RefCell<Vec<Loaded>> = const { RefCell::new(Vec::new()) };
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
        let loaded = match self.loaded() {
            Ok(loaded) => loaded,
            Err(e) => {
                return GuestRun {
                    session,
                    result: Err(e),
                };
            }
        };
        let mut store = Store::new(&loaded.engine, session);
        let result = self.instantiate(&loaded, &mut store).and_then(|parts| {
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
