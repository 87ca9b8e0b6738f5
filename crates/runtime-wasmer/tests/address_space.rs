//! Under `ulimit -v 8000000` (RLIMIT_AS of 8,000,000 KiB, the issue's
//! setting) the wasmer backend still runs extensions: every memory is
//! static with a bound sized from the address space (wasmer's own layout
//! reserves 4 GiB plus a 4 GiB guard per memory, so not even a 2-page
//! memory could be created: "Failed to create memory ... os error 12").
//! Each scenario runs in a child process (this binary again, started by
//! `sh -c 'ulimit -v ...'`), since a process cannot lift its own hard
//! limit.

use std::process::Command;
use std::sync::Arc;

use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ErrorKind, ExecutionContext,
    ExtensionArtifact, HostPolicy, LoadedExtension,
};
use morph_runtime_wasmer::WasmerOptions;
use serde_json::json;

const CHILD: &str = "MORPH_TEST_ADDRESS_SPACE_SCENARIO";
const LIMIT_KIB: u64 = 8_000_000;
const PASSED: &str = "address space scenario passed";
const SCENARIOS: &[&str] = &["default"];

async fn child(scenario: &str) {
    assert_eq!(scenario, "default");
    let options = WasmerOptions::default();
    assert_eq!(options.memory_reservation, 128 << 20, "{options:?}");
    println!(
        "  memory_reservation {} MiB, memory_guard {} MiB",
        options.memory_reservation >> 20,
        options.memory_guard >> 20
    );
    exercise(morph_runtime_wasmer::backend(options), pool_width()).await;
}

/// Loads the kitchen fixture on `backend` and runs it: an echo, a memory
/// bomb that must end with `memory_limit` at 16 MiB, then `concurrent`
/// echoes at once; then the whole conformance suite.
async fn exercise(backend: impl morph_core::Backend, concurrent: usize) {
    let runtime: Arc<dyn BaseMorphRuntime> =
        Arc::new(EngineRuntime::new(backend).expect("runtime"));
    let dir = morph_conformance::Suite::bundled()
        .expect("suite")
        .root
        .join("fixtures/kitchen");
    let mut artifact = ExtensionArtifact::from_dir(&dir).expect("kitchen fixture");
    artifact.manifest.resource_limits.max_memory_mb = 16;
    let ext: Arc<dyn LoadedExtension> = runtime
        .load(
            &artifact,
            Arc::new(CapabilityHost::in_memory()),
            &HostPolicy::allow_requested(),
        )
        .await
        .expect("kitchen loads")
        .into();
    let ctx = ExecutionContext::default();
    let out = ext
        .execute("echo", json!({"text": "limited"}), &ctx)
        .await
        .expect("echo runs");
    assert_eq!(out["params"]["text"], "limited");
    let e = ext
        .execute("memory_bomb", json!({}), &ctx)
        .await
        .expect_err("the bomb hits the cap");
    assert_eq!(e.kind(), ErrorKind::MemoryLimit, "{e}");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..concurrent {
        let ext = ext.clone();
        set.spawn(async move {
            ext.execute(
                "echo",
                json!({"text": format!("n{i}")}),
                &ExecutionContext::default(),
            )
            .await
        });
    }
    while let Some(done) = set.join_next().await {
        done.expect("task").expect("concurrent echo runs");
    }
    let suite = morph_conformance::Suite::bundled().expect("suite");
    let name = runtime.info().name;
    let matrix = morph_conformance::Matrix::run(&suite, &[(name, runtime)]).await;
    assert!(matrix.failures().is_empty(), "{}", matrix.render());
    println!(
        "  the conformance suite passes ({} cases)",
        suite.cases.len()
    );
}

/// As many executions at once as Morph's shared pool runs, twice over.
fn pool_width() -> usize {
    morph_core::Executor::shared()
        .expect("pool")
        .options()
        .threads
        * 2
}

fn parent(scenarios: &[&str]) {
    let exe = std::env::current_exe().expect("test binary path");
    let mut failed = Vec::new();
    for scenario in scenarios {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {LIMIT_KIB} && exec \"$0\""))
            .arg(&exe)
            .env(CHILD, scenario)
            .output()
            .expect("sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let ok = out.status.success() && stdout.contains(PASSED);
        println!(
            "test address_space/{scenario} ... {}",
            if ok { "ok" } else { "FAILED" }
        );
        print!("{stdout}");
        if !ok {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            failed.push(*scenario);
        }
    }
    assert!(
        failed.is_empty(),
        "failed under ulimit -v {LIMIT_KIB}: {failed:?}"
    );
}

fn main() {
    match std::env::var(CHILD) {
        Ok(scenario) => {
            assert_eq!(
                morph_wasm::address_space_limit(),
                Some(LIMIT_KIB << 10),
                "the child runs under the limit"
            );
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio");
            rt.block_on(child(&scenario));
            // The measurement for the record: how much of the limit it took.
            let peak = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmPeak:"))
                        .map(str::to_string)
                });
            println!("  {}", peak.unwrap_or_default());
            println!("  {PASSED}");
        }
        Err(_) => parent(SCENARIOS),
    }
}
