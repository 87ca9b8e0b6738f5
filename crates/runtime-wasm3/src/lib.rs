//! # morph-runtime-wasm3
//!
//! Morph's backend on [wasm3](https://github.com/wasm3/wasm3) 0.9, the small
//! C interpreter, through the [`wasm3x`] bindings. Engine glue only: every
//! shared rule lives in `morph-core`.
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
//!   ([`morph_core::wasm::instrument`]): a host deadline check every few
//!   thousand loop iterations and function entries.
//! - `max_memory_mb`: **instrumented**: `memory.grow` is rewritten to end
//!   the execution with `memory_limit` before growing past the cap.
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
//! use morph_runtime_wasm3::{Wasm3Backend, Wasm3Options};
//!
//! let runtime = EngineRuntime::new(Wasm3Backend::new(Wasm3Options::default()))?;
//! # Ok::<(), morph_core::MorphError>(())
//! ```
#![warn(missing_docs)]

mod engine;
mod imports;

use std::sync::Arc;

use morph_core::{
    Backend, EffectivePolicy, Enforcement, EngineLimit, EntryCode, PreparedExtension, Result,
    RuntimeInfo,
};

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

/// The wasm3 backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wasm3Backend {
    options: Wasm3Options,
}

impl Wasm3Backend {
    /// A backend with `options`.
    pub fn new(options: Wasm3Options) -> Self {
        Wasm3Backend { options }
    }
}

impl Backend for Wasm3Backend {
    fn info(&self) -> RuntimeInfo {
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

    /// wasm3's native-stack guard lets guest code use 8 MiB − 128 KiB
    /// below the point where a call enters it, and host calls at the
    /// deepest point need room beyond that.
    fn native_stack_needed(&self) -> usize {
        NATIVE_STACK_NEEDED
    }

    fn prepare(
        &self,
        code: &EntryCode,
        policy: &EffectivePolicy,
    ) -> Result<Arc<dyn PreparedExtension>> {
        let module = code.wasm(BACKEND_NAME)?;
        Ok(Arc::new(engine::Prepared::new(
            module,
            policy,
            self.options,
        )?))
    }
}
