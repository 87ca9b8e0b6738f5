//! wasm3 recurses on the native stack. With a value stack far larger than
//! any thread stack, endless recursion must still end with
//! `stack_overflow` (wasm3's native-stack guard, which has to fit the
//! execution thread's stack), not crash the host, and the extension must
//! stay usable.

use std::sync::Arc;

use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ErrorKind, ExecutionContext,
    ExtensionArtifact, HostPolicy,
};
use morph_runtime_wasm3::Wasm3Options;
use serde_json::json;

#[tokio::test]
async fn native_stack_guard_ends_deep_recursion() {
    let dir = morph_conformance::Suite::bundled()
        .expect("suite")
        .root
        .join("fixtures/kitchen");
    let artifact = ExtensionArtifact::from_dir(&dir).expect("kitchen fixture");
    let runtime = EngineRuntime::new(morph_runtime_wasm3::backend(Wasm3Options {
        value_stack_bytes: 256 << 20,
    }))
    .expect("runtime");
    let policy = HostPolicy::allow_requested();
    let ext = runtime
        .load(&artifact, Arc::new(CapabilityHost::in_memory()), &policy)
        .await
        .expect("kitchen loads");
    let ctx = ExecutionContext::default();
    let err = ext
        .execute("recurse", json!({}), &ctx)
        .await
        .expect_err("endless recursion cannot succeed");
    assert_eq!(err.kind(), ErrorKind::StackOverflow, "{err}");
    let out = ext
        .execute("echo", json!({"text": "again"}), &ctx)
        .await
        .expect("echo after the overflow");
    assert_eq!(out["params"]["text"], "again");
}

/// An inline executor on a thread with a 2 MiB stack (tokio's
/// `spawn_blocking` default) would let wasm3's 8 MiB guard budget overflow
/// the real stack; the runtime moves wasm3 to the shared pool instead.
#[test]
fn inline_executor_on_a_small_stack_is_not_used_for_wasm3() {
    let outcome = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("tokio");
            rt.block_on(async {
                let dir = morph_conformance::Suite::bundled()
                    .expect("suite")
                    .root
                    .join("fixtures/kitchen");
                let artifact = ExtensionArtifact::from_dir(&dir).expect("kitchen fixture");
                let runtime = EngineRuntime::with_executor(
                    morph_runtime_wasm3::backend(Wasm3Options::default()),
                    morph_core::Executor::inline(),
                );
                let policy = HostPolicy::allow_requested();
                let ext = runtime
                    .load(&artifact, Arc::new(CapabilityHost::in_memory()), &policy)
                    .await
                    .expect("kitchen loads");
                ext.execute("recurse", json!({}), &ExecutionContext::default())
                    .await
                    .map_err(|e| e.kind())
            })
        })
        .expect("thread")
        .join()
        .expect("the small-stack thread survives");
    assert_eq!(outcome.unwrap_err(), ErrorKind::StackOverflow);
}
