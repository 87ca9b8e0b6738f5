//! Support for engine crates' tests: an engine wrapper that reproduces a
//! fault of Morph's own (not the guest's) on a real engine, so a backend
//! can show how it reports one.

use std::sync::Arc;

use morph_core::{Result, RuntimeInfo};

use crate::adapter::{NotInstantiated, WasmEngine};
use crate::context::GuestContext;
use crate::instrument::Instrumentation;
use crate::module::Import;

/// An ABI v1 module (WAT) that imports `morph.log` and calls it from a
/// function: valid, so a failure to link it is the host's fault.
pub const IMPORTS_LOG: &str = r#"(module
  (import "morph" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 16) "{\"name\":\"Logs\",\"version\":\"1.0.0\",\"actions\":[{\"name\":\"run\",\"description\":\"Logs.\",\"parameters\":[]}],\"events\":[],\"config_schema\":{}}")
  (data (i32.const 512) "{\"ok\":\"ran\"}")
  (func (export "morph_abi_version") (result i32) (i32.const 1))
  (func (export "morph_alloc") (param i32) (result i32)
    (global.get $heap)
    (global.set $heap (i32.add (global.get $heap) (local.get 0))))
  (func (export "describe") (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 129)))
  (func (export "execute") (param i32 i32 i32 i32 i32 i32) (result i64)
    (call $log (i32.const 2) (i32.const 512) (i32.const 12))
    (i64.or (i64.shl (i64.const 512) (i64.const 32)) (i64.const 12)))
)"#;

/// The manifest for [`IMPORTS_LOG`] (entry `extension.wat`).
pub const IMPORTS_LOG_MANIFEST: &str = "extension_id: test.logs\nversion: 1.0.0\n\
    schema_version: \"1.0\"\nmetadata: {name: Logs, description: Imports morph.log.}\n\
    runtime: wasm\nentry: extension.wat\n\
    actions:\n  - {name: run, description: Logs.}\n";

/// `E`, except that [`link`](WasmEngine::link) leaves out the import
/// named `missing`: a host function Morph failed to provide for a module
/// that validation accepted (a bug of Morph's, never of the guest's).
pub struct LinksWithout<E> {
    /// The real engine.
    pub engine: E,
    /// The import (function name) left out.
    pub missing: &'static str,
}

impl<E: WasmEngine> WasmEngine for LinksWithout<E> {
    type Compiled = E::Compiled;
    type Linked = E::Linked;
    type Instance = E::Instance;

    fn info(&self) -> RuntimeInfo {
        self.engine.info()
    }

    fn instrumentation(&self) -> Instrumentation {
        self.engine.instrumentation()
    }

    fn max_memory_bytes(&self) -> u64 {
        self.engine.max_memory_bytes()
    }

    fn native_stack_needed(&self) -> usize {
        self.engine.native_stack_needed()
    }

    fn compile(&self, wasm: &[u8]) -> Result<Self::Compiled> {
        self.engine.compile(wasm)
    }

    fn link(&self, compiled: Self::Compiled, imports: Arc<[Import]>) -> Result<Self::Linked> {
        let kept: Vec<Import> = imports
            .iter()
            .filter(|i| i.name != self.missing)
            .cloned()
            .collect();
        self.engine.link(compiled, kept.into())
    }

    fn instantiate(
        &self,
        linked: &Self::Linked,
        context: GuestContext,
    ) -> std::result::Result<Self::Instance, Box<NotInstantiated>> {
        self.engine.instantiate(linked, context)
    }
}

/// Loads [`IMPORTS_LOG`] on `engine` with everything granted.
async fn load_imports_log<E: WasmEngine>(
    engine: E,
) -> Result<Box<dyn morph_core::LoadedExtension>> {
    use morph_core::BaseMorphRuntime as _;
    let runtime = morph_core::EngineRuntime::new(crate::WasmBackend::new(engine))?;
    let manifest = morph_core::ExtensionManifest::from_yaml(IMPORTS_LOG_MANIFEST, "manifest.yaml")?;
    let artifact =
        morph_core::ExtensionArtifact::from_parts(manifest, IMPORTS_LOG.as_bytes().to_vec());
    runtime
        .load(
            &artifact,
            Arc::new(morph_core::CapabilityHost::in_memory()),
            &morph_core::HostPolicy::allow_requested(),
        )
        .await
}

/// The backend test of a fault of Morph's own at instantiation: with
/// every import linked, [`IMPORTS_LOG`] loads on `make()`'s engine and
/// runs; with `morph.log` left out ([`LinksWithout`]) the load, or the
/// first call of the import on an engine that links lazily, fails with
/// `host_error` whose message contains `message_part`.
///
/// # Panics
/// When the backend does not behave so (it is a test assertion).
pub async fn assert_a_missing_link_is_host_error<E: WasmEngine>(
    make: impl Fn() -> E,
    message_part: &str,
) {
    let context = morph_core::ExecutionContext::default();
    let ext = load_imports_log(make())
        .await
        .expect("the module loads with every import linked");
    let out = ext
        .execute("run", serde_json::json!({}), &context)
        .await
        .expect("and runs");
    assert_eq!(out, serde_json::json!("ran"));
    let engine = LinksWithout {
        engine: make(),
        missing: "log",
    };
    let e = match load_imports_log(engine).await {
        Ok(ext) => ext
            .execute("run", serde_json::json!({}), &context)
            .await
            .expect_err("ran without `morph.log` linked"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), morph_core::ErrorKind::HostError, "{e}");
    assert!(e.to_string().contains(message_part), "{e}");
}
