//! Every provider over one data directory: what `morph run` and the
//! `ExtensionManager` of the CLI use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use morph_core::host::VaultProvider;
use morph_core::{CapabilityHost, CapabilityHostBuilder, Result};

use crate::{JsonLinesAudit, ModuleCache, RedbDataStore, SandboxFs, UreqHttp};

/// Morph's data directory: `$MORPH_DATA_DIR`, else `$XDG_DATA_HOME/morph`,
/// else `~/.local/share/morph`, else `./.morph`. See
/// [`persistent_host_builder`] for what it holds.
pub fn data_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("MORPH_DATA_DIR")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("morph")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/morph")))
        .unwrap_or_else(|| PathBuf::from(".morph"))
}

/// A capability host keeping its state in `data_dir`: sandboxed files in
/// `files/<extension_id>/`, the key/value store in `data.redb`, the audit
/// log in `audit.jsonl` (JSON lines); HTTP through [`UreqHttp`] to each
/// extension's allowed hosts; secrets come from `vault`.
pub fn persistent_host_builder(
    data_dir: &Path,
    vault: Arc<dyn VaultProvider>,
) -> Result<CapabilityHostBuilder> {
    let data = RedbDataStore::open(&data_dir.join("data.redb"))?;
    let audit = JsonLinesAudit::open(&data_dir.join("audit.jsonl"))?;
    Ok(CapabilityHost::builder()
        .vault(vault)
        .fs(Arc::new(SandboxFs::new(data_dir.join("files"))))
        .http(Arc::new(UreqHttp::default()))
        .data(Arc::new(data))
        .audit(Arc::new(audit)))
}

/// The module cache in `data_dir`: entries in `cache/`, the MAC key in
/// `keys/module-cache.key` (outside the directory it authenticates).
pub fn persistent_module_cache(data_dir: &Path) -> Result<Arc<ModuleCache>> {
    Ok(Arc::new(ModuleCache::open(
        &data_dir.join("cache"),
        &data_dir.join("keys").join(crate::CACHE_KEY_FILE),
    )?))
}
