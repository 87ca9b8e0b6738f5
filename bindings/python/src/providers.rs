//! Capability providers written in Python: a vault and an event sink the
//! host application passes to `Morph(vault=..., on_event=...)`.
//!
//! Morph calls them from its execution threads (or the calling thread,
//! inline), where the GIL is free: the Python thread that started the
//! execution released it. What the Python code raises becomes an error of
//! the host call (`host_error`, or `unsupported` for `NotImplementedError`),
//! never a panic; the extension sees the error envelope and the host goes on.

use morph::host::{Event, EventBus, VaultProvider};
use morph::{MorphError, Result};
use pyo3::exceptions::PyNotImplementedError;
use pyo3::prelude::*;

/// The Python error of a provider call as a Morph error naming the op.
fn provider_error(py: Python<'_>, op: &str, error: PyErr) -> MorphError {
    if error.is_instance_of::<PyNotImplementedError>(py) {
        MorphError::unsupported(format!("{op}: the host's provider does not offer it"))
    } else {
        MorphError::host_error(format!("{op}: the host's provider raised {error}"))
    }
}

/// A vault in Python: an object with `get(extension_id, key) -> str | None`
/// and `set(extension_id, key, value)` (the package's adapter over the
/// application's `get_secret` / `set_secret`).
pub struct PyVault(pub Py<PyAny>);

impl VaultProvider for PyVault {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<String>> {
        Python::attach(|py| {
            self.0
                .call_method1(py, "get", (extension_id, key))
                .and_then(|value| value.extract::<Option<String>>(py))
                .map_err(|e| provider_error(py, "vault.get_secret", e))
        })
    }

    fn set(&self, extension_id: &str, key: &str, value: &str) -> Result<()> {
        Python::attach(|py| {
            self.0
                .call_method1(py, "set", (extension_id, key, value))
                .map(drop)
                .map_err(|e| provider_error(py, "vault.set_secret", e))
        })
    }
}

/// An event sink in Python: a callable taking each published event as JSON
/// text (the package decodes it for the application's callback).
pub struct PyEventSink(pub Py<PyAny>);

impl EventBus for PyEventSink {
    fn publish(&self, event: &Event) -> Result<()> {
        let json = serde_json::to_string(event)
            .map_err(|e| MorphError::host_error(format!("event {}: {e}", event.name)))?;
        Python::attach(|py| {
            self.0
                .call1(py, (json,))
                .map(drop)
                .map_err(|e| provider_error(py, "events.emit", e))
        })
    }
}
