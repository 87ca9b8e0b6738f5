//! The interpreter's own guard rails, native so that no Python code can
//! reach their state: the audit hook that refuses files, sockets,
//! processes, `ctypes` and new imports with `morph.SandboxError` (for a
//! clear message: the worker's seccomp filter is the boundary), and a
//! `sys.setrecursionlimit` that cannot raise the limit above
//! [`RECURSION_LIMIT`](crate::RECURSION_LIMIT).

use std::collections::HashSet;

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple};

/// Audit events refused by prefix.
const DENIED_PREFIXES: &[&str] = &[
    "open",
    "os.",
    "shutil.",
    "subprocess.",
    "socket.",
    "ctypes.",
    "pty.",
    "fcntl.",
    "resource.",
    "webbrowser.",
    "urllib.Request",
    "http.client.",
    "ftplib.",
    "smtplib.",
    "poplib.",
    "imaplib.",
    "nntplib.",
    "telnetlib.",
    "sqlite3.",
    "glob.",
    "tempfile.",
    "compile_dir",
];

/// Events under a refused prefix that stay allowed (`os.environ` writes
/// touch only the worker's own, empty environment).
const ALLOWED_EVENTS: &[&str] = &["os.putenv", "os.unsetenv"];

/// Modules compiled into the interpreter that still may not be imported.
const DENIED_BUILTINS: &[&str] = &[
    "_ctypes",
    "_socket",
    "_posixsubprocess",
    "mmap",
    "fcntl",
    "resource",
    "pwd",
    "grp",
    "_signal",
];

/// Why `event` is refused, if it is.
fn refusal(event: &str, args: &Bound<'_, PyTuple>, builtins: &HashSet<String>) -> Option<String> {
    if event == "import" {
        // Fired only for modules not loaded yet: after the preload, only
        // modules compiled into the interpreter come in (anything else
        // means files to open).
        let name = args
            .get_item(0)
            .ok()
            .and_then(|n| n.str().ok())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "?".to_string());
        if builtins.contains(&name) && !DENIED_BUILTINS.contains(&name.as_str()) {
            return None;
        }
        return Some(format!(
            "importing `{name}` is not allowed in a Morph extension \
             (only the preloaded standard library is available)"
        ));
    }
    if DENIED_PREFIXES.iter().any(|p| event.starts_with(p)) && !ALLOWED_EVENTS.contains(&event) {
        return Some(format!(
            "`{event}` is not allowed in a Morph extension: files, sockets and processes \
             are reached through morph.fs, morph.http and the other host calls"
        ));
    }
    None
}

/// Installs the audit hook (raising `sandbox_error`) and the clamped
/// `sys.setrecursionlimit`. Once installed, neither can be removed or
/// switched off from Python.
pub(crate) fn close(py: Python<'_>, sandbox_error: Py<PyAny>, limit: u32) -> PyResult<()> {
    let sys = py.import("sys")?;
    let builtins: Vec<String> = sys.getattr("builtin_module_names")?.extract()?;
    let builtins: HashSet<String> = builtins.into_iter().collect();
    let hook = PyCFunction::new_closure(
        py,
        Some(c"_morph_audit"),
        None,
        move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
            let py = args.py();
            let event: String = args.get_item(0)?.extract()?;
            let event_args = args.get_item(1)?;
            let event_args = event_args.cast::<PyTuple>().ok();
            let empty = PyTuple::empty(py);
            let refused = refusal(&event, event_args.unwrap_or(&empty), &builtins);
            match refused {
                None => Ok(()),
                Some(message) => {
                    crate::evidence::note_refusal();
                    Err(PyErr::from_value(sandbox_error.bind(py).call1((message,))?))
                }
            }
        },
    )?;
    // The limit itself first: the hook refuses nothing in between.
    set_recursion_limit(limit);
    let clamp = PyCFunction::new_closure(
        py,
        Some(c"setrecursionlimit"),
        Some(c"Sets the recursion limit, at most Morph's limit (higher values are clamped)."),
        move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<()> {
            let (wanted,): (i64,) = args.extract()?;
            if wanted < 1 {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "recursion limit must be greater or equal than 1",
                ));
            }
            set_recursion_limit(u32::try_from(wanted).unwrap_or(u32::MAX).min(limit));
            Ok(())
        },
    )?;
    // The original builtin goes: nothing refers to it any more, so no
    // object walk (gc.get_objects) can find it again.
    sys.setattr("setrecursionlimit", clamp)?;
    sys.call_method1("addaudithook", (hook,))?;
    Ok(())
}

fn set_recursion_limit(limit: u32) {
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    // SAFETY: called with the GIL held (from warm-up or a Python call);
    // Py_SetRecursionLimit only stores the number in the interpreter's
    // and its threads' state.
    unsafe { pyo3::ffi::Py_SetRecursionLimit(limit) };
}
