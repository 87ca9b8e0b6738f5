//! The one registry of backends: a name per Cargo feature, one `match`.

use std::sync::Arc;

use morph_core::{BaseMorphRuntime, ModuleCache, MorphError, Result};

/// Names of the backends compiled into this build, in preference order.
pub fn compiled() -> &'static [&'static str] {
    &[
        #[cfg(feature = "wasmtime")]
        "wasmtime",
        #[cfg(feature = "wasmtime-pulley")]
        "wasmtime-pulley",
        #[cfg(feature = "wasmer")]
        "wasmer",
        #[cfg(feature = "wasmi")]
        "wasmi",
        #[cfg(feature = "wasm3")]
        "wasm3",
    ]
}

/// Creates backend `name` with its default options.
pub fn create(name: &str) -> Result<Arc<dyn BaseMorphRuntime>> {
    create_with_cache(name, None)
}

/// Creates backend `name` with its default options, keeping compiled
/// modules in `cache` where the engine can serialize them (wasmtime,
/// wasmtime-pulley, wasmer; the interpreters ignore it).
#[cfg_attr(
    not(any(feature = "wasmtime", feature = "wasmer")),
    allow(unused_variables)
)]
pub fn create_with_cache(
    name: &str,
    cache: Option<Arc<ModuleCache>>,
) -> Result<Arc<dyn BaseMorphRuntime>> {
    match name {
        #[cfg(feature = "wasmtime")]
        "wasmtime" => {
            use morph_runtime_wasmtime::{WasmtimeBackend, WasmtimeOptions};
            let mut backend = WasmtimeBackend::new(WasmtimeOptions::default())?;
            if let Some(cache) = cache {
                backend = backend.with_cache(cache);
            }
            Ok(Arc::new(morph_core::EngineRuntime::new(backend)?))
        }
        #[cfg(feature = "wasmtime-pulley")]
        "wasmtime-pulley" => {
            use morph_runtime_wasmtime::{WasmtimeBackend, WasmtimeOptions};
            let mut backend = WasmtimeBackend::new(WasmtimeOptions::pulley())?;
            if let Some(cache) = cache {
                backend = backend.with_cache(cache);
            }
            Ok(Arc::new(morph_core::EngineRuntime::new(backend)?))
        }
        #[cfg(feature = "wasmer")]
        "wasmer" => {
            use morph_runtime_wasmer::{WasmerBackend, WasmerOptions};
            let mut backend = WasmerBackend::new(WasmerOptions::default());
            if let Some(cache) = cache {
                backend = backend.with_cache(cache);
            }
            Ok(Arc::new(morph_core::EngineRuntime::new(backend)?))
        }
        #[cfg(feature = "wasmi")]
        "wasmi" => {
            use morph_runtime_wasmi::{WasmiBackend, WasmiOptions};
            Ok(Arc::new(morph_core::EngineRuntime::new(
                WasmiBackend::new(WasmiOptions::default()),
            )?))
        }
        #[cfg(feature = "wasm3")]
        "wasm3" => {
            use morph_runtime_wasm3::{Wasm3Backend, Wasm3Options};
            Ok(Arc::new(morph_core::EngineRuntime::new(
                Wasm3Backend::new(Wasm3Options::default()),
            )?))
        }
        other => Err(MorphError::not_found(format!(
            "backend `{other}` is not compiled into this build (compiled: {}); enable its Cargo feature",
            if compiled().is_empty() {
                "none".to_string()
            } else {
                compiled().join(", ")
            }
        ))),
    }
}
