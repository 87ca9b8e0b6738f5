//! A fault of Morph's own at instantiation (here: a host function it
//! failed to link for a module validation accepted) is `host_error` with
//! the engine's message, never a guest kind (`trap`, `invalid_module`,
//! `unsupported`), whether the engine finds it at load or at the first
//! call of the import.

use std::sync::Arc;

use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ErrorKind, ExecutionContext,
    ExtensionArtifact, ExtensionManifest, HostPolicy, LoadedExtension,
};
use morph_runtime_wasm3::{Wasm3Engine, Wasm3Options};
use morph_wasm::testing::{IMPORTS_LOG, IMPORTS_LOG_MANIFEST, LinksWithout};
use morph_wasm::{WasmBackend, WasmEngine};
use serde_json::json;

async fn load<E: WasmEngine>(engine: E) -> morph_core::Result<Box<dyn LoadedExtension>> {
    let runtime = EngineRuntime::new(WasmBackend::new(engine)).expect("runtime");
    let manifest =
        ExtensionManifest::from_yaml(IMPORTS_LOG_MANIFEST, "manifest.yaml").expect("manifest");
    let artifact = ExtensionArtifact::from_parts(manifest, IMPORTS_LOG.as_bytes().to_vec());
    runtime
        .load(
            &artifact,
            Arc::new(CapabilityHost::in_memory()),
            &HostPolicy::allow_requested(),
        )
        .await
}

#[tokio::test]
async fn a_host_function_morph_failed_to_link_is_host_error() {
    let ext = load(Wasm3Engine::new(Wasm3Options::default()))
        .await
        .expect("the module loads with every import linked");
    let out = ext
        .execute("run", json!({}), &ExecutionContext::default())
        .await
        .expect("and runs");
    assert_eq!(out, json!("ran"));
    let engine = LinksWithout {
        engine: Wasm3Engine::new(Wasm3Options::default()),
        missing: "log",
    };
    // At load (engines that link there), or when the guest first calls
    // the import (wasm3 links lazily).
    let e = match load(engine).await {
        Ok(ext) => ext
            .execute("run", json!({}), &ExecutionContext::default())
            .await
            .expect_err("ran without `morph.log` linked"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::HostError, "{e}");
    // wasm3 does not name the import: it has no body.
    assert!(
        e.to_string().contains("function body is missing"),
        "the message is wasm3's: {e}"
    );
}
