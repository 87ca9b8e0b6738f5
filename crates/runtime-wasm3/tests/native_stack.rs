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
use morph_runtime_wasm3::{Wasm3Backend, Wasm3Options};
use serde_json::json;

#[tokio::test]
async fn native_stack_guard_ends_deep_recursion() {
    let dir = morph_conformance::Suite::bundled()
        .expect("suite")
        .root
        .join("fixtures/kitchen");
    let artifact = ExtensionArtifact::from_dir(&dir).expect("kitchen fixture");
    let runtime = EngineRuntime::new(Wasm3Backend::new(Wasm3Options {
        value_stack_bytes: 256 << 20,
    }))
    .expect("runtime");
    let policy = HostPolicy::grant_requested(&artifact.manifest);
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
