//! The one registry of backends: a name per Cargo feature, one `match`.

use std::sync::Arc;

use morph_core::{BaseMorphRuntime, MorphError, Result};

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
    ]
}

/// Creates backend `name` with its default options.
pub fn create(name: &str) -> Result<Arc<dyn BaseMorphRuntime>> {
    match name {
        #[cfg(feature = "wasmtime")]
        "wasmtime" => {
            use morph_runtime_wasmtime::{WasmtimeBackend, WasmtimeOptions};
            Ok(Arc::new(morph_core::EngineRuntime::new(
                WasmtimeBackend::new(WasmtimeOptions::default())?,
            )?))
        }
        #[cfg(feature = "wasmtime-pulley")]
        "wasmtime-pulley" => {
            use morph_runtime_wasmtime::{WasmtimeBackend, WasmtimeOptions};
            Ok(Arc::new(morph_core::EngineRuntime::new(
                WasmtimeBackend::new(WasmtimeOptions::pulley())?,
            )?))
        }
        #[cfg(feature = "wasmer")]
        "wasmer" => {
            use morph_runtime_wasmer::{WasmerBackend, WasmerOptions};
            Ok(Arc::new(morph_core::EngineRuntime::new(
                WasmerBackend::new(WasmerOptions::default()),
            )?))
        }
        #[cfg(feature = "wasmi")]
        "wasmi" => {
            use morph_runtime_wasmi::{WasmiBackend, WasmiOptions};
            Ok(Arc::new(morph_core::EngineRuntime::new(
                WasmiBackend::new(WasmiOptions::default()),
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
