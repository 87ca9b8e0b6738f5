//! The host side: [`WorkerBackend`] runs a script engine in worker
//! processes, one warm pool per loaded extension.

use std::ffi::OsString;
use std::io::Write;
use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, bounded};

use crate::protocol::{
    FromWorker, PROTOCOL_VERSION, ToWorker, WireCall, parse, read_frame, write_frame,
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

/// Bytes of a worker's stderr kept for error messages.
const STDERR_TAIL: usize = 16 << 10;

/// Idle workers kept per loaded extension.
const MAX_IDLE: usize = 4;

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

/// A frame from the worker, or why there is none.
type Frame = io::Result<Vec<u8>>;

/// One worker process.
struct Worker {
    child: Child,
    /// Frames for the worker, written by a thread of their own so the host
    /// never blocks on a worker that stops reading.
    to_worker: Option<crossbeam_channel::Sender<Vec<u8>>>,
    frames: Receiver<Frame>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
    /// The number of the last `Run` (from a random start).
    seq: u64,
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

impl Worker {
    /// Starts a worker, checks its hello and loads the extension.
    fn start(spec: &Spec) -> Result<Worker> {
        let mut child = crate::spawn::spawn(&spec.command, spec.kind.as_str()).map_err(|e| {
            MorphError::io_error(format!(
                "cannot start the worker {}: {e}",
                spec.command.program.display()
            ))
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(MorphError::io_error("worker pipes missing"));
        };
        let mut guard = KillOnDrop(Some(child));
        let (to_worker, inbox) = crossbeam_channel::unbounded::<Vec<u8>>();
        let mut stdin: ChildStdin = stdin;
        std::thread::Builder::new()
            .name("morph-worker-in".into())
            .spawn(move || {
                for frame in inbox {
                    if stdin
                        .write_all(&frame)
                        .and_then(|()| stdin.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .map_err(|e| MorphError::io_error(format!("worker writer thread: {e}")))?;
        let (tx, frames) = bounded::<Frame>(8);
        let max = spec.max_frame();
        let mut stdout = stdout;
        std::thread::Builder::new()
            .name("morph-worker-out".into())
            .spawn(move || {
                loop {
                    let frame = read_frame(&mut stdout, max);
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
            })
            .map_err(|e| MorphError::io_error(format!("worker reader thread: {e}")))?;
        let tail = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = {
            let tail = tail.clone();
            let mut stderr = stderr;
            std::thread::Builder::new()
                .name("morph-worker-err".into())
                .spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stderr.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        tracing::debug!(target: "morph::worker", "{}", String::from_utf8_lossy(&buf[..n]).trim_end());
                        let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > STDERR_TAIL {
                            let cut = tail.len() - STDERR_TAIL;
                            tail.drain(..cut);
                        }
                    }
                })
                .map_err(|e| MorphError::io_error(format!("worker stderr thread: {e}")))?
        };
        let Some(child) = guard.0.take() else {
            return Err(MorphError::io_error("worker process lost while starting"));
        };
        let mut worker = Worker {
            child,
            to_worker: Some(to_worker),
            frames,
            stderr: tail,
            stderr_reader: Some(stderr_reader),
            // Unpredictable, so extension code cannot forge the answer to a
            // call it has not seen.
            seq: getrandom::u64().unwrap_or(0) >> 1,
        };
        worker.handshake(spec)?;
        Ok(worker)
    }

    fn handshake(&mut self, spec: &Spec) -> Result<()> {
        let started = Instant::now();
        match self.next_frame(started + START_TIMEOUT)? {
            FromWorker::Hello { protocol } if protocol == PROTOCOL_VERSION => {}
            FromWorker::Hello { protocol } => {
                return Err(MorphError::host_error(format!(
                    "the worker speaks protocol {protocol}, this host {PROTOCOL_VERSION}"
                )));
            }
            _ => return Err(MorphError::host_error("the worker did not say hello")),
        }
        self.send(&ToWorker::Load {
            kind: spec.kind,
            file: spec.file.clone(),
            source: spec.source.clone(),
            limits: spec.limits,
        })?;
        match self.next_frame(started + START_TIMEOUT)? {
            FromWorker::Loaded { result: Ok(()) } => Ok(()),
            FromWorker::Loaded { result: Err(e) } => Err(e.into_error()),
            _ => Err(MorphError::host_error("the worker did not answer `load`")),
        }
    }

    /// The next message before `until`, for the start-up steps.
    fn next_frame(&mut self, until: Instant) -> Result<FromWorker> {
        let wait = until.saturating_duration_since(Instant::now());
        match self.frames.recv_timeout(wait) {
            Ok(Ok(body)) => parse(&body).map_err(|e| MorphError::host_error(e.to_string())),
            Ok(Err(e)) => Err(MorphError::host_error(format!("worker output: {e}"))),
            Err(RecvTimeoutError::Timeout) => Err(MorphError::host_error(format!(
                "the worker {} did not start within {} s (does its main call morph's `main_if_worker` first?){}",
                self.program_hint(),
                START_TIMEOUT.as_secs(),
                self.stderr_hint()
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.reap();
                Err(MorphError::host_error(format!(
                    "the worker exited while starting ({}){}",
                    describe_status(status),
                    self.stderr_hint()
                )))
            }
        }
    }

    fn program_hint(&self) -> String {
        format!("(pid {})", self.child.id())
    }

    fn send(&mut self, message: &ToWorker) -> Result<()> {
        let mut frame = Vec::new();
        write_frame(&mut frame, message)
            .map_err(|e| MorphError::host_error(format!("encoding a worker message: {e}")))?;
        self.to_worker
            .as_ref()
            .and_then(|tx| tx.send(frame).ok())
            .ok_or_else(|| MorphError::host_error("the worker's input is closed"))
    }

    /// Alive, and nothing unread from it.
    fn healthy(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None)) && self.frames.is_empty()
    }

    /// Runs one guest call, relaying host calls and logs to `session`.
    fn run(&mut self, session: &mut Session, call: GuestCall<'_>, grace: Duration) -> Outcome {
        let deadline = session.deadline().clone();
        // Only this call's stderr decides how a death is reported.
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.seq = self.seq.wrapping_add(1);
        let run = ToWorker::Run {
            call: WireCall::from_call(call),
            remaining_ms: deadline.remaining().as_millis() as u64,
            seq: self.seq,
        };
        if let Err(e) = self.send(&run) {
            return Outcome::lost(Err(self.death(session, e)));
        }
        loop {
            if deadline.expired() && deadline.overrun() >= grace {
                self.kill();
                return Outcome::lost(Err(session.timeout_error()));
            }
            let body = match self.frames.recv_timeout(POLL) {
                Ok(Ok(body)) => body,
                Ok(Err(e)) => {
                    self.kill();
                    return Outcome::lost(Err(if e.kind() == io::ErrorKind::FileTooLarge {
                        MorphError::quota_exceeded(format!(
                            "worker output above max_output_bytes = {}: {e}",
                            session.limits().max_output_bytes
                        ))
                    } else {
                        MorphError::abi_violation(format!("worker output: {e}"))
                    }));
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    let e = MorphError::host_error("the worker closed its output");
                    return Outcome::lost(Err(self.death(session, e)));
                }
            };
            let message = match parse::<FromWorker>(&body) {
                Ok(m) => m,
                Err(e) => {
                    self.kill();
                    return Outcome::lost(Err(MorphError::abi_violation(e.to_string())));
                }
            };
            match message {
                FromWorker::HostCall { request } => {
                    let bytes = match session.guest_call(request.as_bytes()) {
                        Ok(bytes) => bytes,
                        Err(fatal) => {
                            // Quota or deadline: the execution ends here.
                            self.kill();
                            return Outcome::lost(Err(fatal));
                        }
                    };
                    let response = ToWorker::HostResponse {
                        result: Ok(String::from_utf8_lossy(&bytes).into_owned()),
                    };
                    if let Err(e) = self.send(&response) {
                        return Outcome::lost(Err(self.death(session, e)));
                    }
                }
                FromWorker::Log { level, text } => {
                    if let Err(fatal) = session.guest_log(level, &text) {
                        self.kill();
                        return Outcome::lost(Err(fatal));
                    }
                }
                FromWorker::Done { seq, .. } if seq != self.seq => {
                    self.kill();
                    return Outcome::lost(Err(MorphError::abi_violation(format!(
                        "the worker answered call {seq} during call {}",
                        self.seq
                    ))));
                }
                FromWorker::Done {
                    result,
                    memory_bytes,
                    ..
                } => {
                    session.note_memory(memory_bytes);
                    let result = if deadline.expired() {
                        // Finished in the grace period: still past the limit.
                        Err(session.timeout_error())
                    } else {
                        result.map(String::into_bytes).map_err(|e| e.into_error())
                    };
                    return Outcome {
                        result,
                        reusable: true,
                    };
                }
                FromWorker::Hello { .. } | FromWorker::Loaded { .. } => {
                    self.kill();
                    return Outcome::lost(Err(MorphError::abi_violation(
                        "the worker sent a start-up message during a call",
                    )));
                }
            }
        }
    }

    /// Why the worker went away: out of memory, past its deadline, or a
    /// crash.
    fn death(&mut self, session: &Session, cause: MorphError) -> MorphError {
        // It may only have closed its pipes and still be running: make sure
        // it is gone before waiting for it.
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
        let tail = self.stderr_text();
        let limits = session.limits();
        if tail.contains("memory allocation of") || tail.contains("MemoryError") {
            return MorphError::memory_limit(format!(
                "the worker ran out of memory under max_memory_mb = {}",
                limits.max_memory_mb
            ));
        }
        if tail.contains("has overflowed its stack") {
            return MorphError::stack_overflow(format!(
                "the worker overflowed its native stack{}",
                self.stderr_hint()
            ));
        }
        if session.deadline().expired() {
            return session.timeout_error();
        }
        tracing::debug!(target: "morph::worker", %cause, "worker lost");
        MorphError::trap(format!(
            "the worker process died ({}){}",
            describe_status(status),
            self.stderr_hint()
        ))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        // Ends the writer thread once it is not blocked on the pipe.
        self.to_worker = None;
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

    fn stderr_text(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&tail).into_owned()
    }

    fn stderr_hint(&self) -> String {
        let text = self.stderr_text();
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
