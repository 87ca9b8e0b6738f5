//! The worker mechanism with a minimal script engine of its own (no
//! language): what a worker process starts with, and that a replacement
//! worker started in the background stays alive for the next execution.
//!
//! `main` starts threads before `main_if_worker`, as a host under a
//! multi-threaded async runtime would: recognising a worker must not need
//! a single-threaded process.

#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use morph_core::script::{ScriptCall, ScriptEngine, ScriptInstance, lock_host};
use morph_core::{
    BaseMorphRuntime, CapabilityHost, Enforcement, EngineLimit, EngineRuntime, ErrorKind,
    ExecutionContext, ExtensionArtifact, ExtensionManifest, GuestCall, HostPolicy, LoadedExtension,
    MorphError, ResourceLimits, Result, RuntimeInfo, RuntimeKind,
};
use morph_worker::protocol::{FromChild, encode_frame, read_frame};
use morph_worker::{WorkerBackend, WorkerOptions, main_if_worker};
use serde_json::{Value, json};

/// What the worker saw before its sandbox closed.
struct Start {
    at: Instant,
    environment: usize,
    descriptors: Vec<String>,
}

static START: OnceLock<Start> = OnceLock::new();

/// A "language" whose actions report on the worker process.
struct ProbeEngine;

struct ProbeInstance;

impl ScriptEngine for ProbeEngine {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Js
    }

    fn engine(&self) -> (&'static str, &'static str) {
        ("probe", "0")
    }

    fn warm_up(&self) -> Result<()> {
        let descriptors = std::fs::read_dir("/proc/self/fd")
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let _ = START.set(Start {
            at: Instant::now(),
            environment: std::env::vars_os().count(),
            descriptors,
        });
        Ok(())
    }

    fn stops_at_deadline(&self) -> bool {
        false
    }

    fn load(
        &self,
        _file: &str,
        _source: &str,
        _limits: &ResourceLimits,
    ) -> Result<Box<dyn ScriptInstance>> {
        Ok(Box::new(ProbeInstance))
    }
}

const DESCRIBE: &str = r#"{"name": "Probe", "version": "1.0.0",
  "actions": [{"name": "start", "parameters": []}, {"name": "hang", "parameters": []},
    {"name": "calls", "parameters": []}, {"name": "pipeline", "parameters": []},
    {"name": "answer_unread", "parameters": []}, {"name": "answer_seq_zero", "parameters": []},
    {"name": "answer_early", "parameters": [{"name": "seq", "type": "string", "required": true}]},
    {"name": "slow", "parameters": []}],
  "events": [], "config_schema": {}}"#;

impl ScriptInstance for ProbeInstance {
    fn run(&mut self, call: ScriptCall<'_>) -> Result<Vec<u8>> {
        match call.call {
            GuestCall::Describe => Ok(DESCRIBE.as_bytes().to_vec()),
            GuestCall::Execute { action: "hang", .. } => loop {
                std::thread::sleep(Duration::from_millis(5));
            },
            GuestCall::Execute {
                action: "calls", ..
            } => {
                // Honest host calls, one after the other.
                for _ in 0..20 {
                    lock_host(&call.host).call(REQUEST.as_bytes())?;
                }
                Ok(br#"{"ok": "called"}"#.to_vec())
            }
            GuestCall::Execute {
                action: "pipeline", ..
            } => {
                // Two host calls on the raw pipe before reading any answer,
                // then both answers.
                let frame = request_frame()?;
                raw_write(&[frame.as_slice(), frame.as_slice()].concat())?;
                std::thread::sleep(Duration::from_millis(50));
                for _ in 0..2 {
                    raw_read_frame()?;
                }
                Ok(br#"{"ok": "pipelined"}"#.to_vec())
            }
            GuestCall::Execute {
                action: "answer_unread",
                ..
            } => {
                // A host call whose answer is never read, then the answer.
                raw_write(&request_frame()?)?;
                Ok(br#"{"ok": "unread"}"#.to_vec())
            }
            GuestCall::Execute {
                action: "answer_seq_zero",
                ..
            } => {
                // An answer for call 0: the host's message names the call
                // it was running.
                raw_write(&done_frame(0)?)?;
                Ok(br#"{"ok": "zero"}"#.to_vec())
            }
            GuestCall::Execute {
                action: "answer_early",
                params,
                ..
            } => {
                // Answers the call itself, then goes on running: writes
                // 2 MiB to stderr while the next execution runs on the same
                // worker, and waits to be killed at its deadline.
                let params: Value = serde_json::from_slice(params)
                    .map_err(|e| MorphError::host_error(e.to_string()))?;
                let seq = params["seq"]
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| MorphError::host_error("no seq"))?;
                raw_write(&done_frame(seq)?)?;
                // Its channel and its stderr stay open.
                std::thread::sleep(Duration::from_millis(30));
                let line = [b'L'; 1023]
                    .iter()
                    .chain(b"\n")
                    .copied()
                    .collect::<Vec<u8>>();
                let mut stderr = raw_pipe(2);
                for _ in 0..2048 {
                    if stderr.write_all(&line).is_err() {
                        break;
                    }
                }
                loop {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            GuestCall::Execute { action: "slow", .. } => {
                std::thread::sleep(Duration::from_millis(200));
                Ok(br#"{"ok": "slow"}"#.to_vec())
            }
            GuestCall::Execute { .. } => {
                let start = START.get();
                let out = json!({"ok": {
                    "pid": std::process::id(),
                    "warm_ms": start.map_or(0, |s| s.at.elapsed().as_millis() as u64),
                    "environment": start.map_or(0, |s| s.environment),
                    "descriptors": start.map_or_else(Vec::new, |s| s.descriptors.clone()),
                }});
                Ok(out.to_string().into_bytes())
            }
        }
    }
}

/// A host call every host answers (with a `permission_denied` envelope).
const REQUEST: &str = r#"{"op": "data.get", "args": {"key": "k"}}"#;

fn request_frame() -> Result<Vec<u8>> {
    encode_frame(&FromChild::HostCall {
        request: REQUEST.to_string(),
    })
    .map_err(|e| MorphError::host_error(e.to_string()))
}

/// The answer to call `seq`, as the worker's glue would send it.
fn done_frame(seq: u64) -> Result<Vec<u8>> {
    encode_frame(&FromChild::Done {
        result: Ok(r#"{"ok": "early"}"#.to_string()),
        memory_bytes: 0,
        seq,
    })
    .map_err(|e| MorphError::host_error(e.to_string()))
}

/// The call's channel in its child: input on descriptor 3, output on 4.
fn raw_pipe(fd: i32) -> ManuallyDrop<File> {
    // SAFETY: the child's own pipe descriptors, never closed here.
    ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })
}

fn raw_write(bytes: &[u8]) -> Result<()> {
    raw_pipe(4)
        .write_all(bytes)
        .map_err(|e| MorphError::host_error(e.to_string()))
}

fn raw_read_frame() -> Result<()> {
    let mut input = raw_pipe(3);
    match read_frame(&mut *input, 1 << 20) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(MorphError::host_error("no answer")),
        Err(e) => Err(MorphError::host_error(e.to_string())),
    }
}

const MANIFEST: &str = r#"
extension_id: test.probe
version: 1.0.0
schema_version: "1.0"
metadata: {name: Probe}
runtime: js
resource_limits: {max_execution_ms: 300}
actions: [{name: start}, {name: hang}, {name: calls}, {name: pipeline}, {name: answer_unread},
  {name: answer_seq_zero}, {name: slow},
  {name: answer_early, parameters: [{name: seq, type: string, required: true}]}]
"#;

fn info() -> RuntimeInfo {
    RuntimeInfo::script(
        "probe",
        "probe",
        "0",
        RuntimeKind::Js,
        [
            (EngineLimit::ExecutionTime, Enforcement::Native),
            (EngineLimit::Memory, Enforcement::Native),
            (EngineLimit::Stack, Enforcement::Native),
            (EngineLimit::Fuel, Enforcement::Unsupported),
        ],
    )
}

fn failed(e: impl std::fmt::Display) -> Failed {
    Failed::from(e.to_string())
}

fn load() -> std::result::Result<Box<dyn LoadedExtension>, Failed> {
    let options = WorkerOptions::new().map_err(failed)?;
    let runtime = EngineRuntime::new(WorkerBackend::new(RuntimeKind::Js, info(), false, options))
        .map_err(failed)?;
    let manifest = ExtensionManifest::from_yaml(MANIFEST, "manifest.yaml").map_err(failed)?;
    let artifact = ExtensionArtifact::from_parts(manifest, b"// probe".to_vec());
    pollster::block_on(runtime.load(
        &artifact,
        Arc::new(CapabilityHost::in_memory()),
        &HostPolicy::allow_requested(),
    ))
    .map_err(failed)
}

fn start(ext: &dyn LoadedExtension) -> std::result::Result<Value, Failed> {
    pollster::block_on(ext.execute("start", json!({}), &ExecutionContext::default()))
        .map_err(failed)
}

/// A descriptor the host opened without close-on-exec, pointing at a file
/// whose path the worker must never see.
fn leak_a_descriptor() -> std::result::Result<String, Failed> {
    let dir = std::env::temp_dir().join(format!("morph-leak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let path = dir.join("host-secret.txt");
    std::fs::write(&path, "secret").map_err(failed)?;
    let c_path = std::ffi::CString::new(path.display().to_string()).map_err(failed)?;
    // SAFETY: open(2) on a valid C string, without O_CLOEXEC on purpose.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    Ok(path.display().to_string())
}

fn worker_starts_clean() -> std::result::Result<(), Failed> {
    let leaked = leak_a_descriptor()?;
    let ext = load()?;
    let out = start(&*ext)?;
    assert_eq!(out["environment"], 0, "the worker's environment: {out}");
    let descriptors: BTreeSet<String> = out["descriptors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    if let Some(dir) = std::path::Path::new(&leaked).parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    assert!(
        !descriptors.contains(&leaked),
        "the host's descriptor reached the worker: {descriptors:?}"
    );
    Ok(())
}

fn a_replacement_worker_is_warm_for_the_next_execution() -> std::result::Result<(), Failed> {
    let ext = load()?;
    let first = start(&*ext)?;
    let ctx = ExecutionContext::default();
    let e =
        pollster::block_on(ext.execute("hang", json!({}), &ctx)).expect_err("hang cannot finish");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // The killed worker's replacement starts in the background; give it
    // time to be warm, then the next execution must find it alive.
    std::thread::sleep(Duration::from_millis(800));
    let before = Instant::now();
    let next = start(&*ext)?;
    assert_ne!(first["pid"], next["pid"], "the hung worker was replaced");
    let warm_ms = next["warm_ms"].as_u64().unwrap_or(0);
    let waited = before.elapsed().as_millis() as u64;
    assert!(
        warm_ms > waited + 300,
        "the next execution started a cold worker ({warm_ms} ms warm, {waited} ms call): the background replacement died"
    );
    Ok(())
}

fn run(ext: &dyn LoadedExtension, action: &str) -> morph_core::Result<Value> {
    pollster::block_on(ext.execute(action, json!({}), &ExecutionContext::default()))
}

fn host_calls_one_after_the_other_are_served() -> std::result::Result<(), Failed> {
    let ext = load()?;
    for _ in 0..3 {
        assert_eq!(run(&*ext, "calls").map_err(failed)?, json!("called"));
    }
    Ok(())
}

fn a_pipelined_host_call_is_an_abi_violation() -> std::result::Result<(), Failed> {
    let ext = load()?;
    for action in ["pipeline", "answer_unread"] {
        match run(&*ext, action) {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::AbiViolation, "{action}: {e}");
                assert!(
                    e.message().contains("before reading the answer"),
                    "{action}: {e}"
                );
            }
            Ok(v) => return Err(failed(format!("{action} was served: {v}"))),
        }
        // The worker pool goes on: the next honest execution is served.
        assert_eq!(run(&*ext, "calls").map_err(failed)?, json!("called"));
    }
    Ok(())
}

/// A call's child that keeps running after its answer (here: it forged
/// the answer with the call's number), its channel still open, and writes
/// 2 MiB to stderr while the next execution runs on the same worker: that
/// output is its own call's, never charged to the next execution's
/// `max_output_bytes` (1 MiB), and its open output holds up nothing.
fn stderr_after_an_answer_is_not_the_next_executions() -> std::result::Result<(), Failed> {
    let ext = load()?;
    let e = run(&*ext, "answer_seq_zero").expect_err("an answer for call 0");
    assert_eq!(e.kind(), ErrorKind::AbiViolation, "{e}");
    let running: u64 = e
        .message()
        .rsplit("during call ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| failed(format!("no call number in: {e}")))?;
    let params = json!({"seq": running.wrapping_add(1).to_string()});
    let early =
        pollster::block_on(ext.execute("answer_early", params, &ExecutionContext::default()))
            .map_err(failed)?;
    assert_eq!(early, json!("early"));
    // The same worker (the only one) runs the next execution while the
    // early child writes its stderr.
    let next = run(&*ext, "slow").map_err(failed)?;
    assert_eq!(next, json!("slow"));
    Ok(())
}

fn main() {
    // Threads that exist before the worker is recognised.
    for _ in 0..3 {
        std::thread::spawn(|| std::thread::sleep(Duration::from_secs(600)));
    }
    main_if_worker(&[Arc::new(ProbeEngine)]);
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("worker_starts_clean", worker_starts_clean),
        Trial::test(
            "a_replacement_worker_is_warm_for_the_next_execution",
            a_replacement_worker_is_warm_for_the_next_execution,
        ),
        Trial::test(
            "host_calls_one_after_the_other_are_served",
            host_calls_one_after_the_other_are_served,
        ),
        Trial::test(
            "a_pipelined_host_call_is_an_abi_violation",
            a_pipelined_host_call_is_an_abi_violation,
        ),
        Trial::test(
            "stderr_after_an_answer_is_not_the_next_executions",
            stderr_after_an_answer_is_not_the_next_executions,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
