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
pub use providers::{
    AuditRecord, AuditSink, DataQuota, DataStore, DataUsage, Event, EventBus, VaultProvider,
};
pub use vault_chain::VaultChain;

use crate::deadline::Deadline;
use crate::error::{ErrorKind, MorphError, Result};
use crate::policy::EffectivePolicy;
use crate::text::bounded_untrusted;

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
    /// Limits it runs without under `LimitEnforcement::BestEffort` (the
    /// backend cannot enforce them); named in every execution's audit
    /// record.
    pub unenforced: Vec<crate::limits::EngineLimit>,
}

/// A fresh event-chain token: unique in this process and not derived
/// from anything a caller or guest chooses (a counter and a per-call
/// random hash key), so no request id can name another execution's chain.
pub fn new_chain_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(n);
    format!("chain-{n}-{:016x}", hasher.finish())
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
    origin: String,
    emitted_count: u32,
    /// Bytes `fs.write` wrote in this execution.
    fs_written: u64,
    /// Audit bytes this execution's host calls wrote.
    audit_bytes: u64,
    /// Host-call records over the audit budget, by (op, outcome).
    audit_dropped: std::collections::BTreeMap<(String, String), u32>,
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
            origin: new_chain_token(),
            emitted_count: 0,
            fs_written: 0,
            audit_bytes: 0,
            audit_dropped: Default::default(),
        }
    }

    /// Marks this execution as a delivery `hops` deep in the event chain
    /// `origin` (a token from [`new_chain_token`], never a request id a
    /// caller or guest chose); the events it emits carry both.
    pub fn set_chain(&mut self, hops: u32, origin: &str) {
        self.hops = hops;
        self.origin = origin.to_string();
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
        state.origin = self.origin.clone();
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

/// Events one execution may emit (64); one more ends it with
/// `quota_exceeded`. With [`MAX_EVENT_HOPS`](crate::MAX_EVENT_HOPS) and the
/// manager's per-origin delivery budget this bounds the fan-out of a chain.
pub const MAX_EMITS_PER_EXECUTION: u32 = 64;

/// Largest `events.emit` payload, in bytes of its JSON text (64 KiB); a
/// larger one ends the execution with `quota_exceeded`. With
/// [`MAX_EMITS_PER_EXECUTION`] it bounds what one execution queues.
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 64 << 10;

/// Largest secret value `vault.set_secret` stores, in bytes (64 KiB); a
/// larger one ends the execution with `quota_exceeded`.
pub const MAX_SECRET_BYTES: usize = 64 << 10;

/// Deepest `fs.*` path, in components (16); a deeper one ends the
/// execution with `quota_exceeded`.
pub const MAX_FS_PATH_DEPTH: usize = 16;

/// Bytes `fs.write` may write in one execution, all files together
/// (64 MiB; each file is capped by `max_file_size_mb` too); past it the
/// execution ends with `quota_exceeded`.
pub const MAX_FS_WRITE_BYTES_PER_EXECUTION: u64 = 64 << 20;

/// Most names one `data.list` or `fs.list` answers with (10,000); more
/// end the execution with `quota_exceeded` (list a narrower prefix or
/// directory).
pub const MAX_LIST_ENTRIES: usize = 10_000;

/// Longest guest-chosen text (error reason) kept in an audit record, in
/// bytes after escaping; longer text is cut with a note of its length.
pub const MAX_AUDIT_TEXT: usize = 1024;

/// Longest op, action or request id kept in an audit record, in bytes.
pub const MAX_AUDIT_NAME: usize = 128;

/// Audit bytes the host calls of one execution may write (64 KiB); the
/// records past it are counted in the execution's record instead.
pub const MAX_AUDIT_BYTES_PER_EXECUTION: u64 = 64 << 10;

/// `names` when there are at most [`MAX_LIST_ENTRIES`], else
/// `quota_exceeded` for op `op`.
fn bounded_list(op: &str, names: Vec<String>) -> Result<Vec<String>> {
    if names.len() > MAX_LIST_ENTRIES {
        return Err(MorphError::quota_exceeded(format!(
            "op `{op}`: {} names exceed {MAX_LIST_ENTRIES} in one answer; list a narrower prefix or directory",
            names.len()
        )));
    }
    Ok(names)
}

/// The length of `value` as JSON text, without building the text.
pub(crate) fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// The record of one host call or execution: every text the guest or the
/// manifest chose is escaped and bounded.
fn audit_entry<T>(
    state: &CallState,
    op: &str,
    allowed: bool,
    result: &Result<T>,
    started: Instant,
) -> AuditRecord {
    let (outcome, reason) = match result {
        Ok(_) => ("ok".to_string(), None),
        Err(e) => (
            e.kind().as_str().to_string(),
            Some(bounded_untrusted(e.message(), MAX_AUDIT_TEXT).into_owned()),
        ),
    };
    // Refused by policy, by a quota or for want of a provider is never
    // "allowed", wherever the refusal came from.
    let refused = result.as_ref().err().is_some_and(|e| {
        matches!(
            e.kind(),
            ErrorKind::PermissionDenied | ErrorKind::Unsupported | ErrorKind::QuotaExceeded
        )
    });
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let name = |s: &str| bounded_untrusted(s, MAX_AUDIT_NAME).into_owned();
    AuditRecord {
        time_ms,
        extension_id: state.scope.extension_id.clone(),
        action: name(&state.action),
        request_id: name(&state.request_id),
        op: name(op),
        allowed: allowed && !refused,
        outcome,
        reason,
        duration_us: started.elapsed().as_micros() as u64,
        dropped: 0,
        unenforced: Vec::new(),
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

    /// Writes the audit record of a finished execution. When its host
    /// calls outgrew the per-execution audit budget
    /// ([`MAX_AUDIT_BYTES_PER_EXECUTION`]), this record says how many
    /// records of which op and outcome were not written.
    pub fn audit_execution(&self, state: &CallState, result: &Result<Value>, started: Instant) {
        let mut record = audit_entry(state, "execute", true, result, started);
        record.unenforced = state
            .scope
            .unenforced
            .iter()
            .map(|l| l.as_str().to_string())
            .collect();
        if !state.audit_dropped.is_empty() {
            let total: u32 = state.audit_dropped.values().sum();
            let detail: Vec<String> = state
                .audit_dropped
                .iter()
                .map(|((op, outcome), n)| format!("{op} {outcome}: {n}"))
                .collect();
            let note = format!(
                "{total} host-call records beyond the {MAX_AUDIT_BYTES_PER_EXECUTION}-byte audit budget of one execution were not written ({})",
                detail.join(", ")
            );
            record.dropped = total;
            record.reason = Some(match record.reason {
                Some(reason) => format!("{reason}; {note}"),
                None => note,
            });
            record.reason = record
                .reason
                .map(|r| bounded_untrusted(&r, 4 * MAX_AUDIT_TEXT).into_owned());
        }
        self.audit.record(&record);
    }

    /// Writes the record of something refused on an extension's behalf
    /// outside a host call (for example event deliveries past their
    /// budget): `op` with `error` for `extension_id`'s `action`.
    pub fn audit_refusal(
        &self,
        extension_id: &str,
        action: &str,
        request_id: &str,
        op: &str,
        error: &MorphError,
    ) {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.audit.record(&AuditRecord {
            time_ms,
            extension_id: extension_id.to_string(),
            action: bounded_untrusted(action, MAX_AUDIT_NAME).into_owned(),
            request_id: bounded_untrusted(request_id, MAX_AUDIT_NAME).into_owned(),
            op: op.to_string(),
            allowed: false,
            outcome: error.kind().as_str().to_string(),
            reason: Some(bounded_untrusted(error.message(), MAX_AUDIT_TEXT).into_owned()),
            duration_us: 0,
            dropped: 0,
            unenforced: Vec::new(),
        });
    }

    /// Publishes the events an execution emitted (after it ended). A bus
    /// failure is logged and does not change the execution's result.
    pub fn publish_events(&self, events: Vec<Event>) {
        for event in events {
            if let Err(e) = self.events.publish(&event) {
                tracing::warn!(target: "morph::events", event = %crate::text::loggable(&event.name), error = %crate::text::loggable(&e), "event not published");
            }
        }
    }

    fn audit_record<T>(
        &self,
        state: &mut CallState,
        op: &str,
        allowed: bool,
        result: &Result<T>,
        started: Instant,
    ) {
        let record = audit_entry(state, op, allowed, result, started);
        let size = record.approximate_size();
        if state.audit_bytes.saturating_add(size) > MAX_AUDIT_BYTES_PER_EXECUTION {
            // Over this execution's budget: counted, and summed up in the
            // execution's own record instead.
            *state
                .audit_dropped
                .entry((record.op, record.outcome))
                .or_insert(0) += 1;
            return;
        }
        state.audit_bytes += size;
        self.audit.record(&record);
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
                if value.len() > MAX_SECRET_BYTES {
                    return Err(MorphError::quota_exceeded(format!(
                        "op `vault.set_secret`: a value of {} bytes exceeds {MAX_SECRET_BYTES} bytes",
                        value.len()
                    )));
                }
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
                let limits = &state.scope.policy.limits;
                let quota = DataQuota {
                    max_keys: limits.max_data_keys,
                    max_bytes: limits.max_data_bytes,
                };
                self.data.set_within(ext, &key, &value, &quota)?;
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
                Ok(Value::from(bounded_list(
                    name,
                    self.data.list(ext, &prefix)?,
                )?))
            }
            HostOp::Emit {
                name: event,
                payload,
            } => {
                if !state.scope.events.contains(&event) {
                    return Err(MorphError::permission_denied(format!(
                        "op `events.emit`: event `{}` is not declared in the manifest of `{ext}`",
                        bounded_untrusted(&event, MAX_AUDIT_NAME)
                    )));
                }
                state.emitted_count += 1;
                if state.emitted_count > MAX_EMITS_PER_EXECUTION {
                    return Err(MorphError::quota_exceeded(format!(
                        "op `events.emit`: more than {MAX_EMITS_PER_EXECUTION} events in one execution"
                    )));
                }
                let size = json_size(&payload);
                if size > MAX_EVENT_PAYLOAD_BYTES {
                    return Err(MorphError::quota_exceeded(format!(
                        "op `events.emit`: payload of {size} bytes exceeds {MAX_EVENT_PAYLOAD_BYTES} bytes"
                    )));
                }
                *allowed = true;
                state.emitted.push(Event {
                    source: ext.to_string(),
                    name: format!("{ext}/{event}"),
                    payload,
                    request_id: state.request_id.clone(),
                    hops: state.hops,
                    origin: state.origin.clone(),
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
                let (fs, max) = self.files(state, name, &path, allowed)?;
                Ok(Value::String(fs.read(ext, &path, max)?))
            }
            HostOp::FsWrite { path, data } => {
                let (fs, max) = self.files(state, name, &path, allowed)?;
                let written = state.fs_written.saturating_add(data.len() as u64);
                if written > MAX_FS_WRITE_BYTES_PER_EXECUTION {
                    *allowed = false;
                    return Err(MorphError::quota_exceeded(format!(
                        "op `fs.write`: more than {MAX_FS_WRITE_BYTES_PER_EXECUTION} bytes written in one execution"
                    )));
                }
                fs.write(ext, &path, &data, max)?;
                state.fs_written = written;
                Ok(Value::Null)
            }
            HostOp::FsList { path } => {
                let (fs, _) = self.files(state, name, &path, allowed)?;
                Ok(Value::from(bounded_list(name, fs.list(ext, &path)?)?))
            }
            HostOp::FsDelete { path } => {
                let (fs, _) = self.files(state, name, &path, allowed)?;
                fs.delete(ext, &path)?;
                Ok(Value::Null)
            }
        }
    }

    /// The file provider and the size cap in bytes for op `name` on
    /// `path` (`unsupported` without a provider, `quota_exceeded` for a
    /// path deeper than [`MAX_FS_PATH_DEPTH`]); sets `allowed`.
    fn files(
        &self,
        state: &CallState,
        name: &str,
        path: &str,
        allowed: &mut bool,
    ) -> Result<(&dyn FsProvider, u64)> {
        let fs = self.fs.as_deref().ok_or_else(|| {
            MorphError::unsupported(format!(
                "op `{name}`: this host has no file-system provider"
            ))
        })?;
        let depth = path
            .split(['/', '\\'])
            .filter(|c| !c.is_empty() && *c != ".")
            .count();
        if depth > MAX_FS_PATH_DEPTH {
            return Err(MorphError::quota_exceeded(format!(
                "op `{name}`: a path {depth} components deep exceeds {MAX_FS_PATH_DEPTH}"
            )));
        }
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
            unenforced: vec![],
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

    /// Files that answer every read with an error quoting the path, as
    /// a sandbox refusing an escape does.
    struct EchoingFs;

    impl FsProvider for EchoingFs {
        fn read(&self, _: &str, path: &str, _: u64) -> Result<String> {
            Err(MorphError::permission_denied(format!(
                "op `fs.read`: path `{path}` leaves the sandbox"
            )))
        }
        fn write(&self, _: &str, _: &str, _: &str, _: u64) -> Result<()> {
            Ok(())
        }
        fn list(&self, _: &str, _: &str) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn delete(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn guest_text_in_audit_records_is_escaped_and_bounded() {
        let audit = Arc::new(MemoryAuditSink::default());
        let host = CapabilityHost::builder()
            .audit(audit.clone())
            .fs(Arc::new(EchoingFs))
            .build();
        let mut st = state(&[Permission::FsRead]);
        let path = format!("\n{{\"op\": \"forged\"}}\u{1b}[2J{}", "x".repeat(500_000));
        for _ in 0..20 {
            host.call(&mut st, "fs.read", json!({ "path": path }))
                .unwrap_err();
        }
        host.call(&mut st, &"y".repeat(100_000), json!({}))
            .unwrap_err();
        host.audit_execution(&st, &Ok(Value::Null), Instant::now());
        let records = audit.records();
        let bytes: u64 = records.iter().map(AuditRecord::approximate_size).sum();
        assert!(
            bytes < 80 << 10,
            "20 calls with a 500 KB path wrote {bytes} bytes"
        );
        for r in &records {
            let text = format!(
                "{} {} {}",
                r.op,
                r.action,
                r.reason.clone().unwrap_or_default()
            );
            assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text:?}");
            assert!(r.op.len() <= MAX_AUDIT_NAME + 32, "{}", r.op.len());
        }
        let execution = records.last().unwrap();
        assert_eq!(execution.op, "execute");
        if execution.dropped > 0 {
            assert!(
                execution
                    .reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains("fs.read permission_denied")
            );
        }
    }

    #[test]
    fn one_execution_emits_a_bounded_number_of_events() {
        let host = CapabilityHost::in_memory();
        let mut st = state(&[Permission::EventEmit]);
        for _ in 0..MAX_EMITS_PER_EXECUTION {
            host.call(&mut st, "events.emit", json!({"name": "done"}))
                .unwrap();
        }
        let e = host
            .call(&mut st, "events.emit", json!({"name": "done"}))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
        assert_eq!(st.take_events().len(), MAX_EMITS_PER_EXECUTION as usize);
    }

    #[test]
    fn an_event_payload_is_bounded() {
        let host = CapabilityHost::in_memory();
        let mut st = state(&[Permission::EventEmit]);
        let fits = "x".repeat(MAX_EVENT_PAYLOAD_BYTES - 100);
        host.call(
            &mut st,
            "events.emit",
            json!({"name": "done", "payload": {"text": fits}}),
        )
        .unwrap();
        let big = "x".repeat(MAX_EVENT_PAYLOAD_BYTES);
        let e = host
            .call(
                &mut st,
                "events.emit",
                json!({"name": "done", "payload": {"text": big}}),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
        assert!(e.message().contains("payload"), "{e}");
        assert_eq!(st.take_events().len(), 1);
        assert_eq!(json_size(&json!({"a": [1, "b"]})), r#"{"a":[1,"b"]}"#.len());
    }

    /// Files that accept everything (the checks under test are core's).
    struct NullFs;

    impl FsProvider for NullFs {
        fn read(&self, _: &str, _: &str, _: u64) -> Result<String> {
            Ok(String::new())
        }
        fn write(&self, _: &str, _: &str, _: &str, _: u64) -> Result<()> {
            Ok(())
        }
        fn list(&self, _: &str, _: &str) -> Result<Vec<String>> {
            Ok((0..=MAX_LIST_ENTRIES).map(|n| n.to_string()).collect())
        }
        fn delete(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn store_file_and_vault_quotas_hold() {
        let host = CapabilityHost::builder().fs(Arc::new(NullFs)).build();
        let mut st = state(&[
            Permission::VaultWrite,
            Permission::DataRead,
            Permission::DataWrite,
            Permission::FsRead,
            Permission::FsWrite,
        ]);
        let quota = |st: &mut CallState, op: &str, args: Value| {
            let e = host.call(st, op, args).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{op}: {e}");
            e.message().to_string()
        };
        // A secret too large.
        let big = "s".repeat(MAX_SECRET_BYTES + 1);
        quota(
            &mut st,
            "vault.set_secret",
            json!({"key": "k", "value": big}),
        );
        // The data namespace: keys and bytes.
        let mut small = state(&[Permission::DataWrite, Permission::DataRead]);
        Arc::get_mut(&mut small.scope)
            .unwrap()
            .policy
            .limits
            .max_data_keys = 2;
        for k in ["a", "b", "b"] {
            host.call(&mut small, "data.set", json!({"key": k, "value": 1}))
                .unwrap();
        }
        let m = quota(&mut small, "data.set", json!({"key": "c", "value": 1}));
        assert!(m.contains("max_data_keys = 2"), "{m}");
        let huge = "d".repeat((ResourceLimits::default().max_data_bytes / 2) as usize);
        host.call(&mut st, "data.set", json!({"key": "x", "value": huge}))
            .unwrap();
        let m = quota(&mut st, "data.set", json!({"key": "y", "value": huge}));
        assert!(m.contains("max_data_bytes"), "{m}");
        // Overwriting the same key stays within.
        host.call(&mut st, "data.set", json!({"key": "x", "value": huge}))
            .unwrap();
        // Paths too deep, writes too large in all, lists too long.
        let deep = vec!["d"; MAX_FS_PATH_DEPTH + 1].join("/");
        quota(&mut st, "fs.read", json!({ "path": deep }));
        let shallow = vec!["d"; MAX_FS_PATH_DEPTH].join("/");
        host.call(&mut st, "fs.read", json!({ "path": shallow }))
            .unwrap();
        let chunk = "w".repeat(8 << 20);
        for _ in 0..(MAX_FS_WRITE_BYTES_PER_EXECUTION / (8 << 20)) {
            host.call(&mut st, "fs.write", json!({"path": "f", "data": chunk}))
                .unwrap();
        }
        quota(&mut st, "fs.write", json!({"path": "f", "data": "w"}));
        quota(&mut st, "fs.list", json!({}));
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
