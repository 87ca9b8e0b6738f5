//! # morph-runtime-wasmer
//!
//! Morph's backend on [wasmer](https://wasmer.io) 7.3 with the Cranelift
//! compiler. Engine glue only: every shared rule lives in `morph-core`.
//!
//! **Why 7.3.0 and not the newest wasmer:** every wasmer release pins
//! `cranelift-codegen` exactly (7.4.x: `=0.135.0`) while wasmtime 48.0.8
//! needs `^0.135.8`, and one workspace lockfile covers all optional
//! dependencies, so wasmer 7.4 cannot share the workspace with wasmtime.
//! wasmer 7.3.0 pins cranelift 0.134.3, which builds and runs beside
//! wasmtime 48.0.8 in one binary. wasmtime is never held below its latest
//! 48.0.x patch (those are security fixes) to make wasmer fit: at the next
//! upgrade, check which wasmer release pins a cranelift compatible with
//! the wasmtime in use.
//!
//! Limits:
//! - `max_execution_ms`: **instrumented**. wasmer's metering counts
//!   instructions, not time, and its host interrupt is experimental and
//!   signal-based, so core's instrumentation
//!   ([`morph_core::wasm::instrument`]) calls a host deadline check every
//!   few thousand loop iterations and function entries.
//! - `max_memory_mb`: **instrumented** (wasmer's `Tunables` are per engine,
//!   not per extension): `memory.grow` is rewritten to refuse growth past
//!   the cap with `memory_limit`.
//! - stack: **native**: wasmer traps on stack exhaustion (`stack_overflow`).
//! - fuel: unsupported (a host that asks for fuel gets `unsupported`).
//!
//! Compiled modules can be kept in core's [`ModuleCache`]
//! ([`WasmerBackend::with_cache`]): wasmer serializes them, and an entry is
//! deserialized only after its keyed MAC checks out.
//!
//! ```no_run
//! use morph_core::EngineRuntime;
//! use morph_runtime_wasmer::{WasmerBackend, WasmerOptions};
//!
//! let runtime = EngineRuntime::new(WasmerBackend::new(WasmerOptions::default()))?;
//! # Ok::<(), morph_core::MorphError>(())
//! ```
#![warn(missing_docs)]

mod engine;
mod marshal;

use std::sync::Arc;

use morph_core::{
    Backend, EffectivePolicy, Enforcement, EngineLimit, EntryCode, ModuleCache, PreparedExtension,
    Result, RuntimeInfo,
};

/// The backend name users choose.
pub const BACKEND_NAME: &str = "wasmer";

/// The wasmer version this crate is built against.
pub const WASMER_VERSION: &str = "7.3.0";

/// Settings of the wasmer backend (none yet besides the defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WasmerOptions {}

/// The wasmer backend: one Cranelift engine.
pub struct WasmerBackend {
    engine: wasmer::Engine,
    cache: Option<Arc<ModuleCache>>,
}

impl WasmerBackend {
    /// Creates the engine.
    pub fn new(_options: WasmerOptions) -> Self {
        WasmerBackend {
            engine: wasmer::sys::Cranelift::default().into(),
            cache: None,
        }
    }

    /// Keeps compiled (instrumented) modules in `cache`, MAC-checked
    /// before wasmer deserializes them, so loading a module compiled before
    /// skips Cranelift.
    pub fn with_cache(mut self, cache: Arc<ModuleCache>) -> Self {
        self.cache = Some(cache);
        self
    }
}

impl Backend for WasmerBackend {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo::wasm(
            BACKEND_NAME,
            "wasmer (cranelift)",
            WASMER_VERSION,
            "jit",
            [
                (EngineLimit::ExecutionTime, Enforcement::Instrumented),
                (EngineLimit::Memory, Enforcement::Instrumented),
                (EngineLimit::Stack, Enforcement::Native),
                (EngineLimit::Fuel, Enforcement::Unsupported),
            ],
        )
    }

    fn prepare(
        &self,
        code: &EntryCode,
        policy: &EffectivePolicy,
    ) -> Result<Arc<dyn PreparedExtension>> {
        let module = code.wasm(self.info().name.as_str())?;
        Ok(Arc::new(engine::Prepared::new(
            &self.engine,
            module,
            policy,
            self.cache.as_deref(),
        )?))
    }
}
