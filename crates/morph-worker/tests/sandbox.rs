//! The worker sandbox at the system-call level, without any language's
//! own checks. A child process of this test closes the call sandbox (the
//! filter of a call's child) and then tries everything the allowlist must
//! refuse; another closes the zygote's filter, checks what it refuses,
//! and forks a child that closes the call filter on top. Memory, clocks,
//! sleeping, randomness and futexes keep working.

#![cfg(target_os = "linux")]

use std::os::fd::AsRawFd;
use std::process::Command;

use morph_worker::sandbox;

const CHILD: &str = "MORPH_SANDBOX_TEST_CHILD";

/// The result of a raw system call: -1 and errno, or the value.
fn sys(r: libc::c_long) -> Result<libc::c_long, std::io::Error> {
    if r == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Refused by the filter: `EACCES`, or `ENOSYS` for `clone3` (any other
/// error means the kernel ran the call and found something else wrong).
fn denied<T>(what: &str, r: Result<T, std::io::Error>) -> bool {
    match r {
        Ok(_) => {
            println!("ALLOWED {what}");
            false
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::ENOSYS)) => {
            println!("denied {what}: {e}");
            true
        }
        Err(e) => {
            println!("NOT REFUSED BY THE FILTER {what}: {e}");
            false
        }
    }
}

fn works(what: &str, ok: bool) -> bool {
    println!("{} {what}", if ok { "works" } else { "BROKEN" });
    ok
}

/// Everything a call's child must not do.
fn call_refusals(parent: i32, proc_dir: &std::fs::File) -> Vec<bool> {
    let raise = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    let mut buf = [0u8; 4096];
    // SAFETY (every block below): raw system calls with valid arguments,
    // made to be refused; none may succeed in a correct sandbox.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        info.si_code = -1; // SI_QUEUE
        let iov_local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: 16,
        };
        let iov_remote = libc::iovec {
            iov_base: 0x1000 as *mut libc::c_void,
            iov_len: 16,
        };
        let mut clone_args = [0u64; 11];
        clone_args[4] = libc::SIGCHLD as u64; // exit_signal
        let mut checks = vec![
            denied("open /etc/hostname", std::fs::File::open("/etc/hostname")),
            denied(
                "create /tmp file",
                std::fs::File::create("/tmp/morph-sandbox-escape"),
            ),
            denied("list /", std::fs::read_dir("/")),
            denied("stat /etc/passwd", std::fs::metadata("/etc/passwd")),
            denied(
                "readlink /proc/<parent>/cwd",
                std::fs::read_link(format!("/proc/{parent}/cwd")),
            ),
            denied(
                "readlink /proc/<parent>/fd/0",
                std::fs::read_link(format!("/proc/{parent}/fd/0")),
            ),
            denied(
                "readlink /proc/self/cwd",
                std::fs::read_link("/proc/self/cwd"),
            ),
            denied(
                "getdents64 of /proc (a directory opened before)",
                sys(libc::syscall(
                    libc::SYS_getdents64,
                    proc_dir.as_raw_fd(),
                    buf.as_mut_ptr(),
                    buf.len(),
                )),
            ),
            denied("tcp connect", std::net::TcpStream::connect("127.0.0.1:9")),
            denied("udp bind", std::net::UdpSocket::bind("127.0.0.1:0")),
            denied(
                "socket(AF_UNIX)",
                sys(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) as libc::c_long),
            ),
            denied(
                "socketpair",
                sys(
                    libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, [0i32; 2].as_mut_ptr())
                        as libc::c_long,
                ),
            ),
            denied("execve /bin/true", Command::new("/bin/true").status()),
            denied(
                "fork",
                match libc::fork() {
                    -1 => Err(std::io::Error::last_os_error()),
                    0 => libc::_exit(0),
                    pid => Ok(pid),
                },
            ),
            denied("vfork", sys(libc::syscall(libc::SYS_vfork))),
            denied(
                "clone (fork flags)",
                match libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) {
                    -1 => Err(std::io::Error::last_os_error()),
                    0 => libc::_exit(0),
                    pid => Ok(pid),
                },
            ),
            denied(
                "clone3",
                match libc::syscall(
                    libc::SYS_clone3,
                    clone_args.as_mut_ptr(),
                    std::mem::size_of_val(&clone_args),
                ) {
                    -1 => Err(std::io::Error::last_os_error()),
                    0 => libc::_exit(0),
                    pid => Ok(pid),
                },
            ),
            denied("start a thread", std::thread::Builder::new().spawn(|| ())),
            denied(
                "kill(parent, 0)",
                sys(libc::kill(parent, 0) as libc::c_long),
            ),
            denied(
                "kill(0, 0) (its process group)",
                sys(libc::kill(0, 0) as libc::c_long),
            ),
            denied(
                "tgkill(parent)",
                sys(libc::syscall(libc::SYS_tgkill, parent, parent, 0)),
            ),
            denied(
                "queue a signal to the parent",
                sys(libc::syscall(
                    libc::SYS_rt_sigqueueinfo,
                    parent,
                    0,
                    &mut info as *mut _,
                )),
            ),
            denied(
                "ptrace(PTRACE_ATTACH, parent)",
                sys(libc::ptrace(libc::PTRACE_ATTACH, parent, 0, 0)),
            ),
            denied(
                "process_vm_readv(parent)",
                sys(
                    libc::process_vm_readv(parent, &iov_local, 1, &iov_remote, 1, 0)
                        as libc::c_long,
                ),
            ),
            denied(
                "raise RLIMIT_AS",
                sys(libc::setrlimit(libc::RLIMIT_AS, &raise) as libc::c_long),
            ),
            denied(
                "shmget",
                sys(libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) as libc::c_long),
            ),
            denied("shmat", sys(libc::syscall(libc::SYS_shmat, 0, 0, 0))),
            denied(
                "msgget",
                sys(libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) as libc::c_long),
            ),
            denied(
                "msgrcv",
                sys(libc::syscall(
                    libc::SYS_msgrcv,
                    0,
                    buf.as_mut_ptr(),
                    16,
                    0,
                    libc::IPC_NOWAIT,
                )),
            ),
            denied(
                "semget",
                sys(libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600) as libc::c_long),
            ),
            denied(
                "semop",
                sys(libc::syscall(libc::SYS_semop, 0, buf.as_mut_ptr(), 1)),
            ),
            denied(
                "ioctl(2, TIOCSTI)",
                sys(libc::ioctl(2, libc::TIOCSTI, c"x".as_ptr()) as libc::c_long),
            ),
            denied(
                "personality (query)",
                sys(libc::syscall(libc::SYS_personality, 0xffff_ffffu32)),
            ),
            denied(
                "prctl(PR_SET_DUMPABLE)",
                sys(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) as libc::c_long),
            ),
            denied(
                "unshare",
                sys(libc::unshare(libc::CLONE_NEWUSER) as libc::c_long),
            ),
            denied("bpf", sys(libc::syscall(libc::SYS_bpf, 0, 0, 0))),
            denied(
                "io_uring_setup",
                sys(libc::syscall(libc::SYS_io_uring_setup, 1, buf.as_mut_ptr())),
            ),
            denied("userfaultfd", sys(libc::syscall(libc::SYS_userfaultfd, 0))),
            denied(
                "memfd_create",
                sys(libc::syscall(libc::SYS_memfd_create, c"x".as_ptr(), 0)),
            ),
            denied(
                "a second seccomp filter",
                sys(libc::syscall(libc::SYS_seccomp, 0, 0, 0)),
            ),
        ];
        #[cfg(target_arch = "x86_64")]
        checks.extend([
            denied(
                "modify_ldt",
                sys(libc::syscall(
                    libc::SYS_modify_ldt,
                    0,
                    buf.as_mut_ptr(),
                    buf.len(),
                )),
            ),
            denied(
                "x32 openat",
                sys(libc::syscall(
                    0x4000_0000 | libc::SYS_openat,
                    libc::AT_FDCWD,
                    c"/etc/hostname".as_ptr(),
                    0,
                )),
            ),
            denied(
                "x32 getpid",
                sys(libc::syscall(0x4000_0000 | libc::SYS_getpid)),
            ),
        ]);
        checks
    }
}

/// What must keep working in a call's child.
fn call_works() -> Vec<bool> {
    let mut word = 0u32;
    let started = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(2));
    // SAFETY: futex wake on a local word (no waiter: returns 0).
    let woke = unsafe {
        libc::syscall(
            libc::SYS_futex,
            &mut word as *mut u32,
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    };
    let mut random = [0u8; 16];
    // SAFETY: getrandom writes at most random.len() bytes into it.
    let got = unsafe { libc::getrandom(random.as_mut_ptr().cast(), random.len(), 0) };
    let big = vec![7u8; 64 << 20];
    vec![
        works(
            "memory (64 MiB)",
            big.iter().map(|b| *b as u64).sum::<u64>() == 7 * (64 << 20),
        ),
        works("clocks and sleeping", started.elapsed().as_millis() >= 2),
        works(
            "wall clock",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .is_ok_and(|d| d.as_secs() > 0),
        ),
        works("randomness", got == 16),
        works("futex", woke == 0),
        // SAFETY: getpid/getrusage have no preconditions.
        works("getpid", unsafe { libc::getpid() } > 0),
        works("getrusage", {
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0 }
        }),
    ]
}

fn call_child() -> i32 {
    let parent = std::os::unix::process::parent_id() as i32;
    let Ok(proc_dir) = std::fs::File::open("/proc") else {
        println!("cannot open /proc before the sandbox");
        return 2;
    };
    if let Err(e) = sandbox::cap_address_space(1 << 40) {
        println!("cap_address_space: {e}");
        return 2;
    }
    if let Err(e) = sandbox::lock_down() {
        println!("lock_down: {e}");
        return 3;
    }
    let refused = call_refusals(parent, &proc_dir);
    let working = call_works();
    if refused.iter().all(|d| *d) && working.iter().all(|w| *w) {
        0
    } else {
        1
    }
}

fn zygote_child() -> i32 {
    let parent = std::os::unix::process::parent_id() as i32;
    if let Err(e) = sandbox::lock_down_zygote() {
        println!("lock_down_zygote: {e}");
        return 3;
    }
    // SAFETY: raw system calls made to be refused.
    let refused = unsafe {
        vec![
            denied(
                "zygote: open /etc/hostname",
                std::fs::File::open("/etc/hostname"),
            ),
            denied(
                "zygote: tcp connect",
                std::net::TcpStream::connect("127.0.0.1:9"),
            ),
            denied(
                "zygote: execve /bin/true",
                Command::new("/bin/true").status(),
            ),
            denied(
                "zygote: start a thread",
                std::thread::Builder::new().spawn(|| ()),
            ),
            denied("zygote: vfork", sys(libc::syscall(libc::SYS_vfork))),
            denied(
                "zygote: readlink /proc/<parent>/cwd",
                std::fs::read_link(format!("/proc/{parent}/cwd")),
            ),
            denied(
                "zygote: ptrace(PTRACE_ATTACH, parent)",
                sys(libc::ptrace(libc::PTRACE_ATTACH, parent, 0, 0)),
            ),
            denied(
                "zygote: kill(parent, 0)",
                sys(libc::kill(parent, 0) as libc::c_long),
            ),
            // Would kill this test's runner if it were allowed.
            denied(
                "zygote: kill(parent, SIGKILL)",
                sys(libc::kill(parent, libc::SIGKILL) as libc::c_long),
            ),
            denied(
                "zygote: kill(-1, SIGKILL)",
                sys(libc::kill(-1, libc::SIGKILL) as libc::c_long),
            ),
            denied(
                "zygote: ioctl(2, TIOCSTI)",
                sys(libc::ioctl(2, libc::TIOCSTI, c"x".as_ptr()) as libc::c_long),
            ),
        ]
    };
    // A fork works, and its child can close the call filter on top.
    // SAFETY: fork; the child only makes system calls and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let code = match sandbox::lock_down() {
            Ok(()) => {
                // SAFETY: plain system calls.
                let zygote = unsafe { libc::getppid() };
                let ok = denied(
                    "call under zygote: kill(zygote, SIGKILL)",
                    sys(unsafe { libc::kill(zygote, libc::SIGKILL) } as libc::c_long),
                ) && denied(
                    "call under zygote: fork",
                    match unsafe { libc::fork() } {
                        -1 => Err(std::io::Error::last_os_error()),
                        0 => unsafe { libc::_exit(0) },
                        pid => Ok(pid),
                    },
                );
                if ok { 0 } else { 1 }
            }
            Err(_) => 3,
        };
        // SAFETY: ends the forked child.
        unsafe { libc::_exit(code) }
    }
    let forked = works("zygote: fork", child > 0);
    let mut status = 0;
    // SAFETY: waits for its own child.
    let reaped = unsafe { libc::waitpid(child, &mut status, 0) } == child;
    let child_ok = works(
        "zygote: its child's call filter",
        reaped && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    );
    if refused.iter().all(|d| *d) && forked && child_ok {
        0
    } else {
        1
    }
}

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("call") => std::process::exit(call_child()),
        Ok("zygote") => std::process::exit(zygote_child()),
        _ => {}
    }
    let exe = std::env::current_exe().expect("test binary path");
    for mode in ["call", "zygote"] {
        let out = Command::new(&exe)
            .env(CHILD, mode)
            .output()
            .expect("start the sandboxed child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            std::fs::metadata("/tmp/morph-sandbox-escape").is_err(),
            "the sandboxed child created a file"
        );
        assert!(
            out.status.success(),
            "sandbox check ({mode}) failed: {}",
            out.status
        );
    }
    println!("sandbox: ok");
}
