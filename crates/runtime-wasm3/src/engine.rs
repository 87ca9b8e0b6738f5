//! Check at load, instantiate per run, call: wasm3 as a [`WasmEngine`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use morph_core::{MorphError, Result};
use morph_wasm::{
    EngineInstance, GuestContext, GuestExport, Import, Instrumentation, NotInstantiated,
    WasmEngine, host_fault,
};
use wasm3x::{CompilationMode, Config, Engine, Instance, Linker, Memory, Module, Store, Val};

use crate::imports::linker;
use crate::{Wasm3Engine, Wasm3Options};

/// An instrumented module wasm3 was shown to compile, with its imports.
/// wasm3's engine and store are `!Send`: each execution thread keeps its
/// own engine, module and linker for it ([`Loaded`]), and each run gets a
/// fresh store.
pub struct Linked {
    bytes: Arc<[u8]>,
    imports: Arc<[Import]>,
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

impl WasmEngine for Wasm3Engine {
    type Compiled = Arc<[u8]>;
    type Linked = Linked;
    type Instance = Wasm3Instance;

    fn info(&self) -> morph_core::RuntimeInfo {
        crate::info()
    }

    fn instrumentation(&self) -> Instrumentation {
        Instrumentation::Full
    }

    /// wasm3's native-stack guard lets guest code use 8 MiB − 128 KiB
    /// below the point where a call enters it, and host calls at the
    /// deepest point need room beyond that.
    fn native_stack_needed(&self) -> usize {
        crate::NATIVE_STACK_NEEDED
    }

    fn compile(&self, wasm: &[u8]) -> Result<Arc<[u8]>> {
        Ok(wasm.into())
    }

    /// Compiles every function once (wasm3 compiles lazily at run time),
    /// so a module wasm3 cannot run fails at load with `unsupported`, not
    /// in the middle of an execution.
    fn link(&self, bytes: Arc<[u8]>, imports: Arc<[Import]>) -> Result<Linked> {
        let engine = engine(self.options, CompilationMode::Eager);
        let wasm = Module::new(&engine, &bytes[..]).map_err(unsupported)?;
        let mut store = Store::new(&engine, ());
        linker::<()>(&engine, &imports)?
            .instantiate(&mut store, &wasm)
            .map_err(unsupported)?;
        Ok(Linked {
            bytes,
            imports,
            options: self.options,
        })
    }

    fn instantiate(
        &self,
        linked: &Linked,
        context: GuestContext,
    ) -> std::result::Result<Wasm3Instance, Box<NotInstantiated>> {
        let loaded = match linked.loaded() {
            Ok(loaded) => loaded,
            Err(e) => return Err(NotInstantiated::new(e, context)),
        };
        let mut store = Store::new(&loaded.engine, context);
        let live = loaded
            .linker
            .instantiate_and_start(&mut store, &loaded.module)
            .map_err(|e| {
                // What `host_fault` says: validation left the guest nothing
                // that could fail here but a trap.
                if e.is_trap() {
                    map_error(&e, "instantiation")
                } else {
                    host_fault("wasm3", "instantiate", &e)
                }
            })
            .and_then(|instance| {
                let memory = instance.get_memory(&store).ok_or_else(|| {
                    MorphError::invalid_module("export `memory`: the module has none")
                })?;
                Ok((instance, memory))
            });
        match live {
            Ok((instance, memory)) => Ok(Wasm3Instance {
                store,
                instance,
                memory,
                _loaded: loaded,
            }),
            Err(e) => {
                let mut context = store.data_mut().take();
                let e = context.session().take_fatal().unwrap_or(e);
                Err(NotInstantiated::new(e, context))
            }
        }
    }
}

impl Linked {
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
            let linker = Rc::new(linker::<GuestContext>(&engine, &self.imports)?);
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
}

/// What a run needs besides its store, kept per execution thread. wasm3's
/// engine, module and linker are `!Send`, so they cannot live in
/// [`Linked`]; rebuilding them for every run cost an engine, a second
/// parse of the module and the linker's host-function table each time.
/// The `Weak` names the extension: it keeps the bytes' allocation (so the
/// address cannot be reused) and shows when the extension is gone.
#[derive(Clone)]
struct Loaded {
    bytes: Weak<[u8]>,
    engine: Engine,
    module: Module,
    linker: Rc<Linker<GuestContext>>,
}

/// Most extensions one execution thread keeps loaded (oldest dropped
/// first; entries of dropped extensions go at the next lookup).
const LOADED_PER_THREAD: usize = 16;

thread_local! {
    static LOADED: RefCell<Vec<Loaded>> = const { RefCell::new(Vec::new()) };
}

/// Maps a wasm3 error from calling `export` onto a Morph kind. (A fatal
/// error recorded in the session wins over this.)
fn map_error(err: &wasm3x::Error, export: &str) -> MorphError {
    let message = err.to_string();
    if message.contains(UNLINKED_IMPORT) {
        // wasm3 links imports lazily: a host function Morph did not link
        // shows up only when the guest first calls it, and is the host's
        // fault (validation accepted the import).
        host_fault(
            "wasm3",
            "run",
            &format!("`{export}` called an import with no host function linked ({message})"),
        )
    } else if message.contains("stack overflow") {
        MorphError::stack_overflow(format!("`{export}` exhausted the guest stack ({message})"))
    } else {
        MorphError::trap(format!("`{export}` trapped: {message}"))
    }
}

/// wasm3's error for a call of an imported function nothing was linked to
/// (`CompileFunction` in m3_compile.c; only imports lack a body).
const UNLINKED_IMPORT: &str = "function body is missing";

/// One execution's instance and store.
pub struct Wasm3Instance {
    store: Store<GuestContext>,
    instance: Instance,
    memory: Memory,
    _loaded: Loaded,
}

impl EngineInstance for Wasm3Instance {
    fn call(&mut self, export: GuestExport, args: &[i32]) -> Result<i64> {
        let name = export.name();
        let func = self
            .instance
            .get_func(&self.store, name)
            .ok_or_else(|| MorphError::invalid_module(format!("export `{name}` missing")))?;
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results = [Val::I64(0)];
        let results = &mut results[..usize::from(export.result().is_some())];
        func.call(&mut self.store, &params, results)
            .map_err(|e| map_error(&e, name))?;
        Ok(match results.first() {
            Some(Val::I32(x)) => i64::from(*x),
            Some(Val::I64(x)) => *x,
            _ => 0,
        })
    }

    fn memory(&mut self) -> &mut [u8] {
        self.memory.data_mut(&mut self.store)
    }

    fn context(&mut self) -> &mut GuestContext {
        self.store.data_mut()
    }

    fn finish(mut self) -> GuestContext {
        self.store.data_mut().take()
    }
}
