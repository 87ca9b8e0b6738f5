//! # morph-runtime-python
//!
//! Morph's backend for Python extensions (`extension.py`): CPython embedded
//! through [pyo3](https://pyo3.rs), run in a worker process per extension
//! (the [`morph_worker`] mechanism). Engine glue
//! only: manifest, permissions, quotas, envelopes and audit are core's.
//!
//! Why a worker: in-process CPython is one interpreter for every extension
//! (pyo3 has no subinterpreters), cannot be interrupted reliably from
//! another thread, and its audit hooks are no sandbox on their own. So:
//!
//! - `max_execution_ms`: the host has the worker kill the call's process
//!   at the deadline (`timeout`); the warm worker stays.
//! - `max_memory_mb`: each call's process caps its address space at the
//!   warm worker's size + the limit + 2 MiB; a `MemoryError` after an
//!   allocation of the interpreter failed (or an allocation failure in the
//!   engine) is `memory_limit`. A `MemoryError`, `PermissionError` or
//!   `RecursionError` the extension raises itself, with no limit hit, is
//!   its own error: `extension_error`, code `uncaught_exception`.
//! - stack: the recursion limit is [`RECURSION_LIMIT`], and
//!   `sys.setrecursionlimit` cannot raise it (higher values are clamped);
//!   the interpreter's `RecursionError` at that limit is `stack_overflow`.
//! - state: every call runs in a process forked from the warm worker, so
//!   it sees the standard library exactly as it was preloaded, whatever an
//!   earlier call changed (class attributes, module-level lists,
//!   `sys.path`, `os.environ`).
//! - sandbox: the interpreter starts isolated (no environment, no site or
//!   user directories); the standard-library modules in
//!   [`PRELOADED_MODULES`] are imported, then a native audit hook (no
//!   Python-visible state to switch off) refuses file access, sockets,
//!   processes, `ctypes` and any further import with `permission_denied`,
//!   and the worker's seccomp allowlist refuses the same at the
//!   system-call level whatever the Python code does.
//!
//! Which Python: the build links Debian's `libpython3.11` (`PYO3_PYTHON` is
//! `/usr/bin/python3.11` in `.cargo/config.toml`), and the binary loads the
//! same library from the default library path at run time, with its
//! standard library in `/usr/lib/python3.11`: no rpath, no `PYTHONHOME`,
//! nothing from the environment.
//!
//! ```no_run
//! use std::sync::Arc;
//! use morph_core::EngineRuntime;
//! use morph_worker::{WorkerOptions, main_if_worker};
//! use morph_runtime_python::{PythonEngine, worker_backend};
//!
//! fn main() -> morph_core::Result<()> {
//!     // First thing: a worker process serves its parent here and exits.
//!     main_if_worker(&[Arc::new(PythonEngine)]);
//!     let runtime = EngineRuntime::new(worker_backend(WorkerOptions::new()?))?;
//!     # let _ = runtime;
//!     Ok(())
//! }
//! ```
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
mod evidence;
#[cfg(feature = "engine")]
mod sandbox;

use morph_core::{Enforcement, EngineLimit, RuntimeInfo, RuntimeKind};
#[cfg(target_os = "linux")]
use morph_worker::{WorkerBackend, WorkerOptions};

#[cfg(feature = "engine")]
pub use engine::{PRELOADED_MODULES, PythonEngine, RECURSION_LIMIT};

/// The backend name users choose.
pub const BACKEND_NAME: &str = "python";

/// The Python language version embedded (Debian's libpython3.11).
pub const PYTHON_VERSION: &str = "3.11";

/// What the Python backend enforces, and how.
pub fn info() -> RuntimeInfo {
    RuntimeInfo::script(
        BACKEND_NAME,
        "cpython (pyo3 0.30)",
        PYTHON_VERSION,
        RuntimeKind::Python,
        [
            (EngineLimit::ExecutionTime, Enforcement::Native),
            (EngineLimit::Memory, Enforcement::Native),
            (EngineLimit::Stack, Enforcement::Native),
            (EngineLimit::Fuel, Enforcement::Unsupported),
        ],
    )
}

/// The Python backend: each extension in its own worker process (the
/// program in `options.command`, which must call
/// [`main_if_worker`](morph_worker::main_if_worker) with a
/// [`PythonEngine`] first in `main`).
#[cfg(target_os = "linux")]
pub fn worker_backend(options: WorkerOptions) -> WorkerBackend {
    WorkerBackend::new(RuntimeKind::Python, info(), false, options)
}
