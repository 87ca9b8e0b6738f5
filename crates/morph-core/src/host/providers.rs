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

    /// Stores `value` at `key` unless the namespace would then hold more
    /// than `quota` allows: then `quota_exceeded` and nothing changes. The
    /// default measures the namespace with [`list`](Self::list) and
    /// [`get`](Self::get) first (linear in its size, and not atomic with
    /// the write); a store should override it to check and write in one
    /// step.
    fn set_within(
        &self,
        extension_id: &str,
        key: &str,
        value: &Value,
        quota: &DataQuota,
    ) -> Result<()> {
        let mut usage = DataUsage::default();
        for k in self.list(extension_id, "")? {
            if k == key {
                continue;
            }
            let size = self
                .get(extension_id, &k)?
                .map_or(0, |v| crate::host::json_size(&v));
            usage.add(&k, size);
        }
        usage.add(key, crate::host::json_size(value));
        quota.check(extension_id, &usage)?;
        self.set(extension_id, key, value)
    }
}

/// How much of a `data.*` namespace is used: each entry counts as its key
/// plus its value's JSON text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataUsage {
    /// Keys.
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

impl DataUsage {
    /// Counts one more entry: `key` with a value of `value_bytes`.
    pub fn add(&mut self, key: &str, value_bytes: usize) {
        self.keys += 1;
        self.bytes = self.bytes.saturating_add((key.len() + value_bytes) as u64);
    }

    /// Counts one entry fewer.
    pub fn remove(&mut self, key: &str, value_bytes: usize) {
        self.keys = self.keys.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub((key.len() + value_bytes) as u64);
    }
}

/// The most a `data.*` namespace may hold (from
/// [`ResourceLimits`](crate::ResourceLimits)'s `max_data_keys` and
/// `max_data_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataQuota {
    /// Most keys.
    pub max_keys: u64,
    /// Most bytes of keys and values.
    pub max_bytes: u64,
}

impl DataQuota {
    /// No quota at all.
    pub const UNLIMITED: DataQuota = DataQuota {
        max_keys: u64::MAX,
        max_bytes: u64::MAX,
    };

    /// `quota_exceeded` when `usage` (the namespace after a write) is over.
    pub fn check(&self, extension_id: &str, usage: &DataUsage) -> Result<()> {
        if usage.keys > self.max_keys {
            return Err(crate::MorphError::quota_exceeded(format!(
                "op `data.set`: the data of `{extension_id}` would hold {} keys, over max_data_keys = {}",
                usage.keys, self.max_keys
            )));
        }
        if usage.bytes > self.max_bytes {
            return Err(crate::MorphError::quota_exceeded(format!(
                "op `data.set`: the data of `{extension_id}` would hold {} bytes, over max_data_bytes = {}",
                usage.bytes, self.max_bytes
            )));
        }
        Ok(())
    }
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
    /// The event chain: a token the host made for the execution that
    /// started it (the one a host called, not a listener), never a request
    /// id, so no caller or guest can name another's chain. Deliveries are
    /// counted, timed and made per origin, so one caller never delivers
    /// another's events.
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
