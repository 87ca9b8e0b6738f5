//! # morph-worker
//!
//! Worker processes for script engines (ARCHITECTURE.md, Execution model).
//! Linux only (the sandbox is seccomp); on other systems this crate is
//! empty and the script backends run in process only.
//!
//! In-process CPython cannot keep extensions apart or be stopped reliably,
//! and Boa has no heap cap, so a script backend may run each extension in a
//! worker: this same program re-executed with `--morph-worker <kind>` as its
//! first arguments (its `main` calls `main_if_worker` first), talking to the host over its
//! stdin and stdout in length-prefixed JSON frames ([`protocol`]).
//!
//! What the host enforces, whatever the worker does:
//! - `max_execution_ms`: the host kills the worker at the deadline (after
//!   a short grace when the engine stops itself), and the next execution
//!   gets a fresh worker;
//! - every host call goes through the host's [`Session`](morph_core::Session)
//!   and [`CapabilityHost`](morph_core::CapabilityHost), with the same
//!   permissions, quotas and audit as every other backend; a worker's
//!   frames are capped in size and may claim only guest error kinds;
//! - the worker starts with an empty environment, in `/`, in its own
//!   process group, one extension per process.
//!
//! What the worker closes around itself before any extension code runs:
//! an address-space cap (`RLIMIT_AS`: its warm baseline, plus
//! `max_memory_mb`, plus a fixed headroom) and a seccomp filter
//! ([`sandbox`]) refusing file opens, sockets, new programs and processes,
//! and signals to others.

#![warn(missing_docs)]

#[cfg(target_os = "linux")]
mod child;
#[cfg(target_os = "linux")]
mod crash;
#[cfg(target_os = "linux")]
mod fork;
#[cfg(target_os = "linux")]
mod parent;
#[cfg(target_os = "linux")]
mod passing;
#[cfg(target_os = "linux")]
pub mod protocol;
#[cfg(target_os = "linux")]
pub mod sandbox;
#[cfg(target_os = "linux")]
mod spawn;

#[cfg(target_os = "linux")]
pub use child::{is_worker, main_if_worker};
#[cfg(target_os = "linux")]
pub use fork::{ForkHook, set_fork_hook};
#[cfg(target_os = "linux")]
pub use parent::{WorkerBackend, WorkerCommand, WorkerOptions};
#[cfg(target_os = "linux")]
pub use spawn::WORKER_ARG;
