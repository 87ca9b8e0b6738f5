//! The traits the host application holds: [`BaseMorphRuntime`] loads,
//! [`LoadedExtension`] describes and executes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifact::ExtensionArtifact;
use crate::describe::Describe;
use crate::error::Result;
use crate::host::CapabilityHost;
use crate::limits::{Enforcement, EngineLimit};
use crate::manifest::{ExtensionManifest, RuntimeKind};
use crate::policy::{EffectivePolicy, HostPolicy};

/// What a backend is and what it can enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Backend name as chosen by users (`wasmtime`, `wasmi`, ...).
    pub name: String,
    /// Engine crate name.
    pub engine: String,
    /// Engine crate version.
    pub engine_version: String,
    /// Which extension kinds it runs.
    pub kinds: Vec<RuntimeKind>,
    /// `jit` or `interpreter`.
    pub execution: String,
    /// How each engine limit is enforced.
    pub limits: BTreeMap<EngineLimit, Enforcement>,
}

impl RuntimeInfo {
    /// The info of a WebAssembly backend: `execution` is `jit` or
    /// `interpreter`; `limits` says how it enforces each [`EngineLimit`].
    pub fn wasm(
        name: &str,
        engine: &str,
        engine_version: &str,
        execution: &str,
        limits: [(EngineLimit, Enforcement); 4],
    ) -> Self {
        RuntimeInfo {
            name: name.into(),
            engine: engine.into(),
            engine_version: engine_version.into(),
            kinds: vec![RuntimeKind::Wasm],
            execution: execution.into(),
            limits: BTreeMap::from(limits),
        }
    }

    /// The info of a script backend running `kind` extensions (an
    /// interpreter; `limits` as for [`RuntimeInfo::wasm`]).
    pub fn script(
        name: &str,
        engine: &str,
        engine_version: &str,
        kind: RuntimeKind,
        limits: [(EngineLimit, Enforcement); 4],
    ) -> Self {
        RuntimeInfo {
            kinds: vec![kind],
            ..RuntimeInfo::wasm(name, engine, engine_version, "interpreter", limits)
        }
    }

    /// The limits every execution needs (time, memory, stack) that this
    /// backend cannot enforce: under `LimitEnforcement::Strict` it refuses
    /// to load anything while this is not empty.
    pub fn unenforced(&self) -> Vec<EngineLimit> {
        EngineLimit::REQUIRED
            .into_iter()
            .filter(|l| self.enforcement(*l) == Enforcement::Unsupported)
            .collect()
    }

    /// How `limit` is enforced (`Unsupported` when not listed).
    pub fn enforcement(&self, limit: EngineLimit) -> Enforcement {
        self.limits
            .get(&limit)
            .copied()
            .unwrap_or(Enforcement::Unsupported)
    }
}

/// Who and where an execution is for. Serialised (with `extension_id` and
/// `action`) into the context the guest receives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutionContext {
    /// Correlates logs and audit records; generated when `None`.
    pub request_id: Option<String>,
    /// The user on whose behalf it runs.
    pub user_id: Option<String>,
    /// The user's group.
    pub group_id: Option<String>,
    /// The space (workspace, project) it runs in.
    pub space_id: Option<String>,
    /// The extension's configuration for this space (a JSON object).
    pub config: Option<Value>,
    /// Set by the [`ExtensionManager`](crate::ExtensionManager) when it
    /// delivers an event: how many deliveries deep this execution is.
    /// Not sent to the guest.
    #[serde(skip)]
    pub event_hops: u32,
    /// Set by the [`ExtensionManager`](crate::ExtensionManager): the
    /// request id of the execution whose events led here. Not sent to the
    /// guest.
    #[serde(skip)]
    pub event_origin: Option<String>,
    /// Set by the [`ExtensionManager`](crate::ExtensionManager) when it
    /// delivers an event: what is left of the delivery chain's time
    /// budget. The execution's time limit is the smaller of this and its
    /// own `max_execution_ms`. Not sent to the guest.
    #[serde(skip)]
    pub time_budget: Option<std::time::Duration>,
}

/// Measurements of one execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionReport {
    /// The request id used.
    pub request_id: String,
    /// Wall-clock time from submission to result.
    pub duration: Duration,
    /// Host calls made.
    pub host_calls: u32,
    /// Largest guest memory seen, in bytes.
    pub peak_memory_bytes: u64,
    /// Fuel used, where the engine counts it.
    pub fuel_used: Option<u64>,
}

/// The result of an execution with its report.
#[derive(Debug)]
pub struct Execution {
    /// The `ok` value, or the error.
    pub result: Result<Value>,
    /// Measurements.
    pub report: ExecutionReport,
}

/// A backend as the host application holds it.
#[async_trait]
pub trait BaseMorphRuntime: Send + Sync {
    /// What it is and what it enforces.
    fn info(&self) -> RuntimeInfo;

    /// Validates and loads an extension under `policy`, with host calls
    /// served by `host`. Runs `describe()` once and checks it against the
    /// manifest.
    async fn load(
        &self,
        artifact: &ExtensionArtifact,
        host: Arc<CapabilityHost>,
        policy: &HostPolicy,
    ) -> Result<Box<dyn LoadedExtension>>;
}

/// A loaded extension: describe it, execute its actions.
#[async_trait]
pub trait LoadedExtension: Send + Sync {
    /// Its manifest.
    fn manifest(&self) -> &ExtensionManifest;

    /// Its validated Describe document.
    fn describe(&self) -> &Describe;

    /// What it was granted.
    fn policy(&self) -> &EffectivePolicy;

    /// Executes `action` with `params` (a JSON object) and reports on it.
    /// Dropping the future cancels the execution.
    async fn execute_with_report(
        &self,
        action: &str,
        params: Value,
        ctx: &ExecutionContext,
    ) -> Execution;

    /// Executes `action`, returning only its result.
    async fn execute(&self, action: &str, params: Value, ctx: &ExecutionContext) -> Result<Value> {
        self.execute_with_report(action, params, ctx).await.result
    }
}
