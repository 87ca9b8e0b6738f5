//! Running a backend under `ulimit -v` (RLIMIT_AS of [`LIMIT_KIB`], the
//! setting of the address-space issue): a test binary with `harness =
//! false` calls [`main_under_limit`], which re-runs the binary once per
//! scenario under the limit (a process cannot lift its own hard limit) and
//! there loads the kitchen fixture, runs it (an echo, a memory bomb that
//! must end with `memory_limit` at 16 MiB, concurrent echoes) and then the
//! whole conformance suite.

use std::process::Command;
use std::sync::Arc;

use morph_core::{
    BaseMorphRuntime, CapabilityHost, ErrorKind, ExecutionContext, ExtensionArtifact, HostPolicy,
    LoadedExtension,
};
use serde_json::json;

const CHILD: &str = "MORPH_TEST_ADDRESS_SPACE_SCENARIO";
/// The address-space limit the scenarios run under, in KiB.
pub const LIMIT_KIB: u64 = 8_000_000;
const PASSED: &str = "address space scenario passed";

/// Loads the kitchen fixture on `backend` and runs it: an echo, a memory
/// bomb that must end with `memory_limit` at 16 MiB, then `concurrent`
/// echoes at once; then the whole conformance suite.
pub async fn exercise(runtime: Arc<dyn BaseMorphRuntime>, concurrent: usize) {
    let dir = crate::Suite::bundled()
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
    let suite = crate::Suite::bundled().expect("suite");
    let name = runtime.info().name;
    let matrix = crate::Matrix::run(&suite, &[(name, runtime)]).await;
    assert!(matrix.failures().is_empty(), "{}", matrix.render());
    println!(
        "  the conformance suite passes ({} cases)",
        suite.cases.len()
    );
}

/// As many executions at once as Morph's shared pool runs, twice over.
pub fn pool_width() -> usize {
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

/// The `main` of an address-space test: in the parent, runs every one of
/// `scenarios` in a child under the limit and fails unless all pass; in a
/// child, `backend(scenario)` gives the runtime to exercise and how many
/// executions to run at once.
pub fn main_under_limit(
    scenarios: &[&str],
    backend: impl FnOnce(&str) -> (Arc<dyn BaseMorphRuntime>, usize),
) {
    match std::env::var(CHILD) {
        Ok(scenario) => {
            let (runtime, concurrent) = backend(&scenario);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio");
            rt.block_on(exercise(runtime, concurrent));
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
        Err(_) => parent(scenarios),
    }
}
