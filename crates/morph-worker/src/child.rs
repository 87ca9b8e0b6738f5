//! The worker side: a program that runs script extensions in workers calls
//! [`main_if_worker`] first thing in `main`; in a worker process it serves
//! the parent and never returns.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::{
    FromWorker, PROTOCOL_VERSION, ToWorker, WireError, parse, read_frame, write_frame,
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

/// Address space above the measured baseline that the engine itself may
/// need besides the extension's `max_memory_mb` (allocator arenas, stack
/// growth, the result's serialisation).
const ENGINE_HEADROOM: u64 = 32 << 20;

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

/// The pipes to the parent.
struct Channel {
    input: File,
    output: File,
}

impl Channel {
    /// Takes stdin and stdout for the protocol and points the standard
    /// streams elsewhere: stdin at /dev/null, stdout at stderr, so nothing
    /// the engine prints can corrupt a frame.
    fn take_std() -> io::Result<Channel> {
        // SAFETY: dup/dup2/open on the process's own standard descriptors;
        // each new descriptor is owned exactly once.
        unsafe {
            let input = libc::dup(0);
            let output = libc::dup(1);
            if input < 0 || output < 0 {
                return Err(io::Error::last_os_error());
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            if null < 0 || libc::dup2(null, 0) < 0 || libc::dup2(2, 1) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::close(null);
            Ok(Channel {
                input: File::from(OwnedFd::from_raw_fd(input)),
                output: File::from(OwnedFd::from_raw_fd(output)),
            })
        }
    }

    fn send(&mut self, message: &FromWorker) -> io::Result<()> {
        write_frame(&mut self.output, message)
    }

    fn receive(&mut self) -> io::Result<Option<ToWorker>> {
        match read_frame(&mut self.input, MAX_PARENT_FRAME)? {
            Some(body) => parse(&body).map(Some),
            None => Ok(None),
        }
    }
}

/// Host calls of a worker: relayed to the parent.
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
            .send(&FromWorker::HostCall { request })
            .map_err(|e| MorphError::host_error(format!("worker pipe: {e}")))?;
        match channel.receive() {
            Ok(Some(ToWorker::HostResponse { result })) => result
                .map(String::into_bytes)
                .map_err(WireError::into_error),
            Ok(_) => Err(MorphError::host_error(
                "the parent did not answer the host call",
            )),
            Err(e) => Err(MorphError::host_error(format!("worker pipe: {e}"))),
        }
    }

    fn log(&mut self, level: i32, text: &str) -> Result<()> {
        self.channel()
            .send(&FromWorker::Log {
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

fn serve(engines: &[Arc<dyn ScriptEngine>]) -> std::result::Result<(), String> {
    let channel = Channel::take_std().map_err(|e| format!("protocol pipes: {e}"))?;
    let channel = Arc::new(Mutex::new(channel));
    let lock = || channel.lock().unwrap_or_else(|p| p.into_inner());
    let pipe_error = |e: io::Error| format!("pipe to the parent: {e}");
    lock()
        .send(&FromWorker::Hello {
            protocol: PROTOCOL_VERSION,
        })
        .map_err(pipe_error)?;
    let Some(ToWorker::Load {
        kind,
        file,
        source,
        limits,
    }) = lock().receive().map_err(pipe_error)?
    else {
        return Err("the parent's first message was not `load`".into());
    };

    let mut status = Status::open();
    let loaded = (|| -> Result<Box<dyn ScriptInstance>> {
        let engine = engines.iter().find(|e| e.kind() == kind).ok_or_else(|| {
            MorphError::invalid_module(format!("this worker has no {kind} engine"))
        })?;
        engine.warm_up()?;
        let baseline = status.read("VmSize:").unwrap_or(0);
        if baseline > 0 {
            let cap = baseline
                .saturating_add(limits.max_memory_bytes())
                .saturating_add(ENGINE_HEADROOM);
            sandbox::cap_address_space(cap).map_err(|e| {
                MorphError::host_error(format!("cannot cap the worker's address space: {e}"))
            })?;
        } else {
            return Err(MorphError::host_error(
                "cannot read the worker's address-space size (/proc/self/status)",
            ));
        }
        // No extension code runs without the filter.
        sandbox::lock_down().map_err(|e| {
            MorphError::host_error(format!(
                "cannot install the worker's seccomp filter (does this kernel have seccomp?): {e}"
            ))
        })?;
        engine.load(&file, &source, &limits)
    })();
    let baseline_rss = status.read("VmRSS:").unwrap_or(0);
    let mut instance = match loaded {
        Ok(instance) => {
            lock()
                .send(&FromWorker::Loaded { result: Ok(()) })
                .map_err(pipe_error)?;
            instance
        }
        Err(e) => {
            lock()
                .send(&FromWorker::Loaded {
                    result: Err(WireError::from(&e)),
                })
                .map_err(pipe_error)?;
            return Ok(());
        }
    };

    loop {
        let message = lock().receive().map_err(pipe_error)?;
        let (call, remaining_ms, seq) = match message {
            None => return Ok(()),
            Some(ToWorker::Run {
                call,
                remaining_ms,
                seq,
            }) => (call, remaining_ms, seq),
            Some(ToWorker::Load { .. }) => {
                return Err("a second `load` from the parent".into());
            }
            Some(ToWorker::HostResponse { .. }) => {
                return Err("a host-call response from the parent between calls".into());
            }
        };
        let host: SharedHost = Arc::new(Mutex::new(PipeHost(channel.clone())));
        let result = instance
            .run(ScriptCall {
                call: call.as_call(),
                host,
                deadline: Deadline::after(Duration::from_millis(remaining_ms)),
                limits,
            })
            .and_then(|bytes| {
                // Checked here too, so an oversized result costs no pipe
                // traffic and the worker stays warm.
                if bytes.len() as u64 > limits.max_output_bytes {
                    return Err(MorphError::quota_exceeded(format!(
                        "the result of {} bytes exceeds max_output_bytes = {}",
                        bytes.len(),
                        limits.max_output_bytes
                    )));
                }
                Ok(bytes)
            });
        let memory_bytes = status
            .read("VmRSS:")
            .unwrap_or(0)
            .saturating_sub(baseline_rss);
        let result = result
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| WireError::from(&e));
        lock()
            .send(&FromWorker::Done {
                result,
                memory_bytes,
                seq,
            })
            .map_err(pipe_error)?;
        instance.prepare_next();
    }
}
