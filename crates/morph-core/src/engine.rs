//! The narrow synchronous trait each backend crate implements, and
//! [`EngineRuntime`], the one implementation of [`BaseMorphRuntime`] that
//! wraps any backend with every shared rule: policy, limits check,
//! validation, parameter checks, envelopes, events and audit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::abi;
use crate::artifact::ExtensionArtifact;
use crate::deadline::{CancelOnDrop, Deadline};
use crate::describe::{Describe, validate_params};
use crate::error::{ErrorKind, MorphError, Result};
use crate::executor::Executor;
use crate::host::{CallState, CapabilityHost, ExtensionScope};
use crate::limits::{Enforcement, EngineLimit, LimitEnforcement};
use crate::manifest::{ExtensionManifest, RuntimeKind};
use crate::policy::{EffectivePolicy, HostPolicy};
use crate::runtime::{
    BaseMorphRuntime, Execution, ExecutionContext, ExecutionReport, LoadedExtension, RuntimeInfo,
};
use crate::session::Session;

/// What the guest is asked to do.
#[derive(Debug, Clone, Copy)]
pub enum GuestCall<'a> {
    /// `describe()`: the Describe JSON.
    Describe,
    /// `execute(action, params, context)`: the result envelope.
    Execute {
        /// The action name.
        action: &'a str,
        /// The params object as JSON.
        params: &'a [u8],
        /// The context object as JSON.
        context: &'a [u8],
    },
}

/// An extension's code as the backend for its kind receives it.
#[derive(Debug, Clone)]
pub enum EntryCode {
    /// WebAssembly, binary or text, not yet validated (the wasm backends
    /// validate it with `morph-wasm` before any engine sees it).
    Wasm {
        /// Where it came from, for messages (the entry file's path).
        origin: String,
        /// Whether it is WebAssembly text (`.wat`).
        text: bool,
        /// The bytes.
        bytes: std::sync::Arc<[u8]>,
    },
    /// Script source (JavaScript or Python).
    Script {
        /// Which language.
        kind: RuntimeKind,
        /// The entry file name, for messages.
        file: String,
        /// The source text.
        source: String,
    },
}

impl EntryCode {
    /// The WebAssembly entry as (origin, is text, bytes), or `unsupported`
    /// naming `backend` for scripts.
    pub fn wasm(&self, backend: &str) -> Result<(&str, bool, &[u8])> {
        match self {
            EntryCode::Wasm {
                origin,
                text,
                bytes,
            } => Ok((origin, *text, bytes)),
            EntryCode::Script { kind, .. } => Err(MorphError::unsupported(format!(
                "the {backend} backend runs WebAssembly extensions only, not {kind}"
            ))),
        }
    }
}

/// The result of one guest call, with the session handed back.
#[derive(Debug)]
pub struct GuestRun {
    /// The session, for its counters and events.
    pub session: Session,
    /// The bytes the guest returned, or why it did not.
    pub result: Result<Vec<u8>>,
}

/// A backend: engine glue only. Implemented once per engine crate.
pub trait Backend: Send + Sync + 'static {
    /// What it is and what it enforces.
    fn info(&self) -> RuntimeInfo;

    /// Validates and compiles `code` under `policy` (for engine-level
    /// settings such as memory caps). Called on an execution thread.
    fn prepare(
        &self,
        code: &EntryCode,
        policy: &EffectivePolicy,
    ) -> Result<Arc<dyn PreparedExtension>>;

    /// Native stack in bytes that an execution thread must offer this
    /// engine. Default 0: the engine bounds its own use far below any
    /// thread's stack. An engine that recurses on the native stack up to a
    /// fixed budget (wasm3) says how much it needs, and [`EngineRuntime`]
    /// never runs it on a thread with less.
    fn native_stack_needed(&self) -> usize {
        0
    }
}

/// Compiled code ready to run: each `run` uses a fresh instance.
pub trait PreparedExtension: Send + Sync {
    /// Runs one guest call on a fresh instance, with `session` serving its
    /// host calls and carrying its deadline and limits.
    fn run(&self, session: Session, call: GuestCall<'_>) -> GuestRun;
}

/// How long a load may take to prepare an extension (validate, instrument
/// and compile its code) by default; see [`EngineRuntime::with_load_budget`].
const DEFAULT_LOAD_BUDGET: Duration = Duration::from_secs(30);

/// [`BaseMorphRuntime`] for any [`Backend`].
pub struct EngineRuntime {
    backend: Arc<dyn Backend>,
    executor: Executor,
    load_budget: Duration,
}

impl EngineRuntime {
    /// Wraps `backend`, running on the shared execution pool.
    pub fn new(backend: impl Backend) -> Result<Self> {
        Ok(Self::with_executor(backend, Executor::shared()?))
    }

    /// Wraps `backend`, running on `executor`. If the backend needs more
    /// native stack than the executor's threads are known to have (an
    /// inline executor's caller is never known to), it runs on the shared
    /// pool instead, with a warning: a guest must never overflow the real
    /// stack of the host.
    pub fn with_executor(backend: impl Backend, executor: Executor) -> Self {
        let needed = backend.native_stack_needed();
        let executor = if needed > executor.options().stack_size {
            match Executor::shared() {
                Ok(shared) if shared.options().stack_size >= needed => {
                    tracing::warn!(
                        backend = %backend.info().name,
                        needed_bytes = needed,
                        "the executor cannot host this engine's native stack; using Morph's shared pool"
                    );
                    shared
                }
                _ => executor,
            }
        } else {
            executor
        };
        EngineRuntime {
            backend: Arc::new(backend),
            executor,
            load_budget: DEFAULT_LOAD_BUDGET,
        }
    }

    /// Sets how long a load may spend preparing an extension's code
    /// (validation, instrumentation, compilation). Default 30 s, the
    /// default `max_execution_ms` ceiling: large modules compile for
    /// seconds. Compilers have super-linear cases a static check cannot
    /// rule out, and a compile cannot be interrupted: when one overruns,
    /// the execution pool's watchdog gives up on it `max(1 s, budget)`
    /// after the budget and the load fails with `timeout` naming the
    /// budget, while the thread stays busy until the compiler returns. An
    /// inline executor has no watchdog, so there the budget is not
    /// enforced. The describe run that follows has the extension's own
    /// `max_execution_ms`.
    pub fn with_load_budget(mut self, budget: Duration) -> Self {
        self.load_budget = budget;
        self
    }

    /// Refuses (Strict) or lists (BestEffort) the limits `policy` needs
    /// that the backend cannot enforce; returns the list of those it runs
    /// without.
    fn check_limits(
        &self,
        info: &RuntimeInfo,
        policy: &EffectivePolicy,
    ) -> Result<Vec<EngineLimit>> {
        let mut gaps = Vec::new();
        let mut needed = EngineLimit::REQUIRED.to_vec();
        if policy.fuel.is_some() {
            needed.push(EngineLimit::Fuel);
        }
        for limit in needed {
            if info.enforcement(limit) != Enforcement::Unsupported {
                continue;
            }
            match policy.enforcement {
                LimitEnforcement::Strict => {
                    return Err(MorphError::unsupported(format!(
                        "backend `{}` cannot enforce the {limit} limit (use LimitEnforcement::BestEffort to run anyway)",
                        info.name
                    )));
                }
                LimitEnforcement::BestEffort => {
                    tracing::warn!(backend = %info.name, %limit, "limit not enforced (best effort)");
                    gaps.push(limit);
                }
            }
        }
        Ok(gaps)
    }
}

fn entry_code(artifact: &ExtensionArtifact) -> Result<EntryCode> {
    let origin = artifact.entry_origin();
    let file = artifact.manifest.entry_file();
    match artifact.manifest.runtime {
        RuntimeKind::Wasm => Ok(EntryCode::Wasm {
            origin,
            text: file.ends_with(".wat"),
            bytes: artifact.entry.as_slice().into(),
        }),
        kind => {
            let source = String::from_utf8(artifact.entry.clone()).map_err(|e| {
                MorphError::invalid_module(format!("{origin}: not valid UTF-8: {e}"))
            })?;
            Ok(EntryCode::Script {
                kind,
                file: file.to_string(),
                source,
            })
        }
    }
}

/// A new request id (`req-<time>-<counter>`).
pub(crate) fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("req-{nanos:x}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[async_trait]
impl BaseMorphRuntime for EngineRuntime {
    fn info(&self) -> RuntimeInfo {
        self.backend.info()
    }

    async fn load(
        &self,
        artifact: &ExtensionArtifact,
        host: Arc<CapabilityHost>,
        policy: &HostPolicy,
    ) -> Result<Box<dyn LoadedExtension>> {
        let info = self.backend.info();
        let manifest = artifact.manifest.clone();
        if !info.kinds.contains(&manifest.runtime) {
            return Err(MorphError::unsupported(format!(
                "backend `{}` does not run {} extensions (`{}` is one)",
                info.name, manifest.runtime, manifest.extension_id
            )));
        }
        let mut effective = policy.resolve(&manifest);
        let unenforced = self.check_limits(&info, &effective)?;
        if info.enforcement(EngineLimit::Fuel) == Enforcement::Unsupported {
            // Best effort on a backend without fuel: run without a budget
            // rather than ask the engine for something it cannot do.
            effective.fuel = None;
        }
        let code = entry_code(artifact)?;
        let scope = Arc::new(ExtensionScope {
            extension_id: manifest.extension_id.clone(),
            policy: effective.clone(),
            events: manifest.events.clone(),
            unenforced,
        });

        let backend = self.backend.clone();
        let prepare_policy = scope.policy.clone();
        let budget = Deadline::after(self.load_budget);
        let prepared = self
            .executor
            .run_until(Some(&budget), move || {
                backend.prepare(&code, &prepare_policy)
            })
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::Timeout && budget.expired() {
                    MorphError::timeout(format!(
                        "loading `{}` on `{}` did not finish within its load budget of {} ms (validating and compiling its code; EngineRuntime::with_load_budget): {}",
                        manifest.extension_id,
                        info.name,
                        self.load_budget.as_millis(),
                        e.message()
                    ))
                } else {
                    e
                }
            })?;
        let session = new_session(
            &host,
            &scope,
            "describe",
            &new_request_id(),
            &ExecutionContext::default(),
        );
        let deadline = session.deadline().clone();
        let describing = prepared.clone();
        let run = self
            .executor
            .run_until(Some(&deadline), move || {
                Ok(describing.run(session, GuestCall::Describe))
            })
            .await?;
        let bytes = run.result;
        let describe = Describe::from_guest(&bytes?, &manifest)?;
        tracing::debug!(extension = %crate::text::loggable(&manifest.extension_id), backend = %info.name, "loaded");
        Ok(Box::new(EngineExtension {
            manifest,
            describe,
            scope,
            host,
            prepared,
            executor: self.executor.clone(),
        }))
    }
}

fn new_session(
    host: &Arc<CapabilityHost>,
    scope: &Arc<ExtensionScope>,
    action: &str,
    request_id: &str,
    ctx: &ExecutionContext,
) -> Session {
    let limits = scope.policy.limits;
    let mut calls = CallState::new(scope.clone(), action, request_id);
    // Without a chain from the manager the state keeps the fresh origin
    // token `CallState::new` made: never the (caller-chosen) request id.
    if let Some(origin) = ctx.event_origin.as_deref() {
        calls.set_chain(ctx.event_hops, origin);
    }
    let mut limit = Duration::from_millis(limits.max_execution_ms);
    if let Some(budget) = ctx.time_budget {
        limit = limit.min(budget);
    }
    Session::new(
        host.clone(),
        calls,
        limits,
        scope.policy.fuel,
        Deadline::after(limit),
    )
}

struct EngineExtension {
    manifest: ExtensionManifest,
    describe: Describe,
    scope: Arc<ExtensionScope>,
    host: Arc<CapabilityHost>,
    prepared: Arc<dyn PreparedExtension>,
    executor: Executor,
}

impl EngineExtension {
    fn context_json(
        &self,
        action: &str,
        request_id: &str,
        ctx: &ExecutionContext,
    ) -> Result<Vec<u8>> {
        let config = ctx.config.clone().unwrap_or_else(|| json!({}));
        if !config.is_object() {
            return Err(MorphError::invalid_params(format!(
                "action `{action}`: context.config must be a JSON object"
            )));
        }
        let value = json!({
            "extension_id": self.manifest.extension_id,
            "action": action,
            "request_id": request_id,
            "user_id": ctx.user_id,
            "group_id": ctx.group_id,
            "space_id": ctx.space_id,
            "config": config,
        });
        Ok(value.to_string().into_bytes())
    }
}

#[async_trait]
impl LoadedExtension for EngineExtension {
    fn manifest(&self) -> &ExtensionManifest {
        &self.manifest
    }

    fn describe(&self) -> &Describe {
        &self.describe
    }

    fn policy(&self) -> &EffectivePolicy {
        &self.scope.policy
    }

    async fn execute_with_report(
        &self,
        action: &str,
        params: Value,
        ctx: &ExecutionContext,
    ) -> Execution {
        let started = Instant::now();
        let request_id = ctx.request_id.clone().unwrap_or_else(new_request_id);
        let mut report = ExecutionReport {
            request_id: request_id.clone(),
            ..ExecutionReport::default()
        };
        let prepared = (|| {
            let (_, params) = validate_params(&self.manifest, action, params)?;
            let params = Value::Object(params).to_string().into_bytes();
            let context = self.context_json(action, &request_id, ctx)?;
            Ok::<_, MorphError>((params, context))
        })();
        let (params, context) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let state = CallState::new(self.scope.clone(), action, &request_id);
                let result = Err(e);
                self.host.audit_execution(&state, &result, started);
                report.duration = started.elapsed();
                return Execution { result, report };
            }
        };

        let session = new_session(&self.host, &self.scope, action, &request_id, ctx);
        let deadline = session.deadline().clone();
        let guard = CancelOnDrop::new(deadline.clone());
        let code = self.prepared.clone();
        let action_owned = action.to_string();
        let run = self
            .executor
            .run_until(Some(&deadline), move || {
                Ok(code.run(
                    session,
                    GuestCall::Execute {
                        action: &action_owned,
                        params: &params,
                        context: &context,
                    },
                ))
            })
            .await;
        guard.disarm();

        let result = match run {
            Err(e) => {
                // The executor failed (watchdog, engine panic, full queue):
                // the session is gone, the execution is audited all the same.
                let state = CallState::new(self.scope.clone(), action, &request_id);
                let result = Err(e);
                self.host.audit_execution(&state, &result, started);
                result
            }
            Ok(GuestRun { session, result }) => {
                let (totals, events, state) = session.finish();
                report.host_calls = totals.host_calls;
                report.peak_memory_bytes = totals.peak_memory_bytes;
                report.fuel_used = totals.fuel_used;
                let max_output = self.scope.policy.limits.max_output_bytes;
                let result = result.and_then(|bytes| {
                    // Wasm backends check the length before reading guest
                    // memory; script results arrive whole and are checked
                    // here, the same way.
                    if bytes.len() as u64 > max_output {
                        return Err(MorphError::quota_exceeded(format!(
                            "execute() result of {} bytes exceeds max_output_bytes = {max_output}",
                            bytes.len()
                        )));
                    }
                    abi::decode_envelope(&bytes, "execute() result")
                });
                // Events are the effect of a successful execution only:
                // one that failed (a limit, a protocol violation, an error
                // of its own) publishes nothing it emitted before failing.
                if result.is_ok() {
                    self.host.publish_events(events);
                } else if !events.is_empty() {
                    tracing::debug!(
                        target: "morph::events",
                        dropped = events.len(),
                        "the execution failed: its events are not published"
                    );
                }
                self.host.audit_execution(&state, &result, started);
                result
            }
        };
        report.duration = started.elapsed();
        Execution { result, report }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::ExecutorOptions;
    use crate::limits::{Enforcement, EngineLimit};

    /// A backend whose compiler takes `compile` to prepare anything.
    struct SlowCompiler {
        compile: Duration,
    }

    impl Backend for SlowCompiler {
        fn info(&self) -> RuntimeInfo {
            RuntimeInfo::wasm(
                "slow",
                "slow",
                "0",
                "jit",
                [
                    (EngineLimit::ExecutionTime, Enforcement::Native),
                    (EngineLimit::Memory, Enforcement::Native),
                    (EngineLimit::Stack, Enforcement::Native),
                    (EngineLimit::Fuel, Enforcement::Native),
                ],
            )
        }

        fn prepare(
            &self,
            _code: &EntryCode,
            _policy: &EffectivePolicy,
        ) -> Result<Arc<dyn PreparedExtension>> {
            std::thread::sleep(self.compile);
            Err(MorphError::invalid_module("compiled at last, and refused"))
        }
    }

    fn artifact() -> ExtensionArtifact {
        let manifest = ExtensionManifest::from_yaml(
            "extension_id: t.slow\nversion: 1.0.0\nschema_version: \"1.0\"\n\
             metadata: {name: Slow}\nruntime: wasm\nentry: extension.wasm\n\
             actions: [{name: run}]\n",
            "manifest.yaml",
        )
        .unwrap();
        ExtensionArtifact::from_parts(manifest, b"\0asm".to_vec())
    }

    #[tokio::test]
    async fn a_load_that_overruns_its_budget_ends_with_timeout() {
        let executor = Executor::new(ExecutorOptions {
            threads: 1,
            stack_size: 1 << 20,
            ..ExecutorOptions::default()
        })
        .unwrap();
        let runtime = EngineRuntime::with_executor(
            SlowCompiler {
                compile: Duration::from_secs(4),
            },
            executor,
        )
        .with_load_budget(Duration::from_millis(100));
        let started = Instant::now();
        let e = runtime
            .load(
                &artifact(),
                Arc::new(CapabilityHost::in_memory()),
                &HostPolicy::allow_requested(),
            )
            .await
            .err()
            .expect("the load cannot succeed");
        let waited = started.elapsed();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.message().contains("load budget of 100 ms"), "{e}");
        // Budget + the watchdog's grace of max(1 s, budget) + its period.
        assert!(waited < Duration::from_millis(1_600), "{waited:?}");
    }

    #[tokio::test]
    async fn a_load_within_its_budget_reports_what_the_backend_said() {
        let runtime = EngineRuntime::with_executor(
            SlowCompiler {
                compile: Duration::from_millis(10),
            },
            Executor::new(ExecutorOptions {
                threads: 1,
                stack_size: 1 << 20,
                ..ExecutorOptions::default()
            })
            .unwrap(),
        );
        let e = runtime
            .load(
                &artifact(),
                Arc::new(CapabilityHost::in_memory()),
                &HostPolicy::allow_requested(),
            )
            .await
            .err()
            .expect("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidModule, "{e}");
    }
}
