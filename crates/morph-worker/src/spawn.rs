//! Starting worker processes: from one long-lived thread, with nothing of
//! the host process leaking into them.
//!
//! The worker is this program re-executed with [`WORKER_ARG`] and its kind
//! as its first two arguments, an empty environment, `/` as its working
//! directory and a process group of its own. Between `fork` and `exec`
//! (in the child, where only async-signal-safe calls are allowed) every
//! descriptor above stderr is marked close-on-exec, so no file or socket
//! the host opened without `O_CLOEXEC` reaches the extension, the control
//! socket is placed at [`CONTROL_FD`], and the child asks for `SIGKILL`
//! when its parent dies.
//!
//! Linux delivers that parent-death signal when the *thread* that forked
//! the child exits, not the process. Every worker is therefore forked by
//! one thread that lives as long as the process: [`spawn`] hands the
//! command to it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crossbeam_channel::{Sender, bounded, unbounded};

use crate::parent::WorkerCommand;
use crate::protocol::CONTROL_FD;

/// The first argument of a worker process; the second is its kind.
pub const WORKER_ARG: &str = "--morph-worker";

/// Whether this process's arguments make it a worker, and of which kind.
pub(crate) fn worker_kind() -> Option<String> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(WORKER_ARG)) {
        return None;
    }
    Some(args.next()?.to_string_lossy().into_owned())
}

type Request = (Command, Sender<io::Result<Child>>);

/// The long-lived thread that forks every worker.
fn spawner() -> io::Result<&'static Sender<Request>> {
    static SPAWNER: OnceLock<std::result::Result<Sender<Request>, String>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (requests, inbox) = unbounded::<Request>();
            std::thread::Builder::new()
                .name("morph-worker-spawner".into())
                .spawn(move || {
                    for (mut command, reply) in inbox {
                        let _ = reply.send(command.spawn());
                    }
                })
                .map(|_| requests)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the worker spawner thread: {e}")))
}

/// Marks every descriptor above stderr close-on-exec and asks for
/// `SIGKILL` when the parent (the spawner thread) dies. Runs in the forked
/// child before `exec`: only async-signal-safe system calls.
fn prepare_child(parent: libc::pid_t, control: RawFd) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors of this (forked, single-threaded) child; it is a plain
    // system call, async-signal-safe.
    let marked = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if marked != 0 {
        // Kernels before 5.11: one descriptor at a time.
        for fd in 3..4096 {
            // SAFETY: fcntl on a descriptor number; EBADF for unused ones.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    // The control socket at its fixed number, without close-on-exec.
    // SAFETY: dup2/fcntl on descriptors this child holds.
    let placed = unsafe {
        if control == CONTROL_FD {
            libc::fcntl(control, libc::F_SETFD, 0)
        } else {
            libc::dup2(control, CONTROL_FD)
        }
    };
    if placed < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // The parent may have died before the request above: then nobody
    // would ever kill this child.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::other(
            "the parent exited while the worker started",
        ));
    }
    Ok(())
}

/// A socket pair for the control channel, both ends close-on-exec.
fn control_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair writes two new descriptors into `fds`, each then
    // owned exactly once.
    let made = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if made != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Starts `command` as a worker of `kind` with its stderr piped and a
/// control socket, from the spawner thread. Returns the process and the
/// host's end of the control socket.
pub(crate) fn spawn(command: &WorkerCommand, kind: &str) -> io::Result<(Child, OwnedFd)> {
    let (host_end, worker_end) = control_pair()?;
    let mut cmd = Command::new(&command.program);
    cmd.arg(WORKER_ARG)
        .arg(kind)
        .args(&command.args)
        // Nothing of the host's environment (tokens, paths) reaches the
        // extension.
        .env_clear()
        .current_dir("/")
        // Its own process group: a signal to "everyone in my group"
        // cannot reach the host.
        .process_group(0)
        // The protocol runs on the control socket and each call's own
        // pipes; stdout is pointed at stderr by the worker itself.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let parent = std::process::id() as libc::pid_t;
    let control = worker_end.as_raw_fd();
    // SAFETY: `prepare_child` makes only async-signal-safe system calls
    // and allocates nothing, as code between fork and exec must.
    unsafe { cmd.pre_exec(move || prepare_child(parent, control)) };
    let (reply, answer) = bounded(1);
    spawner()?
        .send((cmd, reply))
        .map_err(|_| io::Error::other("the worker spawner thread has stopped"))?;
    let child = answer
        .recv()
        .map_err(|_| io::Error::other("the worker spawner thread has stopped"))??;
    // The worker has its copy; the host keeps only its own end.
    drop(worker_end);
    Ok((child, host_end))
}
