//! The provider traits the capability host delegates to. Every method is
//! already scoped to one extension id: a provider never sees a request
//! from one extension for another's namespace.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;

/// Secrets, namespaced per extension.
pub trait VaultProvider: Send + Sync {
    /// The secret `key` of `extension_id`, if set.
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<String>>;
    /// Sets the secret `key` of `extension_id`.
    fn set(&self, extension_id: &str, key: &str, value: &str) -> Result<()>;
}

/// A per-extension key/value namespace of JSON values.
pub trait DataStore: Send + Sync {
    /// The value at `key`, if any.
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<Value>>;
    /// Stores `value` at `key`.
    fn set(&self, extension_id: &str, key: &str, value: &Value) -> Result<()>;
    /// Removes `key` (no error when absent).
    fn delete(&self, extension_id: &str, key: &str) -> Result<()>;
    /// Keys starting with `prefix`, sorted.
    fn list(&self, extension_id: &str, prefix: &str) -> Result<Vec<String>>;
}

/// An event emitted by an extension, published after its execution ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The emitting extension.
    pub source: String,
    /// Namespaced name: `<extension_id>/<declared name>`.
    pub name: String,
    /// The payload the extension gave.
    pub payload: Value,
    /// The request id of the emitting execution.
    pub request_id: String,
    /// How many listener deliveries led to this event (0 when the emitting
    /// execution was started directly); bounds event loops.
    #[serde(default)]
    pub hops: u32,
    /// The request id of the execution that started the chain (the one a
    /// host called, not a listener): deliveries are counted and made per
    /// origin, so one caller never delivers another's events.
    #[serde(default)]
    pub origin: String,
}

/// Where emitted events go.
pub trait EventBus: Send + Sync {
    /// Publishes one event. Called after the emitting execution ended.
    fn publish(&self, event: &Event) -> Result<()>;
}

/// One audit record: a host call or an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The extension.
    pub extension_id: String,
    /// The action being executed.
    pub action: String,
    /// The execution's request id.
    pub request_id: String,
    /// The host op, or `"execute"` for an execution.
    pub op: String,
    /// Whether the permission check passed.
    pub allowed: bool,
    /// `"ok"` or the error kind.
    pub outcome: String,
    /// Why it was denied or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took, in microseconds.
    pub duration_us: u64,
    /// For an execution: host-call records not written because the
    /// execution outgrew its audit budget (the reason says which).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u32,
    /// For an execution under `LimitEnforcement::BestEffort`: the limits
    /// its backend did not enforce (`memory`, `execution_time`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unenforced: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl AuditRecord {
    /// About how many bytes the record takes in a log.
    pub fn approximate_size(&self) -> u64 {
        let text = self.extension_id.len()
            + self.action.len()
            + self.request_id.len()
            + self.op.len()
            + self.outcome.len()
            + self.reason.as_ref().map_or(0, String::len);
        text as u64 + 160
    }
}

/// Where audit records go.
pub trait AuditSink: Send + Sync {
    /// Records one entry. Must not fail the audited operation.
    fn record(&self, record: &AuditRecord);
}
