//! The worker sandbox at the system-call level, without any language's
//! own checks: a child process of this test closes the sandbox and then
//! tries to open a file, open a socket, start a program, fork, start a
//! thread, signal its parent, raise its address-space cap and reach the
//! same calls through the x32 ABI. Each must fail; memory, clocks and
//! randomness keep working.

#![cfg(target_os = "linux")]

use std::process::Command;

use morph_worker::sandbox;

const CHILD: &str = "MORPH_SANDBOX_TEST_CHILD";

fn denied<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> bool {
    match r {
        Ok(_) => {
            println!("ALLOWED {what}");
            false
        }
        Err(e) => {
            println!("denied {what}: {e}");
            true
        }
    }
}

fn child() -> i32 {
    let baseline = 1u64 << 40;
    if let Err(e) = sandbox::cap_address_space(baseline) {
        println!("cap_address_space: {e}");
        return 2;
    }
    if let Err(e) = sandbox::lock_down() {
        println!("lock_down: {e}");
        return 3;
    }
    let parent = std::os::unix::process::parent_id() as i32;
    let raise = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    let checks = [
        denied("open /etc/hostname", std::fs::File::open("/etc/hostname")),
        denied(
            "create /tmp file",
            std::fs::File::create("/tmp/morph-sandbox-escape"),
        ),
        denied("list /", std::fs::read_dir("/")),
        denied("tcp connect", std::net::TcpStream::connect("127.0.0.1:9")),
        denied("udp bind", std::net::UdpSocket::bind("127.0.0.1:0")),
        denied("spawn /bin/true", Command::new("/bin/true").status()),
        // SAFETY: plain system calls with valid arguments.
        denied(
            "fork",
            match unsafe { libc::fork() } {
                -1 => Err(std::io::Error::last_os_error()),
                0 => std::process::exit(0),
                pid => Ok(pid),
            },
        ),
        denied(
            "kill parent",
            match unsafe { libc::kill(parent, 0) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            },
        ),
        denied(
            "raise RLIMIT_AS",
            match unsafe { libc::setrlimit(libc::RLIMIT_AS, &raise) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            },
        ),
        denied("queue a signal to the parent", {
            // SAFETY: a zeroed siginfo is a valid argument.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            info.si_code = -1; // SI_QUEUE
            match unsafe {
                libc::syscall(libc::SYS_rt_sigqueueinfo, parent, 0, &mut info as *mut _)
            } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        }),
        denied("start a thread", std::thread::Builder::new().spawn(|| ())),
        // SAFETY: a plain system call with valid arguments.
        denied(
            "x32 openat",
            match unsafe {
                libc::syscall(
                    0x4000_0000 | libc::SYS_openat,
                    libc::AT_FDCWD,
                    c"/etc/hostname".as_ptr(),
                    0,
                )
            } {
                -1 => Err(std::io::Error::last_os_error()),
                fd => Ok(fd),
            },
        ),
    ];
    // What must keep working.
    let works = vec![0u8; 1 << 20].len() == 1 << 20
        && std::time::Instant::now().elapsed().as_secs() == 0
        && getrandom_works();
    println!("memory, clock and randomness work: {works}");
    if checks.iter().all(|d| *d) && works {
        0
    } else {
        1
    }
}

fn getrandom_works() -> bool {
    let mut buf = [0u8; 16];
    // SAFETY: writes at most buf.len() bytes into buf.
    unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) == 16 }
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        std::process::exit(child());
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .env(CHILD, "1")
        .output()
        .expect("start the sandboxed child");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        std::fs::metadata("/tmp/morph-sandbox-escape").is_err(),
        "the sandboxed child created a file"
    );
    assert!(out.status.success(), "sandbox check failed: {}", out.status);
    println!("sandbox: ok");
}
