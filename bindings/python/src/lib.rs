//! `morph_runtime._native`: the Rust half of Morph's Python package.
//!
//! Deliberately thin: JSON text crosses the boundary (the Python half,
//! `python/morph_runtime`, turns it into Python objects and turns
//! [`NativeError`] into one exception class per stable error kind), and
//! every call that runs an extension releases the GIL while it runs, so
//! Python threads and asyncio executors run beside it.
//!
//! Script extensions run in worker processes of the `morph-worker` binary
//! the package ships (this module is loaded into a Python interpreter, which
//! cannot be re-executed as a Morph worker): the `js-worker` and
//! `python-worker` features of `morph` are the host side only, with no Boa
//! and no libpython in this library.
#![forbid(unsafe_code)]

mod interruptible;
mod providers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use morph::host::{EventBus, MemoryAuditSink, MemoryVault, SandboxFs, UreqHttp, VaultProvider};
use morph::{
    Backend, CapabilityHost, CapabilityHostBuilder, ExecutionContext, ExecutionReport, Executor,
    ExecutorOptions, Extension, ExtensionArtifact, ExtensionManifest, HostPolicy, MAX_ENTRY_BYTES,
    Morph, MorphError, RuntimeKind,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use serde::Deserialize;
use serde_json::Value;

create_exception!(
    _native,
    NativeError,
    PyException,
    "A Morph error: args are (kind, message, code); the package raises one class per kind."
);

/// Audit records kept in memory when the host has no data directory.
const MEMORY_AUDIT_RECORDS: usize = 100_000;

fn morph_err(e: MorphError) -> PyErr {
    NativeError::new_err((
        e.kind().as_str(),
        e.message().to_string(),
        e.code().map(str::to_string),
    ))
}

/// `value` as JSON text for the Python side.
fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn parse<'a, T: Deserialize<'a>>(what: &str, json: &'a str) -> PyResult<T> {
    serde_json::from_str(json).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// What the Python `Morph(...)` constructor was given.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct HostConfig {
    /// Backend names, first per kind wins; default every compiled one.
    backends: Option<Vec<String>>,
    /// Files, data, audit log and compiled modules there (persistent).
    data_dir: Option<PathBuf>,
    /// Secrets by extension id, then key (a memory vault).
    secrets: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Serve `http.fetch` (always on with a data directory).
    http: bool,
    /// Sandboxed `fs.*` files there, one directory per extension (with a
    /// data directory: its `files/`).
    files_dir: Option<PathBuf>,
    /// The program script workers run (the packaged `morph-worker`).
    worker_program: Option<PathBuf>,
    /// Where executions run: `pool` (Morph's execution threads, the
    /// default) or `inline` (the calling Python thread, GIL released).
    executor: Option<String>,
    /// Threads of this host's own pool (default: Morph's shared pool, as
    /// many threads as CPUs).
    threads: Option<usize>,
}

fn vault_of(secrets: &BTreeMap<String, BTreeMap<String, String>>) -> PyResult<Arc<MemoryVault>> {
    let vault = MemoryVault::new();
    for (extension, keys) in secrets {
        for (key, value) in keys {
            vault.set(extension, key, value).map_err(morph_err)?;
        }
    }
    Ok(Arc::new(vault))
}

/// A Morph host: the backends and the capability host every extension
/// loaded through it shares.
#[pyclass(frozen, module = "morph_runtime._native")]
struct Host {
    morph: Morph,
    audit: Option<Arc<MemoryAuditSink>>,
}

#[pymethods]
impl Host {
    /// A host from the JSON of a `HostConfig`, with the vault and event
    /// sink the application wrote in Python, if any.
    #[new]
    #[pyo3(signature = (config_json, vault=None, on_event=None))]
    fn new(
        py: Python<'_>,
        config_json: &str,
        vault: Option<Py<PyAny>>,
        on_event: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let config: HostConfig = parse("Morph configuration", config_json)?;
        let vault = vault.map(|v| Arc::new(providers::PyVault(v)) as Arc<dyn VaultProvider>);
        let events = on_event.map(|f| Arc::new(providers::PyEventSink(f)) as Arc<dyn EventBus>);
        py.detach(|| build_host(config, vault, events))
    }

    /// Loads the extension in directory `path` under the policy in
    /// `policy_json` (a serialized `HostPolicy`).
    fn load(&self, py: Python<'_>, path: PathBuf, policy_json: &str) -> PyResult<Ext> {
        let policy: HostPolicy = parse("policy", policy_json)?;
        let extension = py
            .detach(|| self.morph.load_blocking(&path, &policy))
            .map_err(morph_err)?;
        Ok(Ext { extension })
    }

    /// Loads an extension held in memory: its manifest's YAML text and its
    /// entry file's bytes (bounded as files of a directory are), under the
    /// policy in `policy_json`.
    fn load_parts(
        &self,
        py: Python<'_>,
        manifest_yaml: &str,
        entry: Vec<u8>,
        policy_json: &str,
    ) -> PyResult<Ext> {
        let policy: HostPolicy = parse("policy", policy_json)?;
        let manifest = ExtensionManifest::from_yaml(manifest_yaml, "manifest (in memory)")
            .map_err(morph_err)?;
        if entry.len() as u64 > MAX_ENTRY_BYTES {
            return Err(morph_err(MorphError::invalid_module(format!(
                "entry (in memory): {} bytes, more than the {MAX_ENTRY_BYTES} an entry may have",
                entry.len()
            ))));
        }
        let mut artifact = ExtensionArtifact::from_parts(manifest, entry);
        artifact.manifest_text = Some(manifest_yaml.to_string());
        let extension = py
            .detach(|| interruptible::block_on(self.morph.load_artifact(&artifact, &policy)))?
            .map_err(morph_err)?;
        Ok(Ext { extension })
    }

    /// `RuntimeInfo` of the backend in use for each kind, as JSON.
    fn runtimes_json(&self) -> PyResult<String> {
        let infos: Vec<_> = [RuntimeKind::Wasm, RuntimeKind::Js, RuntimeKind::Python]
            .into_iter()
            .filter_map(|kind| self.morph.runtime(kind).map(|r| r.info()))
            .collect();
        to_json(&infos)
    }

    /// The audit records so far, as JSON (`None` with a data directory:
    /// they are in its `audit.jsonl`).
    fn audit_json(&self, py: Python<'_>) -> PyResult<Option<String>> {
        match &self.audit {
            None => Ok(None),
            Some(audit) => py
                .detach(|| serde_json::to_string(&audit.records()))
                .map(Some)
                .map_err(|e| PyValueError::new_err(e.to_string())),
        }
    }
}

fn build_host(
    config: HostConfig,
    python_vault: Option<Arc<dyn VaultProvider>>,
    events: Option<Arc<dyn EventBus>>,
) -> PyResult<Host> {
    let mut builder = Morph::builder();
    for name in config.backends.iter().flatten() {
        builder = builder.backend(name.parse::<Backend>().map_err(morph_err)?);
    }
    if let Some(program) = config.worker_program {
        builder = builder.worker_program(program);
    }
    match (config.executor.as_deref(), config.threads) {
        (None | Some("pool"), None) => {}
        (None | Some("pool"), Some(0)) => {
            return Err(PyValueError::new_err("threads: at least 1"));
        }
        (None | Some("pool"), Some(threads)) => {
            let options = ExecutorOptions {
                threads,
                max_replaced: threads,
                ..ExecutorOptions::default()
            };
            builder = builder.executor(Executor::new(options).map_err(morph_err)?);
        }
        (Some("inline"), Some(_)) => {
            return Err(PyValueError::new_err(
                "threads: only for the pool executor, not inline",
            ));
        }
        (Some("inline"), None) => builder = builder.executor(Executor::inline()),
        (Some(other), _) => {
            return Err(PyValueError::new_err(format!(
                "executor: `{other}` is neither `pool` nor `inline`"
            )));
        }
    }
    let vault: Option<Arc<dyn VaultProvider>> = match (&config.secrets, python_vault) {
        (Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "secrets and vault: give one of them, not both",
            ));
        }
        (Some(secrets), None) => Some(vault_of(secrets)?),
        (None, vault) => vault,
    };
    let mut audit = None;
    let host: CapabilityHostBuilder = match &config.data_dir {
        Some(_) if config.files_dir.is_some() => {
            return Err(PyValueError::new_err(
                "files_dir: a data directory keeps the files in its files/ (give one of them)",
            ));
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                morph_err(MorphError::io_error(format!(
                    "data directory {}: {e}",
                    dir.display()
                )))
            })?;
            builder =
                builder.module_cache(morph::host::persistent_module_cache(dir).map_err(morph_err)?);
            let vault =
                vault.unwrap_or_else(|| Arc::new(morph::host::EnvVault) as Arc<dyn VaultProvider>);
            morph::host::persistent_host_builder(dir, vault).map_err(morph_err)?
        }
        None => {
            let sink = Arc::new(MemoryAuditSink::new(MEMORY_AUDIT_RECORDS));
            audit = Some(sink.clone());
            let mut host = CapabilityHost::builder().audit(sink).vault(
                vault.unwrap_or_else(|| Arc::new(MemoryVault::new()) as Arc<dyn VaultProvider>),
            );
            if config.http {
                host = host.http(Arc::new(UreqHttp::default()));
            }
            if let Some(dir) = &config.files_dir {
                host = host.fs(Arc::new(SandboxFs::new(dir.clone())));
            }
            host
        }
    };
    let host = match events {
        Some(events) => host.events(events),
        None => host,
    };
    let morph = builder.host(host).build().map_err(morph_err)?;
    Ok(Host { morph, audit })
}

/// A loaded extension.
#[pyclass(frozen, module = "morph_runtime._native")]
struct Ext {
    extension: Extension,
}

fn context_of(context_json: Option<&str>) -> PyResult<ExecutionContext> {
    match context_json {
        None => Ok(ExecutionContext::default()),
        Some(json) => parse("context", json),
    }
}

impl Ext {
    /// One execution with the GIL released: its result (or the error to
    /// raise) and its report.
    fn run(
        &self,
        py: Python<'_>,
        action: &str,
        params_json: &str,
        context_json: Option<&str>,
    ) -> PyResult<(PyResult<Value>, ExecutionReport)> {
        let params: Value = parse("params", params_json)?;
        let context = context_of(context_json)?;
        let execution = self.extension.execute_with(action, params, &context);
        let execution = py.detach(|| interruptible::block_on(execution))?;
        Ok((execution.result.map_err(morph_err), execution.report))
    }
}

#[pymethods]
impl Ext {
    /// Its validated describe() document, as JSON.
    fn describe_json(&self) -> PyResult<String> {
        to_json(self.extension.describe())
    }

    /// Its manifest, as JSON.
    fn manifest_json(&self) -> PyResult<String> {
        to_json(self.extension.manifest())
    }

    /// What it was granted, as text.
    fn policy_text(&self) -> String {
        self.extension.policy().to_string()
    }

    /// Runs `action` with the JSON object `params_json` in the context
    /// `context_json` (default: none); returns the result's JSON or raises
    /// `NativeError`.
    #[pyo3(signature = (action, params_json, context_json=None))]
    fn execute_json(
        &self,
        py: Python<'_>,
        action: &str,
        params_json: &str,
        context_json: Option<&str>,
    ) -> PyResult<String> {
        let (value, _) = self.run(py, action, params_json, context_json)?;
        to_json(&value?)
    }

    /// [`execute_json`](Self::execute_json), returning `(result JSON,
    /// report JSON)`: the report has the duration, host calls and memory.
    #[pyo3(signature = (action, params_json, context_json=None))]
    fn execute_report_json(
        &self,
        py: Python<'_>,
        action: &str,
        params_json: &str,
        context_json: Option<&str>,
    ) -> PyResult<(String, String)> {
        let (value, report) = self.run(py, action, params_json, context_json)?;
        let report = to_json(&report)?;
        let result = to_json(&value?)?;
        Ok((result, report))
    }

    /// Runs `action` `n` times from Rust, with no Python in the loop, and
    /// returns the seconds it took: the baseline of the package's
    /// per-call benchmark (`bench/noop.py`). Raises on the first error.
    fn _execute_loop(
        &self,
        py: Python<'_>,
        action: &str,
        params_json: &str,
        n: u32,
    ) -> PyResult<f64> {
        let params: Value = parse("params", params_json)?;
        let context = ExecutionContext::default();
        py.detach(|| {
            let started = Instant::now();
            for _ in 0..n {
                self.extension
                    .execute_blocking(action, params.clone(), &context)
                    .result
                    .map_err(morph_err)?;
            }
            Ok(started.elapsed().as_secs_f64())
        })
    }
}

/// The manifest of the extension in directory `path`, as JSON, read and
/// validated as a load would (without loading it).
#[pyfunction]
fn manifest_json_of(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let manifest = py
        .detach(|| morph::ExtensionManifest::from_dir(&path))
        .map_err(morph_err)?;
    to_json(&manifest)
}

/// `text` (from an extension) with every character a terminal could act on
/// written as a visible escape, backslashes doubled: Morph's
/// `text::escape_untrusted`, for showing guest text to a person.
#[pyfunction]
fn escape_untrusted(text: &str) -> String {
    morph::text::escape_untrusted(text).into_owned()
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Host>()?;
    m.add_function(wrap_pyfunction!(escape_untrusted, m)?)?;
    m.add_function(wrap_pyfunction!(manifest_json_of, m)?)?;
    m.add_class::<Ext>()?;
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add(
        "ERROR_KINDS",
        morph::ErrorKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>(),
    )?;
    m.add(
        "COMPILED_BACKENDS",
        Backend::compiled()
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}
