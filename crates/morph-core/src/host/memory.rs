//! In-memory providers: real, bounded where they could grow without end,
//! and the defaults of [`CapabilityHost::in_memory`](super::CapabilityHost::in_memory).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use super::providers::{AuditRecord, AuditSink, DataStore, Event, EventBus, VaultProvider};
use crate::error::{MorphError, Result};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps
    // half-updated (every update is one insert/remove), so recover.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Secrets in a map keyed by (extension id, key).
#[derive(Debug, Default)]
pub struct MemoryVault {
    secrets: Mutex<BTreeMap<(String, String), String>>,
}

impl MemoryVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }
}

impl VaultProvider for MemoryVault {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<String>> {
        Ok(lock(&self.secrets)
            .get(&(extension_id.to_string(), key.to_string()))
            .cloned())
    }

    fn set(&self, extension_id: &str, key: &str, value: &str) -> Result<()> {
        lock(&self.secrets).insert(
            (extension_id.to_string(), key.to_string()),
            value.to_string(),
        );
        Ok(())
    }
}

/// JSON values in a map keyed by (extension id, key).
#[derive(Debug, Default)]
pub struct MemoryDataStore {
    values: Mutex<BTreeMap<(String, String), Value>>,
}

impl MemoryDataStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl DataStore for MemoryDataStore {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<Value>> {
        Ok(lock(&self.values)
            .get(&(extension_id.to_string(), key.to_string()))
            .cloned())
    }

    fn set(&self, extension_id: &str, key: &str, value: &Value) -> Result<()> {
        lock(&self.values).insert((extension_id.to_string(), key.to_string()), value.clone());
        Ok(())
    }

    fn delete(&self, extension_id: &str, key: &str) -> Result<()> {
        lock(&self.values).remove(&(extension_id.to_string(), key.to_string()));
        Ok(())
    }

    fn list(&self, extension_id: &str, prefix: &str) -> Result<Vec<String>> {
        Ok(lock(&self.values)
            .range((extension_id.to_string(), prefix.to_string())..)
            .take_while(|((ext, key), _)| ext == extension_id && key.starts_with(prefix))
            .map(|((_, key), _)| key.clone())
            .collect())
    }

    fn set_within(
        &self,
        extension_id: &str,
        key: &str,
        value: &Value,
        quota: &super::DataQuota,
    ) -> Result<()> {
        let mut values = lock(&self.values);
        let mut usage = super::DataUsage::default();
        for ((_, k), v) in values
            .range((extension_id.to_string(), String::new())..)
            .take_while(|((ext, _), _)| ext == extension_id)
            .filter(|((_, k), _)| k != key)
        {
            usage.add(k, super::json_size(v));
        }
        usage.add(key, super::json_size(value));
        quota.check(extension_id, &usage)?;
        values.insert((extension_id.to_string(), key.to_string()), value.clone());
        Ok(())
    }
}

/// Keeps the last `capacity` items, dropping the oldest.
#[derive(Debug)]
struct Ring<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
}

impl<T: Clone> Ring<T> {
    fn new(capacity: usize) -> Self {
        Ring {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn push(&self, item: T) {
        let mut items = lock(&self.items);
        if items.len() == self.capacity {
            items.pop_front();
        }
        items.push_back(item);
    }

    fn snapshot(&self) -> Vec<T> {
        lock(&self.items).iter().cloned().collect()
    }

    fn drain(&self) -> Vec<T> {
        lock(&self.items).drain(..).collect()
    }
}

/// An event bus that records what was published (the last `capacity`).
#[derive(Debug)]
pub struct RecordingEventBus {
    events: Ring<Event>,
}

impl RecordingEventBus {
    /// Keeps the last `capacity` events.
    pub fn new(capacity: usize) -> Self {
        RecordingEventBus {
            events: Ring::new(capacity),
        }
    }

    /// The recorded events, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.events.snapshot()
    }

    /// Takes the recorded events, oldest first.
    pub fn take(&self) -> Vec<Event> {
        self.events.drain()
    }
}

impl Default for RecordingEventBus {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl EventBus for RecordingEventBus {
    fn publish(&self, event: &Event) -> Result<()> {
        self.events.push(event.clone());
        Ok(())
    }
}

/// An audit sink that keeps the last `capacity` records in memory and also
/// logs each one through `tracing` (target `morph::audit`).
#[derive(Debug)]
pub struct MemoryAuditSink {
    records: Ring<AuditRecord>,
}

impl MemoryAuditSink {
    /// Keeps the last `capacity` records.
    pub fn new(capacity: usize) -> Self {
        MemoryAuditSink {
            records: Ring::new(capacity),
        }
    }

    /// The kept records, oldest first.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records.snapshot()
    }

    /// Takes the kept records, oldest first.
    pub fn take(&self) -> Vec<AuditRecord> {
        self.records.drain()
    }
}

impl Default for MemoryAuditSink {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, r: &AuditRecord) {
        tracing::debug!(
            target: "morph::audit",
            extension = %r.extension_id, action = %r.action, request_id = %r.request_id,
            op = %r.op, allowed = r.allowed, outcome = %r.outcome, reason = r.reason.as_deref(),
            duration_us = r.duration_us, "audit"
        );
        self.records.push(r.clone());
    }
}

/// Checks a vault or data key: 1 to 256 bytes, no control characters.
pub fn validate_key(op: &str, key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 256 || key.chars().any(char::is_control) {
        return Err(MorphError::host_error(format!(
            "op `{op}`: key must be 1 to 256 bytes without control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespaces_do_not_leak_between_extensions() {
        let vault = MemoryVault::new();
        vault.set("a", "token", "secret-a").unwrap();
        assert_eq!(
            vault.get("a", "token").unwrap().as_deref(),
            Some("secret-a")
        );
        assert_eq!(vault.get("b", "token").unwrap(), None);

        let data = MemoryDataStore::new();
        data.set("a", "issue/1", &json!(1)).unwrap();
        data.set("a", "issue/2", &json!(2)).unwrap();
        data.set("a", "other", &json!(3)).unwrap();
        data.set("b", "issue/9", &json!(9)).unwrap();
        assert_eq!(
            data.list("a", "issue/").unwrap(),
            vec!["issue/1", "issue/2"]
        );
        assert_eq!(data.list("b", "").unwrap(), vec!["issue/9"]);
        data.delete("a", "issue/1").unwrap();
        assert_eq!(data.get("a", "issue/1").unwrap(), None);
    }

    #[test]
    fn rings_keep_only_the_newest() {
        let bus = RecordingEventBus::new(2);
        for i in 0..3 {
            bus.publish(&Event {
                source: "x".into(),
                name: format!("x/e{i}"),
                payload: json!(i),
                request_id: "r".into(),
                hops: 0,
                origin: String::new(),
            })
            .unwrap();
        }
        let names: Vec<String> = bus.events().into_iter().map(|e| e.name).collect();
        assert_eq!(names, vec!["x/e1", "x/e2"]);
    }
}
