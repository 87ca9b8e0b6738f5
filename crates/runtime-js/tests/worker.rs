//! The JavaScript worker backend beyond the conformance cases: the cost of
//! a warm execution, and sources that would overflow a parser's native
//! stack. This test binary is also the worker program.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ErrorKind, ExtensionArtifact, HostPolicy,
    LoadedExtension,
};
use morph_runtime_js::{JsEngine, worker_backend};
use morph_worker::{WorkerOptions, main_if_worker};

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

async fn load_fixture(
    runtime: &EngineRuntime,
    name: &str,
) -> Result<Box<dyn LoadedExtension>, Failed> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/fixtures")
        .join(name);
    let artifact = ExtensionArtifact::from_dir(&dir).map_err(|e| Failed::from(e.to_string()))?;
    let host = Arc::new(CapabilityHost::in_memory());
    runtime
        .load(&artifact, host, &HostPolicy::allow_requested())
        .await
        .map_err(|e| Failed::from(format!("loading {name}: {e}")))
}

/// Prints the cost of one warm execution (a timing loop, not a
/// benchmark); fails only on something pathological (above 200 ms each).
fn per_call_cost() -> Result<(), Failed> {
    block_on(async {
        let runtime = runtime()?;
        let ext = load_fixture(&runtime, "script_sandbox").await?;
        let cost = morph_conformance::warm_call_cost(&*ext, "ping", 200)
            .await
            .map_err(|e| Failed::from(format!("ping: {e}")))?;
        eprintln!("js per-call cost: {cost}");
        if cost.mean > Duration::from_millis(200) {
            return Err(format!("a warm execution took {:?}", cost.mean).into());
        }
        Ok(())
    })
}

/// A source too deep for Boa's parser is refused at load with
/// `invalid_module` naming the file and line, never a crash of the worker.
fn deep_source_is_invalid_module() -> Result<(), Failed> {
    block_on(async {
        let runtime = runtime()?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../conformance/fixtures/script_deep_source");
        let artifact =
            ExtensionArtifact::from_dir(&dir).map_err(|e| Failed::from(e.to_string()))?;
        let host = Arc::new(CapabilityHost::in_memory());
        match runtime
            .load(&artifact, host, &HostPolicy::allow_requested())
            .await
        {
            Err(e)
                if e.kind() == ErrorKind::InvalidModule
                    && e.message()
                        .contains("extension.js: line 3: brackets nested too deeply") =>
            {
                Ok(())
            }
            Err(e) => Err(format!("expected invalid_module naming the line, got {e}").into()),
            Ok(_) => Err("a 20000-deep source loaded".into()),
        }
    })
}

fn main() {
    main_if_worker(&[Arc::new(JsEngine)]);
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("js/per_call_cost", per_call_cost),
        Trial::test(
            "js/deep_source_is_invalid_module",
            deep_source_is_invalid_module,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
