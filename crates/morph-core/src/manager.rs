//! The ExtensionManager: install extensions into a data directory with the
//! grant the host approved, list them, load each on the backend for its
//! kind, execute by id, unload, and deliver events to listeners.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Value, json};

use crate::artifact::ExtensionArtifact;
use crate::error::{MorphError, Result};
use crate::host::{CapabilityHost, CapabilityHostBuilder, Event, EventBus};
use crate::manifest::{ExtensionManifest, MANIFEST_FILE, ON_EVENT_ACTION, RuntimeKind};
use crate::permission::Permission;
use crate::policy::HostPolicy;
use crate::runtime::{BaseMorphRuntime, Execution, ExecutionContext, LoadedExtension};
use crate::text;

/// Deliveries deep an event may travel (listener emits, which reaches a
/// listener, which emits, ...) before it is dropped with a warning.
pub const MAX_EVENT_HOPS: u32 = 8;

/// Listener executions one originating execution may cause, however wide
/// or deep its events fan out (256); past it, the remaining deliveries are
/// dropped with `quota_exceeded` in the audit log.
pub const MAX_DELIVERIES_PER_EXECUTION: u32 = 256;

/// Events waiting for delivery, across every caller (10,000); past it the
/// oldest is dropped with a warning.
const MAX_PENDING_EVENTS: usize = 10_000;

/// The file holding the approved grant of an installed extension.
const POLICY_FILE: &str = "policy.json";

/// An installed extension, as [`ExtensionManager::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledExtension {
    /// Its id.
    pub extension_id: String,
    /// Its version.
    pub version: String,
    /// Its kind.
    pub runtime: RuntimeKind,
    /// Whether it is loaded now.
    pub loaded: bool,
    /// Where it is installed.
    pub dir: PathBuf,
}

/// Events waiting for delivery, forwarded to an outer bus as well.
struct ListenerQueue {
    pending: Mutex<VecDeque<Event>>,
    forward: Option<Arc<dyn EventBus>>,
}

impl EventBus for ListenerQueue {
    fn publish(&self, event: &Event) -> Result<()> {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.len() >= MAX_PENDING_EVENTS
                && let Some(old) = pending.pop_front()
            {
                tracing::warn!(event = %text::loggable(&old.name), "event dropped: too many events wait for delivery");
            }
            pending.push_back(event.clone());
        }
        match &self.forward {
            Some(bus) => bus.publish(event),
            None => Ok(()),
        }
    }
}

impl ListenerQueue {
    /// The oldest waiting event of the chain started by `origin`.
    fn pop(&self, origin: &str) -> Option<Event> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let at = pending.iter().position(|e| e.origin == origin)?;
        pending.remove(at)
    }

    /// Drops every waiting event of `origin`; how many there were.
    fn drop_origin(&self, origin: &str) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let before = pending.len();
        pending.retain(|e| e.origin != origin);
        before - pending.len()
    }
}

/// Installs, loads and runs extensions; see the module docs.
pub struct ExtensionManager {
    root: PathBuf,
    host: Arc<CapabilityHost>,
    queue: Arc<ListenerQueue>,
    runtimes: BTreeMap<RuntimeKind, Arc<dyn BaseMorphRuntime>>,
    loaded: RwLock<BTreeMap<String, Arc<dyn LoadedExtension>>>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> MorphError {
    MorphError::io_error(format!("{what} {}: {e}", path.display()))
}

impl ExtensionManager {
    /// A manager keeping installed extensions in `root`, serving host calls
    /// with `host` (its event bus is the manager's, forwarding to
    /// `forward_events` when given) and running each kind on `runtimes`.
    pub fn new(
        root: &Path,
        host: CapabilityHostBuilder,
        runtimes: BTreeMap<RuntimeKind, Arc<dyn BaseMorphRuntime>>,
        forward_events: Option<Arc<dyn EventBus>>,
    ) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| io("cannot create", root, e))?;
        let queue = Arc::new(ListenerQueue {
            pending: Mutex::new(VecDeque::new()),
            forward: forward_events,
        });
        Ok(ExtensionManager {
            root: root.to_path_buf(),
            host: Arc::new(host.events(queue.clone()).build()),
            queue,
            runtimes,
            loaded: RwLock::new(BTreeMap::new()),
        })
    }

    /// The capability host every extension of this manager uses.
    pub fn host(&self) -> &Arc<CapabilityHost> {
        &self.host
    }

    /// Installs the extension in `src` (manifest + entry) with the grant
    /// `policy`, replacing (and unloading) an installed one with the same
    /// id. Returns its id.
    pub fn install(&self, src: &Path, policy: &HostPolicy) -> Result<String> {
        let artifact = ExtensionArtifact::from_dir(src)?;
        let manifest = &artifact.manifest;
        if !self.runtimes.contains_key(&manifest.runtime) {
            return Err(MorphError::unsupported(format!(
                "no backend for {} extensions is configured (`{}`)",
                manifest.runtime, manifest.extension_id
            )));
        }
        let id = manifest.extension_id.clone();
        let dir = self.root.join(&id);
        let staging = self.root.join(format!(".{id}.installing"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| io("cannot create", &staging, e))?;
        // The bytes that were checked, not the source files again: a file
        // swapped or linked after the check never reaches the data dir.
        let manifest_text = artifact.manifest_text.as_deref().unwrap_or_default();
        for (file, bytes) in [
            (MANIFEST_FILE, manifest_text.as_bytes()),
            (manifest.entry_file(), artifact.entry.as_slice()),
        ] {
            std::fs::write(staging.join(file), bytes)
                .map_err(|e| io("cannot write", &staging.join(file), e))?;
        }
        let grant = serde_json::to_vec_pretty(policy)
            .map_err(|e| MorphError::host_error(format!("encoding the grant: {e}")))?;
        std::fs::write(staging.join(POLICY_FILE), grant)
            .map_err(|e| io("cannot write", &staging, e))?;
        self.unload(&id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir).map_err(|e| io("cannot install into", &dir, e))?;
        tracing::info!(extension = %id, "installed");
        Ok(id)
    }

    /// Removes an installed extension (unloading it first).
    pub fn uninstall(&self, extension_id: &str) -> Result<()> {
        let dir = self.installed_dir(extension_id)?;
        self.unload(extension_id);
        std::fs::remove_dir_all(&dir).map_err(|e| io("cannot remove", &dir, e))
    }

    /// Every installed extension, sorted by id.
    pub fn list(&self) -> Result<Vec<InstalledExtension>> {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(|e| io("cannot read", &self.root, e))? {
            let dir = entry.map_err(|e| io("cannot read", &self.root, e))?.path();
            if !dir.join(POLICY_FILE).is_file() {
                continue;
            }
            match ExtensionManifest::from_dir(&dir) {
                Ok(m) => out.push(InstalledExtension {
                    loaded: loaded.contains_key(&m.extension_id),
                    extension_id: m.extension_id,
                    version: m.version,
                    runtime: m.runtime,
                    dir,
                }),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %text::loggable(&e), "skipping a broken installation")
                }
            }
        }
        out.sort_by(|a, b| a.extension_id.cmp(&b.extension_id));
        Ok(out)
    }

    fn installed_dir(&self, extension_id: &str) -> Result<PathBuf> {
        crate::manifest::validate_id(extension_id)
            .map_err(|e| MorphError::not_found(format!("extension id {e}")))?;
        let dir = self.root.join(extension_id);
        if !dir.join(POLICY_FILE).is_file() {
            return Err(MorphError::not_found(format!(
                "extension `{extension_id}` is not installed"
            )));
        }
        Ok(dir)
    }

    /// The loaded extension `extension_id`, loading it on first use.
    pub async fn load(&self, extension_id: &str) -> Result<Arc<dyn LoadedExtension>> {
        if let Some(ext) = self
            .loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(extension_id)
        {
            return Ok(ext.clone());
        }
        let dir = self.installed_dir(extension_id)?;
        let artifact = ExtensionArtifact::from_dir(&dir)?;
        let policy_path = dir.join(POLICY_FILE);
        let text = std::fs::read(&policy_path).map_err(|e| io("cannot read", &policy_path, e))?;
        let policy: HostPolicy = serde_json::from_slice(&text)
            .map_err(|e| MorphError::invalid_manifest(format!("{}: {e}", policy_path.display())))?;
        let runtime = self
            .runtimes
            .get(&artifact.manifest.runtime)
            .ok_or_else(|| {
                MorphError::unsupported(format!(
                    "no backend for {} extensions is configured",
                    artifact.manifest.runtime
                ))
            })?;
        let ext: Arc<dyn LoadedExtension> =
            Arc::from(runtime.load(&artifact, self.host.clone(), &policy).await?);
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        Ok(loaded
            .entry(extension_id.to_string())
            .or_insert(ext)
            .clone())
    }

    /// Forgets the loaded instance (the installation stays).
    pub fn unload(&self, extension_id: &str) -> bool {
        self.loaded
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(extension_id)
            .is_some()
    }

    /// Executes `action` of `extension_id`, then delivers the events it
    /// emitted (and those its listeners emit, up to [`MAX_EVENT_HOPS`] deep
    /// and [`MAX_DELIVERIES_PER_EXECUTION`] listener executions in all):
    /// only this execution's events, never another caller's. A listener's
    /// failure is logged and audited; it never changes this result or
    /// another listener's delivery.
    pub async fn execute(
        &self,
        extension_id: &str,
        action: &str,
        params: Value,
        ctx: &ExecutionContext,
    ) -> Result<Execution> {
        let ext = self.load(extension_id).await?;
        let mut ctx = ctx.clone();
        let origin = ctx
            .request_id
            .get_or_insert_with(crate::engine::new_request_id)
            .clone();
        ctx.event_origin = Some(origin.clone());
        let execution = ext.execute_with_report(action, params, &ctx).await;
        self.deliver_events(&origin).await;
        Ok(execution)
    }

    async fn deliver_events(&self, origin: &str) {
        // Who listens to what is read from disk once per batch, not per event.
        let mut listeners: Option<BTreeMap<String, Vec<String>>> = None;
        let mut deliveries = 0u32;
        while let Some(event) = self.queue.pop(origin) {
            if event.hops >= MAX_EVENT_HOPS {
                tracing::warn!(event = %text::loggable(&event.name), hops = event.hops, "event dropped: hop limit reached");
                continue;
            }
            if listeners.is_none() {
                listeners = match self.listener_index() {
                    Ok(index) => Some(index),
                    Err(e) => {
                        tracing::warn!(error = %text::loggable(&e), "cannot read the installed listeners; events dropped");
                        return;
                    }
                };
            }
            let targets = listeners
                .as_ref()
                .and_then(|index| index.get(&event.name))
                .cloned()
                .unwrap_or_default();
            for listener in targets {
                if deliveries >= MAX_DELIVERIES_PER_EXECUTION {
                    let left = self.queue.drop_origin(origin) + 1;
                    let e = MorphError::quota_exceeded(format!(
                        "event deliveries of one execution exceed {MAX_DELIVERIES_PER_EXECUTION}: `{}` and {left} waiting event(s) were not delivered",
                        event.name
                    ));
                    tracing::warn!(origin = %text::loggable(&origin), event = %text::loggable(&event.name), "{}", text::loggable(&e));
                    self.host.audit_refusal(
                        &event.source,
                        ON_EVENT_ACTION,
                        origin,
                        "events.deliver",
                        &e,
                    );
                    return;
                }
                deliveries += 1;
                let payload = match &event.payload {
                    Value::Object(_) => event.payload.clone(),
                    other => json!({ "value": other }),
                };
                let params =
                    json!({"event": event.name, "source": event.source, "payload": payload});
                let ctx = ExecutionContext {
                    request_id: Some(format!("{origin}-{deliveries}-{listener}")),
                    event_hops: event.hops + 1,
                    event_origin: Some(origin.to_string()),
                    ..ExecutionContext::default()
                };
                let result = match self.load(&listener).await {
                    Ok(ext) => ext.execute(ON_EVENT_ACTION, params, &ctx).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::warn!(listener = %text::loggable(&listener), event = %text::loggable(&event.name), error = %text::loggable(&e), "listener failed");
                }
            }
        }
    }

    /// Event name -> installed extensions that list it under `listens`
    /// and were granted `event:listen`, sorted by id.
    fn listener_index(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut index: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for installed in self.list()? {
            let manifest = ExtensionManifest::from_dir(&installed.dir)?;
            if manifest.listens.is_empty() {
                continue;
            }
            let text = std::fs::read(installed.dir.join(POLICY_FILE))
                .map_err(|e| io("cannot read", &installed.dir, e))?;
            let policy: HostPolicy = serde_json::from_slice(&text)
                .map_err(|e| MorphError::invalid_manifest(e.to_string()))?;
            if !policy
                .resolve(&manifest)
                .permissions
                .contains(Permission::EventListen)
            {
                continue;
            }
            for event in manifest.listens {
                index
                    .entry(event)
                    .or_default()
                    .push(installed.extension_id.clone());
            }
        }
        Ok(index)
    }
}
