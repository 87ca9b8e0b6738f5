//! Script engines (JavaScript, Python): the small trait a language crate
//! implements ([`ScriptEngine`]), and [`ScriptBackend`], which runs one in
//! the host process. The same engine runs inside a worker process through
//! [`crate::worker`]; either way every host call goes through the
//! [`Session`] and so through the one [`CapabilityHost`](crate::CapabilityHost).
//!
//! The language glue turns a guest call into bytes the wasm backends would
//! also produce: the Describe JSON for `describe()`, a result envelope
//! (`{"ok": ...}` / `{"err": {...}}`) for `execute()`. Everything after
//! that (envelope decoding, audit, events) is shared.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::deadline::Deadline;
use crate::engine::{Backend, EntryCode, GuestCall, GuestRun, PreparedExtension};
use crate::error::{MorphError, Result};
use crate::limits::ResourceLimits;
use crate::manifest::RuntimeKind;
use crate::policy::EffectivePolicy;
use crate::runtime::RuntimeInfo;
use crate::session::Session;

/// The log level a script glue passes for a level that is no name
/// (`morph.log(text, "verbose")`): like a number outside 0..4 from any
/// guest, the session refuses it with `abi_violation`, which ends the
/// execution.
pub const UNNAMED_LOG_LEVEL: i32 = i32::MIN;

/// Where a script guest's host calls and log lines go: the [`Session`] in
/// process, the pipe to the parent in a worker.
pub trait ScriptHost: Send {
    /// Performs a host-call request (`{"op": ..., "args": {...}}` as JSON)
    /// and returns the response envelope. An error ends the execution: the
    /// glue raises it so the guest unwinds, and the host reports it.
    fn call(&mut self, request: &[u8]) -> Result<Vec<u8>>;

    /// A log line (level 0 trace ... 4 error), counted against
    /// `max_output_bytes`; an error ends the execution.
    fn log(&mut self, level: i32, text: &str) -> Result<()>;
}

impl ScriptHost for Session {
    fn call(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        self.guest_call(request)
    }

    fn log(&mut self, level: i32, text: &str) -> Result<()> {
        self.guest_log(level, text)
    }
}

/// A [`ScriptHost`] the language glue can keep in its native functions for
/// the length of one call.
pub type SharedHost = Arc<Mutex<dyn ScriptHost>>;

/// Locks a [`SharedHost`] (a panic in another holder does not poison it
/// for the rest of the execution).
pub fn lock_host(host: &SharedHost) -> MutexGuard<'_, dyn ScriptHost + 'static> {
    host.lock().unwrap_or_else(|p| p.into_inner())
}

/// One guest call of a script engine.
pub struct ScriptCall<'a> {
    /// What the guest is asked to do.
    pub call: GuestCall<'a>,
    /// Host calls and logs.
    pub host: SharedHost,
    /// When the call must end (`timeout`).
    pub deadline: Deadline,
    /// The effective limits.
    pub limits: ResourceLimits,
}

impl ScriptCall<'_> {
    /// The `timeout` error for this call.
    pub fn timeout_error(&self) -> MorphError {
        MorphError::timeout(format!(
            "{} exceeded max_execution_ms = {} (stopped after {} ms)",
            self.what(),
            self.limits.max_execution_ms,
            self.deadline.elapsed().as_millis()
        ))
    }

    /// `describe()` or ``action `name` ``, for messages.
    pub fn what(&self) -> String {
        match self.call {
            GuestCall::Describe => "describe()".to_string(),
            GuestCall::Execute { action, .. } => format!("action `{action}`"),
        }
    }
}

/// A script language: compiles an entry file and runs guest calls.
pub trait ScriptEngine: Send + Sync + 'static {
    /// The extension kind it runs.
    fn kind(&self) -> RuntimeKind;

    /// The engine crate and version, for `RuntimeInfo`.
    fn engine(&self) -> (&'static str, &'static str);

    /// Work done once per worker process before its sandbox closes:
    /// initialise the interpreter, load the libraries extensions may use.
    fn warm_up(&self) -> Result<()> {
        Ok(())
    }

    /// Whether the engine stops a call at its deadline by itself (budgeted
    /// evaluation). A worker running an engine that does not is killed at
    /// the deadline; one that does gets a short grace first, so it stays
    /// warm.
    fn stops_at_deadline(&self) -> bool;

    /// Compiles `source` (`file` names it in messages). A syntax error is
    /// `invalid_module` naming the file and line. Top-level code does not
    /// run here: every [`ScriptInstance::run`] starts from fresh state.
    fn load(
        &self,
        file: &str,
        source: &str,
        limits: &ResourceLimits,
    ) -> Result<Box<dyn ScriptInstance>>;
}

/// A compiled script. Not `Send`: it lives on the thread that made it.
pub trait ScriptInstance {
    /// Runs one guest call on fresh script state (a new realm, a new module
    /// namespace): nothing an earlier call left behind is visible. Returns
    /// the Describe JSON or the result envelope; `timeout`,
    /// `stack_overflow`, `memory_limit` and `abi_violation` (a result that
    /// is not JSON) are errors.
    fn run(&mut self, call: ScriptCall<'_>) -> Result<Vec<u8>>;

    /// Called by a worker between calls, after the answer is sent: build
    /// what the next call needs fresh (a new realm), so it is off the next
    /// call's path. Must not run extension code. Default: nothing.
    fn prepare_next(&mut self) {}
}

/// Runs a [`ScriptEngine`] in the host process. Limits are what the engine
/// enforces in process: [`RuntimeInfo`] comes from the language crate, which
/// declares what it cannot do there (Boa has no heap cap).
pub struct ScriptBackend {
    engine: Arc<dyn ScriptEngine>,
    info: RuntimeInfo,
}

impl ScriptBackend {
    /// Wraps `engine`, described by `info`.
    pub fn new(engine: Arc<dyn ScriptEngine>, info: RuntimeInfo) -> Self {
        ScriptBackend { engine, info }
    }
}

/// The source of a script entry, or `unsupported` for WebAssembly.
pub fn script_source<'a>(code: &'a EntryCode, backend: &str) -> Result<(&'a str, &'a str)> {
    match code {
        EntryCode::Script { file, source, .. } => Ok((file, source)),
        EntryCode::Wasm { .. } => Err(MorphError::unsupported(format!(
            "the {backend} backend runs scripts, not WebAssembly"
        ))),
    }
}

impl Backend for ScriptBackend {
    fn info(&self) -> RuntimeInfo {
        self.info.clone()
    }

    fn prepare(
        &self,
        code: &EntryCode,
        policy: &EffectivePolicy,
    ) -> Result<Arc<dyn PreparedExtension>> {
        let (file, source) = script_source(code, &self.info.name)?;
        // Compile once now so a syntax error fails the load.
        self.engine.load(file, source, &policy.limits)?;
        Ok(Arc::new(InProcessScript {
            engine: self.engine.clone(),
            file: file.to_string(),
            source: source.to_string(),
        }))
    }
}

struct InProcessScript {
    engine: Arc<dyn ScriptEngine>,
    file: String,
    source: String,
}

/// The session, lent to the glue for one call.
struct Lent(Option<Session>);

impl ScriptHost for Lent {
    fn call(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        match &mut self.0 {
            Some(s) => s.guest_call(request),
            None => Err(MorphError::host_error(
                "host call after the execution ended",
            )),
        }
    }

    fn log(&mut self, level: i32, text: &str) -> Result<()> {
        match &mut self.0 {
            Some(s) => s.guest_log(level, text),
            None => Err(MorphError::host_error("log after the execution ended")),
        }
    }
}

impl PreparedExtension for InProcessScript {
    fn run(&self, session: Session, call: GuestCall<'_>) -> GuestRun {
        let deadline = session.deadline().clone();
        let limits = *session.limits();
        let lent = Arc::new(Mutex::new(Lent(Some(session))));
        let host: SharedHost = lent.clone();
        let result = self
            .engine
            .load(&self.file, &self.source, &limits)
            .and_then(|mut instance| {
                instance.run(ScriptCall {
                    call,
                    host,
                    deadline,
                    limits,
                })
            });
        let mut session = lent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .take()
            .expect("the session is lent for this call only");
        let result = session.fatal_wins(result);
        GuestRun { session, result }
    }
}
