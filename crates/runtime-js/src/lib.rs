//! # morph-runtime-js
//!
//! Morph's backend for JavaScript extensions on [Boa](https://boajs.dev)
//! 0.22, a JavaScript engine in pure Rust. The guest API (global
//! `describe()` and `execute(action, params, context)`, the frozen `morph`
//! object, `console`) is specified in `docs/scripts.md`; most of it is a
//! JavaScript prelude built on two native functions (a host call and a log
//! line, JSON text in and out).
//!
//! Every call runs in a fresh realm: a new Boa `Context`, the prelude, the
//! extension's script evaluated again, then the call. Nothing an earlier
//! execution left in a global is visible to the next one; state belongs in
//! `morph.data`. There is no event loop: promise jobs never run, and an
//! `execute` that returns a `Promise` is `abi_violation`.
//!
//! Two backends run the same engine ([`JsEngine`]):
//! - [`worker_backend`] (`js`): each extension in a worker process (this
//!   program re-executed; its `main` must call
//!   [`morph_worker::main_if_worker`] first). The worker caps its
//!   address space at `max_memory_mb` (`memory_limit`), closes a seccomp
//!   sandbox, and is killed if it outruns its deadline.
//! - [`in_process_backend`] (`js-inprocess`): in the host process. Boa has
//!   no heap cap, so `max_memory_mb` is not enforced there (only
//!   `ArrayBuffer`s are capped): under `LimitEnforcement::Strict` loading
//!   fails with `unsupported`; `BestEffort` runs it.
//!
//! Limits, as Boa enforces them:
//! - `max_execution_ms`: budgeted evaluation. Boa has no interrupt, so the
//!   prelude, the extension's top-level code and the call are evaluated
//!   with `Script::evaluate_async_with_budget`, polled by hand; between two
//!   slices of guest code the backend checks the deadline and ends the call
//!   with `timeout`. Plain JavaScript (loops, JS-to-JS calls) runs inside
//!   the budgeted loop. **Code that Boa runs from native code runs outside
//!   it and can outrun the deadline**: callbacks of builtins
//!   (`Array.prototype.sort` comparators, `map`/`forEach`/`reduce`
//!   callbacks, `String.prototype.replace` with a function, `JSON.parse`
//!   revivers, `JSON.stringify` replacers and `toJSON`), getters and
//!   setters, `Proxy` traps, `toString`/`valueOf` conversions, generator
//!   and async function bodies resumed by `next()`, and catastrophic
//!   regular-expression backtracking. The deadline is checked again as soon
//!   as control returns to the budgeted loop or makes a host call; in a
//!   worker the parent kills the worker shortly after the deadline
//!   whatever it runs, so only the in-process backend can overrun.
//! - stack: Boa's recursion limit ([`RECURSION_LIMIT`], which also bounds
//!   re-entries from native code into JavaScript) and value-stack limit
//!   ([`VALUE_STACK_LIMIT`]), both ending the call with `stack_overflow`
//!   (Boa's runtime-limit errors cannot be caught by the script). Boa's
//!   parser and compiler recurse on the native stack without a limit, so
//!   every source Boa parses for an extension is first bounded by
//!   [`nesting::check`] (the entry script: `invalid_module` naming the
//!   line; `eval` and `Function`: a catchable `SyntaxError`). A few
//!   builtins still recurse without a limit (`Array.prototype.flat`,
//!   `join`/`toString` of deeply nested arrays, long chains of bound
//!   functions or proxies; `JSON.stringify` of deep values, which the
//!   prelude refuses beyond 256 levels for results and host calls). In a
//!   worker such an overflow ends only the call's process
//!   (`stack_overflow`); in process it aborts the host.
//! - memory: the worker's address-space cap; in process, `ArrayBuffer`s
//!   only (Boa's host hook), everything else unbounded.
//! - fuel: not supported (Boa counts no instructions for hosts).
//!
//! ```no_run
//! use std::sync::Arc;
//! use morph_core::EngineRuntime;
//! use morph_worker::{WorkerOptions, main_if_worker};
//! use morph_runtime_js::{JsEngine, worker_backend};
//!
//! fn main() -> morph_core::Result<()> {
//!     main_if_worker(&[Arc::new(JsEngine::default())]);
//!     let runtime = EngineRuntime::new(worker_backend(WorkerOptions::new()?))?;
//!     # let _ = runtime;
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
mod marshal;
#[cfg(feature = "engine")]
pub mod nesting;

#[cfg(feature = "engine")]
use std::sync::Arc;

#[cfg(feature = "engine")]
use morph_core::{Backend, EffectivePolicy, EntryCode, PreparedExtension, ScriptBackend};
use morph_core::{Enforcement, EngineLimit, RuntimeInfo, RuntimeKind};
#[cfg(target_os = "linux")]
use morph_worker::{WorkerBackend, WorkerOptions};

/// The name of the worker backend ([`worker_backend`]).
pub const BACKEND_NAME: &str = "js";

/// The name of the in-process backend ([`in_process_backend`]).
pub const IN_PROCESS_BACKEND_NAME: &str = "js-inprocess";

/// The Boa version this crate is built against.
pub const BOA_VERSION: &str = "0.22.0";

/// Nested calls (JavaScript frames plus re-entries from native builtins
/// into JavaScript) before `stack_overflow`: 1024, like CPython's default.
/// A re-entry costs Boa several KiB of native stack in debug builds, so
/// this keeps the deepest script well inside the 16 MiB execution threads
/// of morph-core.
pub const RECURSION_LIMIT: usize = 1024;

/// Values on Boa's own value stack (locals, arguments, temporaries of all
/// frames) before `stack_overflow`: 262,144 (4 MiB).
pub const VALUE_STACK_LIMIT: usize = 256 * 1024;

/// The JavaScript engine: Boa with Morph's prelude, as a
/// [`ScriptEngine`](morph_core::ScriptEngine) for [`ScriptBackend`] (in
/// process) and for [`WorkerBackend`] workers (give it to
/// [`main_if_worker`](morph_worker::main_if_worker)).
#[cfg(feature = "engine")]
#[derive(Debug, Clone, Copy, Default)]
pub struct JsEngine;

/// Limits of the worker backend: memory is the worker's address-space cap.
fn worker_limits() -> [(EngineLimit, Enforcement); 4] {
    [
        (EngineLimit::ExecutionTime, Enforcement::Native),
        (EngineLimit::Memory, Enforcement::Native),
        (EngineLimit::Stack, Enforcement::Native),
        (EngineLimit::Fuel, Enforcement::Unsupported),
    ]
}

/// The [`RuntimeInfo`] of [`worker_backend`].
pub fn worker_info() -> RuntimeInfo {
    RuntimeInfo::script(
        BACKEND_NAME,
        "boa_engine",
        BOA_VERSION,
        RuntimeKind::Js,
        worker_limits(),
    )
}

/// The [`RuntimeInfo`] of [`in_process_backend`]: `max_memory_mb` is
/// `Unsupported` (Boa has no heap cap).
pub fn in_process_info() -> RuntimeInfo {
    let [time, _, stack, fuel] = worker_limits();
    RuntimeInfo::script(
        IN_PROCESS_BACKEND_NAME,
        "boa_engine",
        BOA_VERSION,
        RuntimeKind::Js,
        [
            time,
            (EngineLimit::Memory, Enforcement::Unsupported),
            stack,
            fuel,
        ],
    )
}

/// The `js` backend: each extension runs in a sandboxed worker process
/// (`options.command`, by default this program, whose `main` must call
/// [`main_if_worker`](morph_worker::main_if_worker) with a
/// [`JsEngine`] first). Enforces every limit but fuel.
#[cfg(target_os = "linux")]
pub fn worker_backend(options: WorkerOptions) -> WorkerBackend {
    WorkerBackend::new(RuntimeKind::Js, worker_info(), true, options)
}

/// Native stack the in-process backend needs on its execution thread: the
/// sources [`nesting::check`] accepts were measured to run in half of it.
pub const NATIVE_STACK: usize = 16 << 20;

/// The `js-inprocess` backend ([`in_process_backend`]): a
/// [`ScriptBackend`] that asks for [`NATIVE_STACK`] on its execution
/// threads.
#[cfg(feature = "engine")]
pub struct InProcessBackend(ScriptBackend);

#[cfg(feature = "engine")]
impl Backend for InProcessBackend {
    fn info(&self) -> RuntimeInfo {
        self.0.info()
    }

    fn prepare(
        &self,
        code: &EntryCode,
        policy: &EffectivePolicy,
    ) -> morph_core::Result<Arc<dyn PreparedExtension>> {
        self.0.prepare(code, policy)
    }

    fn native_stack_needed(&self) -> usize {
        NATIVE_STACK
    }
}

/// The `js-inprocess` backend: Boa in the host process, on morph-core's
/// execution threads (never on one with less than [`NATIVE_STACK`]).
/// `max_memory_mb` is not enforced (see the crate docs), so loading needs
/// `LimitEnforcement::BestEffort`.
#[cfg(feature = "engine")]
pub fn in_process_backend() -> InProcessBackend {
    InProcessBackend(ScriptBackend::new(Arc::new(JsEngine), in_process_info()))
}
