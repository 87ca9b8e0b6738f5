//! Native evidence that a limit the host set was hit, so that an exception
//! a guest raises itself (`raise MemoryError("x")`, `raise
//! PermissionError`, `raise RecursionError`) is the guest's own error
//! (`extension_error`) and only a real limit hit is a limit kind:
//!
//! - `memory_limit`: an allocation of the interpreter failed during the
//!   call (the address-space cap): the allocators are wrapped to notice;
//! - `permission_denied`: the sandbox's audit hook refused something
//!   during the call, or the system refused a call (`EACCES`, the seccomp
//!   filter's answer);
//! - `stack_overflow`: a `RecursionError` with the interpreter's text that
//!   a `raise` statement did not raise (the recursion limit, which the
//!   host sets and the guest cannot raise).
//!
//! The state is per process; each call runs in its own child of the
//! zygote, and [`reset`] clears it when a call starts.

use std::ffi::c_void;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

static ALLOCATION_FAILED: AtomicBool = AtomicBool::new(false);
static SANDBOX_REFUSED: AtomicBool = AtomicBool::new(false);

/// The limit kind the glue asked about and the evidence confirmed, for
/// [`confirmed`]: 0 none, then the index in [`LIMIT_KINDS`] plus one.
static CONFIRMED: AtomicU8 = AtomicU8::new(0);

/// The kinds that need evidence.
pub(crate) const LIMIT_KINDS: [&str; 3] = ["memory_limit", "permission_denied", "stack_overflow"];

/// The `RAISE_VARARGS` opcode of this interpreter (read from `dis`).
static RAISE_OPCODE: OnceLock<u8> = OnceLock::new();

/// Forgets the evidence of earlier calls (the zygote's compile included).
pub(crate) fn reset() {
    ALLOCATION_FAILED.store(false, Ordering::SeqCst);
    SANDBOX_REFUSED.store(false, Ordering::SeqCst);
    CONFIRMED.store(0, Ordering::SeqCst);
}

/// The audit hook refused an event.
pub(crate) fn note_refusal() {
    SANDBOX_REFUSED.store(true, Ordering::SeqCst);
}

/// Whether an allocation of the interpreter failed since [`reset`].
pub(crate) fn allocation_failed() -> bool {
    ALLOCATION_FAILED.load(Ordering::SeqCst)
}

/// Whether the glue's `kind` (one of [`LIMIT_KINDS`]) was confirmed by
/// [`limit_hit`] in this call. Kinds outside the list need no evidence.
pub(crate) fn confirmed(kind: &str) -> bool {
    match LIMIT_KINDS.iter().position(|k| *k == kind) {
        Some(i) => CONFIRMED.load(Ordering::SeqCst) == i as u8 + 1,
        None => true,
    }
}

/// `morph._limit_hit(kind, exc)`: whether `exc` (a `MemoryError`,
/// `PermissionError` or `RecursionError` that ended the call) is the
/// host's limit `kind` rather than the guest's own exception.
pub(crate) fn limit_hit(kind: &str, exc: &Bound<'_, PyAny>) -> bool {
    let hit = match kind {
        "memory_limit" => allocation_failed(),
        "permission_denied" => {
            SANDBOX_REFUSED.load(Ordering::SeqCst)
                || exc
                    .getattr("errno")
                    .ok()
                    .and_then(|n| n.extract::<Option<i32>>().ok().flatten())
                    == Some(libc_eacces())
        }
        "stack_overflow" => recursion_limit(exc),
        _ => false,
    };
    if hit && let Some(i) = LIMIT_KINDS.iter().position(|k| *k == kind) {
        CONFIRMED.store(i as u8 + 1, Ordering::SeqCst);
    }
    hit
}

fn libc_eacces() -> i32 {
    13
}

/// A `RecursionError` the interpreter raised at its recursion limit: its
/// text is the interpreter's, and the innermost frame of its traceback was
/// not at a `raise` statement (a limit hit is raised at a call).
fn recursion_limit(exc: &Bound<'_, PyAny>) -> bool {
    let text = exc
        .str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !text.starts_with("maximum recursion depth exceeded") {
        return false;
    }
    let Some(raise) = RAISE_OPCODE.get() else {
        return false;
    };
    let innermost = (|| -> PyResult<Option<u8>> {
        let mut tb = exc.getattr("__traceback__")?;
        if tb.is_none() {
            return Ok(None);
        }
        // Bounded: a traceback is at most the recursion limit deep, plus
        // the frames of re-raises.
        for _ in 0..100_000 {
            let next = tb.getattr("tb_next")?;
            if next.is_none() {
                break;
            }
            tb = next;
        }
        let lasti: i64 = tb.getattr("tb_lasti")?.extract()?;
        let code: Vec<u8> = tb
            .getattr("tb_frame")?
            .getattr("f_code")?
            .getattr("co_code")?
            .extract()?;
        Ok(usize::try_from(lasti)
            .ok()
            .and_then(|i| code.get(i).copied()))
    })();
    matches!(innermost, Ok(Some(op)) if op != *raise)
}

/// Wraps the interpreter's allocators (every domain) to notice failures,
/// and reads the opcode of `raise`. Called once at warm-up, with the GIL,
/// before any guest code; wrapping the current allocators after start-up
/// is what CPython documents as allowed.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let raise: u8 = py
        .import("dis")?
        .getattr("opmap")?
        .get_item("RAISE_VARARGS")?
        .extract()?;
    let _ = RAISE_OPCODE.set(raise);
    for domain in [
        ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_RAW,
        ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_MEM,
        ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_OBJ,
    ] {
        let mut previous = ffi::PyMemAllocatorEx {
            ctx: std::ptr::null_mut(),
            malloc: None,
            calloc: None,
            realloc: None,
            free: None,
        };
        // SAFETY: reads the domain's current allocator into `previous`.
        unsafe { ffi::PyMem_GetAllocator(domain, &mut previous) };
        // Lives as long as the process: the hooks call through it.
        let previous: &'static ffi::PyMemAllocatorEx = Box::leak(Box::new(previous));
        let mut hook = ffi::PyMemAllocatorEx {
            ctx: previous as *const ffi::PyMemAllocatorEx as *mut c_void,
            malloc: Some(hook_malloc),
            calloc: Some(hook_calloc),
            realloc: Some(hook_realloc),
            free: Some(hook_free),
        };
        // SAFETY: installs a hook that wraps the allocator it replaces
        // (PyMem_SetAllocator copies the struct).
        unsafe { ffi::PyMem_SetAllocator(domain, &mut hook) };
    }
    Ok(())
}

fn previous(ctx: *mut c_void) -> &'static ffi::PyMemAllocatorEx {
    // SAFETY: `ctx` is the leaked allocator `install` wrapped.
    unsafe { &*(ctx as *const ffi::PyMemAllocatorEx) }
}

fn noted(p: *mut c_void) -> *mut c_void {
    if p.is_null() {
        ALLOCATION_FAILED.store(true, Ordering::Relaxed);
    }
    p
}

extern "C" fn hook_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let prev = previous(ctx);
    noted(
        prev.malloc
            .map_or(std::ptr::null_mut(), |f| f(prev.ctx, size)),
    )
}

extern "C" fn hook_calloc(ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    let prev = previous(ctx);
    noted(
        prev.calloc
            .map_or(std::ptr::null_mut(), |f| f(prev.ctx, nelem, elsize)),
    )
}

extern "C" fn hook_realloc(ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    let prev = previous(ctx);
    noted(
        prev.realloc
            .map_or(std::ptr::null_mut(), |f| f(prev.ctx, ptr, size)),
    )
}

extern "C" fn hook_free(ctx: *mut c_void, ptr: *mut c_void) {
    let prev = previous(ctx);
    if let Some(f) = prev.free {
        f(prev.ctx, ptr);
    }
}
