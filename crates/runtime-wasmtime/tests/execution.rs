//! Execution-model behaviour that the case format cannot express:
//! cancellation by dropping the future, and concurrent executions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ErrorKind, ExecutionContext, Executor,
    ExecutorOptions, ExtensionArtifact, HostPolicy, LoadedExtension,
};
use morph_runtime_wasmtime::WasmtimeOptions;
use serde_json::json;

fn kitchen_artifact() -> ExtensionArtifact {
    let dir = morph_conformance::Suite::bundled()
        .expect("suite")
        .root
        .join("fixtures/kitchen");
    ExtensionArtifact::from_dir(&dir).expect("kitchen fixture")
}

async fn kitchen(threads: usize, max_execution_ms: u64) -> Box<dyn LoadedExtension> {
    let executor = Executor::new(ExecutorOptions {
        threads,
        ..ExecutorOptions::default()
    })
    .expect("executor");
    let backend = morph_runtime_wasmtime::backend(WasmtimeOptions::default()).expect("backend");
    let runtime = EngineRuntime::with_executor(backend, executor);
    let mut artifact = kitchen_artifact();
    artifact.manifest.resource_limits.max_execution_ms = max_execution_ms;
    let policy = HostPolicy::allow_requested();
    runtime
        .load(&artifact, Arc::new(CapabilityHost::in_memory()), &policy)
        .await
        .expect("kitchen loads")
}

#[tokio::test]
async fn dropping_the_execute_future_stops_the_guest() {
    // One execution thread: the echo below can only run once the loop has
    // really stopped, long before its 30 s limit.
    let ext = kitchen(1, 30_000).await;
    let ctx = ExecutionContext::default();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        ext.execute("loop", json!({}), &ctx),
    )
    .await;
    assert!(abandoned.is_err(), "the loop cannot finish by itself");
    let started = Instant::now();
    let out = ext
        .execute("echo", json!({"text": "after"}), &ctx)
        .await
        .expect("echo runs after the cancelled loop");
    assert_eq!(out["params"]["text"], "after");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "waited {waited:?} for the pool thread"
    );
}

#[tokio::test]
async fn concurrent_executions_are_isolated() {
    let ext = kitchen(2, 5_000).await;
    let ctx = ExecutionContext::default();
    let (a, b, c, d) = tokio::join!(
        ext.execute("echo", json!({"text": "a"}), &ctx),
        ext.execute("trap", json!({}), &ctx),
        ext.execute("echo", json!({"text": "c", "count": 3}), &ctx),
        ext.execute("memory_bomb", json!({}), &ctx),
    );
    assert_eq!(a.expect("a")["params"], json!({"text": "a"}));
    assert_eq!(b.expect_err("trap").kind(), ErrorKind::Trap);
    assert_eq!(c.expect("c")["params"], json!({"text": "c", "count": 3}));
    assert_eq!(d.expect_err("bomb").kind(), ErrorKind::MemoryLimit);
}

#[tokio::test]
async fn reports_measure_each_execution() {
    let ext = kitchen(1, 5_000).await;
    let ctx = ExecutionContext {
        request_id: Some("r-9".into()),
        ..ExecutionContext::default()
    };
    let run = ext
        .execute_with_report(
            "call",
            json!({"op": "data.get", "args": {"key": "k"}}),
            &ctx,
        )
        .await;
    assert_eq!(run.result.expect("call"), json!({"ok": null}));
    assert_eq!(run.report.request_id, "r-9");
    assert_eq!(run.report.host_calls, 1);
    assert!(run.report.peak_memory_bytes >= 2 * 65_536);
}

#[tokio::test]
async fn strict_limits_refuse_a_backend_that_cannot_enforce_them() {
    // Default wasmtime does not count fuel: a host asking for a fuel budget
    // gets `unsupported` under Strict, and a load under BestEffort.
    let runtime = EngineRuntime::new(
        morph_runtime_wasmtime::backend(WasmtimeOptions::default()).expect("backend"),
    )
    .expect("runtime");
    let artifact = kitchen_artifact();
    let mut policy = HostPolicy::allow_requested();
    policy.fuel = Some(1_000_000);
    let host = Arc::new(CapabilityHost::in_memory());
    let Err(e) = runtime.load(&artifact, host.clone(), &policy).await else {
        panic!("must refuse");
    };
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("fuel"), "{e}");
    policy.enforcement = morph_core::LimitEnforcement::BestEffort;
    assert!(runtime.load(&artifact, host, &policy).await.is_ok());
}

#[tokio::test]
async fn a_fuel_budget_ends_a_loop_with_fuel_exhausted() {
    let options = WasmtimeOptions {
        fuel: true,
        ..WasmtimeOptions::default()
    };
    let runtime = EngineRuntime::new(morph_runtime_wasmtime::backend(options).expect("backend"))
        .expect("runtime");
    let artifact = kitchen_artifact();
    let mut policy = HostPolicy::allow_requested();
    policy.fuel = Some(5_000_000);
    let ext = runtime
        .load(&artifact, Arc::new(CapabilityHost::in_memory()), &policy)
        .await
        .expect("loads with fuel");
    let run = ext
        .execute_with_report("loop", json!({}), &ExecutionContext::default())
        .await;
    assert_eq!(
        run.result.expect_err("loop").kind(),
        ErrorKind::FuelExhausted
    );
    assert!(
        run.report.fuel_used.is_some_and(|f| f >= 5_000_000),
        "{:?}",
        run.report.fuel_used
    );
    let ok = ext
        .execute_with_report("echo", json!({"text": "t"}), &ExecutionContext::default())
        .await;
    assert!(ok.result.is_ok());
    assert!(ok.report.fuel_used.is_some_and(|f| f > 0 && f < 5_000_000));
}

/// An engine configured for small memories refuses, at load, a policy
/// whose memory cap it could not honour (growth between the two would
/// return -1 here and end with `memory_limit` on other backends).
#[tokio::test]
async fn a_memory_cap_above_the_engine_reservation_is_unsupported() {
    let backend = morph_runtime_wasmtime::backend(WasmtimeOptions {
        memory_reservation: 64 << 20,
        pool_slots: 0,
        ..WasmtimeOptions::default()
    })
    .expect("backend");
    let runtime = EngineRuntime::new(backend).expect("runtime");
    let policy = HostPolicy::allow_requested();
    let mut artifact = kitchen_artifact();
    artifact.manifest.resource_limits.max_memory_mb = 128;
    let e = runtime
        .load(&artifact, Arc::new(CapabilityHost::in_memory()), &policy)
        .await
        .err()
        .expect("refused");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.message().contains("max_memory_mb = 128"), "{e}");
    artifact.manifest.resource_limits.max_memory_mb = 64;
    runtime
        .load(&artifact, Arc::new(CapabilityHost::in_memory()), &policy)
        .await
        .expect("a cap within the reservation loads");
}
