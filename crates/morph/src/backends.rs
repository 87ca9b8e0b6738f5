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
        #[cfg(feature = "js")]
        "js",
        #[cfg(feature = "js")]
        "js-inprocess",
        #[cfg(feature = "python")]
        "python",
    ]
}

/// The extension kind backend `name` runs, if it is compiled in.
pub fn kind_of(name: &str) -> Option<morph_core::RuntimeKind> {
    use morph_core::RuntimeKind;
    if !compiled().contains(&name) {
        return None;
    }
    Some(match name {
        "js" | "js-inprocess" => RuntimeKind::Js,
        "python" => RuntimeKind::Python,
        _ => RuntimeKind::Wasm,
    })
}

/// The first compiled backend for `kind` (the default choice).
pub fn default_for(kind: morph_core::RuntimeKind) -> Option<&'static str> {
    compiled()
        .iter()
        .copied()
        .find(|name| kind_of(name) == Some(kind))
}

/// The script engines this build can serve in a worker process.
pub fn script_engines() -> Vec<Arc<dyn morph_core::ScriptEngine>> {
    vec![
        #[cfg(feature = "js")]
        Arc::new(morph_runtime_js::JsEngine),
        #[cfg(feature = "python")]
        Arc::new(morph_runtime_python::PythonEngine),
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
        #[cfg(feature = "js")]
        "js" => Ok(Arc::new(morph_core::EngineRuntime::new(
            morph_runtime_js::worker_backend(morph_core::worker::WorkerOptions::new()?),
        )?)),
        #[cfg(feature = "js")]
        "js-inprocess" => Ok(Arc::new(morph_core::EngineRuntime::new(
            morph_runtime_js::in_process_backend(),
        )?)),
        #[cfg(feature = "python")]
        "python" => Ok(Arc::new(morph_core::EngineRuntime::new(
            morph_runtime_python::worker_backend(morph_core::worker::WorkerOptions::new()?),
        )?)),
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
