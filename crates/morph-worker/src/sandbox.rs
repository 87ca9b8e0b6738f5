//! What a worker closes around itself: an address-space cap (`RLIMIT_AS`,
//! for `max_memory_mb`) and a seccomp filter that is an **allowlist**: the
//! system calls a warm engine was measured to make, and nothing else.
//! Everything not listed fails with `EACCES` (`clone3` with `ENOSYS`, so a
//! C library falls back to `clone`, which is refused or checked).
//!
//! Two filters, stacked (a child inherits its parent's filter and adds its
//! own; the kernel applies the stricter answer):
//!
//! - [`lock_down_zygote`]: the worker process once its engine is warm,
//!   before it compiles the extension's source. It runs no guest code, but
//!   it parses it: beyond the call filter it may fork (the exact flags of
//!   `fork()`, no threads, no `vfork`), wait for and `SIGKILL` its
//!   children, receive descriptors on its control socket, read its own
//!   `/proc/self/status` through the descriptor it holds, and what a child
//!   needs to set itself up before its own filter (`dup3`, `close_range`,
//!   `prctl`, `prlimit64` on itself, `seccomp`), and `rseq` (glibc
//!   registers each thread as it starts and aborts if it cannot: the
//!   filter reaches every thread of the process, including one the host
//!   program started just before `main_if_worker`).
//! - [`lock_down`]: each call's child, before any guest code runs. Memory
//!   (`brk`, `mmap`, `mremap`, `munmap`, `mprotect`, `madvise`), reads and
//!   writes on the descriptors it holds (its call pipes and stderr), clocks,
//!   `getrandom`, `futex`, its own ids, signals to itself only (`abort`),
//!   `getrusage`, and exit. No file opens, no path lookups (`readlink`,
//!   `stat`), no directory listing, no sockets, no new processes or
//!   threads, no signals to others, no `ioctl`, no SysV IPC, no
//!   `personality`, `modify_ldt`, `ptrace` or `process_vm_*`, no limits.
//!
//! The lists were measured on x86_64 (`strace -f` of the conformance
//! suite's js and python cases and the isolation tests: see the notes of
//! issue #16); on aarch64 the same calls are allowed by their aarch64
//! numbers, unmeasured. On x86_64 every call through the x32 ABI (bit 30
//! of the number) is refused. Other architectures have no filter, and a
//! worker there refuses to run extensions.

use std::io;

/// `seccomp_data` offsets: the number, the architecture, the arguments.
const NR: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARGS: u32 = 16;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The x32 ABI's bit in a system call number.
const X32_BIT: u32 = 0x4000_0000;

/// The flags glibc's `fork()` passes to `clone`.
const FORK_FLAGS: u32 =
    (libc::CLONE_CHILD_CLEARTID | libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u32;

/// A condition on the low 32 bits of an argument (the kernel reads `int`
/// and `pid_t` arguments, and `clone`'s flags, from those bits only).
#[derive(Clone, Copy)]
enum Arg {
    Eq(u8, u32),
    Ne(u8, u32),
    /// Unsigned `>=`.
    Ge(u8, u32),
    /// Unsigned `<=`.
    Le(u8, u32),
    /// One of the values.
    In(u8, &'static [u32]),
}

/// An allowed system call, when every condition holds.
struct Allow {
    nr: i64,
    when: Vec<Arg>,
}

fn any(nr: i64) -> Allow {
    Allow {
        nr,
        when: Vec::new(),
    }
}

fn when(nr: i64, conditions: &[Arg]) -> Allow {
    Allow {
        nr,
        when: conditions.to_vec(),
    }
}

/// What a call's child may do once its filter is on (measured, plus the
/// clocks, sleeps and `futex` an engine may need without the suite
/// showing it).
fn call_allowlist(pid: u32) -> Vec<Allow> {
    let mut list = vec![
        // memory
        any(libc::SYS_brk),
        any(libc::SYS_mmap),
        any(libc::SYS_munmap),
        any(libc::SYS_mremap),
        any(libc::SYS_mprotect),
        any(libc::SYS_madvise),
        // the descriptors it holds (its call pipes, stderr)
        any(libc::SYS_read),
        any(libc::SYS_write),
        any(libc::SYS_close),
        when(
            libc::SYS_fcntl,
            &[Arg::In(
                1,
                &[
                    libc::F_GETFD as u32,
                    libc::F_SETFD as u32,
                    libc::F_GETFL as u32,
                ],
            )],
        ),
        // clocks, sleeping, randomness, locks
        any(libc::SYS_clock_gettime),
        any(libc::SYS_clock_getres),
        any(libc::SYS_clock_nanosleep),
        any(libc::SYS_nanosleep),
        any(libc::SYS_gettimeofday),
        any(libc::SYS_getrandom),
        any(libc::SYS_futex),
        any(libc::SYS_sched_yield),
        // itself
        any(libc::SYS_getpid),
        any(libc::SYS_gettid),
        any(libc::SYS_getppid),
        when(libc::SYS_getrusage, &[Arg::Eq(0, libc::RUSAGE_SELF as u32)]),
        // signals: handlers, masks, and to itself only (abort)
        any(libc::SYS_rt_sigaction),
        any(libc::SYS_rt_sigprocmask),
        any(libc::SYS_rt_sigreturn),
        any(libc::SYS_sigaltstack),
        any(libc::SYS_restart_syscall),
        when(libc::SYS_kill, &[Arg::Eq(0, pid)]),
        when(libc::SYS_tgkill, &[Arg::Eq(0, pid)]),
        when(libc::SYS_tkill, &[Arg::Eq(0, pid)]),
        // the end
        any(libc::SYS_exit),
        any(libc::SYS_exit_group),
    ];
    #[cfg(target_arch = "x86_64")]
    list.push(any(libc::SYS_time));
    list
}

/// What the zygote may do besides the call list (measured: its loop
/// between calls, and the set-up of a child before the child's filter).
fn zygote_allowlist(pid: u32, parent: u32) -> Vec<Allow> {
    let mut list = call_allowlist(pid);
    // Signals and getrusage are wider than a child's: a child inherits this
    // filter, so its own `abort` (tgkill of itself) must pass here too; its
    // own filter then narrows the target to itself.
    list.retain(|a| {
        ![
            libc::SYS_kill,
            libc::SYS_tgkill,
            libc::SYS_tkill,
            libc::SYS_getrusage,
        ]
        .contains(&a.nr)
    });
    list.extend([
        // fork exactly (no threads, no shared memory, no vfork)
        when(libc::SYS_clone, &[Arg::Eq(0, FORK_FLAGS)]),
        any(libc::SYS_wait4),
        // glibc registers every new thread's rseq area as the thread
        // starts, and aborts the process ("rseq registration failed") if
        // that fails. The filter is synchronised to every thread (TSYNC),
        // so a thread the host program started just before
        // `main_if_worker` that has not reached that point yet would
        // otherwise kill the zygote. rseq only registers the calling
        // thread's own area (in its own memory).
        any(libc::SYS_rseq),
        any(libc::SYS_pidfd_open),
        any(libc::SYS_poll),
        any(libc::SYS_ppoll),
        any(libc::SYS_recvmsg),
        // a spare child's channel: a socket pair, a call's pipes sent on it
        when(libc::SYS_socketpair, &[Arg::Eq(0, libc::AF_UNIX as u32)]),
        any(libc::SYS_sendmsg),
        // SIGKILL to a child: a positive pid, never its host
        when(
            libc::SYS_kill,
            &[
                Arg::Eq(1, libc::SIGKILL as u32),
                Arg::Ge(0, 1),
                Arg::Le(0, i32::MAX as u32),
                Arg::Ne(0, parent),
            ],
        ),
        when(
            libc::SYS_tgkill,
            &[
                Arg::Ge(0, 1),
                Arg::Le(0, i32::MAX as u32),
                Arg::Ne(0, parent),
            ],
        ),
        any(libc::SYS_getrusage),
        // its /proc/self/status, through the descriptor it holds
        any(libc::SYS_lseek),
        when(libc::SYS_statx, &[Arg::Eq(2, libc::AT_EMPTY_PATH as u32)]),
        // Boa resolves a script's path when it parses the entry
        any(libc::SYS_getcwd),
        // a child's set-up before its own filter
        any(libc::SYS_set_robust_list),
        when(
            libc::SYS_fcntl,
            &[Arg::In(
                1,
                &[
                    libc::F_GETFD as u32,
                    libc::F_SETFD as u32,
                    libc::F_GETFL as u32,
                    libc::F_DUPFD_CLOEXEC as u32,
                ],
            )],
        ),
        any(libc::SYS_dup3),
        any(libc::SYS_close_range),
        when(
            libc::SYS_prctl,
            &[Arg::In(
                0,
                &[
                    libc::PR_SET_PDEATHSIG as u32,
                    libc::PR_SET_NO_NEW_PRIVS as u32,
                ],
            )],
        ),
        when(
            libc::SYS_prlimit64,
            &[
                Arg::Eq(0, 0),
                Arg::In(1, &[libc::RLIMIT_AS, libc::RLIMIT_CORE]),
            ],
        ),
        any(libc::SYS_seccomp),
    ]);
    // The call list's fcntl is narrower: the zygote's replaces it.
    let first_fcntl = list.iter().position(|a| a.nr == libc::SYS_fcntl);
    if let Some(i) = first_fcntl {
        list.remove(i);
    }
    list
}

/// One classic-BPF instruction.
fn op(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LOAD: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const RET: u32 = libc::BPF_RET | libc::BPF_K;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JGT: u32 = libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K;
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;

const DENY: u32 = libc::SECCOMP_RET_ERRNO | libc::EACCES as u32;
const NOT_HERE: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// The instructions of one rule, with `nr` in the accumulator: if the
/// number matches, check the conditions (any false: deny) and allow; if
/// not, go on to the next rule.
fn rule(allow: &Allow) -> io::Result<Vec<libc::sock_filter>> {
    let mut body = Vec::new();
    for condition in &allow.when {
        let load = |i: u8| op(LOAD, ARGS + 8 * u32::from(i));
        match *condition {
            // Each check jumps over the next instruction (deny) when it
            // holds.
            Arg::Eq(i, v) => body.extend([load(i), jump(JEQ, v, 1, 0), op(RET, DENY)]),
            Arg::Ne(i, v) => body.extend([load(i), jump(JEQ, v, 0, 1), op(RET, DENY)]),
            Arg::Ge(i, v) => body.extend([load(i), jump(JGE, v, 1, 0), op(RET, DENY)]),
            Arg::Le(i, v) => body.extend([load(i), jump(JGT, v, 0, 1), op(RET, DENY)]),
            Arg::In(i, values) => {
                body.push(load(i));
                for (n, v) in values.iter().enumerate() {
                    // Matching: jump to the instruction after the deny.
                    let to_allow = u8::try_from(values.len() - n).map_err(io::Error::other)?;
                    body.push(jump(JEQ, *v, to_allow, 0));
                }
                body.push(op(RET, DENY));
            }
        }
    }
    body.push(op(RET, libc::SECCOMP_RET_ALLOW));
    // Not this number: jump over the body to the next rule (`nr` is still
    // in the accumulator: only a matching rule loads arguments, and every
    // body ends in a return).
    let skip = u8::try_from(body.len()).map_err(|_| io::Error::other("a rule too long"))?;
    let nr = u32::try_from(allow.nr).map_err(io::Error::other)?;
    let mut out = vec![jump(JEQ, nr, 0, skip)];
    out.extend(body);
    Ok(out)
}

/// The whole program: the architecture check, the x32 refusal, the rules,
/// `clone3` with `ENOSYS`, everything else `EACCES`.
fn program(list: &[Allow]) -> io::Result<Vec<libc::sock_filter>> {
    let mut out = vec![
        op(LOAD, ARCH_OFFSET),
        jump(JEQ, AUDIT_ARCH, 1, 0),
        op(RET, libc::SECCOMP_RET_KILL_PROCESS),
        op(LOAD, NR),
    ];
    if cfg!(target_arch = "x86_64") {
        out.extend([jump(JSET, X32_BIT, 0, 1), op(RET, DENY)]);
    }
    out.extend([jump(JEQ, libc::SYS_clone3 as u32, 0, 1), op(RET, NOT_HERE)]);
    for allow in list {
        out.extend(rule(allow)?);
    }
    out.push(op(RET, DENY));
    Ok(out)
}

fn install(list: &[Allow]) -> io::Result<()> {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return Err(io::Error::other(
            "the worker sandbox has no system-call list for this architecture",
        ));
    }
    let mut filter = program(list)?;
    let program = libc::sock_fprog {
        len: u16::try_from(filter.len()).map_err(io::Error::other)?,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: prctl with constant arguments; seccomp reads the program,
    // which outlives the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &program as *const libc::sock_fprog,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Caps the address space at `limit_bytes` (soft and hard, so the worker
/// cannot raise it again), and allows no core dumps.
pub fn cap_address_space(limit_bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: limit_bytes,
        rlim_max: limit_bytes,
    };
    // SAFETY: setrlimit reads a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // No core dumps of guest memory. SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    Ok(())
}

/// Caps the address space at `limit_bytes` for the soft limit only: the
/// zygote, whose children then set their own cap, soft and hard.
pub fn cap_address_space_soft(limit_bytes: u64) -> io::Result<()> {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let limit = libc::rlimit {
        rlim_cur: limit_bytes.min(current.rlim_max),
        rlim_max: current.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs the call filter on this process (a call's child, before guest
/// code runs). Irreversible.
pub fn lock_down() -> io::Result<()> {
    install(&call_allowlist(std::process::id()))
}

/// Installs the zygote's filter on every thread of this process (a worker
/// whose engine is warm, before it compiles the extension). Irreversible;
/// children inherit it and add [`lock_down`].
pub fn lock_down_zygote() -> io::Result<()> {
    install(&zygote_allowlist(
        std::process::id(),
        std::os::unix::process::parent_id(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_fit_the_kernel_limit() {
        for list in [call_allowlist(1), zygote_allowlist(1, 2)] {
            let program = program(&list).expect("program");
            assert!(program.len() < 4096, "{} instructions", program.len());
        }
    }
}
