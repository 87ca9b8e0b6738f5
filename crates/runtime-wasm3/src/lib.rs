//! # morph-runtime-wasm3
//!
//! Morph's backend on [wasm3](https://github.com/wasm3/wasm3) 0.9, the small
//! C interpreter, through the [`wasm3x`] bindings. Engine glue only: every
//! shared rule lives in `morph-core` and `morph-wasm` ([`Wasm3Engine`]
//! implements `morph_wasm::WasmEngine`).
//!
//! **Why `wasm3x` and not the `wasm3` crate:** `wasm3` 0.3.1 bundles wasm3
//! 0.4.7, which has no `memory.copy`/`memory.fill` and rejects the 5-byte
//! `call_indirect` table index rustc emits, so it cannot run modules from
//! current compilers (and the two crates cannot share a build: both declare
//! `links = "wasm3"`). Building `wasm3x-sys` runs bindgen, which needs
//! libclang (`libclang-dev`; the README's set-up commands install it).
//!
//! wasm3 is built optimised in every profile (the workspace sets
//! `[profile.dev.package.wasm3x-sys] opt-level = 3`): with gcc 12 its
//! dispatch relies on sibling-call optimisation, and at `-O0` deep wasm
//! code overflows the native stack.
//!
//! Limits (wasm3 has no fuel, deadline or memory cap of its own):
//! - `max_execution_ms`: **instrumented** by core
//!   ([`morph_wasm::instrument`]): a host deadline check every few
//!   thousand loop iterations and function entries.
//! - `max_memory_mb`: **instrumented**: `memory.grow` is rewritten to end
//!   the execution with `memory_limit` before growing past the cap, and
//!   `table.grow` past 2^20 elements the same way (wasm3 itself allows
//!   10^7, and reads a declared table maximum of 0 as none).
//! - stack: **native**: wasm3 traps with `stack overflow` when its value
//!   stack ([`Wasm3Options::value_stack_bytes`]) or its native-stack budget
//!   (8 MiB − 128 KiB below the entry; core's execution threads have
//!   16 MiB stacks, so the budget fits, and the backend declares
//!   [`NATIVE_STACK_NEEDED`] so it never runs inline on a smaller thread)
//!   runs out: `stack_overflow`.
//!
//! wasm3 is C: a bug in it is a memory-safety bug in the host process. The
//! Rust engines (wasmtime, wasmer, wasmi) are the stronger sandbox; pick
//! wasm3 for size and portability, not for hostile code at scale.
//! - fuel: unsupported (a host that asks for fuel gets `unsupported`).
//!
//! wasm3's `Engine` and `Store` are single-threaded (`!Send`), so each run
//! creates its own on the execution thread, from the instrumented bytes
//! checked once at load. Interpreters are slow on compute kernels (an
//! order of magnitude behind a JIT); pick wasm3 for its size and start-up.
//!
//! ```no_run
//! use morph_core::EngineRuntime;
//! use morph_runtime_wasm3::Wasm3Options;
//!
//! let runtime = EngineRuntime::new(morph_runtime_wasm3::backend(Wasm3Options::default()))?;
//! # Ok::<(), morph_core::MorphError>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod engine;
mod imports;

use morph_core::{Enforcement, EngineLimit, RuntimeInfo};
use morph_wasm::WasmBackend;

pub use engine::Wasm3Instance;

/// The backend name users choose.
pub const BACKEND_NAME: &str = "wasm3";

/// The wasm3 version the bundled `wasm3x` 0.2 builds.
pub const WASM3_VERSION: &str = "0.9.0";

/// Native stack an execution thread must offer wasm3 (its guard budget,
/// 8 MiB − 128 KiB, plus room for the frames below the entry and for host
/// calls made at the deepest point).
pub const NATIVE_STACK_NEEDED: usize = 12 << 20;

/// Settings of the wasm3 backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wasm3Options {
    /// Size of each run's interpreter value stack in bytes; exhausting it
    /// is `stack_overflow`. Default 512 KiB (64 Ki slots).
    pub value_stack_bytes: usize,
}

impl Default for Wasm3Options {
    fn default() -> Self {
        Wasm3Options {
            value_stack_bytes: 512 << 10,
        }
    }
}

/// The wasm3 backend as core runs it.
pub type Wasm3Backend = WasmBackend<Wasm3Engine>;

/// The wasm3 backend with `options`.
pub fn backend(options: Wasm3Options) -> Wasm3Backend {
    WasmBackend::new(Wasm3Engine { options })
}

/// wasm3 as a `morph_wasm::WasmEngine`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wasm3Engine {
    options: Wasm3Options,
}

impl Wasm3Engine {
    /// An engine with `options`.
    pub fn new(options: Wasm3Options) -> Self {
        Wasm3Engine { options }
    }
}

/// The [`RuntimeInfo`] of the wasm3 backend.
pub fn info() -> RuntimeInfo {
    RuntimeInfo::wasm(
        BACKEND_NAME,
        "wasm3 (wasm3x)",
        WASM3_VERSION,
        "interpreter",
        [
            (EngineLimit::ExecutionTime, Enforcement::Instrumented),
            (EngineLimit::Memory, Enforcement::Instrumented),
            (EngineLimit::Stack, Enforcement::Native),
            (EngineLimit::Fuel, Enforcement::Unsupported),
        ],
    )
}
