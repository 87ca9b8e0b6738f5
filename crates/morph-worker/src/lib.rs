//! # morph-worker
//!
//! Worker processes for script engines (ARCHITECTURE.md, Execution model).
//! Linux only (the sandbox is seccomp); on other systems this crate is
//! empty and the script backends run in process only.
//!
//! In-process CPython cannot keep extensions apart or be stopped reliably,
//! and Boa has no heap cap, so a script backend may run each extension in a
//! worker: this same program re-executed with `--morph-worker <kind>` as its
//! first arguments (its `main` calls `main_if_worker` first).
//!
//! A worker is a *zygote*: it warms its engine up, closes its own seccomp
//! filter, compiles the extension, and then runs no guest code. Each call
//! runs in a child forked from it, so every execution starts from exactly
//! the zygote's state (nothing an earlier call changed, in place or not,
//! survives it), and a call killed at its deadline takes only its child
//! with it: the zygote stays warm. The protocol ([`protocol`]) runs on a
//! control socket only the zygote holds and on a pair of pipes per call
//! that only that call's child holds.
//!
//! What the host enforces, whatever the worker does:
//! - `max_execution_ms`: at the deadline (after a short grace when the
//!   engine stops itself) the host has the zygote kill the call's child;
//! - every host call goes through the host's [`Session`](morph_core::Session)
//!   and [`CapabilityHost`](morph_core::CapabilityHost), with the same
//!   permissions, quotas and audit as every other backend; a child's
//!   frames are capped in size and may claim only guest error kinds;
//!   error kinds come from the protocol only (the zygote's report of how
//!   a child ended, and the child's crash verdict), never from its stderr;
//! - everything a call's child writes on stdout or stderr goes to a pipe
//!   of that call's own and is charged to its execution as a log line
//!   (`max_output_bytes`); what it writes after its answer is charged to
//!   nobody and never to the next execution (the zygote's own stderr is
//!   kept only as a tail for start-up errors);
//! - the worker starts with an empty environment, in `/`, in its own
//!   process group, one extension per process.
//!
//! What a call's child closes around itself before any guest code runs:
//! an address-space cap (`RLIMIT_AS`: the zygote's size at the fork, plus
//! `max_memory_mb`, plus 2 MiB) and a seccomp allowlist ([`sandbox`]).

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

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
