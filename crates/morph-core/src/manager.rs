//! The ExtensionManager: install extensions into a data directory with the
//! grant the host approved, list them, load each on the backend for its
//! kind, execute by id, unload, and deliver events to listeners.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

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

/// Bytes of events waiting for delivery, across every caller (64 MiB, each
/// event counted as its names, ids and JSON payload); past it the oldest
/// are dropped with a warning.
pub const MAX_PENDING_EVENT_BYTES: usize = 64 << 20;

/// What `event` takes in the queue, about.
fn event_size(event: &Event) -> usize {
    event.name.len()
        + event.source.len()
        + event.request_id.len()
        + event.origin.len()
        + crate::host::json_size(&event.payload)
        + 64
}

/// The waiting events and their total size.
#[derive(Default)]
struct Pending {
    events: VecDeque<(Event, usize)>,
    bytes: usize,
}

impl Pending {
    fn remove(&mut self, at: usize) -> Option<Event> {
        let (event, size) = self.events.remove(at)?;
        self.bytes -= size;
        Some(event)
    }
}

/// The file holding the approved grant of an installed extension.
const POLICY_FILE: &str = "policy.json";

/// The file holding the installation record: the content digest of the
/// files installed ([`ExtensionArtifact::digest`]), checked at every load.
const INSTALLATION_FILE: &str = "installation.json";

/// What an installation records besides its grant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct InstallationRecord {
    /// [`ExtensionArtifact::digest`] of the files as installed.
    sha256: String,
}

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
    pending: Mutex<Pending>,
    forward: Option<Arc<dyn EventBus>>,
}

impl EventBus for ListenerQueue {
    fn publish(&self, event: &Event) -> Result<()> {
        {
            let size = event_size(event);
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            while !pending.events.is_empty()
                && (pending.events.len() >= MAX_PENDING_EVENTS
                    || pending.bytes + size > MAX_PENDING_EVENT_BYTES)
            {
                if let Some(old) = pending.remove(0) {
                    tracing::warn!(event = %text::loggable(&old.name), "event dropped: too many events wait for delivery");
                }
            }
            pending.bytes += size;
            pending.events.push_back((event.clone(), size));
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
        let at = pending
            .events
            .iter()
            .position(|(e, _)| e.origin == origin)?;
        pending.remove(at)
    }

    /// Drops every waiting event of `origin`; how many there were.
    fn drop_origin(&self, origin: &str) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let before = pending.events.len();
        pending.events.retain(|(e, _)| e.origin != origin);
        pending.bytes = pending.events.iter().map(|(_, size)| size).sum();
        before - pending.events.len()
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

/// Checks that the files installed in `dir` are the ones installed: their
/// digest must be the one the installation recorded. A mismatch (files
/// edited or swapped after the install) or a missing record is
/// `signature_invalid`: the integrity check of the installation does not
/// verify, whatever the files now say.
fn verify_installation(dir: &Path, extension_id: &str, artifact: &ExtensionArtifact) -> Result<()> {
    let path = dir.join(INSTALLATION_FILE);
    let reinstall = "reinstall it (`morph install --replace`) if the change is wanted";
    let text = std::fs::read(&path).map_err(|e| {
        MorphError::signature_invalid(format!(
            "installed extension `{extension_id}` has no readable installation record {}: {e}; {reinstall}",
            path.display()
        ))
    })?;
    let record: InstallationRecord = serde_json::from_slice(&text).map_err(|e| {
        MorphError::signature_invalid(format!(
            "installation record {} of `{extension_id}` is not valid: {e}; {reinstall}",
            path.display()
        ))
    })?;
    let actual = artifact.digest();
    if actual != record.sha256 {
        return Err(MorphError::signature_invalid(format!(
            "the files of installed extension `{extension_id}` in {} changed since it was installed (sha256 {actual}, installed {}); {reinstall}",
            dir.display(),
            record.sha256
        )));
    }
    Ok(())
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
            pending: Mutex::new(Pending::default()),
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
    /// `policy`, recording its content digest. An extension with the same
    /// id already installed is refused with `permission_denied`: its id is
    /// the namespace of its secrets, data, files and events, which the new
    /// one would take over (see [`install_replacing`](Self::install_replacing)).
    /// Returns its id.
    pub fn install(&self, src: &Path, policy: &HostPolicy) -> Result<String> {
        self.install_with(src, policy, false)
    }

    /// Like [`install`](Self::install), but replaces (and unloads) an
    /// installed extension with the same id, which hands the new files that
    /// extension's secrets, data, files and events: for an upgrade the
    /// host approved.
    pub fn install_replacing(&self, src: &Path, policy: &HostPolicy) -> Result<String> {
        self.install_with(src, policy, true)
    }

    fn install_with(&self, src: &Path, policy: &HostPolicy, replace: bool) -> Result<String> {
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
        if !replace && dir.join(POLICY_FILE).is_file() {
            let installed = ExtensionManifest::from_dir(&dir)
                .map(|m| format!(" (version {})", m.version))
                .unwrap_or_default();
            return Err(MorphError::permission_denied(format!(
                "extension `{id}` is already installed{installed}; installing over it would hand its secrets, data and files to the new files: replace it explicitly (`morph install --replace`, ExtensionManager::install_replacing) or uninstall it first"
            )));
        }
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
        let record = serde_json::to_vec_pretty(&InstallationRecord {
            sha256: artifact.digest(),
        })
        .map_err(|e| MorphError::host_error(format!("encoding the installation record: {e}")))?;
        std::fs::write(staging.join(INSTALLATION_FILE), record)
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
        verify_installation(&dir, extension_id, &artifact)?;
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
    /// and [`MAX_DELIVERIES_PER_EXECUTION`] listener executions in all,
    /// all of them within one time budget: the `max_execution_ms` of
    /// `extension_id`, counted from the end of its execution):
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
        let request_id = ctx
            .request_id
            .get_or_insert_with(crate::engine::new_request_id)
            .clone();
        // The chain is named by a token of the host's, never by the
        // request id: a caller choosing another's request id gets only
        // its own events.
        let origin = crate::host::new_chain_token();
        ctx.event_origin = Some(origin.clone());
        ctx.event_hops = 0;
        ctx.time_budget = None;
        let execution = ext.execute_with_report(action, params, &ctx).await;
        let budget = Duration::from_millis(ext.policy().limits.max_execution_ms);
        self.deliver_events(&origin, &request_id, extension_id, budget)
            .await;
        Ok(execution)
    }

    /// Delivers the events of chain `origin` (started by `extension_id`'s
    /// execution `request_id`): every listener execution of the chain
    /// together gets `budget` of wall-clock time, each at most what is left
    /// of it; past it the rest are dropped and audited as `timeout`.
    async fn deliver_events(
        &self,
        origin: &str,
        request_id: &str,
        extension_id: &str,
        budget: Duration,
    ) {
        let chain_end = Instant::now() + budget;
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
                let refusal = if deliveries >= MAX_DELIVERIES_PER_EXECUTION {
                    let left = self.queue.drop_origin(origin) + 1;
                    Some(MorphError::quota_exceeded(format!(
                        "event deliveries of one execution exceed {MAX_DELIVERIES_PER_EXECUTION}: `{}` and {left} waiting event(s) were not delivered",
                        event.name
                    )))
                } else if chain_end <= Instant::now() {
                    let waiting = self.queue.drop_origin(origin) + 1;
                    Some(MorphError::timeout(format!(
                        "event deliveries of one execution exceed its time budget of {} ms (the max_execution_ms of `{extension_id}`): `{}` and {waiting} waiting event(s) were not delivered",
                        budget.as_millis(),
                        event.name
                    )))
                } else {
                    None
                };
                if let Some(e) = refusal {
                    tracing::warn!(request_id = %text::loggable(&request_id), event = %text::loggable(&event.name), "{}", text::loggable(&e));
                    self.host.audit_refusal(
                        &event.source,
                        ON_EVENT_ACTION,
                        request_id,
                        "events.deliver",
                        &e,
                    );
                    return;
                }
                let left = chain_end.saturating_duration_since(Instant::now());
                deliveries += 1;
                let payload = match &event.payload {
                    Value::Object(_) => event.payload.clone(),
                    other => json!({ "value": other }),
                };
                let params =
                    json!({"event": event.name, "source": event.source, "payload": payload});
                let ctx = ExecutionContext {
                    request_id: Some(format!("{request_id}-{deliveries}-{listener}")),
                    event_hops: event.hops + 1,
                    event_origin: Some(origin.to_string()),
                    time_budget: Some(left),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::runtime::RuntimeInfo;

    /// A backend that refuses every load after the manager's own checks
    /// passed (the tests here are about those checks).
    struct RefusingRuntime;

    #[async_trait::async_trait]
    impl BaseMorphRuntime for RefusingRuntime {
        fn info(&self) -> RuntimeInfo {
            use crate::limits::{Enforcement, EngineLimit};
            RuntimeInfo::wasm(
                "refusing",
                "none",
                "0",
                "none",
                EngineLimit::ALL.map(|l| (l, Enforcement::Native)),
            )
        }
        async fn load(
            &self,
            _: &ExtensionArtifact,
            _: Arc<CapabilityHost>,
            _: &HostPolicy,
        ) -> Result<Box<dyn LoadedExtension>> {
            Err(MorphError::unsupported("reached the backend"))
        }
    }

    fn manager(root: &Path) -> ExtensionManager {
        let runtime: Arc<dyn BaseMorphRuntime> = Arc::new(RefusingRuntime);
        ExtensionManager::new(
            root,
            CapabilityHost::builder(),
            BTreeMap::from([(RuntimeKind::Wasm, runtime)]),
            None,
        )
        .expect("manager")
    }

    fn extension(id: &str, entry: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            format!(
                "extension_id: {id}\nversion: 1.0.0\nschema_version: '1.0'\nmetadata: {{name: X}}\nruntime: wasm\nentry: e.wat\nactions: [{{name: run}}]\n"
            ),
        )
        .expect("manifest");
        std::fs::write(dir.path().join("e.wat"), entry).expect("entry");
        dir
    }

    #[test]
    fn waiting_events_are_bounded_by_bytes() {
        let queue = ListenerQueue {
            pending: Mutex::new(Pending::default()),
            forward: None,
        };
        let payload = Value::String("x".repeat(1 << 20));
        for n in 0..100 {
            queue
                .publish(&Event {
                    source: "a".into(),
                    name: "a/e".into(),
                    payload: payload.clone(),
                    request_id: format!("r{n}"),
                    hops: 0,
                    origin: "o".into(),
                })
                .expect("publish");
        }
        let pending = queue.pending.lock().unwrap();
        assert!(
            pending.bytes <= MAX_PENDING_EVENT_BYTES,
            "{} bytes wait",
            pending.bytes
        );
        assert!(pending.events.len() < 100, "the oldest were dropped");
        assert_eq!(
            pending.events.back().map(|(e, _)| e.request_id.as_str()),
            Some("r99"),
            "the newest stays"
        );
    }

    #[test]
    fn installing_over_an_installed_id_needs_replacing() {
        let root = tempfile::tempdir().expect("root");
        let m = manager(root.path());
        let victim = extension("x.victim", "(module)");
        let hostile = extension("x.victim", "(module) ;; hostile");
        m.install(victim.path(), &HostPolicy::allow_requested())
            .expect("first install");
        let e = m
            .install(hostile.path(), &HostPolicy::allow_requested())
            .expect_err("an install over another extension's id");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(
            e.message().contains("already installed") && e.message().contains("--replace"),
            "{e}"
        );
        let installed = std::fs::read_to_string(root.path().join("x.victim/e.wat")).unwrap();
        assert_eq!(installed, "(module)", "the installed files are untouched");
        m.install_replacing(hostile.path(), &HostPolicy::allow_requested())
            .expect("an explicit replace");
        let installed = std::fs::read_to_string(root.path().join("x.victim/e.wat")).unwrap();
        assert_eq!(installed, "(module) ;; hostile");
    }

    #[tokio::test]
    async fn installed_files_that_changed_are_refused_at_load() {
        let root = tempfile::tempdir().expect("root");
        let m = manager(root.path());
        let src = extension("x.checked", "(module)");
        m.install(src.path(), &HostPolicy::allow_requested())
            .expect("install");
        // Untouched: the digest matches and the load reaches the backend.
        let e = m.load("x.checked").await.err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.message().contains("reached the backend"), "{e}");
        // The entry swapped after the install.
        let entry = root.path().join("x.checked/e.wat");
        std::fs::write(&entry, "(module) ;; swapped").expect("tamper");
        let e = m.load("x.checked").await.err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::SignatureInvalid, "{e}");
        assert!(
            e.message().contains("changed since it was installed"),
            "{e}"
        );
        // No record at all (an installation from before records existed,
        // or one deleted) is refused the same way.
        std::fs::write(&entry, "(module)").expect("restore");
        std::fs::remove_file(root.path().join("x.checked").join(INSTALLATION_FILE))
            .expect("remove record");
        let e = m.load("x.checked").await.err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::SignatureInvalid, "{e}");
        assert!(e.message().contains("installation record"), "{e}");
    }
}
