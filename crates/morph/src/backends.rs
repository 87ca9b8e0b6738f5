//! The one registry of backends: [`Backend`], a variant per engine, each
//! behind its Cargo feature.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use morph_core::{BaseMorphRuntime, EngineRuntime, Executor, MorphError, Result, RuntimeKind};

/// A compiled-module cache for the JIT backends (wasmtime, wasmtime-pulley,
/// wasmer); the interpreters ignore it.
#[cfg(any(
    feature = "wasmtime",
    feature = "wasmer",
    feature = "wasmi",
    feature = "wasm3"
))]
pub type ModuleCacheHandle = Arc<dyn morph_wasm::CompiledModuleCache>;

/// Options every backend is created with.
#[derive(Clone, Default)]
pub struct BackendOptions {
    /// Where the JIT backends keep compiled modules. Default: none.
    #[cfg(any(
        feature = "wasmtime",
        feature = "wasmer",
        feature = "wasmi",
        feature = "wasm3"
    ))]
    pub module_cache: Option<ModuleCacheHandle>,
    /// The execution threads. Default: Morph's shared pool
    /// ([`Executor::shared`]).
    pub executor: Option<Executor>,
    /// Instance slots of wasmtime's pooling allocator (wasmtime and
    /// wasmtime-pulley; `WasmtimeOptions::pool_slots`, 0 allocates each
    /// instance on demand). Default `None`: sized from the process's
    /// address space (`ulimit -v`). Other backends ignore it.
    pub wasmtime_pool_slots: Option<u32>,
    /// The program the `js` and `python` backends start as their worker
    /// processes: one whose `main` calls `main_if_worker` with the
    /// engine (the `morph` CLI, or the `morph-worker` binary of
    /// `crates/morph-script-worker`). Default `None`: this program, which
    /// then needs the `js` / `python` feature (the engine), not only
    /// `js-worker` / `python-worker`.
    pub worker_program: Option<PathBuf>,
}

/// A backend Morph can run extensions on. Every variant exists in every
/// build; [`Backend::is_compiled`] says whether this build has its Cargo
/// feature, and creating one that is not compiled in is `unsupported`,
/// naming the feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Backend {
    /// wasmtime with the Cranelift JIT (feature `wasmtime`, the default).
    Wasmtime,
    /// wasmtime's Pulley interpreter (feature `wasmtime-pulley`).
    WasmtimePulley,
    /// wasmer with Cranelift (feature `wasmer`).
    Wasmer,
    /// wasmi, the pure-Rust interpreter (feature `wasmi`).
    Wasmi,
    /// wasm3, the C interpreter (feature `wasm3`; needs libclang to build).
    Wasm3,
    /// JavaScript on Boa in sandboxed worker processes (feature `js`, or
    /// `js-worker` with [`BackendOptions::worker_program`]).
    Js,
    /// JavaScript on Boa in the host process; cannot cap memory, so it
    /// loads only under `LimitEnforcement::BestEffort` (feature `js`).
    JsInProcess,
    /// Python on embedded CPython in sandboxed worker processes (feature
    /// `python`, or `python-worker` with
    /// [`BackendOptions::worker_program`]).
    Python,
}

impl Backend {
    /// Every backend, in preference order (the first compiled one for a
    /// kind is the default for that kind).
    pub const ALL: [Backend; 8] = [
        Backend::Wasmtime,
        Backend::WasmtimePulley,
        Backend::Wasmer,
        Backend::Wasmi,
        Backend::Wasm3,
        Backend::Js,
        Backend::JsInProcess,
        Backend::Python,
    ];

    /// The name users type (`morph run --backend NAME`), e.g. `"wasmi"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Wasmtime => "wasmtime",
            Backend::WasmtimePulley => "wasmtime-pulley",
            Backend::Wasmer => "wasmer",
            Backend::Wasmi => "wasmi",
            Backend::Wasm3 => "wasm3",
            Backend::Js => "js",
            Backend::JsInProcess => "js-inprocess",
            Backend::Python => "python",
        }
    }

    /// The Cargo feature of the `morph` crate that compiles it in.
    pub fn feature(self) -> &'static str {
        match self {
            Backend::JsInProcess => "js",
            other => other.name(),
        }
    }

    /// The extension kind it runs.
    pub fn kind(self) -> RuntimeKind {
        match self {
            Backend::Js | Backend::JsInProcess => RuntimeKind::Js,
            Backend::Python => RuntimeKind::Python,
            _ => RuntimeKind::Wasm,
        }
    }

    /// Whether this build has it.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Wasmtime => cfg!(feature = "wasmtime"),
            Backend::WasmtimePulley => cfg!(feature = "wasmtime-pulley"),
            Backend::Wasmer => cfg!(feature = "wasmer"),
            Backend::Wasmi => cfg!(feature = "wasmi"),
            Backend::Wasm3 => cfg!(feature = "wasm3"),
            Backend::Js => cfg!(feature = "js-worker"),
            Backend::JsInProcess => cfg!(feature = "js"),
            Backend::Python => cfg!(feature = "python-worker"),
        }
    }

    /// The backends compiled into this build, in preference order.
    pub fn compiled() -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|b| b.is_compiled())
            .collect()
    }

    /// The first compiled backend for `kind` (the default choice).
    pub fn default_for(kind: RuntimeKind) -> Option<Backend> {
        Backend::ALL
            .into_iter()
            .find(|b| b.is_compiled() && b.kind() == kind)
    }

    /// Creates the backend with default options.
    pub fn create(self) -> Result<Arc<dyn BaseMorphRuntime>> {
        self.create_with(&BackendOptions::default())
    }

    /// Creates the backend with `options`.
    pub fn create_with(self, options: &BackendOptions) -> Result<Arc<dyn BaseMorphRuntime>> {
        if !self.is_compiled() {
            return Err(MorphError::unsupported(format!(
                "backend `{self}` is not compiled into this build (compiled: {}); enable the `{}` feature of `morph`",
                names(&Backend::compiled()),
                self.feature()
            )));
        }
        let executor = match &options.executor {
            Some(executor) => executor.clone(),
            None => Executor::shared()?,
        };
        create(self, options, executor)
    }
}

fn names(backends: &[Backend]) -> String {
    if backends.is_empty() {
        "none".to_string()
    } else {
        backends
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = MorphError;

    /// Parses a backend name; `not_found` listing the names otherwise.
    fn from_str(s: &str) -> Result<Self> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                MorphError::not_found(format!(
                    "no backend is called `{s}` (backends: {})",
                    names(&Backend::ALL)
                ))
            })
    }
}

/// Wraps an engine backend in core's runtime on `executor`.
fn runtime(backend: impl morph_core::Backend, executor: Executor) -> Arc<dyn BaseMorphRuntime> {
    Arc::new(EngineRuntime::with_executor(backend, executor))
}

#[cfg_attr(
    not(all(
        feature = "wasmtime",
        feature = "wasmer",
        feature = "wasmi",
        feature = "wasm3",
        feature = "js",
        feature = "python"
    )),
    allow(unused_variables, unreachable_code)
)]
fn create(
    backend: Backend,
    options: &BackendOptions,
    executor: Executor,
) -> Result<Arc<dyn BaseMorphRuntime>> {
    #[cfg(any(feature = "wasmtime", feature = "wasmer"))]
    fn cached<E: morph_wasm::WasmEngine>(
        backend: morph_wasm::WasmBackend<E>,
        options: &BackendOptions,
    ) -> morph_wasm::WasmBackend<E> {
        match &options.module_cache {
            Some(cache) => backend.with_cache(cache.clone()),
            None => backend,
        }
    }
    #[cfg(feature = "wasmtime")]
    fn wasmtime(
        mut engine: morph_runtime_wasmtime::WasmtimeOptions,
        options: &BackendOptions,
    ) -> morph_runtime_wasmtime::WasmtimeOptions {
        if let Some(slots) = options.wasmtime_pool_slots {
            engine.pool_slots = slots;
        }
        engine
    }
    Ok(match backend {
        #[cfg(feature = "wasmtime")]
        Backend::Wasmtime => runtime(
            cached(
                morph_runtime_wasmtime::backend(wasmtime(
                    morph_runtime_wasmtime::WasmtimeOptions::default(),
                    options,
                ))?,
                options,
            ),
            executor,
        ),
        #[cfg(feature = "wasmtime-pulley")]
        Backend::WasmtimePulley => runtime(
            cached(
                morph_runtime_wasmtime::backend(wasmtime(
                    morph_runtime_wasmtime::WasmtimeOptions::pulley(),
                    options,
                ))?,
                options,
            ),
            executor,
        ),
        #[cfg(feature = "wasmer")]
        Backend::Wasmer => runtime(
            cached(
                morph_runtime_wasmer::backend(morph_runtime_wasmer::WasmerOptions::default()),
                options,
            ),
            executor,
        ),
        #[cfg(feature = "wasmi")]
        Backend::Wasmi => runtime(
            morph_runtime_wasmi::backend(morph_runtime_wasmi::WasmiOptions::default()),
            executor,
        ),
        #[cfg(feature = "wasm3")]
        Backend::Wasm3 => runtime(
            morph_runtime_wasm3::backend(morph_runtime_wasm3::Wasm3Options::default()),
            executor,
        ),
        #[cfg(all(feature = "js-worker", target_os = "linux"))]
        Backend::Js => runtime(
            morph_runtime_js::worker_backend(worker_options(
                backend,
                options,
                cfg!(feature = "js"),
            )?),
            executor,
        ),
        #[cfg(feature = "js")]
        Backend::JsInProcess => runtime(morph_runtime_js::in_process_backend(), executor),
        #[cfg(all(feature = "python-worker", target_os = "linux"))]
        Backend::Python => runtime(
            morph_runtime_python::worker_backend(worker_options(
                backend,
                options,
                cfg!(feature = "python"),
            )?),
            executor,
        ),
        #[allow(unreachable_patterns)]
        other => {
            return Err(MorphError::unsupported(format!(
                "backend `{other}` needs worker processes, which this platform does not have"
            )));
        }
    })
}

/// The worker settings of a script backend: the program of `options`, or
/// this program when this build has the engine (`has_engine`).
#[cfg(all(
    target_os = "linux",
    any(feature = "js-worker", feature = "python-worker")
))]
fn worker_options(
    backend: Backend,
    options: &BackendOptions,
    has_engine: bool,
) -> Result<morph_worker::WorkerOptions> {
    let mut worker = morph_worker::WorkerOptions::new()?;
    match &options.worker_program {
        Some(program) => worker.command = morph_worker::WorkerCommand::program(program),
        None if has_engine => {}
        None => {
            return Err(MorphError::unsupported(format!(
                "backend `{backend}` runs extensions in worker processes of a program with its engine, and this build has only the host side (`{0}-worker` without `{0}`): set a worker program (BackendOptions::worker_program, MorphBuilder::worker_program)",
                backend.feature()
            )));
        }
    }
    Ok(worker)
}

/// The script engines this build can serve in a worker process.
#[cfg(all(target_os = "linux", any(feature = "js", feature = "python")))]
pub(crate) fn script_engines() -> Vec<Arc<dyn morph_core::ScriptEngine>> {
    vec![
        #[cfg(feature = "js")]
        Arc::new(morph_runtime_js::JsEngine),
        #[cfg(feature = "python")]
        Arc::new(morph_runtime_python::PythonEngine),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        let e = "wasmtimee".parse::<Backend>().unwrap_err();
        assert_eq!(e.kind(), morph_core::ErrorKind::NotFound);
        assert!(e.message().contains("wasmi"), "{e}");
    }

    #[test]
    fn a_backend_not_compiled_in_names_its_feature() {
        for b in Backend::ALL.into_iter().filter(|b| !b.is_compiled()) {
            let e = b.create().err().expect("not compiled in");
            assert_eq!(e.kind(), morph_core::ErrorKind::Unsupported);
            assert!(e.message().contains(b.feature()), "{e}");
        }
    }
}
