//! The one adapter from a WebAssembly engine to core's [`Backend`]: an
//! engine crate implements the small [`WasmEngine`] trait (compile, link,
//! instantiate, call an export) and [`WasmBackend`] does the rest the same
//! way for every engine: validation, the memory check, instrumentation,
//! the compiled-module cache, the ABI call sequence and the run epilogue.

use std::borrow::Cow;
use std::sync::Arc;

use morph_core::{
    Backend, EffectivePolicy, EntryCode, GuestCall, GuestRun, MorphError, PreparedExtension,
    Result, RuntimeInfo, Session,
};

use crate::cache::CompiledModuleCache;
use crate::context::GuestContext;
use crate::driver::drive;
use crate::instrument::{self, Instrumentation};
use crate::module::{GuestExport, Import, WasmModule};

/// A WebAssembly engine, as its backend crate adapts it. Everything here
/// is engine glue; every rule is in [`WasmBackend`] and the
/// [`GuestContext`].
pub trait WasmEngine: Send + Sync + 'static {
    /// A compiled module (what the cache serializes).
    type Compiled: Send + Sync + 'static;
    /// A compiled module with its imports linked, ready to instantiate.
    type Linked: Send + Sync + 'static;
    /// One execution's instance, owning its store.
    type Instance: EngineInstance;

    /// What it is and what it enforces.
    fn info(&self) -> RuntimeInfo;

    /// What the engine needs from core's instrumentation (see
    /// [`instrument`]). Default: nothing.
    fn instrumentation(&self) -> Instrumentation {
        Instrumentation::None
    }

    /// The largest linear memory the engine can give an instance, in bytes
    /// (an engine configured for a small address space reserves less per
    /// memory). A policy whose `max_memory_mb` is above it is refused with
    /// `unsupported`: growth between the two would return -1 here and end
    /// with `memory_limit` elsewhere. Default: no bound.
    fn max_memory_bytes(&self) -> u64 {
        u64::MAX
    }

    /// Native stack an execution thread must offer (see
    /// [`Backend::native_stack_needed`]). Default 0.
    fn native_stack_needed(&self) -> usize {
        0
    }

    /// Compiles validated (and, when [`instrumented`](Self::instrumented),
    /// instrumented) module bytes.
    fn compile(&self, wasm: &[u8]) -> Result<Self::Compiled>;

    /// The engine's name, version and configuration, for the
    /// compiled-module cache; `None` (the default) when it cannot
    /// serialize compiled code.
    fn cache_fingerprint(&self) -> Option<String> {
        None
    }

    /// Serializes compiled code for the cache.
    fn serialize(&self, _compiled: &Self::Compiled) -> Result<Vec<u8>> {
        Err(MorphError::unsupported(
            "this engine cannot serialize compiled modules",
        ))
    }

    /// Deserializes what [`serialize`](Self::serialize) wrote.
    ///
    /// # Safety
    ///
    /// `artifact` must be bytes that `serialize` produced on an engine with
    /// the same [`cache_fingerprint`](Self::cache_fingerprint), unchanged
    /// (engines run deserialized code without checking it).
    #[allow(unsafe_code)]
    unsafe fn deserialize(&self, _artifact: &[u8]) -> Result<Self::Compiled> {
        Err(MorphError::unsupported(
            "this engine cannot deserialize compiled modules",
        ))
    }

    /// Links `imports` (every function the module imports, each once) to
    /// host functions that call [`GuestContext::serve`]. An engine that
    /// refuses the link reports [`host_fault`] (see there).
    fn link(&self, compiled: Self::Compiled, imports: Arc<[Import]>) -> Result<Self::Linked>;

    /// A fresh instance whose store carries `context` (validation detached
    /// any start function, so no guest code runs here). On failure the
    /// context is handed back, with the error classified as [`host_fault`]
    /// says: an engine trap keeps its kind (mapped as for a call), a fatal
    /// error recorded in the session (a limit) wins, anything else the
    /// engine reports is [`host_fault`].
    fn instantiate(
        &self,
        linked: &Self::Linked,
        context: GuestContext,
    ) -> std::result::Result<Self::Instance, Box<NotInstantiated>>;
}

/// The error for an engine's refusal to link or instantiate a module that
/// [`WasmModule`] validated: `host_error`, naming the engine and what it
/// was doing, with the engine's message.
///
/// The rule, once for every engine: validation has already refused, with
/// the guest's kinds, everything in a module that could make linking or
/// instantiation fail — an import Morph does not offer or one with another
/// type (`invalid_module` at load), a start function (detached, run later
/// as guest code), an active segment that does not fit (`trap` at load), a
/// declared memory above the cap or too many or too big tables (the limit
/// kinds). What is left is Morph's own fault: a host function its engine
/// glue did not provide, an engine or store error, host resources (address
/// space, memory) exhausted. Engine glue maps only what is the guest's (a
/// trap, a limit recorded in the session) to the guest's kinds, and
/// everything else through this.
pub fn host_fault(engine: &str, step: &str, error: &dyn std::fmt::Display) -> MorphError {
    tracing::error!(
        engine,
        step,
        error = %morph_core::text::loggable(error),
        "engine refused a validated module"
    );
    MorphError::host_error(format!(
        "{engine} could not {step} a module Morph validated (a fault of the host, not of the extension): {error}"
    ))
}

/// Why an instantiation failed, with the context handed back.
#[derive(Debug)]
pub struct NotInstantiated {
    /// The error (a fatal error recorded in the session wins over it).
    pub error: MorphError,
    /// The execution's context.
    pub context: GuestContext,
}

impl NotInstantiated {
    /// Boxed, as [`WasmEngine::instantiate`] returns it.
    pub fn new(error: MorphError, context: GuestContext) -> Box<Self> {
        Box::new(NotInstantiated { error, context })
    }
}

/// One execution's instance of a [`WasmEngine`].
pub trait EngineInstance {
    /// Calls `export` with i32 arguments; returns its result widened to
    /// i64 (0 for an export without a result). Validation has checked
    /// every export's type.
    fn call(&mut self, export: GuestExport, args: &[i32]) -> Result<i64>;

    /// The guest's linear memory (export `memory`).
    fn memory(&mut self) -> &mut [u8];

    /// The context in the store.
    fn context(&mut self) -> &mut GuestContext;

    /// Ends the instance, handing its context back (with the fuel used
    /// noted in the session, where the engine counts it).
    fn finish(self) -> GuestContext
    where
        Self: Sized;
}

/// Core's [`Backend`] for any [`WasmEngine`].
pub struct WasmBackend<E: WasmEngine> {
    engine: Arc<E>,
    cache: Option<Arc<dyn CompiledModuleCache>>,
}

impl<E: WasmEngine> WasmBackend<E> {
    /// Adapts `engine`, compiling every load.
    pub fn new(engine: E) -> Self {
        WasmBackend {
            engine: Arc::new(engine),
            cache: None,
        }
    }

    /// Keeps compiled modules in `cache` when the engine can serialize them
    /// (the interpreters cannot, and ignore it).
    pub fn with_cache(mut self, cache: Arc<dyn CompiledModuleCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    fn compile(&self, wasm: &[u8]) -> Result<E::Compiled> {
        let (Some(cache), Some(fingerprint)) = (&self.cache, self.engine.cache_fingerprint())
        else {
            return self.engine.compile(wasm);
        };
        if let Some(artifact) = cache.get(&fingerprint, wasm) {
            // SAFETY: by `CompiledModuleCache`'s contract, `get` returns
            // only bytes given to `put` below for this fingerprint and
            // module, i.e. `serialize` output of an engine with this
            // fingerprint.
            #[allow(unsafe_code)]
            let compiled = unsafe { self.engine.deserialize(&artifact) };
            match compiled {
                Ok(compiled) => return Ok(compiled),
                Err(e) => tracing::warn!(%fingerprint, "module cache: entry not accepted: {e}"),
            }
        }
        let compiled = self.engine.compile(wasm)?;
        match self.engine.serialize(&compiled) {
            Ok(artifact) => cache.put(&fingerprint, wasm, &artifact),
            Err(e) => tracing::warn!(%fingerprint, "module cache: cannot serialize: {e}"),
        }
        Ok(compiled)
    }
}

impl<E: WasmEngine> Backend for WasmBackend<E> {
    fn info(&self) -> RuntimeInfo {
        self.engine.info()
    }

    fn native_stack_needed(&self) -> usize {
        self.engine.native_stack_needed()
    }

    fn prepare(
        &self,
        code: &EntryCode,
        policy: &EffectivePolicy,
    ) -> Result<Arc<dyn PreparedExtension>> {
        let (origin, text, bytes) = code.wasm(&self.engine.info().name)?;
        let module = WasmModule::parse(bytes, text, origin)?;
        let max_memory = policy.limits.max_memory_bytes();
        let engine_max = self.engine.max_memory_bytes();
        if max_memory > engine_max {
            return Err(MorphError::unsupported(format!(
                "backend `{}` is configured for linear memories of at most {} MiB, below max_memory_mb = {} (give the engine a larger memory reservation, or lower the limit)",
                self.engine.info().name,
                engine_max >> 20,
                max_memory >> 20
            )));
        }
        module.check_memory_limit(max_memory)?;
        let mut imports = module.imports().to_vec();
        let wasm = match self.engine.instrumentation() {
            Instrumentation::None => Cow::Borrowed(module.bytes()),
            how => {
                imports.extend(Import::instrumentation());
                Cow::Owned(instrument::instrument(module.bytes(), max_memory, how)?)
            }
        };
        let compiled = self.compile(&wasm)?;
        let linked = self.engine.link(compiled, imports.into())?;
        Ok(Arc::new(Prepared {
            engine: self.engine.clone(),
            linked,
            module,
        }))
    }
}

struct Prepared<E: WasmEngine> {
    engine: Arc<E>,
    linked: E::Linked,
    module: WasmModule,
}

impl<E: WasmEngine> PreparedExtension for Prepared<E> {
    fn run(&self, session: Session, call: GuestCall<'_>) -> GuestRun {
        let (result, context) = match self
            .engine
            .instantiate(&self.linked, GuestContext::new(session))
        {
            Ok(mut instance) => {
                let result = drive(&mut instance, &self.module, &call);
                (result, instance.finish())
            }
            Err(failed) => (Err(failed.error), failed.context),
        };
        let mut session = context.into_session();
        let result = result.map_err(|e| session.take_fatal().unwrap_or(e));
        GuestRun { session, result }
    }
}
