//! The capability host: the single dispatch of every host call from every
//! backend. It parses the call into a [`HostOp`], checks the permission,
//! counts quotas for this execution, writes an audit record, then
//! delegates to a provider.
//!
//! The provider traits live here with the in-memory providers of
//! [`CapabilityHost::in_memory`]; the real ones (HTTP client, redb store,
//! sandboxed files, vault files, audit log) are in `morph-host`.

mod fs;
mod http;
mod memory;
mod op;
mod providers;
mod vault_chain;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

pub use fs::FsProvider;
pub use http::{
    CREDENTIAL_HEADERS, FORBIDDEN_HEADERS, HostPattern, HttpLimits, HttpProvider, HttpRequest,
    HttpResponse, MAX_REQUEST_HEADERS, address_allowed, check_url, effective_port, host_allowed,
    is_public, non_public, parse_url, response_too_large, validate_request,
};
pub use memory::{MemoryAuditSink, MemoryDataStore, MemoryVault, RecordingEventBus, validate_key};
pub use op::{HostOp, OP_NAMES};
pub use providers::{AuditRecord, AuditSink, DataStore, Event, EventBus, VaultProvider};
pub use vault_chain::VaultChain;

use crate::deadline::Deadline;
use crate::error::{ErrorKind, MorphError, Result};
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
/// Cloning shares the providers.
#[derive(Default, Clone)]
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
    /// or not, writes one audit record; `allowed` in it says whether the
    /// call got past the permission check, the quotas and the policy to
    /// its provider (false for `permission_denied`, `unsupported` and
    /// `quota_exceeded`, wherever they came from).
    /// `quota_exceeded` ends the execution (the caller must not hand it back
    /// to the guest); other errors are for the guest to handle.
    pub fn call(&self, state: &mut CallState, op: &str, args: Value) -> Result<Value> {
        let started = Instant::now();
        let mut allowed = false;
        let result = HostOp::parse(op, args).and_then(|op| {
            let permission = op.permission();
            if !state.scope.policy.permissions.contains(permission) {
                return Err(MorphError::permission_denied(format!(
                    "op `{}` needs permission {permission}, which extension `{}` was not granted",
                    op.name(),
                    state.scope.extension_id
                )));
            }
            self.dispatch(state, op, &mut allowed)
        });
        self.audit_record(state, op, allowed, &result, started);
        result
    }

    /// Writes the audit record of a finished execution.
    pub fn audit_execution(&self, state: &CallState, result: &Result<Value>, started: Instant) {
        self.audit_record(state, "execute", true, result, started);
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

    fn audit_record<T>(
        &self,
        state: &CallState,
        op: &str,
        allowed: bool,
        result: &Result<T>,
        started: Instant,
    ) {
        let (outcome, reason) = match result {
            Ok(_) => ("ok".to_string(), None),
            Err(e) => (e.kind().as_str().to_string(), Some(e.message().to_string())),
        };
        // Refused by policy, by a quota or for want of a provider is never
        // "allowed", wherever the refusal came from.
        let refused = result.as_ref().err().is_some_and(|e| {
            matches!(
                e.kind(),
                ErrorKind::PermissionDenied | ErrorKind::Unsupported | ErrorKind::QuotaExceeded
            )
        });
        let allowed = allowed && !refused;
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

    /// Runs `op` for `state`, whose permission was checked. Sets `allowed`
    /// once quotas and policy let the call reach its provider.
    fn dispatch(&self, state: &mut CallState, op: HostOp, allowed: &mut bool) -> Result<Value> {
        let ext = state.scope.extension_id.as_str();
        let name = op.name();
        match op {
            HostOp::GetSecret { key } => {
                validate_key(name, &key)?;
                *allowed = true;
                Ok(self
                    .vault
                    .get(ext, &key)?
                    .map_or(Value::Null, Value::String))
            }
            HostOp::SetSecret { key, value } => {
                validate_key(name, &key)?;
                *allowed = true;
                self.vault.set(ext, &key, &value)?;
                Ok(Value::Null)
            }
            HostOp::DataGet { key } => {
                validate_key(name, &key)?;
                *allowed = true;
                Ok(self.data.get(ext, &key)?.unwrap_or(Value::Null))
            }
            HostOp::DataSet { key, value } => {
                validate_key(name, &key)?;
                *allowed = true;
                self.data.set(ext, &key, &value)?;
                Ok(Value::Null)
            }
            HostOp::DataDelete { key } => {
                validate_key(name, &key)?;
                *allowed = true;
                self.data.delete(ext, &key)?;
                Ok(Value::Null)
            }
            HostOp::DataList { prefix } => {
                *allowed = true;
                Ok(Value::from(self.data.list(ext, &prefix)?))
            }
            HostOp::Emit {
                name: event,
                payload,
            } => {
                if !state.scope.events.contains(&event) {
                    return Err(MorphError::permission_denied(format!(
                        "op `events.emit`: event `{event}` is not declared in the manifest of `{ext}`"
                    )));
                }
                *allowed = true;
                state.emitted.push(Event {
                    source: ext.to_string(),
                    name: format!("{ext}/{event}"),
                    payload,
                    request_id: state.request_id.clone(),
                    hops: state.hops,
                });
                Ok(Value::Null)
            }
            HostOp::Fetch {
                method,
                url,
                headers,
                body,
            } => {
                state.http_requests += 1;
                let max = state.scope.policy.limits.max_http_requests;
                if state.http_requests > max {
                    return Err(MorphError::quota_exceeded(format!(
                        "op `http.fetch`: more than max_http_requests = {max} in one execution"
                    )));
                }
                let request = HttpRequest {
                    method,
                    url,
                    headers,
                    body,
                };
                validate_request(&request)?;
                let policy = &state.scope.policy;
                check_url(&request.url, &policy.allowed_hosts)?;
                let http = self.http.as_ref().ok_or_else(|| {
                    MorphError::unsupported("op `http.fetch`: this host has no HTTP provider")
                })?;
                let timeout = state
                    .deadline
                    .as_ref()
                    .map_or(std::time::Duration::MAX, Deadline::remaining);
                let max_response_bytes = policy.limits.max_http_response_bytes;
                *allowed = true;
                let response = http.fetch(
                    &request,
                    &HttpLimits {
                        allowed_hosts: policy.allowed_hosts.clone(),
                        private_network: policy.private_network,
                        timeout,
                        max_response_bytes,
                    },
                )?;
                // Whatever the provider: the cap holds.
                if response.body.len() as u64 > max_response_bytes {
                    return Err(response_too_large(&request.url, max_response_bytes));
                }
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
            HostOp::FsRead { path } => {
                let (fs, max) = self.files(state, name, allowed)?;
                Ok(Value::String(fs.read(ext, &path, max)?))
            }
            HostOp::FsWrite { path, data } => {
                let (fs, max) = self.files(state, name, allowed)?;
                fs.write(ext, &path, &data, max)?;
                Ok(Value::Null)
            }
            HostOp::FsList { path } => {
                let (fs, _) = self.files(state, name, allowed)?;
                Ok(Value::from(fs.list(ext, &path)?))
            }
            HostOp::FsDelete { path } => {
                let (fs, _) = self.files(state, name, allowed)?;
                fs.delete(ext, &path)?;
                Ok(Value::Null)
            }
        }
    }

    /// The file provider and the size cap in bytes for op `name`
    /// (`unsupported` without a provider); sets `allowed`.
    fn files(
        &self,
        state: &CallState,
        name: &str,
        allowed: &mut bool,
    ) -> Result<(&dyn FsProvider, u64)> {
        let fs = self.fs.as_deref().ok_or_else(|| {
            MorphError::unsupported(format!(
                "op `{name}`: this host has no file-system provider"
            ))
        })?;
        *allowed = true;
        let max = state
            .scope
            .policy
            .limits
            .max_file_size_mb
            .saturating_mul(1 << 20);
        Ok((fs, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{LimitEnforcement, ResourceLimits};
    use crate::permission::Permission;
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
                private_network: false,
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
    fn refusals_are_never_audited_as_allowed() {
        let audit = Arc::new(MemoryAuditSink::default());
        let host = CapabilityHost::builder().audit(audit.clone()).build();
        let mut st = state(&[
            Permission::FsRead,
            Permission::HttpRead,
            Permission::VaultRead,
        ]);
        // No file provider: unsupported.
        let e = host
            .call(&mut st, "fs.read", json!({"path": "a"}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        // An unknown op: unsupported.
        host.call(&mut st, "nope.op", json!({})).unwrap_err();
        // Bad arguments never reach a provider either.
        host.call(&mut st, "vault.get_secret", json!({"kee": "k"}))
            .unwrap_err();
        // Past max_http_requests: quota_exceeded.
        for _ in 0..=ResourceLimits::default().max_http_requests {
            let _ = host.call(
                &mut st,
                "http.fetch",
                json!({"method": "GET", "url": "https://api.example.com/"}),
            );
        }
        host.call(&mut st, "vault.get_secret", json!({"key": "k"}))
            .unwrap();
        let records = audit.records();
        let quota = records
            .iter()
            .find(|r| r.outcome == "quota_exceeded")
            .expect("a quota record");
        assert!(!quota.allowed);
        for r in &records[..3] {
            assert!(!r.allowed, "{r:?}");
        }
        assert!(records.last().unwrap().allowed, "the allowed call");
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
