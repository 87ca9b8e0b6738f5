//! # morph-runtime-wasmi
//!
//! Morph's backend on [wasmi](https://github.com/wasmi-labs/wasmi) 2.x, a
//! pure-Rust WebAssembly interpreter: no JIT, no native code generation, so
//! it runs where JIT is forbidden (iOS, some consoles and hardened hosts).
//! Wasmer dropped its own wasmi backend after 7.1 (and it had no fuel or
//! memory cap), so this crate uses wasmi directly. Engine glue only: every
//! shared rule lives in `morph-core` and `morph-wasm` ([`WasmiEngine`]
//! implements `morph_wasm::WasmEngine`).
//!
//! Limits:
//! - `max_execution_ms`: **native**, fuel in slices. Every call runs with
//!   [`WasmiOptions::fuel_slice`] units of fuel through `call_resumable`;
//!   when a slice runs out the backend checks the wall clock and either
//!   resumes with a new slice (at least what wasmi needs to make progress,
//!   the leftover kept) or ends the execution with `timeout`. Modules are
//!   translated eagerly at load, so no translation is charged to a slice
//!   (wasmi's lazy translation could not be resumed: a long function
//!   trapped with "all fuel consumed"). The start function runs through
//!   the same loop: validation detaches it and the driver calls it.
//! - `max_memory_mb` and the table cap: core's resource instrumentation
//!   rewrites `memory.grow` and `table.grow` to end the execution with
//!   `memory_limit` before growing past them (wasmi's `ResourceLimiter`
//!   is not asked for growth past the engine's or the module's maximum,
//!   so `memory.grow(0xffffffff)` returned -1); the limiter stays as a
//!   backstop.
//! - stack: wasmi's recursion depth and value-stack limits
//!   ([`WasmiOptions::max_recursion_depth`]), mapped to `stack_overflow`.
//! - fuel: a host budget is counted across slices (`fuel_exhausted`).
//!
//! Interpreters are slow on compute kernels (an order of magnitude behind
//! a JIT); pick wasmi for no-JIT platforms, start-up time and size.
//!
//! ```no_run
//! use morph_core::EngineRuntime;
//! use morph_runtime_wasmi::WasmiOptions;
//!
//! let runtime = EngineRuntime::new(morph_runtime_wasmi::backend(WasmiOptions::default()))?;
//! # Ok::<(), morph_core::MorphError>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod engine;
mod marshal;

use morph_core::{Enforcement, EngineLimit, RuntimeInfo};
use morph_wasm::WasmBackend;

pub use engine::WasmiInstance;

/// The backend name users choose.
pub const BACKEND_NAME: &str = "wasmi";

/// The wasmi version this crate is built against.
pub const WASMI_VERSION: &str = "2.0.0";

/// Settings of the wasmi backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmiOptions {
    /// Fuel per slice between deadline checks. Default 1,000,000 (a few
    /// milliseconds of guest code): the overshoot of `max_execution_ms` is
    /// at most one slice.
    pub fuel_slice: u64,
    /// Nested calls before `stack_overflow`. Default 10,000.
    pub max_recursion_depth: usize,
}

impl Default for WasmiOptions {
    fn default() -> Self {
        WasmiOptions {
            fuel_slice: 1_000_000,
            max_recursion_depth: 10_000,
        }
    }
}

/// The wasmi backend as core runs it.
pub type WasmiBackend = WasmBackend<WasmiEngine>;

/// The wasmi backend with `options`.
pub fn backend(options: WasmiOptions) -> WasmiBackend {
    WasmBackend::new(WasmiEngine::new(options))
}

/// wasmi as a `morph_wasm::WasmEngine`.
pub struct WasmiEngine {
    engine: wasmi::Engine,
    options: WasmiOptions,
}

impl WasmiEngine {
    /// Creates the engine.
    pub fn new(options: WasmiOptions) -> Self {
        let mut config = wasmi::Config::default();
        config
            .consume_fuel(true)
            .compilation_mode(wasmi::CompilationMode::Eager)
            .set_max_recursion_depth(options.max_recursion_depth)
            .wasm_multi_memory(false)
            .wasm_tail_call(false);
        WasmiEngine {
            engine: wasmi::Engine::new(&config),
            options,
        }
    }
}

/// The [`RuntimeInfo`] of the wasmi backend.
pub fn info() -> RuntimeInfo {
    RuntimeInfo::wasm(
        BACKEND_NAME,
        "wasmi",
        WASMI_VERSION,
        "interpreter",
        [
            (EngineLimit::ExecutionTime, Enforcement::Native),
            (EngineLimit::Memory, Enforcement::Instrumented),
            (EngineLimit::Stack, Enforcement::Native),
            (EngineLimit::Fuel, Enforcement::Native),
        ],
    )
}
