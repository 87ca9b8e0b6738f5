//! The compiled-module cache (ARCHITECTURE.md): entries are addressed by
//! the module's digest and the engine's fingerprint (name, version,
//! configuration), written atomically, and carry a keyed MAC with a
//! per-installation key. Engines' deserialize is `unsafe` (a crafted
//! artifact runs arbitrary code), so an entry is handed to an engine only
//! after its MAC checks out; a corrupt or foreign entry is discarded and
//! the module recompiled.
//!
//! Layout under the cache directory: `mac.key` (base64, mode 0600) and
//! `<engine fingerprint digest>/<module digest>.bin`, each entry being
//! `MORPHMC1 || MAC (32 bytes) || engine artifact`.

use std::io;
use std::path::{Path, PathBuf};

use crate::keyfile::{load_or_create_key, write_private};
use morph_core::{MorphError, Result};
use morph_wasm::CompiledModuleCache;

const MAGIC: &[u8; 8] = b"MORPHMC1";
const MAC_LEN: usize = 32;
/// The key file inside the cache directory.
pub const CACHE_KEY_FILE: &str = "mac.key";

/// A directory of compiled modules, shared by the backends that can
/// serialize them (wasmtime, wasmer).
#[derive(Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl std::fmt::Debug for ModuleCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ModuleCache {
    /// Opens (creating) the cache in `dir`, with the MAC key in
    /// `dir/mac.key` (generated on first use).
    pub fn open(dir: &Path) -> Result<Self> {
        let fail = |what: &Path, e: io::Error| {
            MorphError::io_error(format!("module cache {}: {e}", what.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
        // Whoever can write here can replace the MAC key and forge entries
        // for the engines' unsafe deserializers: owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| fail(dir, e))?;
        }
        let key_path = dir.join(CACHE_KEY_FILE);
        let key = load_or_create_key(&key_path).map_err(|e| fail(&key_path, e))?;
        Ok(ModuleCache {
            dir: dir.to_path_buf(),
            key,
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the entry for `module` compiled by `engine`.
    pub fn entry_path(&self, engine: &str, module: &[u8]) -> PathBuf {
        let engine_dir = blake3::hash(engine.as_bytes()).to_hex();
        let digest = blake3::hash(module).to_hex();
        self.dir
            .join(&engine_dir[..32])
            .join(format!("{digest}.bin"))
    }

    fn mac(&self, engine: &str, module: &[u8], artifact: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(&(engine.len() as u64).to_le_bytes());
        hasher.update(engine.as_bytes());
        hasher.update(blake3::hash(module).as_bytes());
        hasher.update(artifact);
        hasher.finalize()
    }

    /// The verified artifact for `module` compiled by `engine`, if the
    /// cache has one. An entry that fails the check is removed.
    pub fn get(&self, engine: &str, module: &[u8]) -> Option<Vec<u8>> {
        let path = self.entry_path(engine, module);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "module cache: cannot read entry: {e}");
                return None;
            }
        };
        let header = MAGIC.len() + MAC_LEN;
        let verified = bytes.len() >= header
            && &bytes[..MAGIC.len()] == MAGIC
            && <[u8; MAC_LEN]>::try_from(&bytes[MAGIC.len()..header])
                .is_ok_and(|mac| self.mac(engine, module, &bytes[header..]) == mac);
        if !verified {
            tracing::warn!(path = %path.display(), "module cache: discarding an entry that fails its MAC check");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(bytes[header..].to_vec())
    }

    /// Stores `artifact` as `module` compiled by `engine` (atomically).
    pub fn put(&self, engine: &str, module: &[u8], artifact: &[u8]) -> Result<()> {
        let path = self.entry_path(engine, module);
        let mac = self.mac(engine, module, artifact);
        let mut bytes = Vec::with_capacity(MAGIC.len() + MAC_LEN + artifact.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(mac.as_bytes());
        bytes.extend_from_slice(artifact);
        write_private(&path, &bytes)
            .map_err(|e| MorphError::io_error(format!("module cache {}: {e}", path.display())))
    }
}

// SAFETY: `get` returns only entries whose keyed MAC (BLAKE3 keyed with
// this installation's 32-byte random key, over the fingerprint, the module
// digest and the artifact) checks out, and only `put` writes entries under
// that key, so every artifact handed out is one `put` stored for the same
// fingerprint and module. Whoever can read the key file or write the cache
// directory as this user could forge entries; see the crate docs and
// SECURITY.md for what that covers.
#[allow(unsafe_code)]
unsafe impl CompiledModuleCache for ModuleCache {
    fn get(&self, fingerprint: &str, module: &[u8]) -> Option<Vec<u8>> {
        ModuleCache::get(self, fingerprint, module)
    }

    fn put(&self, fingerprint: &str, module: &[u8], artifact: &[u8]) {
        if let Err(e) = ModuleCache::put(self, fingerprint, module, artifact) {
            tracing::warn!(fingerprint, "module cache: cannot store: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, ModuleCache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(dir.path()).unwrap();
        (dir, cache)
    }

    #[test]
    fn round_trip_and_engine_separation() {
        let (_dir, cache) = cache();
        cache.put("engine-a", b"module", b"artifact").unwrap();
        assert_eq!(cache.get("engine-a", b"module").unwrap(), b"artifact");
        assert!(cache.get("engine-b", b"module").is_none());
        assert!(cache.get("engine-a", b"other module").is_none());
    }

    #[test]
    fn tampered_or_foreign_entries_are_discarded() {
        let (dir, cache) = cache();
        cache.put("e", b"m", b"artifact").unwrap();
        let path = cache.entry_path("e", b"m");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cache.get("e", b"m").is_none(), "a flipped bit is caught");
        assert!(!path.exists(), "the bad entry is removed");

        // An entry written under another installation's key.
        let other_dir = tempfile::tempdir().unwrap();
        let other = ModuleCache::open(other_dir.path()).unwrap();
        other.put("e", b"m", b"artifact").unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(other.entry_path("e", b"m"), &path).unwrap();
        assert!(cache.get("e", b"m").is_none(), "a foreign entry is refused");

        // Truncated garbage.
        std::fs::write(&path, b"MORPH").unwrap();
        assert!(cache.get("e", b"m").is_none());
        drop(dir);
    }

    #[test]
    fn a_key_file_without_a_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CACHE_KEY_FILE), "not a key").unwrap();
        let e = ModuleCache::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains(CACHE_KEY_FILE), "{e}");
    }
}
