//! Resource limits, how each backend enforces them, and how strictly the
//! host insists on them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Per-execution resource limits. In a manifest they are the extension's
/// request; the host caps them with its own ceilings (see
/// [`HostPolicy`](crate::HostPolicy)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceLimits {
    /// Largest linear memory (or heap) in MiB. Default 128.
    pub max_memory_mb: u64,
    /// Wall-clock budget of one execution in milliseconds. Default 30000.
    pub max_execution_ms: u64,
    /// HTTP requests per execution. Default 100.
    pub max_http_requests: u32,
    /// Largest file read or written through `fs.*`, in MiB. Default 10.
    pub max_file_size_mb: u64,
    /// Largest result, host-call request or total log output of one
    /// execution, in bytes. Default 1 MiB (1048576).
    pub max_output_bytes: u64,
    /// Host calls per execution. Default 1000.
    pub max_host_calls: u32,
    /// Largest `http.fetch` response body, in bytes as received (the final
    /// response after redirects, before it is encoded into the envelope).
    /// A larger body ends the execution with `quota_exceeded`. Default
    /// 10 MiB (10485760).
    pub max_http_response_bytes: u64,
    /// Keys the extension's persistent `data.*` namespace may hold (not
    /// per execution: across all of them). A `data.set` adding a key past
    /// it ends the execution with `quota_exceeded`. Default 10000.
    pub max_data_keys: u64,
    /// Bytes the extension's `data.*` namespace may hold, each entry
    /// counted as its key plus its value's JSON text. A `data.set` that
    /// would pass it ends the execution with `quota_exceeded`. Default
    /// 64 MiB (67108864).
    pub max_data_bytes: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            max_memory_mb: 128,
            max_execution_ms: 30_000,
            max_http_requests: 100,
            max_file_size_mb: 10,
            max_output_bytes: 1 << 20,
            max_host_calls: 1000,
            max_http_response_bytes: 10 << 20,
            max_data_keys: 10_000,
            max_data_bytes: 64 << 20,
        }
    }
}

impl ResourceLimits {
    /// Each limit the smaller of `self` and `ceiling`.
    pub fn capped_by(&self, ceiling: &ResourceLimits) -> ResourceLimits {
        ResourceLimits {
            max_memory_mb: self.max_memory_mb.min(ceiling.max_memory_mb),
            max_execution_ms: self.max_execution_ms.min(ceiling.max_execution_ms),
            max_http_requests: self.max_http_requests.min(ceiling.max_http_requests),
            max_file_size_mb: self.max_file_size_mb.min(ceiling.max_file_size_mb),
            max_output_bytes: self.max_output_bytes.min(ceiling.max_output_bytes),
            max_host_calls: self.max_host_calls.min(ceiling.max_host_calls),
            max_http_response_bytes: self
                .max_http_response_bytes
                .min(ceiling.max_http_response_bytes),
            max_data_keys: self.max_data_keys.min(ceiling.max_data_keys),
            max_data_bytes: self.max_data_bytes.min(ceiling.max_data_bytes),
        }
    }

    /// `max_memory_mb` in bytes.
    pub fn max_memory_bytes(&self) -> u64 {
        self.max_memory_mb.saturating_mul(1 << 20)
    }

    /// Names the first limit that is zero (a zero limit makes every
    /// execution fail, so it is refused when parsing).
    pub fn first_zero(&self) -> Option<&'static str> {
        [
            ("max_memory_mb", self.max_memory_mb == 0),
            ("max_execution_ms", self.max_execution_ms == 0),
            ("max_file_size_mb", self.max_file_size_mb == 0),
            ("max_output_bytes", self.max_output_bytes == 0),
            ("max_http_response_bytes", self.max_http_response_bytes == 0),
        ]
        .into_iter()
        .find_map(|(name, zero)| zero.then_some(name))
    }
}

/// A limit a backend must enforce itself (the capability host counts the
/// others once for every backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineLimit {
    /// `max_execution_ms`, ending with `timeout`.
    ExecutionTime,
    /// `max_memory_mb`, ending with `memory_limit`.
    Memory,
    /// Native stack depth, ending with `stack_overflow`.
    Stack,
    /// Explicit instruction fuel, ending with `fuel_exhausted`.
    Fuel,
}

impl EngineLimit {
    /// Every engine limit.
    pub const ALL: [EngineLimit; 4] = [
        EngineLimit::ExecutionTime,
        EngineLimit::Memory,
        EngineLimit::Stack,
        EngineLimit::Fuel,
    ];

    /// The limits every execution runs under (fuel only when the host
    /// asks for a budget).
    pub const REQUIRED: [EngineLimit; 3] = [
        EngineLimit::ExecutionTime,
        EngineLimit::Memory,
        EngineLimit::Stack,
    ];

    /// The name used in `RuntimeInfo`, docs and case files.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineLimit::ExecutionTime => "execution_time",
            EngineLimit::Memory => "memory",
            EngineLimit::Stack => "stack",
            EngineLimit::Fuel => "fuel",
        }
    }
}

impl fmt::Display for EngineLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a backend enforces one [`EngineLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// The engine's own mechanism (epochs, fuel, resource limiter, ...).
    Native,
    /// Core's instrumentation of the module.
    Instrumented,
    /// Not enforced: under [`LimitEnforcement::Strict`] loading fails with
    /// `unsupported`.
    Unsupported,
}

/// What the host does when a backend cannot enforce a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitEnforcement {
    /// Refuse to load with `unsupported`, naming the limit (the default).
    #[default]
    Strict,
    /// Run anyway; the gap is visible in `RuntimeInfo` and the audit log.
    BestEffort,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_seed() {
        let l = ResourceLimits::default();
        assert_eq!(
            (
                l.max_memory_mb,
                l.max_execution_ms,
                l.max_http_requests,
                l.max_file_size_mb
            ),
            (128, 30_000, 100, 10)
        );
    }

    #[test]
    fn capping_takes_the_minimum_of_each() {
        let request = ResourceLimits {
            max_memory_mb: 512,
            max_execution_ms: 10,
            ..ResourceLimits::default()
        };
        let capped = request.capped_by(&ResourceLimits::default());
        assert_eq!(capped.max_memory_mb, 128);
        assert_eq!(capped.max_execution_ms, 10);
        assert_eq!(capped.max_http_response_bytes, 10 << 20);
        let small = ResourceLimits {
            max_http_response_bytes: 4,
            ..ResourceLimits::default()
        };
        assert_eq!(
            request.capped_by(&small).max_http_response_bytes,
            4,
            "the host's ceiling caps the response size"
        );
    }
}
