//! # morph-core
//!
//! The contract of Morph, with no engine, network or database: the runtime
//! traits ([`BaseMorphRuntime`], [`LoadedExtension`]), the
//! [`ExtensionManifest`], [`Permission`]s and [`HostPolicy`],
//! [`ResourceLimits`], the [`CapabilityHost`] every host call goes through
//! (with the provider traits and in-memory providers), the guest ABI
//! envelopes ([`abi`]), the execution threads ([`Executor`]) and
//! [`MorphError`] with its stable kinds.
//!
//! This crate is for backend authors and for the `morph` library; a host
//! application uses `morph`, which re-exports the host-facing part.
//!
//! A backend crate implements the small synchronous [`Backend`] trait;
//! [`EngineRuntime`] turns it into a [`BaseMorphRuntime`] and applies every
//! shared rule, so all backends behave the same. WebAssembly backends
//! implement `morph_wasm::WasmEngine` instead, which adapts to [`Backend`];
//! script languages implement [`ScriptEngine`].
//!
//! ```no_run
//! # async fn demo(backend: impl morph_core::Backend) -> morph_core::Result<()> {
//! use std::sync::Arc;
//! use morph_core::{BaseMorphRuntime, CapabilityHost, EngineRuntime, ExecutionContext,
//!                  ExtensionArtifact, HostPolicy};
//!
//! let runtime = EngineRuntime::new(backend)?;
//! let artifact = ExtensionArtifact::from_dir("my-extension")?;
//! let policy = HostPolicy::allow_requested();
//! let ext = runtime.load(&artifact, Arc::new(CapabilityHost::in_memory()), &policy).await?;
//! let out = ext.execute("echo", serde_json::json!({"text": "hi"}), &ExecutionContext::default()).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod abi;
mod artifact;
mod deadline;
mod describe;
mod engine;
mod error;
mod executor;
mod extension_file;
pub mod host;
mod limits;
mod manager;
mod manifest;
mod permission;
mod policy;
mod runtime;
pub mod script;
mod session;
pub mod text;

pub use artifact::{ExtensionArtifact, sha256};
pub use deadline::{CancelOnDrop, Deadline};
pub use describe::{Describe, DescribedAction, json_type, validate_params};
pub use engine::{Backend, EngineRuntime, EntryCode, GuestCall, GuestRun, PreparedExtension};
pub use error::{ErrorKind, MorphError, Result};
pub use executor::{Executor, ExecutorOptions};
pub use extension_file::{
    ExtensionFileError, MAX_ENTRY_BYTES, MAX_MANIFEST_BYTES, read_extension_file,
};
pub use host::{CapabilityHost, CapabilityHostBuilder};
pub use limits::{Enforcement, EngineLimit, LimitEnforcement, ResourceLimits};
pub use manager::{
    ExtensionManager, InstalledExtension, MAX_DELIVERIES_PER_EXECUTION, MAX_EVENT_HOPS,
};
pub use manifest::{
    ActionSpec, AiAccess, ExtensionManifest, MANIFEST_FILE, MAX_MANIFEST_BRACKETS, Metadata,
    ON_EVENT_ACTION, ParamSpec, ParamType, RuntimeKind, validate_id,
};
pub use permission::{Permission, PermissionSet, UnknownPermission};
pub use policy::{EffectivePolicy, HostGrant, HostPolicy};
pub use runtime::{
    BaseMorphRuntime, Execution, ExecutionContext, ExecutionReport, LoadedExtension, RuntimeInfo,
};
pub use script::{ScriptBackend, ScriptCall, ScriptEngine, ScriptHost, ScriptInstance, SharedHost};
pub use session::{Session, SessionTotals};
