//! # morph-host
//!
//! The real capability providers of Morph, each behind a Cargo feature, for
//! hosts that want more than `morph-core`'s in-memory ones:
//!
//! | feature | provider | what it is |
//! |---|---|---|
//! | `http` | [`UreqHttp`] | `http.fetch` through ureq + rustls: only to allowed hosts, checked on every redirect hop and on every resolved address |
//! | `redb` | [`RedbDataStore`] | `data.*` in an embedded redb file, one namespace per extension |
//! | `fs` | [`SandboxFs`] | `fs.*` in a sandbox directory per extension, opened with cap-std |
//! | `vault-file` | [`FileVault`] | secrets in a ChaCha20-Poly1305-encrypted JSON file |
//! | (always) | [`EnvVault`] | read-only secrets from `MORPH_SECRET_<EXTENSION>__<KEY>` variables (a one-to-one mapping) |
//! | `audit-log` | [`JsonLinesAudit`] | the audit log as JSON lines |
//! | `module-cache` | [`ModuleCache`] | compiled modules of the JIT backends, each entry MAC-checked before an engine deserializes it |
//!
//! [`persistent_host_builder`] puts them together over one data directory
//! (feature `persistent`, which enables all of them).
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]

mod env_vault;
#[cfg(any(feature = "vault-file", feature = "module-cache"))]
mod keyfile;

#[cfg(feature = "audit-log")]
mod audit_log;
#[cfg(feature = "vault-file")]
mod file_vault;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "module-cache")]
mod module_cache;
#[cfg(feature = "persistent")]
mod persistent;
#[cfg(feature = "redb")]
mod redb_store;
#[cfg(feature = "fs")]
mod sandbox_fs;

#[cfg(feature = "audit-log")]
pub use audit_log::JsonLinesAudit;
pub use env_vault::EnvVault;
#[cfg(feature = "vault-file")]
pub use file_vault::{FileVault, VAULT_KEY_ENV};
#[cfg(feature = "http")]
pub use http::UreqHttp;
#[cfg(feature = "module-cache")]
pub use module_cache::{CACHE_KEY_FILE, DEFAULT_MAX_BYTES, ModuleCache};
#[cfg(feature = "persistent")]
pub use persistent::{data_dir, persistent_host_builder, persistent_module_cache};
#[cfg(feature = "redb")]
pub use redb_store::RedbDataStore;
#[cfg(feature = "fs")]
pub use sandbox_fs::SandboxFs;
