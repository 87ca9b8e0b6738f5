//! # morph-runtime-wasmer
//!
//! Morph's backend on [wasmer](https://wasmer.io) 7.3 with the Cranelift
//! compiler. Engine glue only: every shared rule lives in `morph-core` and
//! `morph-wasm` ([`WasmerEngine`] implements `morph_wasm::WasmEngine`).
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
//!   ([`morph_wasm::instrument`]) calls a host deadline check every
//!   few thousand loop iterations and function entries.
//! - `max_memory_mb`: **instrumented** (wasmer's `Tunables` are per engine,
//!   not per extension): `memory.grow` is rewritten to refuse growth past
//!   the cap with `memory_limit`, and `table.grow` past 2^20 elements the
//!   same way (wasmer has no table limiter).
//! - stack: **native**: wasmer traps on stack exhaustion (`stack_overflow`).
//! - fuel: unsupported (a host that asks for fuel gets `unsupported`).
//!
//! Compiled modules can be kept in a `morph_wasm::CompiledModuleCache`
//! (`WasmBackend::with_cache`; `morph_host::ModuleCache` checks a keyed MAC
//! before wasmer deserializes an entry).
//!
//! ```no_run
//! use morph_core::EngineRuntime;
//! use morph_runtime_wasmer::WasmerOptions;
//!
//! let runtime = EngineRuntime::new(morph_runtime_wasmer::backend(WasmerOptions::default()))?;
//! # Ok::<(), morph_core::MorphError>(())
//! ```
#![warn(missing_docs)]

mod engine;
mod marshal;

use morph_core::{Enforcement, EngineLimit, RuntimeInfo};
use morph_wasm::WasmBackend;

pub use engine::WasmerInstance;

/// The backend name users choose.
pub const BACKEND_NAME: &str = "wasmer";

/// The wasmer version this crate is built against.
pub const WASMER_VERSION: &str = "7.3.0";

/// Settings of the wasmer backend (none yet besides the defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WasmerOptions {}

/// The wasmer backend as core runs it.
pub type WasmerBackend = WasmBackend<WasmerEngine>;

/// The wasmer backend with `options`.
pub fn backend(options: WasmerOptions) -> WasmerBackend {
    WasmBackend::new(WasmerEngine::new(options))
}

/// wasmer as a `morph_wasm::WasmEngine`: one Cranelift engine.
pub struct WasmerEngine {
    engine: wasmer::Engine,
}

impl WasmerEngine {
    /// Creates the engine.
    pub fn new(_options: WasmerOptions) -> Self {
        WasmerEngine {
            engine: wasmer::sys::Cranelift::default().into(),
        }
    }
}

/// The [`RuntimeInfo`] of the wasmer backend.
pub fn info() -> RuntimeInfo {
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
