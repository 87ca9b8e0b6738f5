//! How a call's child tells the zygote why its engine aborted, without
//! text on stderr: a page shared between the zygote and its children
//! (mapped before the first fork) and a `SIGABRT` handler in the child
//! that writes a [`Verdict`] there before the process dies.
//!
//! Rust ends a process with `abort` both when an allocation fails and when
//! a thread overflows its stack. The handler tells them apart by what it
//! can see at that moment: a stack overflow aborts from inside std's
//! `SIGSEGV` handler, on the alternate signal stack; a failed allocation
//! leaves `errno` at `ENOMEM` (from the refused `mmap`/`brk`, through the
//! message std writes and `abort` itself, which change it only on
//! failure). Anything else is no verdict: the host reports a `trap`.
//!
//! The guest runs in the child and could write the page itself, so a
//! verdict only ever names a kind a guest may cause.

use std::io;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::protocol::Verdict;

const NONE: u32 = 0;
const MEMORY: u32 = 1;
const STACK: u32 = 2;

/// Slots of the shared page: one per call in flight (by `seq`).
const SLOTS: u64 = 1024;

/// The shared page, mapped once in the zygote: one verdict slot per call.
pub(crate) struct Verdicts(&'static [AtomicU32; SLOTS as usize]);

/// Where the handler writes (set in the child before its sandbox closes).
static PAGE: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());

impl Verdicts {
    /// Maps the page (`MAP_SHARED`, so a child's write reaches the zygote).
    pub(crate) fn new() -> io::Result<Verdicts> {
        // SAFETY: an anonymous shared mapping of one page, never unmapped:
        // it lives as long as the process, so the 'static borrow is sound.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the page is zeroed, aligned, 4096 bytes (1024 slots) and
        // valid for ever (above).
        Ok(Verdicts(unsafe {
            &*(page as *const [AtomicU32; SLOTS as usize])
        }))
    }

    fn slot(&self, seq: u64) -> &'static AtomicU32 {
        &self.0[(seq % SLOTS) as usize]
    }

    /// Before call `seq` starts.
    pub(crate) fn clear(&self, seq: u64) {
        self.slot(seq).store(NONE, Ordering::SeqCst);
    }

    /// After the child of call `seq` is reaped.
    pub(crate) fn read(&self, seq: u64) -> Option<Verdict> {
        match self.slot(seq).load(Ordering::SeqCst) {
            MEMORY => Some(Verdict::MemoryLimit),
            STACK => Some(Verdict::StackOverflow),
            _ => None,
        }
    }
}

extern "C" fn on_abort(_signal: libc::c_int) {
    // Only async-signal-safe work: an errno read, sigaltstack, a store.
    // SAFETY: __errno_location returns this thread's errno slot.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: stack_t is a pointer and integers; all zeroes is valid.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigaltstack with a null new stack only reads the current one.
    let on_alternate_stack = unsafe { libc::sigaltstack(std::ptr::null(), &mut current) } == 0
        && current.ss_flags & libc::SS_ONSTACK != 0;
    let verdict = if on_alternate_stack {
        STACK
    } else if errno == libc::ENOMEM {
        MEMORY
    } else {
        NONE
    };
    let page = PAGE.load(Ordering::SeqCst);
    if !page.is_null() && verdict != NONE {
        // SAFETY: PAGE points at the shared page mapped by `Verdicts::new`.
        unsafe { (*page).store(verdict, Ordering::SeqCst) };
    }
    // Returning lets abort() go on to kill the process.
}

/// Installs the handler in the child of call `seq`.
pub(crate) fn install(verdicts: &Verdicts, seq: u64) {
    PAGE.store(
        verdicts.slot(seq) as *const AtomicU32 as *mut AtomicU32,
        Ordering::SeqCst,
    );
    // SAFETY: a sigaction with a plain handler function. Not SA_ONSTACK:
    // the handler must run on whatever stack `abort` was called from, so
    // that being on the alternate stack means std's overflow handler.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_abort as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut());
    }
}
