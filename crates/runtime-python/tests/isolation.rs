//! What the Python backend promises beyond the conformance cases: an
//! extension that loops forever or allocates without end is stopped with
//! its kind and the next execution works; one that looks for another
//! extension's secrets, data or state finds nothing; and the worker starts
//! from a clean environment.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ErrorKind, ExecutionContext,
    ExtensionArtifact, HostPolicy, LoadedExtension,
};
use morph_runtime_python::{PythonEngine, worker_backend};
use morph_worker::{WorkerOptions, main_if_worker};
use serde_json::{Value, json};

fn fixture(name: &str) -> Result<ExtensionArtifact, Failed> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    ExtensionArtifact::from_dir(&dir).map_err(|e| Failed::from(e.to_string()))
}

async fn load(
    runtime: &EngineRuntime,
    host: &Arc<CapabilityHost>,
    name: &str,
    limits: Option<(u64, u64)>,
) -> Result<Box<dyn LoadedExtension>, Failed> {
    let mut artifact = fixture(name)?;
    if let Some((ms, mb)) = limits {
        artifact.manifest.resource_limits.max_execution_ms = ms;
        artifact.manifest.resource_limits.max_memory_mb = mb;
    }
    let policy = HostPolicy::allow_requested();
    runtime
        .load(&artifact, host.clone(), &policy)
        .await
        .map_err(|e| Failed::from(format!("loading {name}: {e}")))
}

fn block_on<F: std::future::Future<Output = Result<(), Failed>>>(f: F) -> Result<(), Failed> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?
        .block_on(f)
}

fn runtime() -> Result<EngineRuntime, Failed> {
    let options = WorkerOptions::new().map_err(|e| Failed::from(e.to_string()))?;
    EngineRuntime::new(worker_backend(options)).map_err(|e| Failed::from(e.to_string()))
}

async fn expect_kind(
    ext: &dyn LoadedExtension,
    action: &str,
    kind: ErrorKind,
    limit: Duration,
) -> Result<(), Failed> {
    let started = Instant::now();
    let result = ext
        .execute(action, json!({}), &ExecutionContext::default())
        .await;
    let took = started.elapsed();
    match result {
        Err(e) if e.kind() == kind => {}
        other => return Err(format!("{action}: expected {kind}, got {other:?}").into()),
    }
    let bound = limit + limit.max(Duration::from_millis(500));
    if took > bound {
        return Err(format!("{action} took {took:?}, above {bound:?}").into());
    }
    eprintln!("{action}: {kind} after {took:?}");
    let again = ext
        .execute("ping", json!({}), &ExecutionContext::default())
        .await;
    if again.as_ref().ok() != Some(&json!("pong")) {
        return Err(format!("after {action}, ping gave {again:?}").into());
    }
    Ok(())
}

fn endless_loop() -> Result<(), Failed> {
    block_on(async {
        let runtime = runtime()?;
        let host = Arc::new(CapabilityHost::in_memory());
        let ext = load(&runtime, &host, "snoop", Some((300, 64))).await?;
        expect_kind(
            ext.as_ref(),
            "spin",
            ErrorKind::Timeout,
            Duration::from_millis(300),
        )
        .await
    })
}

fn endless_allocation() -> Result<(), Failed> {
    block_on(async {
        let runtime = runtime()?;
        let host = Arc::new(CapabilityHost::in_memory());
        let ext = load(&runtime, &host, "snoop", Some((10_000, 64))).await?;
        expect_kind(
            ext.as_ref(),
            "hoard",
            ErrorKind::MemoryLimit,
            Duration::from_secs(10),
        )
        .await
    })
}

fn nothing_of_another_extension() -> Result<(), Failed> {
    block_on(async {
        let runtime = runtime()?;
        let host = Arc::new(CapabilityHost::in_memory());
        let keeper = load(&runtime, &host, "keeper", None).await?;
        let kept = keeper
            .execute("keep", json!({}), &ExecutionContext::default())
            .await
            .map_err(|e| Failed::from(format!("keep: {e}")))?;
        if kept != json!({"secret": "keeper-secret-42", "data": "keeper-data-42"}) {
            return Err(format!("keeper stored {kept}").into());
        }
        let snoop = load(&runtime, &host, "snoop", None).await?;
        let found = snoop
            .execute("snoop", json!({}), &ExecutionContext::default())
            .await
            .map_err(|e| Failed::from(format!("snoop: {e}")))?;
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&found).unwrap_or_default()
        );
        let text = found.to_string();
        if text.contains("keeper-secret")
            || text.contains("keeper-data")
            || text.contains("keeper-state")
        {
            return Err(format!("the snoop found the keeper's things: {found}").into());
        }
        let expect = |field: &str, want: Value| -> Result<(), Failed> {
            if found[field] != want {
                return Err(format!("{field}: expected {want}, got {}", found[field]).into());
            }
            Ok(())
        };
        expect("vault", json!({"found": "None"}))?;
        expect("data", json!({"found": "None"}))?;
        expect("environ", json!({"found": "{}"}))?;
        expect("modules", json!([]))?;
        expect("memory", json!({"found": "[]"}))?;
        for denied in [
            "parent_environ",
            "parent_memory",
            "data_dir",
            "posix_open",
            "kill_parent",
        ] {
            if found[denied]["error"] != json!("SandboxError") {
                return Err(
                    format!("{denied}: expected SandboxError, got {}", found[denied]).into(),
                );
            }
        }
        // The host is still there and the keeper still has its things.
        let again = keeper
            .execute("keep", json!({}), &ExecutionContext::default())
            .await
            .map_err(|e| Failed::from(format!("keep again: {e}")))?;
        if again != kept {
            return Err(format!("keeper after the snoop: {again}").into());
        }
        Ok(())
    })
}

/// Every execution runs in a new child of one warm zygote, and a child
/// killed at its deadline takes nothing else with it: the next execution
/// forks from the same zygote.
fn every_call_is_a_fresh_child_of_a_warm_zygote() -> Result<(), Failed> {
    block_on(async {
        let runtime = runtime()?;
        let host = Arc::new(CapabilityHost::in_memory());
        let ext = load(&runtime, &host, "snoop", Some((300, 64))).await?;
        let pid = || async {
            ext.execute("pid", json!({}), &ExecutionContext::default())
                .await
                .map_err(|e| Failed::from(format!("pid: {e}")))
        };
        let first = pid().await?;
        let second = pid().await?;
        if first["zygote"] != second["zygote"] {
            return Err(
                format!("a new zygote for the second execution: {first} then {second}").into(),
            );
        }
        if first["call"] == second["call"] {
            return Err(format!("two executions in one process: {first} then {second}").into());
        }
        let spin = ext
            .execute("spin", json!({}), &ExecutionContext::default())
            .await;
        if spin.as_ref().err().map(|e| e.kind()) != Some(ErrorKind::Timeout) {
            return Err(format!("spin: {spin:?}").into());
        }
        let started = Instant::now();
        let third = pid().await?;
        if third["zygote"] != first["zygote"] {
            return Err(format!("the timeout killed the zygote: {first} then {third}").into());
        }
        eprintln!("after a timeout: {third} in {:?}", started.elapsed());
        Ok(())
    })
}

fn a_worker_that_hangs_up_is_reported_not_waited_for() -> Result<(), Failed> {
    block_on(async {
        let runtime = runtime()?;
        let host = Arc::new(CapabilityHost::in_memory());
        // A long limit: the host must notice the closed pipes, not the deadline.
        let ext = load(&runtime, &host, "snoop", Some((60_000, 64))).await?;
        let started = Instant::now();
        let result = ext
            .execute("hangup", json!({}), &ExecutionContext::default())
            .await;
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("hangup took {:?}", started.elapsed()).into());
        }
        match result {
            Err(e) if e.kind() == ErrorKind::Trap => {}
            other => return Err(format!("hangup: expected trap, got {other:?}").into()),
        }
        let again = ext
            .execute("ping", json!({}), &ExecutionContext::default())
            .await;
        if again.as_ref().ok() != Some(&json!("pong")) {
            return Err(format!("after hangup, ping gave {again:?}").into());
        }
        Ok(())
    })
}

/// `max_memory_mb` is honest: an extension that allocates until it cannot
/// gets about as much as the limit, not the limit plus a hidden margin.
fn max_memory_is_honest() -> Result<(), Failed> {
    block_on(async {
        let runtime = runtime()?;
        let host = Arc::new(CapabilityHost::in_memory());
        for mb in [2u64, 16, 64] {
            let ext = load(&runtime, &host, "snoop", Some((20_000, mb))).await?;
            let got = ext
                .execute("measure", json!({}), &ExecutionContext::default())
                .await
                .map_err(|e| Failed::from(format!("measure: {e}")))?;
            let got = got.as_u64().unwrap_or(0);
            let limit = mb << 20;
            eprintln!("max_memory_mb = {mb}: the guest got {} KiB", got >> 10);
            // Python's own bookkeeping takes a little of the limit; the
            // slack above it is the engine headroom (ENGINE_HEADROOM, 2
            // MiB) plus what the zygote's heap had free.
            if got < limit / 2 || got > limit + (4 << 20) {
                return Err(format!("max_memory_mb = {mb}: the guest got {got} bytes").into());
            }
        }
        Ok(())
    })
}

/// Prints the cost of one warm execution (a timing loop, not a
/// benchmark); fails only on something pathological (above 200 ms each).
fn per_call_cost() -> Result<(), Failed> {
    block_on(async {
        let runtime = runtime()?;
        let host = Arc::new(CapabilityHost::in_memory());
        let ext = load(&runtime, &host, "snoop", None).await?;
        let cost = morph_conformance::warm_call_cost(&*ext, "ping", 200)
            .await
            .map_err(|e| Failed::from(format!("ping: {e}")))?;
        eprintln!("python per-call cost: {cost}");
        if cost.mean > Duration::from_millis(200) {
            return Err(format!("a warm execution took {:?}", cost.mean).into());
        }
        Ok(())
    })
}

fn main() {
    main_if_worker(&[Arc::new(PythonEngine)]);
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("python/per_call_cost", per_call_cost),
        Trial::test("python/max_memory_is_honest", max_memory_is_honest),
        Trial::test("python/endless_loop_is_timeout", endless_loop),
        Trial::test(
            "python/endless_allocation_is_memory_limit",
            endless_allocation,
        ),
        Trial::test(
            "python/nothing_of_another_extension",
            nothing_of_another_extension,
        ),
        Trial::test(
            "python/every_call_is_a_fresh_child_of_a_warm_zygote",
            every_call_is_a_fresh_child_of_a_warm_zygote,
        ),
        Trial::test(
            "python/a_worker_that_hangs_up_is_reported_not_waited_for",
            a_worker_that_hangs_up_is_reported_not_waited_for,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
