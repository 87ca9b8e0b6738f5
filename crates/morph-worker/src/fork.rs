//! Forking a call's child from the zygote, with the work a language needs
//! around `fork` (CPython: `PyOS_BeforeFork` and the after-fork calls,
//! with the GIL held).

use std::sync::OnceLock;

/// What a language does around `fork`: it calls `fork` (which returns the
/// child's pid in the zygote, 0 in the child, -1 on failure) with its
/// interpreter prepared, and returns its result.
pub type ForkHook = fn(fork: &mut dyn FnMut() -> libc::pid_t) -> libc::pid_t;

static HOOK: OnceLock<ForkHook> = OnceLock::new();

/// Registers the engine's fork hook (from its `warm_up`, in the worker).
/// The first registration wins.
pub fn set_fork_hook(hook: ForkHook) {
    let _ = HOOK.set(hook);
}

/// Forks the zygote (the calling thread is the only one in the child).
pub(crate) fn fork() -> libc::pid_t {
    // SAFETY: the child continues on this thread only; it uses nothing
    // another thread held a lock on (the zygote's other thread only waits
    // in `join`).
    let mut plain = || unsafe { libc::fork() };
    match HOOK.get() {
        Some(hook) => hook(&mut plain),
        None => plain(),
    }
}
