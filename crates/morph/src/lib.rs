//! # morph
//!
//! Run untrusted extensions (WebAssembly, JavaScript, Python) behind one
//! runtime trait and one capability host. Every extension describes itself
//! ([`Extension::describe`]) and executes actions ([`Extension::call`]),
//! sandboxed: it reaches the outside world only through the host
//! capabilities its [`HostPolicy`] grants, under resource limits.
//!
//! ```no_run
//! fn main() -> morph::Result<()> {
//!     morph::main_if_worker(); // JavaScript and Python workers start here
//!     let morph = morph::Morph::new()?;
//!     let hello = morph.load_blocking("examples/hello", &morph::HostPolicy::allow_requested())?;
//!     let out: serde_json::Value = hello.call("hello", serde_json::json!({}))?;
//!     println!("{out}");
//!     Ok(())
//! }
//! ```
//!
//! The policy is the host's decision: [`HostPolicy::default`] grants
//! nothing, [`HostPolicy::allow_requested`] grants what the (untrusted)
//! manifest asks for, capped by the default ceilings, and the builder
//! methods ([`HostPolicy::grant`], [`HostPolicy::hosts`],
//! [`HostPolicy::ceilings`]) grant exactly what the host chooses.
//!
//! Backends are Cargo features (`wasmtime`, the default; `wasmtime-pulley`,
//! `wasmer`, `wasmi`, `wasm3`, `js`, `python`; `js-worker` and
//! `python-worker` are the host side of the script backends alone, for a
//! host whose workers are another program, see
//! [`MorphBuilder::worker_program`]) and [`Backend`] variants;
//! providers too (`persistent` for all of them over a data directory, or
//! `http`, `redb`, `fs`, `vault-file`, `audit-log`, `module-cache`). With
//! `default-features = false, features = ["wasmi"]` the library is pure
//! Rust: no C compiler, no network client, no database.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod backends;
mod extension;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use backends::{Backend, BackendOptions};
pub use extension::Extension;
pub use morph_core::{
    ActionSpec, AiAccess, BaseMorphRuntime, CapabilityHost, CapabilityHostBuilder, Describe,
    DescribedAction, EffectivePolicy, Enforcement, EngineLimit, ErrorKind, Execution,
    ExecutionContext, ExecutionReport, Executor, ExecutorOptions, ExtensionArtifact,
    ExtensionManager, ExtensionManifest, HostGrant, HostPolicy, InstalledExtension,
    LimitEnforcement, LoadedExtension, MANIFEST_FILE, MAX_ENTRY_BYTES, MAX_EVENT_HOPS, Metadata,
    MorphError, ParamSpec, ParamType, Permission, PermissionSet, ResourceLimits, Result,
    RuntimeInfo, RuntimeKind, sha256, validate_id,
};
#[cfg(any(
    feature = "wasmtime",
    feature = "wasmer",
    feature = "wasmi",
    feature = "wasm3"
))]
pub use morph_wasm::CompiledModuleCache;

/// Showing text an extension chose (messages, manifest values, audit
/// fields) on a terminal: escaped and bounded.
pub mod text {
    pub use morph_core::text::{
        bounded_untrusted, escape_controls, escape_untrusted, json_for_terminal, loggable,
    };
}

/// Capability providers: the traits a host implements to swap one, the
/// in-memory ones, and the real ones compiled in through features.
pub mod host {
    pub use morph_core::host::{
        AuditRecord, AuditSink, DataStore, Event, EventBus, FsProvider, HttpLimits, HttpProvider,
        HttpRequest, HttpResponse, MemoryAuditSink, MemoryDataStore, MemoryVault,
        RecordingEventBus, VaultChain, VaultProvider, validate_key,
    };
    pub use morph_host::EnvVault;
    #[cfg(feature = "audit-log")]
    pub use morph_host::JsonLinesAudit;
    #[cfg(feature = "redb")]
    pub use morph_host::RedbDataStore;
    #[cfg(feature = "fs")]
    pub use morph_host::SandboxFs;
    #[cfg(feature = "http")]
    pub use morph_host::UreqHttp;
    #[cfg(feature = "module-cache")]
    pub use morph_host::{CACHE_KEY_FILE, ModuleCache};
    #[cfg(feature = "vault-file")]
    pub use morph_host::{FileVault, VAULT_KEY_ENV};
    #[cfg(feature = "persistent")]
    pub use morph_host::{data_dir, persistent_host_builder, persistent_module_cache};
}

/// Call first thing in `main` of any program that loads JavaScript or
/// Python extensions: when this process was started as one of Morph's
/// worker processes, it serves its parent with the script engines compiled
/// into this build and exits; otherwise it returns at once, touching
/// nothing. (Workers are the same program re-executed.)
pub fn main_if_worker() {
    #[cfg(all(target_os = "linux", any(feature = "js", feature = "python")))]
    morph_worker::main_if_worker(&backends::script_engines());
}

/// The top-level handle: the capability host and the backend for each
/// extension kind.
pub struct Morph {
    host_builder: CapabilityHostBuilder,
    host: Arc<CapabilityHost>,
    runtimes: BTreeMap<RuntimeKind, Arc<dyn BaseMorphRuntime>>,
}

/// Builds a [`Morph`].
#[derive(Default)]
pub struct MorphBuilder {
    backends: Vec<Backend>,
    host: CapabilityHostBuilder,
    options: BackendOptions,
}

impl MorphBuilder {
    /// Uses `backend` for the extension kind it runs (the first one given
    /// for a kind wins). Default: the first compiled backend for each kind
    /// ([`Backend::default_for`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backends.push(backend);
        self
    }

    /// Serves host calls with the providers of `host`. Default: every
    /// provider in memory (and no file or HTTP provider).
    pub fn host(mut self, host: CapabilityHostBuilder) -> Self {
        self.host = host;
        self
    }

    /// Keeps files, data, the audit log and compiled modules in `dir` (see
    /// [`host::persistent_host_builder`]), with secrets from the
    /// environment (`MORPH_SECRET_<EXTENSION>__<KEY>`) unless `host` or a
    /// later call set a vault.
    #[cfg(feature = "persistent")]
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        self.host = host::persistent_host_builder(dir, Arc::new(host::EnvVault))?;
        self.options.module_cache = Some(host::persistent_module_cache(dir)?);
        Ok(self)
    }

    /// Keeps compiled modules in `cache` (the JIT backends use it).
    /// Default: none, every load compiles.
    #[cfg(any(
        feature = "wasmtime",
        feature = "wasmer",
        feature = "wasmi",
        feature = "wasm3"
    ))]
    pub fn module_cache(mut self, cache: Arc<dyn CompiledModuleCache>) -> Self {
        self.options.module_cache = Some(cache);
        self
    }

    /// Starts the `js` and `python` backends' worker processes from
    /// `program` (one whose `main` calls `main_if_worker` with the engine,
    /// such as the `morph` CLI or `morph-worker`). Default: this program.
    pub fn worker_program(mut self, program: impl Into<std::path::PathBuf>) -> Self {
        self.options.worker_program = Some(program.into());
        self
    }

    /// Runs executions on `executor`. Default: Morph's shared pool of
    /// execution threads (16 MiB stacks, a watchdog backstop);
    /// [`Executor::inline`] runs them on the calling thread instead.
    pub fn executor(mut self, executor: Executor) -> Self {
        self.options.executor = Some(executor);
        self
    }

    /// Creates the backends.
    pub fn build(self) -> Result<Morph> {
        let chosen = if self.backends.is_empty() {
            Backend::compiled()
        } else {
            self.backends
        };
        let mut runtimes = BTreeMap::new();
        for backend in chosen {
            if runtimes.contains_key(&backend.kind()) {
                continue;
            }
            let runtime = backend.create_with(&self.options)?;
            runtimes.insert(backend.kind(), runtime);
        }
        Ok(Morph {
            host: Arc::new(self.host.clone().build()),
            host_builder: self.host,
            runtimes,
        })
    }
}

impl Morph {
    /// Every compiled backend, providers in memory.
    pub fn new() -> Result<Morph> {
        Morph::builder().build()
    }

    /// A builder.
    pub fn builder() -> MorphBuilder {
        MorphBuilder::default()
    }

    /// The capability host every extension loaded here uses.
    pub fn host(&self) -> &Arc<CapabilityHost> {
        &self.host
    }

    /// The backend that runs `kind`, if any.
    pub fn runtime(&self, kind: RuntimeKind) -> Option<&Arc<dyn BaseMorphRuntime>> {
        self.runtimes.get(&kind)
    }

    fn runtime_for(&self, kind: RuntimeKind) -> Result<&Arc<dyn BaseMorphRuntime>> {
        self.runtime(kind).ok_or_else(|| {
            MorphError::unsupported(format!(
                "no backend for {kind} extensions is in use (compiled: {})",
                Backend::compiled()
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Loads the extension in directory `dir` under `policy`.
    pub async fn load(&self, dir: impl AsRef<Path>, policy: &HostPolicy) -> Result<Extension> {
        let artifact = ExtensionArtifact::from_dir(dir)?;
        self.load_artifact(&artifact, policy).await
    }

    /// Loads `artifact` under `policy` on the backend for its kind.
    pub async fn load_artifact(
        &self,
        artifact: &ExtensionArtifact,
        policy: &HostPolicy,
    ) -> Result<Extension> {
        let runtime = self.runtime_for(artifact.manifest.runtime)?;
        let loaded = runtime.load(artifact, self.host.clone(), policy).await?;
        Ok(Extension::new(Arc::from(loaded)))
    }

    /// [`load`](Self::load) for callers without an async runtime: blocks
    /// the calling thread (not for a thread of an async runtime).
    pub fn load_blocking(&self, dir: impl AsRef<Path>, policy: &HostPolicy) -> Result<Extension> {
        pollster::block_on(self.load(dir, policy))
    }

    /// An [`ExtensionManager`] installing into `root`, with this handle's
    /// backends and providers (its event bus delivers to installed
    /// listeners).
    pub fn manager(&self, root: impl AsRef<Path>) -> Result<ExtensionManager> {
        ExtensionManager::new(
            root.as_ref(),
            self.host_builder.clone(),
            self.runtimes.clone(),
            None,
        )
    }
}
