//! # morph-runtime-wasmer
//!
//! Morph's backend on [wasmer](https://wasmer.io) 7.3 with the Cranelift
//! compiler. Engine glue only: every shared rule lives in `morph-core` and
//! `morph-wasm` ([`WasmerEngine`] implements `morph_wasm::WasmEngine`).
//!
//! **Why 7.3.0 and not the newest wasmer:** every wasmer release pins
//! `cranelift-codegen` exactly (7.4.x: `=0.135.0`) while wasmtime 48.0.10
//! needs `^0.135.10`, and one workspace lockfile covers all optional
//! dependencies, so wasmer 7.4 cannot share the workspace with wasmtime.
//! wasmer 7.3.0 pins cranelift 0.134.3, which builds and runs beside
//! wasmtime 48.0.10 in one binary. wasmtime is never held below its latest
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
//!   same way (wasmer has no table limiter). Every memory is static, with a
//!   bound of [`WasmerOptions::memory_reservation`] (smaller under
//!   `ulimit -v`).
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
#![deny(clippy::undocumented_unsafe_blocks)]

mod engine;
mod marshal;
mod tunables;

use morph_core::{Enforcement, EngineLimit, ResourceLimits, RuntimeInfo};
use morph_wasm::WasmBackend;
use wasmer::sys::NativeEngineExt;

pub use engine::WasmerInstance;

/// The backend name users choose.
pub const BACKEND_NAME: &str = "wasmer";

/// The wasmer version this crate is built against.
pub const WASMER_VERSION: &str = "7.3.0";

/// Settings of the wasmer backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmerOptions {
    /// Address space reserved for each linear memory (its static bound),
    /// in bytes, which is also the largest memory an instance can have: an
    /// extension whose `max_memory_mb` is above it is refused at load with
    /// `unsupported`. Default 4 GiB (wasmer's own), or 128 MiB (the default
    /// ceiling of `max_memory_mb`) under `ulimit -v`.
    pub memory_reservation: u64,
    /// Guard region after each linear memory, in bytes. Default 4 GiB
    /// (wasmer's own: no bounds checks), or 2 MiB under `ulimit -v`.
    pub memory_guard: u64,
}

impl WasmerOptions {
    /// The defaults for a process that may map `limit` bytes of address
    /// space (`None`: unlimited); [`Default`] passes this process's
    /// `RLIMIT_AS`.
    pub fn for_address_space(limit: Option<u64>) -> Self {
        match limit {
            None => WasmerOptions {
                memory_reservation: 4 << 30,
                memory_guard: 4 << 30,
            },
            Some(_) => WasmerOptions {
                memory_reservation: ResourceLimits::default().max_memory_bytes(),
                memory_guard: 2 << 20,
            },
        }
    }
}

impl Default for WasmerOptions {
    fn default() -> Self {
        WasmerOptions::for_address_space(morph_wasm::address_space_limit())
    }
}

/// The wasmer backend as core runs it.
pub type WasmerBackend = WasmBackend<WasmerEngine>;

/// The wasmer backend with `options`.
pub fn backend(options: WasmerOptions) -> WasmerBackend {
    WasmBackend::new(WasmerEngine::new(options))
}

/// wasmer as a `morph_wasm::WasmEngine`: one Cranelift engine.
pub struct WasmerEngine {
    engine: wasmer::Engine,
    options: WasmerOptions,
}

impl WasmerEngine {
    /// Creates the engine.
    pub fn new(options: WasmerOptions) -> Self {
        let mut engine: wasmer::Engine = wasmer::sys::Cranelift::default().into();
        engine.set_tunables(tunables::MorphTunables::new(&options));
        WasmerEngine { engine, options }
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
