//! The worker side: a program that runs script extensions in workers calls
//! [`main_if_worker`] first thing in `main`; in a worker process it serves
//! the parent and never returns.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::crash;
use crate::protocol::{
    CONTROL_FD, ChildStatus, FromChild, FromZygote, PROTOCOL_VERSION, ToChild, ToZygote, WireError,
    encode_frame, parse, read_frame, write_frame,
};
use crate::sandbox;
use morph_core::Deadline;
use morph_core::script::{ScriptCall, ScriptEngine, ScriptHost, ScriptInstance, SharedHost};
use morph_core::{MorphError, Result};

/// Native stack of the thread that runs the engine in a worker.
const WORKER_STACK: usize = 64 << 20;

/// Largest frame a worker accepts from its parent (the extension source is
/// the largest).
const MAX_PARENT_FRAME: usize = 256 << 20;

/// Address space above the zygote's size at the fork that a call's child
/// may map besides the extension's `max_memory_mb`: what the engine itself
/// needs to run a call (a trivial Python or JavaScript call runs with
/// none; this is margin for the result's serialisation and allocator
/// rounding). The only other slack is what the zygote's heap holds free
/// at the fork (one malloc arena: see `main_if_worker`).
pub(crate) const ENGINE_HEADROOM: u64 = 2 << 20;

/// Address space the zygote may grow by while it compiles the extension
/// (besides 64 bytes per byte of source).
const ZYGOTE_LOAD_HEADROOM: u64 = 64 << 20;

static IS_WORKER: AtomicBool = AtomicBool::new(false);

/// Whether this process is a Morph worker (a worker never starts workers).
pub fn is_worker() -> bool {
    IS_WORKER.load(Ordering::Relaxed)
}

/// If this process was started as a Morph worker (its first argument is
/// [`WORKER_ARG`](crate::WORKER_ARG)), serves the parent with one of
/// `engines` and exits; otherwise returns at once, having touched nothing
/// (it only reads the arguments). Call it first thing in `main` of every
/// program that runs JavaScript or Python extensions in workers (the
/// `morph` CLI does; test binaries with `harness = false` do it in their
/// `main`): the worker is this same program, re-executed.
///
/// The parent starts a worker with an empty environment, its standard
/// streams as the only open descriptors and a parent-death signal, so the
/// worker has nothing to undo here; it then takes stdin and stdout for the
/// protocol, caps its address space and closes its seccomp sandbox before
/// any extension code runs.
pub fn main_if_worker(engines: &[Arc<dyn ScriptEngine>]) {
    if crate::spawn::worker_kind().is_none() {
        return;
    }
    IS_WORKER.store(true, Ordering::Relaxed);
    // One malloc arena for every thread: a thread arena reserves 64 MiB of
    // address space up front, which the address-space cap would count as
    // used and a guest could then fill unseen. With the main arena only,
    // the heap grows (and is capped) as it is used.
    // SAFETY: mallopt with a constant, before this process starts threads
    // of its own.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let engines = engines.to_vec();
    let served = std::thread::Builder::new()
        .name("morph-worker".into())
        .stack_size(WORKER_STACK)
        .spawn(move || serve(&engines))
        .map_err(|e| format!("cannot start the worker thread: {e}"))
        .and_then(|t| {
            t.join()
                .map_err(|_| "the worker thread panicked".to_string())
        });
    match served {
        Ok(Ok(())) => std::process::exit(0),
        Ok(Err(e)) | Err(e) => {
            eprintln!("morph worker: {e}");
            std::process::exit(70)
        }
    }
}

/// A call's channel: the pipe ends the host made for it.
struct Channel {
    input: File,
    output: File,
}

/// What a call's child gets with its call: its channel and its stderr.
struct CallPipes {
    channel: Channel,
    /// The write end of the call's own stderr pipe.
    errors: File,
}

impl CallPipes {
    /// In a call's child: the call's pipes become descriptors 3 and 4, its
    /// stderr pipe descriptors 1 and 2 (so nothing it prints reaches the
    /// zygote's stderr, shared by every call), and every other descriptor
    /// above stderr is closed (the control socket, the zygote's files), so
    /// the guest holds nothing but its own call.
    fn renumber(self) -> io::Result<Channel> {
        use std::os::fd::IntoRawFd;
        let (input, output) = (
            self.channel.input.into_raw_fd(),
            self.channel.output.into_raw_fd(),
        );
        let errors = self.errors.into_raw_fd();
        // SAFETY: fcntl/dup3/close_range on descriptors of this
        // single-threaded child; the two new Files own 3 and 4 alone.
        // (dup3, not dup2: the zygote's filter, which the child is under
        // until its own, allows dup3.)
        unsafe {
            let high_in = libc::fcntl(input, libc::F_DUPFD_CLOEXEC, 16);
            let high_out = libc::fcntl(output, libc::F_DUPFD_CLOEXEC, 16);
            let high_err = libc::fcntl(errors, libc::F_DUPFD_CLOEXEC, 16);
            if high_in < 0
                || high_out < 0
                || high_err < 0
                || libc::dup3(high_in, 3, libc::O_CLOEXEC) < 0
                || libc::dup3(high_out, 4, libc::O_CLOEXEC) < 0
                || libc::dup3(high_err, 1, 0) < 0
                || libc::dup3(high_err, 2, 0) < 0
                || libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(Channel {
                input: File::from(OwnedFd::from_raw_fd(3)),
                output: File::from(OwnedFd::from_raw_fd(4)),
            })
        }
    }
}

impl Channel {
    fn send(&mut self, message: &FromChild) -> io::Result<()> {
        write_frame(&mut self.output, message)
    }

    fn receive(&mut self) -> io::Result<Option<ToChild>> {
        match read_frame(&mut self.input, MAX_PARENT_FRAME)? {
            Some(body) => parse(&body).map(Some),
            None => Ok(None),
        }
    }
}

/// Points stdin at /dev/null and stdout at stderr, so nothing the engine
/// prints can look like anything but stderr output (which the host counts
/// as the guest's output).
fn quiet_std() -> io::Result<()> {
    // SAFETY: open/dup2/close on the process's own standard descriptors.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null < 0 || libc::dup2(null, 0) < 0 || libc::dup2(2, 1) < 0 {
            return Err(io::Error::last_os_error());
        }
        libc::close(null);
    }
    Ok(())
}

/// Host calls of a call's child: relayed to the parent.
struct PipeHost(Arc<Mutex<Channel>>);

impl PipeHost {
    fn channel(&self) -> std::sync::MutexGuard<'_, Channel> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ScriptHost for PipeHost {
    fn call(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        let mut channel = self.channel();
        let request = String::from_utf8_lossy(request).into_owned();
        channel
            .send(&FromChild::HostCall { request })
            .map_err(|e| MorphError::host_error(format!("worker pipe: {e}")))?;
        match channel.receive() {
            Ok(Some(ToChild::HostResponse { result })) => result
                .map(String::into_bytes)
                .map_err(WireError::into_error),
            Ok(None) => Err(MorphError::host_error(
                "the parent did not answer the host call",
            )),
            Err(e) => Err(MorphError::host_error(format!("worker pipe: {e}"))),
        }
    }

    fn log(&mut self, level: i32, text: &str) -> Result<()> {
        self.channel()
            .send(&FromChild::Log {
                level,
                text: text.to_string(),
            })
            .map_err(|e| MorphError::host_error(format!("worker pipe: {e}")))
    }
}

/// `/proc/self/status`, opened before the sandbox closes, read for sizes.
struct Status(Option<File>);

impl Status {
    fn open() -> Status {
        Status(File::open("/proc/self/status").ok())
    }

    /// The `field` (kB) of `/proc/self/status`, in bytes.
    fn read(&mut self, field: &str) -> Option<u64> {
        let file = self.0.as_mut()?;
        file.seek(SeekFrom::Start(0)).ok()?;
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        let line = text.lines().find(|l| l.starts_with(field))?;
        let kb: u64 = line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }
}

/// Serves the parent: hello, load (in this process, the zygote), then one
/// forked child per call.
fn serve(engines: &[Arc<dyn ScriptEngine>]) -> std::result::Result<(), String> {
    quiet_std().map_err(|e| format!("standard streams: {e}"))?;
    let mut control = Control::take().map_err(|e| format!("control socket: {e}"))?;
    let control_error = |e: io::Error| format!("control socket: {e}");
    control
        .send(&FromZygote::Hello {
            protocol: PROTOCOL_VERSION,
        })
        .map_err(control_error)?;
    let Some((
        ToZygote::Load {
            kind,
            file,
            source,
            limits,
        },
        _,
    )) = control.receive().map_err(control_error)?
    else {
        return Err("the parent's first message was not `load`".into());
    };

    let mut status = Status::open();
    let loaded = (|| -> Result<Box<dyn ScriptInstance>> {
        let engine = engines.iter().find(|e| e.kind() == kind).ok_or_else(|| {
            MorphError::invalid_module(format!("this worker has no {kind} engine"))
        })?;
        engine.warm_up()?;
        let baseline = status.read("VmSize:").ok_or_else(|| {
            MorphError::host_error(
                "cannot read the worker's address-space size (/proc/self/status)",
            )
        })?;
        // Compiling the source is the first thing the extension decides:
        // under a cap and the zygote's filter already.
        let cap = baseline
            .saturating_add(limits.max_memory_bytes())
            .saturating_add(ZYGOTE_LOAD_HEADROOM)
            .saturating_add((source.len() as u64).saturating_mul(64));
        sandbox::cap_address_space_soft(cap).map_err(|e| {
            MorphError::host_error(format!("cannot cap the worker's address space: {e}"))
        })?;
        sandbox::lock_down_zygote().map_err(|e| {
            MorphError::host_error(format!(
                "cannot install the worker's seccomp filter (does this kernel have seccomp?): {e}"
            ))
        })?;
        control
            .send(&FromZygote::Compiling)
            .map_err(|e| MorphError::host_error(format!("control socket: {e}")))?;
        engine.load(&file, &source, &limits)
    })();
    drop(source);
    let mut instance = match loaded {
        Ok(instance) => {
            control
                .send(&FromZygote::Loaded { result: Ok(()) })
                .map_err(control_error)?;
            instance
        }
        Err(e) => {
            control
                .send(&FromZygote::Loaded {
                    result: Err(WireError::from(&e)),
                })
                .map_err(control_error)?;
            return Ok(());
        }
    };
    let verdicts = crash::Verdicts::new().map_err(|e| format!("crash page: {e}"))?;
    let mut zygote = Zygote {
        control,
        status,
        verdicts,
        limits,
        spare: None,
        running: Vec::new(),
    };
    zygote.serve(&mut *instance)
}

/// A child forked ahead of its call: it has done its after-fork work and
/// waits on `go` for the call and its pipes.
struct Spare {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    go: File,
}

/// A child running (or finishing) a call.
struct Running {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    seq: u64,
}

/// The worker process between calls: it hands each call to a spare child
/// (forked ahead, so the fork is off the call's path), forks the next
/// spare, reaps children and reports how each ended.
struct Zygote {
    control: Control,
    status: Status,
    verdicts: crash::Verdicts,
    limits: morph_core::ResourceLimits,
    spare: Option<Spare>,
    running: Vec<Running>,
}

impl Zygote {
    fn serve(&mut self, instance: &mut dyn ScriptInstance) -> std::result::Result<(), String> {
        let control_error = |e: io::Error| format!("control socket: {e}");
        loop {
            if self.spare.is_none() {
                self.spare = self.fork_spare(instance);
            }
            self.wait(&mut *instance).map_err(control_error)?;
        }
    }

    /// Forks a spare child; `None` if that fails (the next call then
    /// reports its child not started).
    fn fork_spare(&mut self, instance: &mut dyn ScriptInstance) -> Option<Spare> {
        let (zygote_end, spare_end) = UnixStream::pair().ok()?;
        let at_fork = Sizes {
            address_space: self.status.read("VmSize:").unwrap_or(0),
            resident: self.status.read("VmRSS:").unwrap_or(0),
        };
        let zygote = std::process::id();
        let pid = crate::fork::fork();
        if pid == 0 {
            drop(zygote_end);
            let code = spare_main(
                File::from(OwnedFd::from(spare_end)),
                instance,
                &self.limits,
                at_fork,
                zygote,
                &self.verdicts,
            );
            // SAFETY: the child ends here without unwinding or running the
            // zygote's exit handlers.
            unsafe { libc::_exit(code) }
        }
        drop(spare_end);
        if pid < 0 {
            return None;
        }
        Some(Spare {
            pid,
            pidfd: pidfd(pid),
            go: File::from(OwnedFd::from(zygote_end)),
        })
    }

    /// Waits for the host or a child and handles what happened.
    fn wait(&mut self, instance: &mut dyn ScriptInstance) -> io::Result<()> {
        let mut fds = vec![libc::pollfd {
            fd: self.control.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let mut without_pidfd = false;
        for pidfd in self
            .running
            .iter()
            .map(|r| &r.pidfd)
            .chain(self.spare.iter().map(|s| &s.pidfd))
        {
            match pidfd {
                Some(fd) => fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }),
                None => without_pidfd = true,
            }
        }
        // Without pidfds (kernels before 5.3), look every 2 ms.
        let timeout = if without_pidfd { 2 } else { -1 };
        // SAFETY: poll on valid pollfd entries.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        // Children first: an `Ended` goes out before the next `Run` is read.
        self.reap_children()?;
        if fds[0].revents != 0 {
            match self.control.receive()? {
                None => {
                    self.kill_all();
                    std::process::exit(0);
                }
                Some((ToZygote::Run { .. }, fds)) if fds.len() != 3 => {
                    return Err(io::Error::other(
                        "a `run` without exactly three descriptors",
                    ));
                }
                Some((
                    ToZygote::Run {
                        call,
                        remaining_ms,
                        seq,
                    },
                    fds,
                )) => self.start(instance, call, remaining_ms, seq, fds)?,
                Some((ToZygote::Abort { seq }, _)) => {
                    if let Some(child) = self.running.iter().find(|r| r.seq == seq) {
                        kill(child.pid);
                    }
                }
                Some((ToZygote::Load { .. }, _)) => {
                    return Err(io::Error::other("a second `load` from the parent"));
                }
            }
        }
        Ok(())
    }

    /// Hands call `seq` to the spare (forking one now if there is none).
    fn start(
        &mut self,
        instance: &mut dyn ScriptInstance,
        call: crate::protocol::WireCall,
        remaining_ms: u64,
        seq: u64,
        fds: Vec<OwnedFd>,
    ) -> io::Result<()> {
        self.verdicts.clear(seq);
        let spare = match self.spare.take() {
            Some(spare) => Some(spare),
            None => self.fork_spare(instance),
        };
        let handed = spare.and_then(|mut spare| {
            let frame = encode_frame(&ToZygote::Run {
                call,
                remaining_ms,
                seq,
            })
            .ok()?;
            let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
            match crate::passing::send_with_fds(&mut spare.go, &frame, &raw) {
                Ok(()) => Some(spare),
                Err(_) => {
                    kill(spare.pid);
                    reap(spare.pid);
                    None
                }
            }
        });
        // Only the child holds the call's pipes now: their end of file is
        // its end.
        drop(fds);
        match handed {
            Some(spare) => self.running.push(Running {
                pid: spare.pid,
                pidfd: spare.pidfd,
                seq,
            }),
            None => self.control.send(&FromZygote::Ended {
                seq,
                status: ChildStatus::NotStarted,
                verdict: None,
            })?,
        }
        Ok(())
    }

    /// Reaps every child that has ended: a running one is reported, a
    /// spare that died is replaced later.
    fn reap_children(&mut self) -> io::Result<()> {
        let mut i = 0;
        while i < self.running.len() {
            match try_reap(self.running[i].pid)? {
                Some(status) => {
                    let child = self.running.swap_remove(i);
                    self.control.send(&FromZygote::Ended {
                        seq: child.seq,
                        status,
                        verdict: self.verdicts.read(child.seq),
                    })?;
                }
                None => i += 1,
            }
        }
        if let Some(spare) = &self.spare
            && try_reap(spare.pid)?.is_some()
        {
            self.spare = None;
        }
        Ok(())
    }

    fn kill_all(&mut self) {
        for pid in self
            .running
            .iter()
            .map(|r| r.pid)
            .chain(self.spare.iter().map(|s| s.pid))
        {
            kill(pid);
            reap(pid);
        }
    }
}

fn pidfd(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with a child's pid; the descriptor, if any, is
    // owned here.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a new descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A spare child: waits for its call, then runs it.
fn spare_main(
    mut go: File,
    instance: &mut dyn ScriptInstance,
    limits: &morph_core::ResourceLimits,
    at_fork: Sizes,
    zygote: u32,
    verdicts: &crash::Verdicts,
) -> i32 {
    // The control socket is the zygote's alone.
    // SAFETY: closing a descriptor number this process holds.
    unsafe { libc::close(CONTROL_FD) };
    let Ok(Some((body, fds))) = crate::passing::read_with_fds(&mut go, MAX_PARENT_FRAME) else {
        // The zygote is going away (or wrote nonsense): nothing to run.
        return 0;
    };
    drop(go);
    let Ok(ToZygote::Run {
        call,
        remaining_ms,
        seq,
    }) = parse::<ToZygote>(&body)
    else {
        return CHILD_SETUP_FAILED;
    };
    let mut fds = fds.into_iter();
    let (Some(input), Some(output), Some(errors)) = (fds.next(), fds.next(), fds.next()) else {
        return CHILD_SETUP_FAILED;
    };
    let pipes = CallPipes {
        channel: Channel {
            input: File::from(input),
            output: File::from(output),
        },
        errors: File::from(errors),
    };
    run_child(
        pipes,
        instance,
        &call,
        Duration::from_millis(remaining_ms),
        seq,
        limits,
        at_fork,
        zygote,
        verdicts,
    )
}

/// The zygote's sizes when it forked a call's child.
#[derive(Clone, Copy)]
struct Sizes {
    address_space: u64,
    resident: u64,
}

/// The forked child of one call: closes the control socket, caps its
/// address space, closes its sandbox, runs the call, answers. Returns its
/// exit status.
#[allow(clippy::too_many_arguments)]
fn run_child(
    pipes: CallPipes,
    instance: &mut dyn ScriptInstance,
    call: &crate::protocol::WireCall,
    remaining: Duration,
    seq: u64,
    limits: &morph_core::ResourceLimits,
    at_fork: Sizes,
    zygote: u32,
    verdict: &crash::Verdicts,
) -> i32 {
    let deadline = Deadline::after(remaining);
    let Ok(channel) = pipes.renumber() else {
        return CHILD_SETUP_FAILED;
    };
    // SAFETY: prctl and getppid with plain arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() as u32 != zygote {
            return CHILD_SETUP_FAILED;
        }
    }
    let cap = at_fork
        .address_space
        .saturating_add(limits.max_memory_bytes())
        .saturating_add(ENGINE_HEADROOM);
    crash::install(verdict, seq);
    if sandbox::cap_address_space(cap).is_err() || sandbox::lock_down().is_err() {
        // No extension code runs without both.
        return CHILD_SETUP_FAILED;
    }
    let channel = Arc::new(Mutex::new(channel));
    let host: SharedHost = Arc::new(Mutex::new(PipeHost(channel.clone())));
    let result = instance
        .run(ScriptCall {
            call: call.as_call(),
            host,
            deadline,
            limits: *limits,
        })
        .and_then(|bytes| {
            // Checked here too, so an oversized result costs no pipe
            // traffic.
            if bytes.len() as u64 > limits.max_output_bytes {
                return Err(MorphError::quota_exceeded(format!(
                    "the result of {} bytes exceeds max_output_bytes = {}",
                    bytes.len(),
                    limits.max_output_bytes
                )));
            }
            Ok(bytes)
        });
    let memory_bytes = peak_resident().saturating_sub(at_fork.resident);
    let result = result
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| WireError::from(&e));
    let mut channel = channel.lock().unwrap_or_else(|p| p.into_inner());
    match channel.send(&FromChild::Done {
        result,
        memory_bytes,
        seq,
    }) {
        Ok(()) => 0,
        Err(_) => CHILD_SETUP_FAILED,
    }
}

/// Exit status of a child that could not set itself up or answer.
const CHILD_SETUP_FAILED: i32 = 71;

/// This process's peak resident size, in bytes (`getrusage`).
fn peak_resident() -> u64 {
    // SAFETY: rusage is plain integers, for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    (usage.ru_maxrss.max(0) as u64).saturating_mul(1024)
}

/// The zygote's end of the control channel.
struct Control(File);

impl Control {
    /// Takes descriptor [`CONTROL_FD`] (close-on-exec from now on).
    fn take() -> io::Result<Control> {
        // SAFETY: fcntl on the descriptor the parent placed at CONTROL_FD;
        // from_raw_fd takes sole ownership of it.
        unsafe {
            if libc::fcntl(CONTROL_FD, libc::F_SETFD, libc::FD_CLOEXEC) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Control(File::from(OwnedFd::from_raw_fd(CONTROL_FD))))
        }
    }

    fn send(&mut self, message: &FromZygote) -> io::Result<()> {
        write_frame(&mut self.0, message)
    }

    /// The next frame from the host and the descriptors it carried.
    fn receive(&mut self) -> io::Result<Option<(ToZygote, Vec<OwnedFd>)>> {
        match crate::passing::read_with_fds(&mut self.0, MAX_PARENT_FRAME)? {
            Some((body, fds)) => Ok(Some((parse(&body)?, fds))),
            None => Ok(None),
        }
    }
}

fn kill(pid: libc::pid_t) {
    // SAFETY: a signal to this process's own unreaped child (its pid cannot
    // be reused before the wait below).
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for this process's own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

/// The child's status if it has ended (reaping it).
fn try_reap(pid: libc::pid_t) -> io::Result<Option<ChildStatus>> {
    let mut status = 0;
    // SAFETY: waits for this process's own child, without blocking.
    let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if got < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(None)
        } else {
            Err(e)
        };
    }
    if got == 0 {
        return Ok(None);
    }
    Ok(Some(if libc::WIFSIGNALED(status) {
        ChildStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ChildStatus::Exited(libc::WEXITSTATUS(status))
    }))
}
