//! The capability host: the single dispatch of every host call from every
//! backend. It checks the permission, counts quotas for this execution,
//! writes an audit record, then delegates to a provider.

mod audit_log;
mod env_vault;
mod file_vault;
mod fs;
mod http;
mod memory;
mod providers;
mod redb_store;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use audit_log::JsonLinesAudit;
pub use env_vault::{EnvVault, VaultChain};
pub use file_vault::{FileVault, VAULT_KEY_ENV};
pub use fs::{FsProvider, SandboxFs};
pub use http::{
    HttpLimits, HttpProvider, HttpRequest, HttpResponse, UreqHttp, check_url, host_allowed,
    is_public,
};
pub use memory::{MemoryAuditSink, MemoryDataStore, MemoryVault, RecordingEventBus, validate_key};
pub use providers::{AuditRecord, AuditSink, DataStore, Event, EventBus, VaultProvider};
pub use redb_store::RedbDataStore;

use crate::deadline::Deadline;
use crate::error::{ErrorKind, MorphError, Result};
use crate::permission::Permission;
use crate::policy::EffectivePolicy;

/// What a loaded extension is, for the host: its id, its effective grant
/// and the events it declared.
#[derive(Debug, Clone)]
pub struct ExtensionScope {
    /// The extension id (the namespace of its secrets, data and events).
    pub extension_id: String,
    /// Effective permissions, hosts and limits.
    pub policy: EffectivePolicy,
    /// Event names it may emit (from the manifest).
    pub events: Vec<String>,
}

/// Per-execution state the host keeps: who is calling, the quotas used,
/// and events waiting to be published when the execution ends.
#[derive(Debug)]
pub struct CallState {
    scope: Arc<ExtensionScope>,
    action: String,
    request_id: String,
    http_requests: u32,
    emitted: Vec<Event>,
    deadline: Option<Deadline>,
    hops: u32,
}

impl CallState {
    /// A fresh state for one execution of `action`.
    pub fn new(scope: Arc<ExtensionScope>, action: &str, request_id: &str) -> Self {
        CallState {
            scope,
            action: action.to_string(),
            request_id: request_id.to_string(),
            http_requests: 0,
            emitted: Vec::new(),
            deadline: None,
            hops: 0,
        }
    }

    /// Marks this execution as a listener delivery `hops` deep; the events
    /// it emits carry that count.
    pub fn set_hops(&mut self, hops: u32) {
        self.hops = hops;
    }

    /// Caps host-side waits (HTTP) to what is left before `deadline`.
    pub fn set_deadline(&mut self, deadline: Deadline) {
        self.deadline = Some(deadline);
    }

    /// The calling extension.
    pub fn scope(&self) -> &ExtensionScope {
        &self.scope
    }

    /// A fresh state for another call of the same extension and action.
    pub fn renewed(&self) -> CallState {
        let mut state = CallState::new(self.scope.clone(), &self.action, &self.request_id);
        state.hops = self.hops;
        state
    }

    /// The action being executed.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The execution's request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Takes the events emitted so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.emitted)
    }
}

/// The capability host shared by every extension and backend.
pub struct CapabilityHost {
    vault: Arc<dyn VaultProvider>,
    data: Arc<dyn DataStore>,
    events: Arc<dyn EventBus>,
    audit: Arc<dyn AuditSink>,
    fs: Option<Arc<dyn FsProvider>>,
    http: Option<Arc<dyn HttpProvider>>,
}

impl std::fmt::Debug for CapabilityHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapabilityHost").finish_non_exhaustive()
    }
}

/// Builds a [`CapabilityHost`]; every provider defaults to its in-memory one.
#[derive(Default)]
pub struct CapabilityHostBuilder {
    vault: Option<Arc<dyn VaultProvider>>,
    data: Option<Arc<dyn DataStore>>,
    events: Option<Arc<dyn EventBus>>,
    audit: Option<Arc<dyn AuditSink>>,
    fs: Option<Arc<dyn FsProvider>>,
    http: Option<Arc<dyn HttpProvider>>,
}

impl CapabilityHostBuilder {
    /// Uses `vault` for secrets.
    pub fn vault(mut self, vault: Arc<dyn VaultProvider>) -> Self {
        self.vault = Some(vault);
        self
    }

    /// Uses `data` for the key/value namespaces.
    pub fn data(mut self, data: Arc<dyn DataStore>) -> Self {
        self.data = Some(data);
        self
    }

    /// Publishes events to `events`.
    pub fn events(mut self, events: Arc<dyn EventBus>) -> Self {
        self.events = Some(events);
        self
    }

    /// Writes audit records to `audit`.
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Serves `fs.*` with `fs` (for example a [`SandboxFs`]). Default: none,
    /// so `fs.*` ops answer `unsupported` after the permission check.
    pub fn fs(mut self, fs: Arc<dyn FsProvider>) -> Self {
        self.fs = Some(fs);
        self
    }

    /// Serves `http.fetch` with `http` (for example [`UreqHttp`]). Default:
    /// none, so `http.fetch` answers `unsupported` after the checks.
    pub fn http(mut self, http: Arc<dyn HttpProvider>) -> Self {
        self.http = Some(http);
        self
    }

    /// The host.
    pub fn build(self) -> CapabilityHost {
        CapabilityHost {
            vault: self.vault.unwrap_or_else(|| Arc::new(MemoryVault::new())),
            data: self
                .data
                .unwrap_or_else(|| Arc::new(MemoryDataStore::new())),
            events: self
                .events
                .unwrap_or_else(|| Arc::new(RecordingEventBus::default())),
            audit: self
                .audit
                .unwrap_or_else(|| Arc::new(MemoryAuditSink::default())),
            fs: self.fs,
            http: self.http,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyArgs {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSecretArgs {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDataArgs {
    key: String,
    value: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitArgs {
    name: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListPathArgs {
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    data: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

#[derive(Deserialize)]
struct HttpMethodArgs {
    method: String,
}

/// The ops of ABI.md, with the permission each needs.
fn required_permission(op: &str, args: &Value) -> Result<Permission> {
    Ok(match op {
        "vault.get_secret" => Permission::VaultRead,
        "vault.set_secret" => Permission::VaultWrite,
        "events.emit" => Permission::EventEmit,
        "data.get" | "data.list" => Permission::DataRead,
        "data.set" | "data.delete" => Permission::DataWrite,
        "fs.read" | "fs.list" => Permission::FsRead,
        "fs.write" | "fs.delete" => Permission::FsWrite,
        "http.fetch" => {
            let HttpMethodArgs { method } = parse_args(op, args.clone())?;
            if method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD") {
                Permission::HttpRead
            } else {
                Permission::HttpWrite
            }
        }
        _ => {
            return Err(MorphError::unsupported(format!(
                "op `{op}` is not a host operation (vault.*, events.emit, data.*, fs.*, http.fetch)"
            )));
        }
    })
}

fn parse_args<T: DeserializeOwned>(op: &str, args: Value) -> Result<T> {
    serde_json::from_value(args)
        .map_err(|e| MorphError::host_error(format!("op `{op}`: invalid args: {e}")))
}

impl CapabilityHost {
    /// A host with every provider in memory.
    pub fn in_memory() -> Self {
        CapabilityHostBuilder::default().build()
    }

    /// A builder to swap providers.
    pub fn builder() -> CapabilityHostBuilder {
        CapabilityHostBuilder::default()
    }

    /// Performs one host call for the execution `state`. Every call, allowed
    /// or not, writes one audit record. `quota_exceeded` ends the execution
    /// (the caller must not hand it back to the guest); other errors are for
    /// the guest to handle.
    pub fn call(&self, state: &mut CallState, op: &str, args: Value) -> Result<Value> {
        let started = Instant::now();
        let result = required_permission(op, &args).and_then(|permission| {
            if !state.scope.policy.permissions.contains(permission) {
                return Err(MorphError::permission_denied(format!(
                    "op `{op}` needs permission {permission}, which extension `{}` was not granted",
                    state.scope.extension_id
                )));
            }
            self.dispatch(state, op, args)
        });
        self.audit_record(state, op, &result, started);
        result
    }

    /// Writes the audit record of a finished execution.
    pub fn audit_execution(&self, state: &CallState, result: &Result<Value>, started: Instant) {
        self.audit_record(state, "execute", result, started);
    }

    /// Publishes the events an execution emitted (after it ended). A bus
    /// failure is logged and does not change the execution's result.
    pub fn publish_events(&self, events: Vec<Event>) {
        for event in events {
            if let Err(e) = self.events.publish(&event) {
                tracing::warn!(target: "morph::events", event = %event.name, error = %e, "event not published");
            }
        }
    }

    fn audit_record<T>(&self, state: &CallState, op: &str, result: &Result<T>, started: Instant) {
        let (allowed, outcome, reason) = match result {
            Ok(_) => (true, "ok".to_string(), None),
            Err(e) => (
                e.kind() != ErrorKind::PermissionDenied,
                e.kind().as_str().to_string(),
                Some(e.message().to_string()),
            ),
        };
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.audit.record(&AuditRecord {
            time_ms,
            extension_id: state.scope.extension_id.clone(),
            action: state.action.clone(),
            request_id: state.request_id.clone(),
            op: op.to_string(),
            allowed,
            outcome,
            reason,
            duration_us: started.elapsed().as_micros() as u64,
        });
    }

    fn dispatch(&self, state: &mut CallState, op: &str, args: Value) -> Result<Value> {
        let ext = state.scope.extension_id.as_str();
        match op {
            "vault.get_secret" => {
                let a: KeyArgs = parse_args(op, args)?;
                validate_key(op, &a.key)?;
                Ok(self
                    .vault
                    .get(ext, &a.key)?
                    .map_or(Value::Null, Value::String))
            }
            "vault.set_secret" => {
                let a: SetSecretArgs = parse_args(op, args)?;
                validate_key(op, &a.key)?;
                self.vault.set(ext, &a.key, &a.value)?;
                Ok(Value::Null)
            }
            "data.get" => {
                let a: KeyArgs = parse_args(op, args)?;
                validate_key(op, &a.key)?;
                Ok(self.data.get(ext, &a.key)?.unwrap_or(Value::Null))
            }
            "data.set" => {
                let a: SetDataArgs = parse_args(op, args)?;
                validate_key(op, &a.key)?;
                self.data.set(ext, &a.key, &a.value)?;
                Ok(Value::Null)
            }
            "data.delete" => {
                let a: KeyArgs = parse_args(op, args)?;
                validate_key(op, &a.key)?;
                self.data.delete(ext, &a.key)?;
                Ok(Value::Null)
            }
            "data.list" => {
                let a: ListArgs = parse_args(op, args)?;
                Ok(Value::from(self.data.list(ext, &a.prefix)?))
            }
            "events.emit" => {
                let a: EmitArgs = parse_args(op, args)?;
                if !state.scope.events.contains(&a.name) {
                    return Err(MorphError::permission_denied(format!(
                        "op `events.emit`: event `{}` is not declared in the manifest of `{ext}`",
                        a.name
                    )));
                }
                state.emitted.push(Event {
                    source: ext.to_string(),
                    name: format!("{ext}/{}", a.name),
                    payload: a.payload,
                    request_id: state.request_id.clone(),
                    hops: state.hops,
                });
                Ok(Value::Null)
            }
            "http.fetch" => {
                state.http_requests += 1;
                let max = state.scope.policy.limits.max_http_requests;
                if state.http_requests > max {
                    return Err(MorphError::quota_exceeded(format!(
                        "op `http.fetch`: more than max_http_requests = {max} in one execution"
                    )));
                }
                let a: FetchArgs = parse_args(op, args)?;
                let allowed = &state.scope.policy.allowed_hosts;
                check_url(&a.url, allowed)?;
                let http = self.http.as_ref().ok_or_else(|| {
                    MorphError::unsupported("op `http.fetch`: this host has no HTTP provider")
                })?;
                let body = match (a.body, a.body_base64) {
                    (Some(text), None) => Some(text.into_bytes()),
                    (None, Some(b64)) => Some(BASE64.decode(b64).map_err(|e| {
                        MorphError::host_error(format!("op `http.fetch`: body_base64: {e}"))
                    })?),
                    (None, None) => None,
                    (Some(_), Some(_)) => {
                        return Err(MorphError::host_error(
                            "op `http.fetch`: give `body` or `body_base64`, not both",
                        ));
                    }
                };
                let timeout = state
                    .deadline
                    .as_ref()
                    .map_or(std::time::Duration::MAX, Deadline::remaining);
                let response = http.fetch(
                    &HttpRequest {
                        method: a.method,
                        url: a.url,
                        headers: a.headers,
                        body,
                    },
                    &HttpLimits {
                        allowed_hosts: allowed.clone(),
                        timeout,
                        max_response_bytes: u64::MAX,
                    },
                )?;
                let headers: Vec<[String; 2]> =
                    response.headers.into_iter().map(|(k, v)| [k, v]).collect();
                Ok(match String::from_utf8(response.body) {
                    Ok(text) => {
                        json!({"status": response.status, "headers": headers, "body": text})
                    }
                    Err(bytes) => json!({"status": response.status, "headers": headers,
                                         "body_base64": BASE64.encode(bytes.into_bytes())}),
                })
            }
            _ => {
                let fs = self.fs.as_ref().ok_or_else(|| {
                    MorphError::unsupported(format!(
                        "op `{op}`: this host has no file-system provider"
                    ))
                })?;
                let max = state
                    .scope
                    .policy
                    .limits
                    .max_file_size_mb
                    .saturating_mul(1 << 20);
                match op {
                    "fs.read" => {
                        let a: PathArgs = parse_args(op, args)?;
                        Ok(Value::String(fs.read(ext, &a.path, max)?))
                    }
                    "fs.write" => {
                        let a: WriteArgs = parse_args(op, args)?;
                        fs.write(ext, &a.path, &a.data, max)?;
                        Ok(Value::Null)
                    }
                    "fs.list" => {
                        let a: ListPathArgs = parse_args(op, args)?;
                        Ok(Value::from(fs.list(ext, &a.path)?))
                    }
                    _ => {
                        let a: PathArgs = parse_args(op, args)?;
                        fs.delete(ext, &a.path)?;
                        Ok(Value::Null)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{LimitEnforcement, ResourceLimits};
    use crate::permission::PermissionSet;
    use serde_json::json;

    fn state(perms: &[Permission]) -> CallState {
        let scope = ExtensionScope {
            extension_id: "ext.a".into(),
            policy: EffectivePolicy {
                permissions: perms.iter().copied().collect::<PermissionSet>(),
                allowed_hosts: vec![],
                limits: ResourceLimits::default(),
                enforcement: LimitEnforcement::Strict,
                fuel: None,
            },
            events: vec!["done".into()],
        };
        CallState::new(Arc::new(scope), "act", "req-1")
    }

    #[test]
    fn deny_by_default_and_audit_every_call() {
        let audit = Arc::new(MemoryAuditSink::default());
        let host = CapabilityHost::builder().audit(audit.clone()).build();
        let mut st = state(&[]);
        let e = host
            .call(&mut st, "vault.get_secret", json!({"key": "k"}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.message().contains("vault:read"), "{e}");
        let records = audit.records();
        assert_eq!(records.len(), 1);
        assert!(!records[0].allowed);
        assert_eq!(records[0].outcome, "permission_denied");
    }

    #[test]
    fn ops_reach_their_providers_in_the_callers_namespace() {
        let host = CapabilityHost::in_memory();
        let mut st = state(&[
            Permission::VaultRead,
            Permission::VaultWrite,
            Permission::DataRead,
            Permission::DataWrite,
        ]);
        host.call(
            &mut st,
            "vault.set_secret",
            json!({"key": "k", "value": "v"}),
        )
        .unwrap();
        assert_eq!(
            host.call(&mut st, "vault.get_secret", json!({"key": "k"}))
                .unwrap(),
            json!("v")
        );
        host.call(
            &mut st,
            "data.set",
            json!({"key": "a/1", "value": {"n": 1}}),
        )
        .unwrap();
        assert_eq!(
            host.call(&mut st, "data.list", json!({"prefix": "a/"}))
                .unwrap(),
            json!(["a/1"])
        );
        assert_eq!(host.vault.get("ext.b", "k").unwrap(), None);
    }

    #[test]
    fn bad_args_are_host_errors_naming_the_op() {
        let host = CapabilityHost::in_memory();
        let mut st = state(&[Permission::VaultRead]);
        let e = host
            .call(&mut st, "vault.get_secret", json!({"kee": "k"}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HostError);
        assert!(e.message().contains("vault.get_secret"), "{e}");
        let e = host
            .call(&mut st, "vault.get_secret", json!({"key": 5}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HostError);
        let e = host.call(&mut st, "nope.op", json!({})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn events_must_be_declared_and_are_namespaced() {
        let host = CapabilityHost::in_memory();
        let mut st = state(&[Permission::EventEmit]);
        host.call(
            &mut st,
            "events.emit",
            json!({"name": "done", "payload": 1}),
        )
        .unwrap();
        let e = host
            .call(&mut st, "events.emit", json!({"name": "other"}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        let events = st.take_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, "ext.a/done");
    }
}
