//! One execution's state on the engine side of the ABI: the pending
//! host-call response, per-execution counters, the deadline, and the first
//! fatal error (which wins over whatever the engine reports after it).

use std::sync::Arc;

use crate::abi;
use crate::deadline::Deadline;
use crate::error::{ErrorKind, MorphError, Result};
use crate::guest_memory::GuestMemory;
use crate::host::{CallState, CapabilityHost, Event};
use crate::limits::ResourceLimits;
use crate::wasm::HostImport;

/// What an engine needs during one guest call. Backends move it into their
/// store and hand it back when the call ends.
#[derive(Debug)]
pub struct Session {
    host: Arc<CapabilityHost>,
    calls: CallState,
    deadline: Deadline,
    limits: ResourceLimits,
    fuel: Option<u64>,
    pending: Option<Vec<u8>>,
    host_calls: u32,
    log_bytes: u64,
    fatal: Option<MorphError>,
    peak_memory: u64,
    fuel_used: Option<u64>,
}

/// Most table elements a guest may grow a table to.
pub const MAX_TABLE_ELEMENTS: u64 = 1 << 20;

/// Most tables a module may define (checked by core's validation; engines
/// that preallocate tables, like wasmtime's pool, size for it).
pub const MAX_TABLES: u32 = 8;

impl Session {
    /// A session for one call under `limits`, ending at `deadline`.
    pub fn new(
        host: Arc<CapabilityHost>,
        mut calls: CallState,
        limits: ResourceLimits,
        fuel: Option<u64>,
        deadline: Deadline,
    ) -> Self {
        calls.set_deadline(deadline.clone());
        Session {
            host,
            calls,
            deadline,
            limits,
            fuel,
            pending: None,
            host_calls: 0,
            log_bytes: 0,
            fatal: None,
            peak_memory: 0,
            fuel_used: None,
        }
    }

    /// Moves this session out, leaving an empty one with the same host,
    /// extension and deadline in its place: for engines whose store cannot
    /// hand its data back by value.
    pub fn take(&mut self) -> Session {
        let empty = Session::new(
            self.host.clone(),
            self.calls.renewed(),
            self.limits,
            self.fuel,
            self.deadline.clone(),
        );
        std::mem::replace(self, empty)
    }

    /// The execution's deadline; engines check it.
    pub fn deadline(&self) -> &Deadline {
        &self.deadline
    }

    /// The effective limits.
    pub fn limits(&self) -> &ResourceLimits {
        &self.limits
    }

    /// The instruction budget the host asked for, if any.
    pub fn fuel(&self) -> Option<u64> {
        self.fuel
    }

    /// The error for a passed deadline.
    pub fn timeout_error(&self) -> MorphError {
        MorphError::timeout(format!(
            "action `{}` exceeded max_execution_ms = {} (stopped after {} ms)",
            self.calls.action(),
            self.limits.max_execution_ms,
            self.deadline.elapsed().as_millis()
        ))
    }

    /// The error for memory growth beyond `max_memory_mb`.
    pub fn memory_limit_error(&self, desired_bytes: u64) -> MorphError {
        MorphError::memory_limit(format!(
            "action `{}` tried to grow memory to {} MiB, above max_memory_mb = {}",
            self.calls.action(),
            desired_bytes >> 20,
            self.limits.max_memory_mb
        ))
    }

    /// An engine's memory-growth hook: `Ok(false)` refuses a growth past the
    /// module's own maximum (`memory.grow` returns -1), and growth past
    /// `max_memory_mb` ends the execution with `memory_limit` (recorded as
    /// fatal), the same on every backend.
    pub fn memory_growing(&mut self, desired_bytes: u64, maximum: Option<u64>) -> Result<bool> {
        if desired_bytes > self.limits.max_memory_bytes() {
            let e = self.memory_limit_error(desired_bytes);
            return Err(self.fail(e));
        }
        Ok(maximum.is_none_or(|m| desired_bytes <= m))
    }

    /// An engine's table-growth hook: growth past [`MAX_TABLE_ELEMENTS`]
    /// ends the execution with `memory_limit`.
    pub fn table_growing(&mut self, desired: u64, maximum: Option<u64>) -> Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            let e = MorphError::memory_limit(format!(
                "action `{}` tried to grow a table to {desired} elements, above {MAX_TABLE_ELEMENTS}",
                self.calls.action()
            ));
            return Err(self.fail(e));
        }
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    /// Records `error` as the reason the execution ends (the first one
    /// wins) and returns it, for the engine to raise as a trap.
    pub fn fail(&mut self, error: MorphError) -> MorphError {
        self.fatal.get_or_insert(error).clone()
    }

    /// `result`, unless a fatal error was recorded: that one wins, whatever
    /// the guest answered after it (script backends, whose guest may catch
    /// the unwind and return normally).
    pub fn fatal_wins<T>(&mut self, result: Result<T>) -> Result<T> {
        match self.take_fatal() {
            Some(fatal) => Err(fatal),
            None => result,
        }
    }

    /// Takes the recorded fatal error.
    pub fn take_fatal(&mut self) -> Option<MorphError> {
        self.fatal.take()
    }

    /// Notes the guest's memory size, for the report's peak.
    pub fn note_memory(&mut self, bytes: u64) {
        self.peak_memory = self.peak_memory.max(bytes);
    }

    /// Notes the fuel the engine consumed.
    pub fn note_fuel(&mut self, used: u64) {
        self.fuel_used = Some(used);
    }

    /// Checks a guest-supplied output length against `max_output_bytes`
    /// before anything is read.
    pub fn check_output_len(&self, len: u64, what: &str) -> Result<()> {
        let max = self.limits.max_output_bytes;
        if len > max {
            return Err(MorphError::quota_exceeded(format!(
                "{what} of {len} bytes exceeds max_output_bytes = {max}"
            )));
        }
        Ok(())
    }

    /// `morph.host_call(req_ptr, req_len)`: performs the request and keeps
    /// the response envelope; returns its length. Errors end the execution
    /// (they are also recorded as fatal).
    pub fn host_call<M: GuestMemory + ?Sized>(
        &mut self,
        memory: &M,
        ptr: u32,
        len: u32,
    ) -> Result<u32> {
        let r = self.host_call_inner(memory, ptr, len);
        r.map_err(|e| self.fail(e))
    }

    fn host_call_inner<M: GuestMemory + ?Sized>(
        &mut self,
        memory: &M,
        ptr: u32,
        len: u32,
    ) -> Result<u32> {
        if self.deadline.expired() {
            return Err(self.timeout_error());
        }
        self.pending = None;
        self.check_output_len(len.into(), "host_call request")?;
        self.count_host_call()?;
        let request = memory.read(ptr, len, "host_call request")?;
        let response = self.call_json(&request)?;
        let n = u32::try_from(response.len())
            .map_err(|_| MorphError::quota_exceeded("host_call response larger than 4 GiB"))?;
        self.pending = Some(response);
        Ok(n)
    }

    fn count_host_call(&mut self) -> Result<()> {
        self.host_calls += 1;
        if self.host_calls > self.limits.max_host_calls {
            return Err(MorphError::quota_exceeded(format!(
                "more than max_host_calls = {} host calls in one execution",
                self.limits.max_host_calls
            )));
        }
        Ok(())
    }

    /// A host call from a script guest (JavaScript, Python), whose request
    /// is already in host memory: the same checks as `host_call` (deadline,
    /// `max_output_bytes`, `max_host_calls`), then the request. Returns the
    /// response envelope; an error ends the execution (recorded as fatal).
    pub fn script_call(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        let r = (|| {
            if self.deadline.expired() {
                return Err(self.timeout_error());
            }
            self.check_output_len(request.len() as u64, "host call request")?;
            self.count_host_call()?;
            self.call_json(request)
        })();
        r.map_err(|e| self.fail(e))
    }

    /// A log line from a script guest: counted against `max_output_bytes`,
    /// then logged like `log`.
    pub fn script_log(&mut self, level: i32, text: &str) -> Result<()> {
        self.count_output(text.len() as u64, "log output")?;
        self.log_text(level, text).map_err(|e| self.fail(e))
    }

    /// Performs a request `{"op": ..., "args": {...}}` given as JSON bytes
    /// and returns the response envelope bytes. Malformed requests are
    /// `abi_violation`; quota errors end the execution; everything else is
    /// returned to the guest as an `err` envelope.
    pub fn call_json(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        let value = abi::parse_json(request, "host_call request")?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(MorphError::abi_violation(
                "host_call request must be an object {\"op\": string, \"args\": object}",
            ));
        };
        let op = match map.remove("op") {
            Some(serde_json::Value::String(op)) => op,
            _ => {
                return Err(MorphError::abi_violation(
                    "host_call request has no string `op`",
                ));
            }
        };
        let args = map
            .remove("args")
            .unwrap_or(serde_json::Value::Object(Default::default()));
        let result = self.host.call(&mut self.calls, &op, args);
        if let Err(e) = &result
            && e.kind() == ErrorKind::QuotaExceeded
        {
            return Err(e.clone());
        }
        Ok(abi::encode_envelope(&result))
    }

    /// Serves a pointer-pair ABI import (`host_call` or `host_response`),
    /// so backends link both with one function. `log` takes three
    /// arguments and is refused here.
    pub fn serve_pair<M: GuestMemory + ?Sized>(
        &mut self,
        import: HostImport,
        memory: &mut M,
        ptr: u32,
        len: u32,
    ) -> Result<u32> {
        match import {
            HostImport::HostCall => self.host_call(memory, ptr, len),
            HostImport::HostResponse => self.host_response(memory, ptr, len),
            HostImport::Log => {
                Err(self.fail(MorphError::host_error("`log` is not a pointer-pair import")))
            }
        }
    }

    /// `morph.host_response(dst_ptr, dst_len)`: copies the pending response
    /// into guest memory; returns the bytes written.
    pub fn host_response<M: GuestMemory + ?Sized>(
        &mut self,
        memory: &mut M,
        ptr: u32,
        len: u32,
    ) -> Result<u32> {
        let r = self.host_response_inner(memory, ptr, len);
        r.map_err(|e| self.fail(e))
    }

    fn host_response_inner<M: GuestMemory + ?Sized>(
        &mut self,
        memory: &mut M,
        ptr: u32,
        len: u32,
    ) -> Result<u32> {
        let pending = self.pending.as_deref().ok_or_else(|| {
            MorphError::abi_violation("host_response called with no pending response")
        })?;
        let n = pending.len() as u32;
        if len < n {
            return Err(MorphError::abi_violation(format!(
                "host_response buffer of {len} bytes is shorter than the {n}-byte response"
            )));
        }
        memory.write(ptr, pending, "host_response buffer")?;
        Ok(n)
    }

    /// `morph.log(level, ptr, len)`: logs through `tracing` (target
    /// `morph::guest`), counted against `max_output_bytes`.
    pub fn log<M: GuestMemory + ?Sized>(
        &mut self,
        memory: &M,
        level: i32,
        ptr: u32,
        len: u32,
    ) -> Result<()> {
        let r = self.log_inner(memory, level, ptr, len);
        r.map_err(|e| self.fail(e))
    }

    fn log_inner<M: GuestMemory + ?Sized>(
        &mut self,
        memory: &M,
        level: i32,
        ptr: u32,
        len: u32,
    ) -> Result<()> {
        self.count_output(u64::from(len), "log output")?;
        let bytes = memory.read(ptr, len, "log message")?;
        self.log_text(level, &String::from_utf8_lossy(&bytes))
    }

    /// Counts `len` more bytes of log output (`log`, WASI `fd_write`)
    /// against `max_output_bytes`; past it the execution ends with
    /// `quota_exceeded` (recorded as fatal).
    pub fn count_output(&mut self, len: u64, what: &str) -> Result<()> {
        self.log_bytes = self.log_bytes.saturating_add(len);
        self.check_output_len(self.log_bytes, what)
            .map_err(|e| self.fail(e))
    }

    /// Logs a message from a script guest (level 0 trace ... 4 error).
    pub fn log_text(&mut self, level: i32, text: &str) -> Result<()> {
        let ext = self.calls.scope().extension_id.as_str();
        let action = self.calls.action();
        match level {
            0 => tracing::trace!(target: "morph::guest", extension = ext, action, "{text}"),
            1 => tracing::debug!(target: "morph::guest", extension = ext, action, "{text}"),
            2 => tracing::info!(target: "morph::guest", extension = ext, action, "{text}"),
            3 => tracing::warn!(target: "morph::guest", extension = ext, action, "{text}"),
            4 => tracing::error!(target: "morph::guest", extension = ext, action, "{text}"),
            other => {
                return Err(MorphError::abi_violation(format!(
                    "log level {other} is not 0 (trace) to 4 (error)"
                )));
            }
        }
        Ok(())
    }

    /// Ends the session: the report's counters and the emitted events.
    pub fn finish(mut self) -> (SessionTotals, Vec<Event>, CallState) {
        let events = self.calls.take_events();
        (
            SessionTotals {
                host_calls: self.host_calls,
                peak_memory_bytes: self.peak_memory,
                fuel_used: self.fuel_used,
            },
            events,
            self.calls,
        )
    }
}

/// Counters of a finished session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionTotals {
    /// Host calls made.
    pub host_calls: u32,
    /// Largest guest memory seen, in bytes.
    pub peak_memory_bytes: u64,
    /// Fuel consumed, where the engine counts it.
    pub fuel_used: Option<u64>,
}
