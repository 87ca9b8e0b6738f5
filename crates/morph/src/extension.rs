//! [`Extension`]: a loaded extension as a host application uses it.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use morph_core::{
    Describe, EffectivePolicy, Execution, ExecutionContext, ExtensionManifest, LoadedExtension,
    MorphError, Result,
};

/// A loaded extension: what it offers ([`describe`](Self::describe)) and
/// its actions, called blocking ([`call`](Self::call)) or async
/// ([`call_async`](Self::call_async)), with typed input and output through
/// serde or with JSON values ([`execute`](Self::execute)). Cheap to clone;
/// every call runs on a fresh instance.
#[derive(Clone)]
pub struct Extension {
    inner: Arc<dyn LoadedExtension>,
}

fn to_params(action: &str, input: impl Serialize) -> Result<Value> {
    serde_json::to_value(input)
        .map_err(|e| MorphError::invalid_params(format!("action `{action}`: params: {e}")))
}

fn from_output<O: DeserializeOwned>(action: &str, value: Value) -> Result<O> {
    serde_json::from_value(value).map_err(|e| {
        MorphError::invalid_params(format!(
            "action `{action}`: the result does not have the type asked for: {e}"
        ))
    })
}

impl Extension {
    /// Wraps a loaded extension.
    pub fn new(inner: Arc<dyn LoadedExtension>) -> Self {
        Extension { inner }
    }

    /// The runtime's handle, for APIs that take a [`LoadedExtension`].
    pub fn loaded(&self) -> &Arc<dyn LoadedExtension> {
        &self.inner
    }

    /// Its validated Describe document.
    pub fn describe(&self) -> &Describe {
        self.inner.describe()
    }

    /// Its manifest.
    pub fn manifest(&self) -> &ExtensionManifest {
        self.inner.manifest()
    }

    /// What it was granted.
    pub fn policy(&self) -> &EffectivePolicy {
        self.inner.policy()
    }

    /// Runs `action` with `input` (anything that serializes to a JSON
    /// object) and returns its result as `O`; blocks the calling thread
    /// (not for a thread of an async runtime: use
    /// [`call_async`](Self::call_async) there).
    pub fn call<I: Serialize, O: DeserializeOwned>(&self, action: &str, input: I) -> Result<O> {
        pollster::block_on(self.call_async(action, input))
    }

    /// Async [`call`](Self::call).
    pub async fn call_async<I: Serialize, O: DeserializeOwned>(
        &self,
        action: &str,
        input: I,
    ) -> Result<O> {
        let params = to_params(action, input)?;
        let value = self.execute(action, params).await?;
        from_output(action, value)
    }

    /// Runs `action` with `params` (a JSON object) in the default context.
    pub async fn execute(&self, action: &str, params: Value) -> Result<Value> {
        self.inner
            .execute(action, params, &ExecutionContext::default())
            .await
    }

    /// Runs `action` with `params` in `context` (user, space, config,
    /// request id), returning the result with its report (duration, host
    /// calls, peak memory). Dropping the future cancels the execution.
    pub async fn execute_with(
        &self,
        action: &str,
        params: Value,
        context: &ExecutionContext,
    ) -> Execution {
        self.inner
            .execute_with_report(action, params, context)
            .await
    }

    /// Blocking [`execute_with`](Self::execute_with).
    pub fn execute_blocking(
        &self,
        action: &str,
        params: Value,
        context: &ExecutionContext,
    ) -> Execution {
        pollster::block_on(self.execute_with(action, params, context))
    }
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension")
            .field("extension_id", &self.manifest().extension_id)
            .finish_non_exhaustive()
    }
}
