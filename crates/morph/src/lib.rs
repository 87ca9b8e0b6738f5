//! # morph
//!
//! Run untrusted extensions (WebAssembly, JavaScript, Python) behind one
//! runtime trait and one capability host. This facade re-exports
//! [`morph_core`] and the backends compiled in through Cargo features
//! (`wasmtime`, the default; `js` and `python` for scripts), and offers
//! [`Morph`], a small top-level handle. A program that runs JavaScript or
//! Python extensions calls [`main_if_worker`] first in `main`.
//!
//! ```no_run
//! # async fn demo() -> morph::Result<()> {
//! use morph::{ExecutionContext, HostPolicy, Morph};
//!
//! let morph = Morph::builder().build()?;
//! let ext = morph.load_dir("examples/echo".as_ref(), None).await?;
//! let out = ext
//!     .execute("echo", serde_json::json!({"text": "hi"}), &ExecutionContext::default())
//!     .await?;
//! println!("{out}");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod backends;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use morph_core::*;

/// Morph's data directory: `$MORPH_DATA_DIR`, else `$XDG_DATA_HOME/morph`,
/// else `~/.local/share/morph`, else `./.morph`. See [`persistent_host`]
/// for what it holds.
pub fn data_dir() -> std::path::PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    env("MORPH_DATA_DIR")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("morph")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/morph")))
        .unwrap_or_else(|| std::path::PathBuf::from(".morph"))
}

/// A capability host keeping its state in `data_dir`: sandboxed files in
/// `files/<extension_id>/`, the key/value store in `data.redb`, the audit
/// log in `audit.jsonl` (JSON lines); HTTP through [`host::UreqHttp`] to
/// each extension's allowed hosts; secrets come from `vault`.
pub fn persistent_host(
    data_dir: &Path,
    vault: Arc<dyn host::VaultProvider>,
) -> Result<CapabilityHost> {
    Ok(persistent_host_builder(data_dir, vault)?.build())
}

/// The builder behind [`persistent_host`], for callers (such as an
/// [`ExtensionManager`]) that complete it themselves.
pub fn persistent_host_builder(
    data_dir: &Path,
    vault: Arc<dyn host::VaultProvider>,
) -> Result<CapabilityHostBuilder> {
    let data = host::RedbDataStore::open(&data_dir.join("data.redb"))?;
    let audit = host::JsonLinesAudit::open(&data_dir.join("audit.jsonl"))?;
    Ok(CapabilityHost::builder()
        .vault(vault)
        .fs(Arc::new(host::SandboxFs::new(data_dir.join("files"))))
        .http(Arc::new(host::UreqHttp::default()))
        .data(Arc::new(data))
        .audit(Arc::new(audit)))
}

/// Call first thing in `main` of any program that loads JavaScript or
/// Python extensions: when this process was started as one of Morph's
/// worker processes, it serves its parent with the script engines compiled
/// into this build and exits; otherwise it returns at once. (Workers are
/// the same program re-executed; see [`morph_core::worker`].)
pub fn main_if_worker() {
    #[cfg(target_os = "linux")]
    morph_core::worker::main_if_worker(&backends::script_engines());
}

/// The module cache in `data_dir` (`cache/`, with its MAC key).
pub fn persistent_module_cache(data_dir: &Path) -> Result<Arc<ModuleCache>> {
    Ok(Arc::new(ModuleCache::open(&data_dir.join("cache"))?))
}

/// The top-level handle: a capability host and the backends in use.
pub struct Morph {
    host: Arc<CapabilityHost>,
    runtimes: BTreeMap<RuntimeKind, Arc<dyn BaseMorphRuntime>>,
}

/// Builds a [`Morph`].
#[derive(Default)]
pub struct MorphBuilder {
    host: Option<Arc<CapabilityHost>>,
    backends: Vec<String>,
    cache: Option<Arc<ModuleCache>>,
}

impl MorphBuilder {
    /// Uses backend `name` for the extension kinds it runs (see
    /// [`backends::compiled`]). Default: the first compiled backend for
    /// each kind.
    pub fn backend(mut self, name: &str) -> Self {
        self.backends.push(name.to_string());
        self
    }

    /// Serves host calls with `host`. Default: [`CapabilityHost::in_memory`]
    /// (no file provider); see [`persistent_host`] for one on disk.
    pub fn host(mut self, host: Arc<CapabilityHost>) -> Self {
        self.host = Some(host);
        self
    }

    /// Keeps compiled modules in `cache` (see [`ModuleCache`]; the JIT
    /// backends use it). Default: none, every load compiles.
    pub fn module_cache(mut self, cache: Arc<ModuleCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Creates the backends.
    pub fn build(self) -> Result<Morph> {
        let names: Vec<String> = if self.backends.is_empty() {
            backends::compiled().iter().map(|s| s.to_string()).collect()
        } else {
            self.backends
        };
        let mut runtimes = BTreeMap::new();
        for name in names {
            let runtime = backends::create_with_cache(&name, self.cache.clone())?;
            for kind in runtime.info().kinds {
                runtimes.entry(kind).or_insert_with(|| runtime.clone());
            }
        }
        Ok(Morph {
            host: self
                .host
                .unwrap_or_else(|| Arc::new(CapabilityHost::in_memory())),
            runtimes,
        })
    }
}

impl Morph {
    /// A builder.
    pub fn builder() -> MorphBuilder {
        MorphBuilder::default()
    }

    /// The capability host.
    pub fn host(&self) -> &Arc<CapabilityHost> {
        &self.host
    }

    /// The backend that runs `kind`, if any.
    pub fn runtime_for(&self, kind: RuntimeKind) -> Option<&Arc<dyn BaseMorphRuntime>> {
        self.runtimes.get(&kind)
    }

    /// Loads the extension in `dir` under `policy` (default: grant what
    /// the manifest requests, capped by the default ceilings).
    pub async fn load_dir(
        &self,
        dir: &Path,
        policy: Option<HostPolicy>,
    ) -> Result<Box<dyn LoadedExtension>> {
        let artifact = ExtensionArtifact::from_dir(dir)?;
        self.load(&artifact, policy).await
    }

    /// Loads `artifact` under `policy` on the backend for its kind.
    pub async fn load(
        &self,
        artifact: &ExtensionArtifact,
        policy: Option<HostPolicy>,
    ) -> Result<Box<dyn LoadedExtension>> {
        let kind = artifact.manifest.runtime;
        let runtime = self.runtime_for(kind).ok_or_else(|| {
            MorphError::unsupported(format!(
                "no compiled backend runs {kind} extensions (compiled: {})",
                backends::compiled().join(", ")
            ))
        })?;
        let policy = policy.unwrap_or_else(|| HostPolicy::grant_requested(&artifact.manifest));
        runtime.load(artifact, self.host.clone(), &policy).await
    }
}
