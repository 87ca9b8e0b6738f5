//! One execution's state on the engine side: per-execution counters, the
//! deadline, and the first fatal error (which wins over whatever the engine
//! reports after it). WebAssembly's pointer-based imports are served on top
//! of it by `morph-wasm`; script engines call [`Session::guest_call`].

use std::sync::Arc;

use crate::abi;
use crate::deadline::Deadline;
use crate::error::{ErrorKind, MorphError, Result};
use crate::host::{CallState, CapabilityHost, Event};
use crate::limits::ResourceLimits;

/// What an engine needs during one guest call. Backends move it into their
/// store and hand it back when the call ends.
#[derive(Debug)]
pub struct Session {
    host: Arc<CapabilityHost>,
    calls: CallState,
    deadline: Deadline,
    limits: ResourceLimits,
    fuel: Option<u64>,
    host_calls: u32,
    log_bytes: u64,
    fatal: Option<MorphError>,
    peak_memory: u64,
    fuel_used: Option<u64>,
}

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

    /// The action being executed (`describe` for the load-time call).
    pub fn action(&self) -> &str {
        self.calls.action()
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

    /// The recorded fatal error, as an `Err`: once the execution has
    /// failed, nothing more of it is served (a guest that caught the
    /// unwind gets the same error again for every host call and log line).
    fn not_failed(&self) -> Result<()> {
        match &self.fatal {
            Some(fatal) => Err(fatal.clone()),
            None => Ok(()),
        }
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

    /// A host call whose request (`{"op": ..., "args": {...}}` as JSON)
    /// is in host memory: the deadline, `max_output_bytes` and
    /// `max_host_calls` are checked, then the request is performed.
    /// Returns the response envelope; an error ends the execution
    /// (recorded as fatal). A call that returns past the deadline (a slow
    /// `http.fetch` is capped to the time left, so it ends there) ends the
    /// execution with `timeout`, whatever it answered: the same on every
    /// backend, whether or not the engine would check the clock again
    /// before the guest returns. After a fatal error it returns that error
    /// and performs nothing.
    pub fn guest_call(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        self.not_failed()?;
        let r = (|| {
            if self.deadline.expired() {
                return Err(self.timeout_error());
            }
            self.check_output_len(request.len() as u64, "host call request")?;
            self.count_host_call()?;
            let response = self.call_json(request)?;
            if self.deadline.expired() {
                return Err(self.timeout_error());
            }
            Ok(response)
        })();
        r.map_err(|e| self.fail(e))
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

    /// A log line from a guest: counted against `max_output_bytes`, then
    /// logged through `tracing` (target `morph::guest`). After a fatal
    /// error it returns that error and logs nothing.
    pub fn guest_log(&mut self, level: i32, text: &str) -> Result<()> {
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

    /// Counts `len` more bytes of log output (`log`, WASI `fd_write`)
    /// against `max_output_bytes`; past it the execution ends with
    /// `quota_exceeded` (recorded as fatal). After a fatal error it
    /// returns that error (nothing more is written).
    pub fn count_output(&mut self, len: u64, what: &str) -> Result<()> {
        self.not_failed()?;
        self.log_bytes = self.log_bytes.saturating_add(len);
        self.check_output_len(self.log_bytes, what)
            .map_err(|e| self.fail(e))
    }

    /// Logs a message from the guest (level 0 trace ... 4 error), escaped
    /// ([`escape_untrusted`](crate::text::escape_untrusted)) so it cannot
    /// drive the terminal or forge log lines.
    pub fn log_text(&mut self, level: i32, text: &str) -> Result<()> {
        let text = crate::text::escape_untrusted(text);
        let ext = self.calls.scope().extension_id.as_str();
        let action = self.calls.action();
        match level {
            0 => tracing::trace!(target: "morph::guest", extension = ext, action, "{text}"),
            1 => tracing::debug!(target: "morph::guest", extension = ext, action, "{text}"),
            2 => tracing::info!(target: "morph::guest", extension = ext, action, "{text}"),
            3 => tracing::warn!(target: "morph::guest", extension = ext, action, "{text}"),
            4 => tracing::error!(target: "morph::guest", extension = ext, action, "{text}"),
            crate::script::UNNAMED_LOG_LEVEL => {
                return Err(MorphError::abi_violation(
                    "a log level that is not trace, debug, info, warn or error (0 to 4)",
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{ExtensionScope, HttpLimits, HttpProvider, HttpRequest, HttpResponse};
    use crate::limits::LimitEnforcement;
    use crate::permission::Permission;
    use crate::policy::EffectivePolicy;
    use std::time::Duration;

    /// Answers after `delay`, or at `limits.timeout` if that comes first
    /// (as a real client would).
    struct SlowHttp(Duration);

    impl HttpProvider for SlowHttp {
        fn fetch(&self, _: &HttpRequest, limits: &HttpLimits) -> Result<HttpResponse> {
            std::thread::sleep(self.0.min(limits.timeout));
            Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body: b"late".to_vec(),
            })
        }
    }

    fn session(delay: Duration, limit: Duration) -> Session {
        let host = CapabilityHost::builder()
            .http(Arc::new(SlowHttp(delay)))
            .build();
        let scope = ExtensionScope {
            extension_id: "ext.a".into(),
            policy: EffectivePolicy {
                permissions: [Permission::HttpRead].into_iter().collect(),
                allowed_hosts: vec!["api.example.com".into()],
                limits: ResourceLimits::default(),
                enforcement: LimitEnforcement::Strict,
                fuel: None,
                private_network: false,
            },
            events: vec![],
            unenforced: vec![],
        };
        Session::new(
            Arc::new(host),
            CallState::new(Arc::new(scope), "act", "req-1"),
            ResourceLimits::default(),
            None,
            Deadline::after(limit),
        )
    }

    const FETCH: &[u8] =
        br#"{"op": "http.fetch", "args": {"method": "GET", "url": "https://api.example.com/"}}"#;

    #[test]
    fn a_host_call_that_returns_past_the_deadline_ends_the_execution_with_timeout() {
        let mut s = session(Duration::from_secs(5), Duration::from_millis(100));
        let e = s.guest_call(FETCH).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_eq!(s.take_fatal().map(|e| e.kind()), Some(ErrorKind::Timeout));

        let mut s = session(Duration::ZERO, Duration::from_secs(30));
        let response = s.guest_call(FETCH).unwrap();
        assert!(String::from_utf8_lossy(&response).contains("late"));
        assert!(s.take_fatal().is_none());
    }

    #[test]
    fn after_a_fatal_error_host_calls_and_logs_get_that_error() {
        let mut s = session(Duration::ZERO, Duration::from_secs(30));
        let _ = s.fail(MorphError::abi_violation("the guest broke the protocol"));
        let e = s.guest_call(FETCH).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AbiViolation, "{e}");
        assert!(e.message().contains("broke the protocol"), "{e}");
        let e = s.guest_log(2, "still here").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AbiViolation, "{e}");
        // Nothing was performed or counted after the failure.
        assert_eq!(s.host_calls, 0);
        assert_eq!(s.log_bytes, 0);

        // A limit hit ends it the same way: the first error stays.
        let mut s = session(Duration::ZERO, Duration::from_secs(30));
        s.limits.max_host_calls = 1;
        s.guest_call(FETCH).unwrap();
        let quota = s.guest_call(FETCH).unwrap_err();
        assert_eq!(quota.kind(), ErrorKind::QuotaExceeded, "{quota}");
        let again = s.guest_call(FETCH).unwrap_err();
        assert_eq!(
            (again.kind(), again.message()),
            (quota.kind(), quota.message())
        );
        assert_eq!(
            s.guest_log(2, "x").unwrap_err().kind(),
            ErrorKind::QuotaExceeded
        );
    }
}
