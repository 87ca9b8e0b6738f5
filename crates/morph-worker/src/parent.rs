//! The host side: [`WorkerBackend`] runs a script engine in worker
//! processes, one warm pool per loaded extension.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};

use crate::protocol::{
    ChildStatus, FromChild, FromZygote, PROTOCOL_VERSION, ToChild, ToZygote, Verdict, WireCall,
    encode_frame, parse, read_frame, write_frame,
};
use morph_core::EffectivePolicy;
use morph_core::ResourceLimits;
use morph_core::RuntimeInfo;
use morph_core::RuntimeKind;
use morph_core::Session;
use morph_core::script::script_source;
use morph_core::{Backend, EntryCode, GuestCall, GuestRun, PreparedExtension};
use morph_core::{MorphError, Result};

/// How long a new worker may take to say hello and load its extension.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the parent looks at the deadline while a worker runs.
const POLL: Duration = Duration::from_millis(5);

/// Bytes of the zygote's own stderr kept for start-up error messages.
const STDERR_TAIL: usize = 4 << 10;

/// Bytes of a call's stderr held until its execution is charged for them;
/// more is counted, not kept (and is over any output quota).
const STDERR_PENDING: usize = 1 << 20;

/// How long a gone child's stderr pipe may take to be read to its end.
const STDERR_END_WAIT: Duration = Duration::from_secs(1);

/// Largest control frame from the zygote (its messages are small).
const MAX_CONTROL_FRAME: usize = 1 << 20;

/// How long a child that closed its output may take to be reported gone
/// before it is killed as hung up.
const HANGUP_GRACE: Duration = Duration::from_millis(200);

/// How long the zygote may take to report a child gone after an abort, or
/// a gone child's output to close.
const ABORT_WAIT: Duration = Duration::from_secs(2);

/// Idle workers kept per loaded extension.
const MAX_IDLE: usize = 4;

/// How long the input writer may lag behind an answer the child has
/// already read (it is between its last write and its count): past it, the
/// answer is still in flight, so the child asked again without reading it.
const ANSWER_WRITE_WAIT: Duration = Duration::from_secs(1);

/// The program started as a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    /// This program, re-executed (it must call
    /// [`main_if_worker`](crate::main_if_worker) first in `main`).
    pub fn current_exe() -> Result<Self> {
        let program = std::env::current_exe()
            .map_err(|e| MorphError::io_error(format!("cannot find this program's path: {e}")))?;
        Ok(WorkerCommand {
            program,
            args: Vec::new(),
        })
    }

    /// Another program that calls `main_if_worker` (for example the
    /// `morph` CLI built with the same engines).
    pub fn program(program: impl Into<PathBuf>) -> Self {
        WorkerCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }
}

/// Settings of a [`WorkerBackend`].
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The worker program. Default: this program.
    pub command: WorkerCommand,
    /// How long past the deadline a worker whose engine stops by itself
    /// gets before it is killed. Default 100 ms.
    pub grace: Duration,
}

impl WorkerOptions {
    /// Defaults, with this program as the worker.
    pub fn new() -> Result<Self> {
        Ok(WorkerOptions {
            command: WorkerCommand::current_exe()?,
            grace: Duration::from_millis(100),
        })
    }
}

/// Runs script extensions of one kind in worker processes: one process per
/// extension at a time, kept warm between executions and replaced after a
/// kill. The parent enforces `max_execution_ms` by killing the worker, and
/// the worker caps its own address space (`max_memory_mb`) and closes a
/// seccomp sandbox before it runs any extension code.
pub struct WorkerBackend {
    kind: RuntimeKind,
    info: RuntimeInfo,
    stops_at_deadline: bool,
    options: WorkerOptions,
}

impl WorkerBackend {
    /// A backend running `kind` extensions in workers, described by `info`.
    /// `stops_at_deadline`: the engine ends a call at its deadline by
    /// itself, so the worker gets [`WorkerOptions::grace`] before a kill.
    pub fn new(
        kind: RuntimeKind,
        info: RuntimeInfo,
        stops_at_deadline: bool,
        options: WorkerOptions,
    ) -> Self {
        WorkerBackend {
            kind,
            info,
            stops_at_deadline,
            options,
        }
    }
}

impl Backend for WorkerBackend {
    fn info(&self) -> RuntimeInfo {
        self.info.clone()
    }

    fn prepare(
        &self,
        code: &EntryCode,
        policy: &EffectivePolicy,
    ) -> Result<Arc<dyn PreparedExtension>> {
        if crate::is_worker() {
            return Err(MorphError::unsupported(
                "a Morph worker does not start workers of its own",
            ));
        }
        let (file, source) = script_source(code, &self.info.name)?;
        let pool = WorkerPool {
            spec: Arc::new(Spec {
                kind: self.kind,
                file: file.to_string(),
                source: source.to_string(),
                limits: policy.limits,
                command: self.options.command.clone(),
            }),
            grace: if self.stops_at_deadline {
                self.options.grace
            } else {
                Duration::ZERO
            },
            idle: Arc::new(Mutex::new(Vec::new())),
        };
        // Start one now: a syntax error fails the load, and describe() runs
        // on a warm worker.
        let worker = Worker::start(&pool.spec)?;
        WorkerPool::release(&pool.idle, worker);
        Ok(Arc::new(pool))
    }
}

/// What a worker is started with.
struct Spec {
    kind: RuntimeKind,
    file: String,
    source: String,
    limits: ResourceLimits,
    command: WorkerCommand,
}

impl Spec {
    /// Largest frame the parent accepts from a worker: output is capped by
    /// `max_output_bytes`, plus room for the JSON around it.
    fn max_frame(&self) -> usize {
        usize::try_from(self.limits.max_output_bytes)
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .saturating_add(64 << 10)
    }
}

struct WorkerPool {
    spec: Arc<Spec>,
    grace: Duration,
    idle: Arc<Mutex<Vec<Worker>>>,
}

impl WorkerPool {
    /// A warm worker, or a new one. Starting one is the host's work, not
    /// the guest's: the execution's deadline moves by the time it took.
    fn acquire(&self, deadline: &morph_core::Deadline) -> Result<Worker> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            // A worker that died while idle, or sent anything between
            // calls (a forged answer for the next call), is dropped.
            match idle {
                Some(mut worker) => {
                    if worker.healthy() {
                        return Ok(worker);
                    }
                }
                None => break,
            }
        }
        let started = Instant::now();
        let worker = Worker::start(&self.spec)?;
        deadline.extend(started.elapsed());
        Ok(worker)
    }

    fn release(idle: &Mutex<Vec<Worker>>, worker: Worker) {
        let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(worker);
        }
    }

    /// Starts a replacement for a killed worker in the background, so the
    /// next execution finds one warm.
    fn replace(&self) {
        let spec = self.spec.clone();
        let idle = Arc::downgrade(&self.idle);
        let spawned = std::thread::Builder::new()
            .name("morph-worker-start".into())
            .spawn(move || {
                if let Ok(worker) = Worker::start(&spec)
                    && let Some(idle) = idle.upgrade()
                {
                    WorkerPool::release(&idle, worker);
                }
            });
        if let Err(e) = spawned {
            tracing::debug!(target: "morph::worker", "no replacement worker: {e}");
        }
    }
}

impl PreparedExtension for WorkerPool {
    fn run(&self, mut session: Session, call: GuestCall<'_>) -> GuestRun {
        let deadline = session.deadline().clone();
        let result = match self.acquire(&deadline) {
            Ok(mut worker) => {
                let outcome = worker.run(&mut session, call, self.grace);
                if outcome.reusable {
                    WorkerPool::release(&self.idle, worker);
                } else {
                    self.replace();
                }
                outcome.result
            }
            Err(e) => Err(e),
        };
        let result = session.fatal_wins(result);
        GuestRun { session, result }
    }
}

/// A frame from a worker channel, or why there is none.
type Frame = io::Result<Vec<u8>>;

/// What the call-output reader saw, tagged with the call's number.
enum CallOutput {
    /// A frame, and how many host-call answers the writer had begun to
    /// write when it was read (a host call read before the answer to the
    /// previous one was begun was sent without reading it).
    Frame(Vec<u8>, u64),
    /// End of file: the child closed its output (or is gone).
    End,
    /// A frame above the cap, or a read error: the channel is unusable.
    Broken(io::Error),
}

/// A frame from the call's child, as `child_frame` takes it.
struct ChildFrame<'a> {
    body: &'a [u8],
    /// Answers the writer had begun when the frame was read.
    begun: u64,
    /// The child is gone or the execution failed: host calls go unserved.
    unanswerable: bool,
}

/// What the call-input writer is asked to do.
enum CallInput {
    /// Write to this call's pipe from now on.
    Open(Arc<File>),
    /// A frame for the current call (counted in `answers_begun` before it
    /// is written, in `answers_written` once written or dropped).
    Frame(Vec<u8>),
}

/// A call's stderr as its reader thread left it.
#[derive(Default)]
struct CallErr {
    /// Not yet charged to the execution.
    pending: Vec<u8>,
    /// Bytes beyond the pending cap, not kept.
    dropped: u64,
    /// The pipe reached its end (every holder, the call's child, is gone).
    ended: bool,
}

/// Starts the reader of each call's output pipe: a thread per call, so a
/// child that keeps its output open after its answer (until it is killed
/// at its deadline) holds up no later call's output.
struct OutputReaders {
    out: Sender<(u64, CallOutput)>,
    max_frame: usize,
    /// Answers the input writer has begun (stamped on every frame).
    begun: Arc<AtomicU64>,
}

impl OutputReaders {
    /// Reads call `seq`'s output `pipe` until its end, a broken frame, or
    /// the worker's end.
    fn start(&self, seq: u64, mut pipe: File) -> io::Result<()> {
        let (out, max_frame, begun) = (self.out.clone(), self.max_frame, self.begun.clone());
        std::thread::Builder::new()
            .name("morph-worker-out".into())
            .spawn(move || {
                loop {
                    let message = match read_frame(&mut pipe, max_frame) {
                        Ok(Some(body)) => CallOutput::Frame(body, begun.load(Ordering::SeqCst)),
                        Ok(None) => CallOutput::End,
                        Err(e) => CallOutput::Broken(e),
                    };
                    let last = !matches!(message, CallOutput::Frame(..));
                    if out.send((seq, message)).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(())
    }
}

/// The stderr of one call: a pipe of its own, whose write end only that
/// call's child holds (as its descriptors 1 and 2), read by a thread of
/// its own. What a child writes after its answer, or while the next call
/// runs, lands here and is charged to nobody else.
struct CallStderr {
    state: Arc<Mutex<CallErr>>,
    /// The reader has read a chunk it has not appended yet.
    busy: Arc<AtomicBool>,
    /// The host's read end (shared with the reader thread).
    pipe: Arc<File>,
}

impl CallStderr {
    /// Starts reading `pipe` (the host end of a call's stderr pipe).
    fn start(pipe: File) -> io::Result<CallStderr> {
        let pipe = Arc::new(pipe);
        let state = Arc::new(Mutex::new(CallErr::default()));
        let busy = Arc::new(AtomicBool::new(false));
        let (reader, into, flag) = (pipe.clone(), state.clone(), busy.clone());
        std::thread::Builder::new()
            .name("morph-worker-call-err".into())
            .spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    let n = match (&*reader).read(&mut buf) {
                        Ok(0) => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                        Ok(n) => n,
                    };
                    flag.store(true, Ordering::SeqCst);
                    let mut state = into.lock().unwrap_or_else(|p| p.into_inner());
                    let room = STDERR_PENDING.saturating_sub(state.pending.len());
                    let kept = n.min(room);
                    state.pending.extend_from_slice(&buf[..kept]);
                    state.dropped += (n - kept) as u64;
                    drop(state);
                    flag.store(false, Ordering::SeqCst);
                }
                into.lock().unwrap_or_else(|p| p.into_inner()).ended = true;
            })?;
        Ok(CallStderr { state, busy, pipe })
    }

    /// Waits (briefly) until the pipe holds nothing unread, so what the
    /// child wrote before its answer is charged to its execution; with
    /// `to_end`, until the pipe's end (the child is gone), at most
    /// [`STDERR_END_WAIT`].
    fn drain(&self, to_end: bool) {
        let until = Instant::now()
            + if to_end {
                STDERR_END_WAIT
            } else {
                Duration::from_millis(20)
            };
        loop {
            if self.state.lock().unwrap_or_else(|p| p.into_inner()).ended {
                return;
            }
            let mut unread: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int; the descriptor is the read end
            // of the call's stderr pipe, kept open by `pipe`.
            let ok =
                unsafe { libc::ioctl(self.pipe.as_raw_fd(), libc::FIONREAD, &mut unread) } == 0;
            // The reader may hold a chunk between its read and its append.
            let busy = self.busy.load(Ordering::SeqCst);
            if !ok || (!to_end && unread == 0 && !busy) || Instant::now() >= until {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// One worker process (the zygote) and its channels.
struct Worker {
    child: Child,
    /// Host end of the control socket (writes; a clone reads).
    control: UnixStream,
    from_zygote: Receiver<Frame>,
    /// Call-input writer and call-output reader, long-lived threads that
    /// are handed each call's pipe.
    call_input: Option<Sender<CallInput>>,
    /// The host end of the running call's input pipe (also the writer's),
    /// to see whether the child has read everything written to it.
    input_pipe: Option<Arc<File>>,
    /// Host-call answers handed to the writer, those it has begun to
    /// write, and those it has written (or dropped with a gone child): one
    /// at a time, never a queue.
    answers_sent: u64,
    answers_written: Arc<AtomicU64>,
    /// The number (1-based, as counted in `answers_sent`) of the last
    /// answer the writer dropped because the child had closed its input.
    answer_dropped: Arc<AtomicU64>,
    /// `answers_sent` when the running call started.
    call_answers_from: u64,
    /// The running call's child sent a host call that went unanswered (it
    /// was gone, or the execution had failed): it cannot answer its call
    /// after that without having skipped the answer.
    call_unanswered: bool,
    call_readers: OutputReaders,
    call_output: Receiver<(u64, CallOutput)>,
    /// The last few KiB of the zygote's own stderr (its start-up and
    /// between-call output, never a call's), for error messages only.
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
    /// The running (or last) call's stderr.
    call_stderr: Option<CallStderr>,
    /// The number of the last `Run` (from a random start).
    seq: u64,
    /// Calls answered whose children are not yet reported gone (a child
    /// exits right after its answer; one that keeps running is killed at
    /// its own deadline and grace). At most one stays while the next call
    /// runs.
    unsettled: Vec<Unsettled>,
}

/// A call whose child answered and has not been reaped yet.
struct Unsettled {
    seq: u64,
    kill_at: Instant,
    aborted_at: Option<Instant>,
}

struct Outcome {
    result: Result<Vec<u8>>,
    reusable: bool,
}

impl Outcome {
    fn lost(result: Result<Vec<u8>>) -> Self {
        Outcome {
            result,
            reusable: false,
        }
    }
}

/// A new pipe, both ends close-on-exec: (read, write).
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors, each owned exactly once.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe {
        (
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    })
}

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| MorphError::io_error(format!("{name} thread: {e}")))
}

impl Worker {
    /// Starts a worker, checks its hello and loads the extension.
    fn start(spec: &Spec) -> Result<Worker> {
        let (mut child, control) =
            crate::spawn::spawn(&spec.command, spec.kind.as_str()).map_err(|e| {
                MorphError::io_error(format!(
                    "cannot start the worker {}: {e}",
                    spec.command.program.display()
                ))
            })?;
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(MorphError::io_error("worker pipes missing"));
        };
        let mut guard = KillOnDrop(Some(child));
        let control = UnixStream::from(control);
        let _ = control.set_write_timeout(Some(START_TIMEOUT));
        let mut control_in = control
            .try_clone()
            .map_err(|e| MorphError::io_error(format!("control socket: {e}")))?;
        let (tx, from_zygote) = bounded::<Frame>(8);
        thread("morph-worker-ctl", move || {
            loop {
                let frame = read_frame(&mut control_in, MAX_CONTROL_FRAME);
                let end = !matches!(frame, Ok(Some(_)));
                let sent = match frame {
                    Ok(Some(body)) => tx.send(Ok(body)),
                    Ok(None) => break,
                    Err(e) => tx.send(Err(e)),
                };
                if end || sent.is_err() {
                    break;
                }
            }
        })?;
        // Unbounded, but never holds more than one answer: the parent
        // answers a host call only once the previous answer was read.
        let (call_input, inbox) = unbounded::<CallInput>();
        let answers_begun = Arc::new(AtomicU64::new(0));
        let answers_written = Arc::new(AtomicU64::new(0));
        let answer_dropped = Arc::new(AtomicU64::new(0));
        let (begun, written, dropped) = (
            answers_begun.clone(),
            answers_written.clone(),
            answer_dropped.clone(),
        );
        thread("morph-worker-in", move || {
            let mut pipe: Option<Arc<File>> = None;
            for message in inbox {
                match message {
                    CallInput::Open(file) => pipe = Some(file),
                    CallInput::Frame(frame) => {
                        let number = begun.fetch_add(1, Ordering::SeqCst) + 1;
                        // A child that died or stopped reading: EPIPE, and
                        // the frame is dropped with the call.
                        let delivered = pipe.as_deref().is_some_and(|p| {
                            let mut p: &File = p;
                            p.write_all(&frame).and_then(|()| p.flush()).is_ok()
                        });
                        if !delivered {
                            pipe = None;
                            dropped.store(number, Ordering::SeqCst);
                        }
                        written.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })?;
        let (out, call_output) = bounded::<(u64, CallOutput)>(8);
        let call_readers = OutputReaders {
            out,
            max_frame: spec.max_frame(),
            begun: answers_begun.clone(),
        };
        // The zygote's own stderr: a call's child writes to a pipe of its
        // own, so this is start-up output (and the engine's between calls),
        // kept only as a tail for error messages.
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = {
            let tail = stderr_tail.clone();
            let mut stderr = stderr;
            thread("morph-worker-err", move || {
                let mut buf = [0u8; 8192];
                loop {
                    let n = match stderr.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > STDERR_TAIL {
                        let cut = tail.len() - STDERR_TAIL;
                        tail.drain(..cut);
                    }
                }
            })?
        };
        let Some(child) = guard.0.take() else {
            return Err(MorphError::io_error("worker process lost while starting"));
        };
        let mut worker = Worker {
            child,
            control,
            from_zygote,
            call_input: Some(call_input),
            input_pipe: None,
            answers_sent: 0,
            answers_written,
            answer_dropped,
            call_answers_from: 0,
            call_unanswered: false,
            call_readers,
            call_output,
            stderr_tail,
            stderr_reader: Some(stderr_reader),
            call_stderr: None,
            // Unpredictable, so extension code cannot forge the answer to a
            // call it has not seen.
            seq: getrandom::u64().unwrap_or(0) >> 1,
            unsettled: Vec::new(),
        };
        worker.handshake(spec)?;
        Ok(worker)
    }

    fn handshake(&mut self, spec: &Spec) -> Result<()> {
        let until = Instant::now() + START_TIMEOUT;
        match self.next_control(until, None)? {
            FromZygote::Hello { protocol } if protocol == PROTOCOL_VERSION => {}
            FromZygote::Hello { protocol } => {
                return Err(MorphError::host_error(format!(
                    "the worker speaks protocol {protocol}, this host {PROTOCOL_VERSION}"
                )));
            }
            _ => return Err(MorphError::host_error("the worker did not say hello")),
        }
        self.send_control(&ToZygote::Load {
            kind: spec.kind,
            file: spec.file.clone(),
            source: spec.source.clone(),
            limits: spec.limits,
        })?;
        match self.next_control(until, None)? {
            FromZygote::Compiling => {}
            FromZygote::Loaded { result: Err(e) } => return Err(e.into_error()),
            _ => return Err(MorphError::host_error("the worker did not answer `load`")),
        }
        match self.next_control(until, Some(&spec.file))? {
            FromZygote::Loaded { result: Ok(()) } => Ok(()),
            FromZygote::Loaded { result: Err(e) } => Err(e.into_error()),
            _ => Err(MorphError::host_error("the worker did not answer `load`")),
        }
    }

    /// The next control message before `until`, for the start-up steps.
    /// `compiling`: the file being compiled, if the worker is at it (its
    /// death is then the source's doing: `invalid_module`).
    fn next_control(&mut self, until: Instant, compiling: Option<&str>) -> Result<FromZygote> {
        let wait = until.saturating_duration_since(Instant::now());
        match self.from_zygote.recv_timeout(wait) {
            Ok(Ok(body)) => parse(&body).map_err(|e| MorphError::host_error(e.to_string())),
            Ok(Err(e)) => Err(MorphError::host_error(format!(
                "worker control socket: {e}"
            ))),
            Err(RecvTimeoutError::Timeout) => Err(MorphError::host_error(format!(
                "the worker (pid {}) did not start within {} s (does its main call morph's `main_if_worker` first?){}",
                self.child.id(),
                START_TIMEOUT.as_secs(),
                self.stderr_hint()
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.reap();
                let status = describe_status(status);
                Err(match compiling {
                    Some(file) => MorphError::invalid_module(format!(
                        "{file}: the engine died while compiling it ({status}; a source nested too deeply?)"
                    )),
                    None => MorphError::host_error(format!(
                        "the worker exited while starting ({status}){}",
                        self.stderr_hint()
                    )),
                })
            }
        }
    }

    fn send_control(&mut self, message: &ToZygote) -> Result<()> {
        write_frame(&mut self.control, message)
            .map_err(|e| MorphError::host_error(format!("worker control socket: {e}")))
    }

    /// Alive, and at most one answered call still finishing (only the
    /// zygote writes on the control socket; whatever else it sent between
    /// calls fails `settle`).
    fn healthy(&mut self) -> bool {
        self.settle(1) && matches!(self.child.try_wait(), Ok(None))
    }

    /// A control message between calls: the end of an answered call.
    fn note_ended(&mut self, message: Frame) -> bool {
        let ended = message
            .ok()
            .and_then(|body| parse::<FromZygote>(&body).ok());
        match ended {
            Some(FromZygote::Ended { seq, .. }) => {
                let before = self.unsettled.len();
                self.unsettled.retain(|u| u.seq != seq);
                self.unsettled.len() < before
            }
            _ => false,
        }
    }

    /// Kills answered calls' children that outlived their deadline.
    fn abort_overdue(&mut self) -> bool {
        let now = Instant::now();
        let mut overdue = Vec::new();
        for u in &mut self.unsettled {
            match u.aborted_at {
                None if now >= u.kill_at => {
                    u.aborted_at = Some(now);
                    overdue.push(u.seq);
                }
                Some(at) if now.duration_since(at) > ABORT_WAIT => return false,
                _ => {}
            }
        }
        overdue
            .into_iter()
            .all(|seq| self.send_control(&ToZygote::Abort { seq }).is_ok())
    }

    /// Waits until at most `keep` answered calls are still finishing.
    /// `false`: the zygote did not report them, and this worker is
    /// unusable.
    fn settle(&mut self, keep: usize) -> bool {
        loop {
            while let Ok(message) = self.from_zygote.try_recv() {
                if !self.note_ended(message) {
                    return false;
                }
            }
            // Late output of answered calls: nobody's (no call runs now).
            while self.call_output.try_recv().is_ok() {}
            if self.unsettled.len() <= keep {
                return true;
            }
            if !self.abort_overdue() {
                return false;
            }
            crossbeam_channel::select! {
                recv(self.from_zygote) -> message => match message {
                    Ok(message) => {
                        if !self.note_ended(message) {
                            return false;
                        }
                    }
                    Err(_) => return false,
                },
                recv(self.call_output) -> message => {
                    if message.is_err() {
                        return false;
                    }
                }
                default(POLL) => {}
            }
        }
    }

    /// Asks the zygote to kill the call's child (once).
    fn abort(&mut self, aborted: &mut Option<Instant>) {
        if aborted.is_none() {
            *aborted = Some(Instant::now());
            let seq = self.seq;
            if self.send_control(&ToZygote::Abort { seq }).is_err() {
                self.kill();
            }
        }
    }

    /// Charges the call's stderr since the last look to its execution (a
    /// log line at `warn`, counted in `max_output_bytes`).
    fn charge_stderr(&self, session: &mut Session) -> Result<()> {
        let Some(call_stderr) = &self.call_stderr else {
            return Ok(());
        };
        let (text, dropped) = {
            let mut state = call_stderr.state.lock().unwrap_or_else(|p| p.into_inner());
            (
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.dropped),
            )
        };
        if !text.is_empty() {
            session.guest_log(3, String::from_utf8_lossy(&text).trim_end())?;
        }
        if dropped > 0 {
            return Err(MorphError::quota_exceeded(format!(
                "the extension's stderr output exceeds max_output_bytes = {}",
                session.limits().max_output_bytes
            )));
        }
        Ok(())
    }

    /// Runs one guest call in a new child of the zygote, relaying host
    /// calls and logs to `session`, until the child is gone.
    fn run(&mut self, session: &mut Session, call: GuestCall<'_>, grace: Duration) -> Outcome {
        let deadline = session.deadline().clone();
        if !self.settle(1) {
            let e = MorphError::host_error("the worker did not end its previous call");
            return Outcome::lost(Err(self.death(session, e)));
        }
        // Every answer of the calls before is written or dropped (a call
        // ends with its child gone or its answers read), so the writer is
        // free for this call's.
        if !self.input_written(ABORT_WAIT, &deadline) {
            self.kill();
            return Outcome::lost(Err(MorphError::host_error(
                "the worker's input writer is stuck on a previous call",
            )));
        }
        self.call_answers_from = self.answers_sent;
        self.call_unanswered = false;
        // The previous call's stderr (and a child still writing to it)
        // stays with that call: its reader runs on until the pipe's end.
        self.call_stderr = None;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let started = (|| -> io::Result<()> {
            let (child_in, host_in) = pipe()?;
            let (host_out, child_out) = pipe()?;
            let (host_err, child_err) = pipe()?;
            let frame = encode_frame(&ToZygote::Run {
                call: WireCall::from_call(call),
                remaining_ms: deadline.remaining().as_millis() as u64,
                seq,
            })?;
            crate::passing::send_with_fds(
                &mut self.control,
                &frame,
                &[
                    child_in.as_raw_fd(),
                    child_out.as_raw_fd(),
                    child_err.as_raw_fd(),
                ],
            )?;
            // Only the child holds the write end now: the pipe's end is its.
            drop(child_err);
            self.call_stderr = Some(CallStderr::start(host_err)?);
            let gone = || io::Error::other("the worker's call threads have stopped");
            let host_in = Arc::new(host_in);
            self.input_pipe = Some(host_in.clone());
            self.call_input
                .as_ref()
                .ok_or_else(gone)?
                .send(CallInput::Open(host_in))
                .map_err(|_| gone())?;
            self.call_readers.start(seq, host_out)?;
            Ok(())
        })();
        if let Err(e) = started {
            let cause = MorphError::host_error(format!("starting the call: {e}"));
            return Outcome::lost(Err(self.death(session, cause)));
        }

        let mut done: Option<Result<Vec<u8>>> = None;
        let mut ended: Option<(ChildStatus, Option<Verdict>)> = None;
        let mut output_closed = false;
        let mut fatal: Option<MorphError> = None;
        let mut aborted: Option<Instant> = None;
        let mut ended_at: Option<Instant> = None;
        let mut closed_at: Option<Instant> = None;
        loop {
            if ended.is_some() && output_closed {
                break;
            }
            // Answered: the result is final. The child exits right after
            // its answer; the next call waits for the zygote's report.
            if ended.is_none() && fatal.is_none() && done.is_some() {
                // Its stderr up to now is part of this execution's output
                // (what it writes later stays in its own pipe).
                if let Some(call_stderr) = &self.call_stderr {
                    call_stderr.drain(false);
                }
                let stderr = self.charge_stderr(session);
                self.unsettled.push(Unsettled {
                    seq,
                    kill_at: Instant::now() + deadline.remaining() + grace,
                    aborted_at: None,
                });
                let result = match done {
                    _ if stderr.is_err() => stderr.map(|()| Vec::new()),
                    Some(_) if deadline.expired() => Err(session.timeout_error()),
                    Some(result) => result,
                    None => Err(MorphError::host_error("no answer")),
                };
                return Outcome {
                    result,
                    reusable: true,
                };
            }
            // A child that closed its output without answering and is
            // still alive can no longer answer: end it. (A dead one is
            // reported by the zygote within a moment, with its verdict.)
            if done.is_none()
                && ended.is_none()
                && closed_at.is_some_and(|at| at.elapsed() > HANGUP_GRACE)
            {
                fatal.get_or_insert_with(|| {
                    MorphError::trap("the worker closed its output without answering")
                });
            }
            if let Err(e) = self.charge_stderr(session) {
                fatal.get_or_insert(e);
            }
            if ended.is_none() && deadline.expired() && deadline.overrun() >= grace {
                fatal.get_or_insert_with(|| session.timeout_error());
            }
            if fatal.is_some() && ended.is_none() {
                self.abort(&mut aborted);
            }
            if !self.abort_overdue() {
                self.kill();
                return Outcome::lost(Err(MorphError::host_error(
                    "the worker did not end a previous call",
                )));
            }
            let stuck = aborted.is_some_and(|at| ended.is_none() && at.elapsed() > ABORT_WAIT)
                || ended_at.is_some_and(|at| at.elapsed() > ABORT_WAIT);
            if stuck {
                // The zygote does not answer, or the child's output never
                // closes: give up on this worker.
                self.kill();
                let e =
                    fatal.unwrap_or_else(|| MorphError::host_error("the worker stopped answering"));
                return Outcome::lost(Err(e));
            }
            crossbeam_channel::select! {
                recv(self.call_output) -> message => match message {
                    Ok((which, _)) if which != seq => {}
                    Ok((_, CallOutput::Frame(body, begun))) => {
                        // Once the child is gone or the execution failed,
                        // no host call is served.
                        let unanswerable = ended.is_some() || fatal.is_some();
                        let frame = ChildFrame { body: &body, begun, unanswerable };
                        if let Err(e) = self.child_frame(session, frame, &mut done) {
                            fatal.get_or_insert(e);
                        }
                    }
                    Ok((_, CallOutput::End)) => {
                        output_closed = true;
                        closed_at = Some(Instant::now());
                    }
                    Ok((_, CallOutput::Broken(e))) => {
                        output_closed = true;
                        fatal.get_or_insert(if e.kind() == io::ErrorKind::FileTooLarge {
                            MorphError::quota_exceeded(format!(
                                "worker output above max_output_bytes = {}: {e}",
                                session.limits().max_output_bytes
                            ))
                        } else {
                            MorphError::abi_violation(format!("worker output: {e}"))
                        });
                    }
                    Err(_) => {
                        let e = MorphError::host_error("the worker's output thread stopped");
                        return Outcome::lost(Err(self.death(session, e)));
                    }
                },
                recv(self.from_zygote) -> message => {
                    let message = match message {
                        Ok(Ok(body)) => parse::<FromZygote>(&body).map_err(|e| e.to_string()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("the worker closed its control socket".to_string()),
                    };
                    match message {
                        Ok(FromZygote::Ended { seq: which, status, verdict }) if which == seq => {
                            ended = Some((status, verdict));
                            ended_at = Some(Instant::now());
                        }
                        // The previous call's child, gone now.
                        Ok(FromZygote::Ended { seq: which, .. })
                            if self.unsettled.iter().any(|u| u.seq == which) =>
                        {
                            self.unsettled.retain(|u| u.seq != which);
                        }
                        Ok(_) => {
                            self.kill();
                            return Outcome::lost(Err(MorphError::host_error(
                                "the worker sent an unexpected control message",
                            )));
                        }
                        Err(e) => {
                            let e = MorphError::host_error(e);
                            let e = fatal.take().unwrap_or_else(|| self.death(session, e));
                            self.kill();
                            return Outcome::lost(Err(e));
                        }
                    }
                },
                default(POLL) => {}
            }
        }
        // The child is gone: its stderr is read to the end.
        if let Some(call_stderr) = &self.call_stderr {
            call_stderr.drain(true);
        }
        if let Err(e) = self.charge_stderr(session) {
            fatal.get_or_insert(e);
        }
        let Some((status, verdict)) = ended else {
            // Unreachable: the loop ends only with `ended`.
            return Outcome::lost(Err(MorphError::host_error("the call did not end")));
        };
        let result = match (fatal, done) {
            (Some(e), _) => Err(e),
            (None, Some(result)) => {
                if deadline.expired() {
                    // Answered in the grace period: still past the limit.
                    Err(session.timeout_error())
                } else {
                    result
                }
            }
            (None, None) => Err(match verdict {
                Some(Verdict::MemoryLimit) => MorphError::memory_limit(format!(
                    "the worker ran out of memory under max_memory_mb = {}",
                    session.limits().max_memory_mb
                )),
                Some(Verdict::StackOverflow) => {
                    MorphError::stack_overflow("the worker overflowed its native stack")
                }
                None if deadline.expired() => session.timeout_error(),
                None => MorphError::trap(format!("the worker process died ({status})")),
            }),
        };
        Outcome {
            result,
            reusable: true,
        }
    }

    /// One frame from the call's child.
    fn child_frame(
        &mut self,
        session: &mut Session,
        frame: ChildFrame<'_>,
        done: &mut Option<Result<Vec<u8>>>,
    ) -> Result<()> {
        let ChildFrame {
            body,
            begun,
            unanswerable,
        } = frame;
        let message =
            parse::<FromChild>(body).map_err(|e| MorphError::abi_violation(e.to_string()))?;
        match message {
            // Asked before it died (or after the execution failed): nobody
            // is there to answer.
            FromChild::HostCall { .. } if unanswerable => {
                self.call_unanswered = true;
                Ok(())
            }
            FromChild::HostCall { request } => {
                // One host call at a time: a request while the previous
                // answer is unread is pipelining (answers would pile up in
                // the host), and ends the execution.
                self.previous_answer_read(session, begun, "sent a host call")?;
                // Quota or deadline: the execution ends here.
                let bytes = session.guest_call(request.as_bytes())?;
                let frame = encode_frame(&ToChild::HostResponse {
                    result: Ok(String::from_utf8_lossy(&bytes).into_owned()),
                })
                .map_err(|e| MorphError::host_error(format!("encoding a host response: {e}")))?;
                if let Some(input) = &self.call_input
                    && input.send(CallInput::Frame(frame)).is_ok()
                {
                    self.answers_sent += 1;
                }
                Ok(())
            }
            FromChild::Log { level, text } => session.guest_log(level, &text),
            FromChild::Done { seq, .. } if seq != self.seq => Err(MorphError::abi_violation(
                format!("the worker answered call {seq} during call {}", self.seq),
            )),
            FromChild::Done { .. } if done.is_some() => Err(MorphError::abi_violation(
                "the worker answered a call twice",
            )),
            FromChild::Done {
                result,
                memory_bytes,
                ..
            } => {
                // An answer left unread would also keep the writer busy
                // into the next call.
                self.previous_answer_read(session, begun, "answered its call")?;
                if self.call_unanswered {
                    return Err(MorphError::abi_violation(
                        "the worker answered its call before reading the answer to its \
                         previous host call (host calls are one at a time)",
                    ));
                }
                session.note_memory(memory_bytes);
                *done = Some(result.map(String::into_bytes).map_err(|e| e.into_error()));
                Ok(())
            }
        }
    }

    /// Strict alternation of host calls: `Ok` when the child has read the
    /// whole answer to its previous host call (or made none), so it may
    /// send its next message; `abi_violation` when that answer is still
    /// unread: the message was read from the pipe before the writer began
    /// the answer, or the answer is still in the pipe (or not all written
    /// because the pipe is full). `begun`: the answers begun when the
    /// message was read. `doing` says what the child did instead of
    /// reading, for the message.
    ///
    /// A child that sends early and then reads the answer before the host
    /// looks is not caught, but gains nothing: the host still holds at most
    /// one answer and serves one call at a time.
    fn previous_answer_read(&self, session: &Session, begun: u64, doing: &str) -> Result<()> {
        let unread = || {
            MorphError::abi_violation(format!(
                "the worker {doing} before reading the answer to its previous host call \
                 (host calls are one at a time: ask, read the answer, then ask again)"
            ))
        };
        if begun < self.answers_sent {
            return Err(unread());
        }
        // A child that read the whole answer asked only after the last
        // write reached the pipe: the writer can only be a moment behind.
        if !self.input_written(ANSWER_WRITE_WAIT, session.deadline()) {
            return Err(if session.deadline().expired() {
                session.timeout_error()
            } else {
                unread()
            });
        }
        // This call's last answer met a closed input: the child never
        // read it (it had closed its input, or exited, before it could).
        if self.answers_sent > self.call_answers_from
            && self.answer_dropped.load(Ordering::SeqCst) == self.answers_sent
        {
            return Err(unread());
        }
        let Some(pipe) = &self.input_pipe else {
            return Ok(());
        };
        let mut pending: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; the descriptor is the host end of
        // the call's input pipe, kept open by `input_pipe`.
        if unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut pending) } != 0 {
            return Err(MorphError::host_error(format!(
                "cannot look at the worker's input pipe: {}",
                io::Error::last_os_error()
            )));
        }
        if pending > 0 {
            return Err(unread());
        }
        Ok(())
    }

    /// Waits up to `wait` (and not past `deadline`) until the writer has
    /// written, or dropped, every answer handed to it.
    fn input_written(&self, wait: Duration, deadline: &morph_core::Deadline) -> bool {
        let until = Instant::now() + wait;
        loop {
            if self.answers_written.load(Ordering::SeqCst) >= self.answers_sent {
                return true;
            }
            if Instant::now() >= until || deadline.expired() {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Why the worker process (the zygote) went away: past its deadline,
    /// or a crash. Only the protocol decides kinds, never its stderr.
    fn death(&mut self, session: &Session, cause: MorphError) -> MorphError {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => {
                self.reap();
                Some(status)
            }
            _ => {
                self.kill();
                None
            }
        };
        if session.deadline().expired() {
            return session.timeout_error();
        }
        tracing::debug!(target: "morph::worker", cause = %morph_core::text::loggable(&cause), "worker lost");
        MorphError::trap(format!(
            "the worker process died ({}){}",
            describe_status(status),
            self.stderr_hint()
        ))
    }

    fn kill(&mut self) {
        // The whole group: the zygote and a call's child, if one runs.
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: killpg of the process group this host created for its
            // own, not yet reaped, child (so the id cannot have been reused).
            unsafe { libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        // Ends the writer thread once it is not blocked on a pipe.
        self.call_input = None;
        self.reap();
    }

    /// Waits for the process and its stderr.
    fn reap(&mut self) -> Option<ExitStatus> {
        let status = self.child.wait().ok();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        status
    }

    fn stderr_hint(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&tail);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            let start = text.char_indices().rev().nth(800).map_or(0, |(i, _)| i);
            format!("; its stderr ends: {}", &text[start..])
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills and reaps a child that never became a [`Worker`].
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            _ => s.to_string(),
        },
        None => "status unknown".to_string(),
    }
}
