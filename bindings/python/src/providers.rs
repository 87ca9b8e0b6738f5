//! Capability providers written in Python: a vault and an event sink the
//! host application passes to `Morph(vault=..., on_event=...)`.
//!
//! The native side holds them through weak references (the Python `Morph`
//! holds the objects themselves), so an application object that holds its
//! `Morph` and is its provider makes a cycle Python's collector can see and
//! free. Morph calls the vault from its execution threads (or the calling
//! thread, inline) and the event sink before `execute` returns; the GIL is
//! free then, because the Python thread that started the execution
//! released it. A Python exception becomes an error of the host call
//! (`unsupported` for `NotImplementedError`, else `host_error`) whose
//! message names the op and nothing of the exception: the extension must
//! not read the application's error text (the Python side logs it).

use morph::host::{Event, EventBus, VaultProvider};
use morph::{MorphError, Result};
use pyo3::exceptions::PyNotImplementedError;
use pyo3::prelude::*;

/// The Python error of a provider call as a Morph error naming the op.
fn provider_error(py: Python<'_>, op: &str, error: &PyErr) -> MorphError {
    if error.is_instance_of::<PyNotImplementedError>(py) {
        MorphError::unsupported(format!("{op}: the host's provider does not offer it"))
    } else {
        MorphError::host_error(format!("{op}: the host's provider failed"))
    }
}

/// The object behind a weak reference, or an error naming `op` when the
/// application's `Morph` (which held it) is gone.
fn target(py: Python<'_>, weak: &Py<PyAny>, op: &str) -> Result<Py<PyAny>> {
    let target = weak.call0(py).map_err(|e| provider_error(py, op, &e))?;
    if target.is_none(py) {
        return Err(MorphError::host_error(format!(
            "{op}: the host's provider is gone (its Morph was collected)"
        )));
    }
    Ok(target)
}

/// A vault in Python, by weak reference: an object with
/// `get(extension_id, key) -> str | None` and `set(extension_id, key,
/// value)` (the package's adapter over the application's `get_secret` /
/// `set_secret`).
pub struct PyVault(pub Py<PyAny>);

impl VaultProvider for PyVault {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<String>> {
        const OP: &str = "vault.get_secret";
        Python::attach(|py| {
            target(py, &self.0, OP)?
                .call_method1(py, "get", (extension_id, key))
                .and_then(|value| value.extract::<Option<String>>(py))
                .map_err(|e| provider_error(py, OP, &e))
        })
    }

    fn set(&self, extension_id: &str, key: &str, value: &str) -> Result<()> {
        const OP: &str = "vault.set_secret";
        Python::attach(|py| {
            target(py, &self.0, OP)?
                .call_method1(py, "set", (extension_id, key, value))
                .map(drop)
                .map_err(|e| provider_error(py, OP, &e))
        })
    }
}

/// An event sink in Python, by weak reference: an object whose
/// `publish(event_json)` takes each published event as JSON text (the
/// package decodes it for the application's callback).
pub struct PyEventSink(pub Py<PyAny>);

impl EventBus for PyEventSink {
    fn publish(&self, event: &Event) -> Result<()> {
        const OP: &str = "events.emit";
        let json = serde_json::to_string(event)
            .map_err(|e| MorphError::host_error(format!("event {}: {e}", event.name)))?;
        Python::attach(|py| {
            target(py, &self.0, OP)?
                .call_method1(py, "publish", (json,))
                .map(drop)
                .map_err(|e| provider_error(py, OP, &e))
        })
    }
}
