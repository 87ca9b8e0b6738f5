//! What a worker process closes around itself once its engine is warm:
//! an address-space cap (`RLIMIT_AS`, for `max_memory_mb`) and a seccomp
//! filter that refuses, with `EACCES`, every system call that opens or
//! changes a file, opens a socket, starts a program or a process, signals
//! another process, or changes limits. Reads and writes on the pipes the
//! worker already holds, memory, clocks, randomness and threads keep
//! working; everything else reaches the world only through host calls.
//!
//! Not guaranteed: file *metadata* (`stat` of a path) is not filtered, and
//! a kernel without seccomp runs the worker with the address-space cap and
//! the language's own checks only (the worker says so on stderr).

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// System calls refused with `EACCES` whatever their arguments.
const DENIED: &[i64] = &[
    // files
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_truncate,
    libc::SYS_mknodat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_mkdirat,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_fchmodat,
    libc::SYS_fchownat,
    libc::SYS_utimensat,
    libc::SYS_chroot,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    // network
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    // programs and processes
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_pidfd_send_signal,
    libc::SYS_tkill,
    libc::SYS_setns,
    libc::SYS_unshare,
    // limits and the kernel
    libc::SYS_setrlimit,
    libc::SYS_prlimit64,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_io_uring_setup,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_kexec_load,
    libc::SYS_reboot,
];

/// The same, for system calls only x86_64 has.
#[cfg(target_arch = "x86_64")]
const DENIED_X86_64: &[i64] = &[
    libc::SYS_open,
    libc::SYS_creat,
    libc::SYS_mknod,
    libc::SYS_unlink,
    libc::SYS_rename,
    libc::SYS_mkdir,
    libc::SYS_rmdir,
    libc::SYS_link,
    libc::SYS_symlink,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_lchown,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_fork,
    libc::SYS_vfork,
];
#[cfg(not(target_arch = "x86_64"))]
const DENIED_X86_64: &[i64] = &[];

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// Caps the address space at `baseline + extra` bytes (soft and hard, so
/// the worker cannot raise it again).
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

fn rule(conditions: Vec<SeccompCondition>) -> io::Result<SeccompRule> {
    SeccompRule::new(conditions).map_err(io::Error::other)
}

fn arg(index: u8, op: SeccompCmpOp, value: u64) -> io::Result<SeccompCondition> {
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(io::Error::other)
}

fn install(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> io::Result<()> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        ARCH,
    )
    .map_err(io::Error::other)?;
    let program: BpfProgram = filter.try_into().map_err(io::Error::other)?;
    seccompiler::apply_filter_all_threads(&program).map_err(io::Error::other)
}

/// Installs the filter on every thread of the process.
pub fn lock_down() -> io::Result<()> {
    let pid = u64::from(std::process::id());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED
        .iter()
        .chain(DENIED_X86_64)
        .map(|&nr| (nr, Vec::new()))
        .collect();
    // New processes: `clone` without CLONE_THREAD (threads stay allowed).
    let thread = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![arg(0, SeccompCmpOp::MaskedEq(thread), 0)?])?],
    );
    // Signals to anyone but itself (its own `abort` uses tgkill on itself).
    rules.insert(
        libc::SYS_kill,
        vec![rule(vec![arg(0, SeccompCmpOp::Ne, pid)?])?],
    );
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![arg(0, SeccompCmpOp::Ne, pid)?])?],
    );
    install(rules, libc::EACCES)?;
    // clone3 carries its flags in memory a filter cannot read: refuse it
    // with ENOSYS so the C library falls back to `clone` (checked above).
    install(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        libc::ENOSYS,
    )
}
