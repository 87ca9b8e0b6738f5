//! The CPython engine inside a worker process: interpreter start-up in
//! isolated mode, the `morph` module, compile, and one guest call per run.

use std::ffi::CString;
use std::sync::{Mutex, OnceLock};

use morph_core::script::lock_host;
use morph_core::{
    GuestCall, MorphError, ResourceLimits, Result, RuntimeKind, ScriptCall, ScriptEngine,
    ScriptInstance, SharedHost,
};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::type_object::PyTypeInfo;
use pyo3::types::{PyCFunction, PyDict, PyModule, PyTuple};
use serde::Deserialize;

/// The `morph` module's source.
const MORPH_PY: &str = include_str!("morph.py");

/// Standard-library modules imported before the sandbox closes; an
/// extension can import these and nothing else.
pub const PRELOADED_MODULES: &[&str] = &[
    "abc",
    "array",
    "base64",
    "binascii",
    "bisect",
    "calendar",
    "collections",
    "collections.abc",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "fractions",
    "functools",
    "gc",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "html.parser",
    "io",
    "itertools",
    "json",
    "keyword",
    "logging",
    "math",
    "numbers",
    "operator",
    "pprint",
    "random",
    "re",
    "secrets",
    "statistics",
    "string",
    "struct",
    "textwrap",
    "time",
    "traceback",
    "types",
    "typing",
    "unicodedata",
    "urllib.parse",
    "uuid",
    "weakref",
    "zlib",
];

/// Python frames before `RecursionError` (`stack_overflow`).
pub const RECURSION_LIMIT: u32 = 1000;

/// The host of the call in progress: the native `_host_call` and `_log`
/// functions reach it through here (one call at a time per worker).
static CURRENT_HOST: Mutex<Option<SharedHost>> = Mutex::new(None);

/// The `morph` module, once the interpreter is up.
static MORPH: OnceLock<Py<PyModule>> = OnceLock::new();

fn current_host() -> Option<SharedHost> {
    CURRENT_HOST
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

fn set_current_host(host: Option<SharedHost>) {
    *CURRENT_HOST.lock().unwrap_or_else(|p| p.into_inner()) = host;
}

/// Embedded CPython: runs Python extensions inside a worker process.
#[derive(Debug, Default, Clone, Copy)]
pub struct PythonEngine;

fn py_error(py: Python<'_>, e: PyErr, what: &str) -> MorphError {
    // The glue itself can run out of memory or stack while it handles a
    // guest's result: those are still the guest's limits (memory only when
    // an allocation really failed under the cap).
    if e.is_instance_of::<pyo3::exceptions::PyMemoryError>(py)
        && crate::evidence::allocation_failed()
    {
        return MorphError::memory_limit(format!("{what}: out of memory under max_memory_mb"));
    }
    if e.is_instance_of::<pyo3::exceptions::PyRecursionError>(py) {
        return MorphError::stack_overflow(format!("{what}: maximum recursion depth exceeded"));
    }
    let text = e
        .value(py)
        .str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    MorphError::host_error(format!("{what}: {text}"))
}

/// Starts the interpreter in isolated mode: no environment variables, no
/// user or site directories, no bytecode files written, no signal
/// handlers; the standard library comes from the libpython's own prefix.
fn start_interpreter() -> Result<()> {
    // SAFETY: the documented embedding sequence (PyConfig_InitIsolatedConfig,
    // Py_InitializeFromConfig, PyConfig_Clear), run once per process before
    // any other Python API; PyEval_SaveThread releases the GIL for pyo3.
    unsafe {
        if pyo3::ffi::Py_IsInitialized() != 0 {
            return Ok(());
        }
        let mut config = std::mem::MaybeUninit::<pyo3::ffi::PyConfig>::uninit();
        pyo3::ffi::PyConfig_InitIsolatedConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.site_import = 0;
        config.write_bytecode = 0;
        config.install_signal_handlers = 0;
        let status = pyo3::ffi::Py_InitializeFromConfig(&config);
        pyo3::ffi::PyConfig_Clear(&mut config);
        if pyo3::ffi::PyStatus_Exception(status) != 0 {
            return Err(MorphError::host_error(
                "CPython failed to start (is Debian's libpython3.11 installed?)",
            ));
        }
        pyo3::ffi::PyEval_SaveThread();
    }
    Ok(())
}

fn native_functions(py: Python<'_>, morph: &Bound<'_, PyModule>) -> PyResult<()> {
    let fatal = morph.getattr("_Fatal")?.unbind();
    let fatal_log = fatal.clone_ref(py);
    let host_call = PyCFunction::new_closure(
        py,
        Some(c"_host_call"),
        None,
        move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<String> {
            let py = args.py();
            let (request,): (String,) = args.extract()?;
            let host = current_host()
                .ok_or_else(|| PyException::new_err("morph: no execution in progress"))?;
            let result = py.detach(|| lock_host(&host).call(request.as_bytes()));
            match result {
                Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) => Err(PyErr::from_value(
                    fatal.bind(py).call1((e.kind().as_str(), e.message()))?,
                )),
            }
        },
    )?;
    let log = PyCFunction::new_closure(
        py,
        Some(c"_log"),
        None,
        move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
            let py = args.py();
            let (level, text): (i32, String) = args.extract()?;
            let Some(host) = current_host() else {
                return Ok(());
            };
            let result = py.detach(|| lock_host(&host).log(level, &text));
            result.map_err(
                |e| match fatal_log.bind(py).call1((e.kind().as_str(), e.message())) {
                    Ok(value) => PyErr::from_value(value),
                    Err(err) => err,
                },
            )
        },
    )?;
    // Whether an exception that ended the call is the host's limit: the
    // glue maps MemoryError, PermissionError and RecursionError to limit
    // kinds only when this says so (`crate::evidence`).
    let limit_hit = PyCFunction::new_closure(
        py,
        Some(c"_limit_hit"),
        None,
        |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<bool> {
            let kind: String = args.get_item(0)?.extract()?;
            let exc = args.get_item(1)?;
            Ok(crate::evidence::limit_hit(&kind, &exc))
        },
    )?;
    morph.setattr("_host_call", host_call)?;
    morph.setattr("_log", log)?;
    morph.setattr("_limit_hit", limit_hit)?;
    Ok(())
}

impl ScriptEngine for PythonEngine {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Python
    }

    fn engine(&self) -> (&'static str, &'static str) {
        ("cpython", crate::PYTHON_VERSION)
    }

    fn warm_up(&self) -> Result<()> {
        start_interpreter()?;
        Python::attach(|py| {
            crate::evidence::install(py).map_err(|e| py_error(py, e, "the allocator hooks"))?;
            let morph = PyModule::from_code(
                py,
                &CString::new(MORPH_PY).map_err(|e| MorphError::host_error(e.to_string()))?,
                c"morph.py",
                c"morph",
            )
            .map_err(|e| py_error(py, e, "the morph module"))?;
            native_functions(py, &morph).map_err(|e| py_error(py, e, "the morph module"))?;
            // pyo3 creates this type on first use; under a tight memory cap
            // that first use can fail and deadlock on its own lazy cell.
            let _ = pyo3::panic::PanicException::type_object(py);
            morph
                .call_method1("_seal", (PRELOADED_MODULES.to_vec(),))
                .map_err(|e| py_error(py, e, "closing the sandbox"))?;
            let sandbox_error = morph
                .getattr("SandboxError")
                .map_err(|e| py_error(py, e, "the morph module"))?;
            crate::sandbox::close(py, sandbox_error.unbind(), RECURSION_LIMIT)
                .map_err(|e| py_error(py, e, "closing the sandbox"))?;
            let _ = MORPH.set(morph.unbind());
            #[cfg(target_os = "linux")]
            morph_worker::set_fork_hook(fork_with_interpreter);
            Ok(())
        })
    }

    fn stops_at_deadline(&self) -> bool {
        false
    }

    fn load(
        &self,
        file: &str,
        source: &str,
        _limits: &ResourceLimits,
    ) -> Result<Box<dyn ScriptInstance>> {
        start_interpreter()?;
        Python::attach(|py| {
            let builtins = py
                .import("builtins")
                .map_err(|e| py_error(py, e, "builtins"))?;
            match builtins.call_method1("compile", (source, file, "exec")) {
                Ok(code) => {
                    // Everything alive now is the zygote's: the collector of
                    // a call's child leaves it alone (no copy-on-write fault
                    // for every object on the first collection).
                    py.import("gc")
                        .and_then(|gc| gc.call_method0("freeze"))
                        .map_err(|e| py_error(py, e, "gc.freeze"))?;
                    Ok(Box::new(PythonInstance {
                        code: code.unbind(),
                        file: file.to_string(),
                    }) as Box<dyn ScriptInstance>)
                }
                Err(e) => Err(syntax_error(py, &e, file)),
            }
        })
    }
}

/// Forks the zygote with the interpreter prepared, as `os.fork` does:
/// `PyOS_BeforeFork` with the GIL held, then the matching after-fork call
/// in the parent and in the child.
#[cfg(target_os = "linux")]
fn fork_with_interpreter(fork: &mut dyn FnMut() -> i32) -> i32 {
    Python::attach(|_py| {
        // SAFETY: the GIL is held (attach); these are CPython's documented
        // calls around fork(), each run once on the matching side.
        unsafe {
            pyo3::ffi::PyOS_BeforeFork();
            let pid = fork();
            if pid == 0 {
                pyo3::ffi::PyOS_AfterFork_Child();
            } else {
                pyo3::ffi::PyOS_AfterFork_Parent();
            }
            pid
        }
    })
}

/// `invalid_module` naming the file, line and what the parser said.
fn syntax_error(py: Python<'_>, e: &PyErr, file: &str) -> MorphError {
    let value = e.value(py);
    let line = value
        .getattr("lineno")
        .ok()
        .and_then(|l| l.extract::<Option<i64>>().ok().flatten());
    let msg = value
        .getattr("msg")
        .ok()
        .and_then(|m| m.extract::<String>().ok())
        .unwrap_or_else(|| value.to_string());
    match line {
        Some(line) => MorphError::invalid_module(format!("{file}:{line}: {msg}")),
        None => MorphError::invalid_module(format!("{file}: {msg}")),
    }
}

/// A compiled extension module.
struct PythonInstance {
    code: Py<PyAny>,
    file: String,
}

/// What the glue returns: a value or an error kind.
#[derive(Deserialize)]
struct Reply {
    value: Option<String>,
    error: Option<ReplyError>,
}

#[derive(Deserialize)]
struct ReplyError {
    kind: String,
    message: String,
}

fn reply(text: &str) -> Result<Vec<u8>> {
    let reply: Reply = serde_json::from_str(text)
        .map_err(|e| MorphError::host_error(format!("the Python glue's reply: {e}")))?;
    match (reply.value, reply.error) {
        (Some(value), _) => Ok(value.into_bytes()),
        // A limit kind without the native evidence of a limit hit (a glue
        // the guest replaced) is the guest's own error.
        (None, Some(e)) if !crate::evidence::confirmed(&e.kind) => Err(MorphError::extension(
            "uncaught_exception",
            format!("{} (no {} limit was hit)", e.message, e.kind),
        )),
        (None, Some(e)) => Err(match morph_core::ErrorKind::parse(&e.kind) {
            Some(kind) => MorphError::new(kind, e.message),
            None => MorphError::host_error(e.message),
        }),
        (None, None) => Err(MorphError::host_error(
            "the Python glue replied with nothing",
        )),
    }
}

impl PythonInstance {
    fn call_glue(&self, py: Python<'_>, call: &ScriptCall<'_>) -> Result<Vec<u8>> {
        let morph = MORPH
            .get()
            .ok_or_else(|| MorphError::host_error("the Python worker was not warmed up"))?
            .bind(py);
        let glue = |e: PyErr| py_error(py, e, "the Python glue");
        let loaded = morph
            .call_method1("_load", (self.code.bind(py), self.file.as_str()))
            .map_err(glue)?;
        let (module, failed): (Bound<'_, PyAny>, Option<String>) =
            loaded.extract().map_err(glue)?;
        if let Some(failed) = failed {
            let bytes = reply(&failed)?;
            return match call.call {
                // The module's top level failed before describe() ran.
                GuestCall::Describe => Err(MorphError::invalid_module(format!(
                    "{}: the module failed to run: {}",
                    self.file,
                    String::from_utf8_lossy(&bytes)
                ))),
                GuestCall::Execute { .. } => Ok(bytes),
            };
        }
        let text: String = match call.call {
            GuestCall::Describe => morph.call_method1("_describe", (module,)),
            GuestCall::Execute {
                action,
                params,
                context,
            } => morph.call_method1(
                "_run",
                (
                    module,
                    action,
                    String::from_utf8_lossy(params),
                    String::from_utf8_lossy(context),
                ),
            ),
        }
        .and_then(|r| r.extract())
        .map_err(glue)?;
        reply(&text)
    }
}

impl ScriptInstance for PythonInstance {
    fn run(&mut self, call: ScriptCall<'_>) -> Result<Vec<u8>> {
        crate::evidence::reset();
        set_current_host(Some(call.host.clone()));
        // In a worker this runs in the call's own child of the zygote,
        // which exits afterwards: nothing the extension changes survives.
        let result = Python::attach(|py| self.call_glue(py, &call));
        set_current_host(None);
        if call.deadline.expired() {
            return Err(call.timeout_error());
        }
        result
    }
}
