//! The compiled-module cache (ARCHITECTURE.md): entries are addressed by
//! the module's digest and the engine's fingerprint (name, version,
//! configuration), written atomically, and carry a keyed MAC with a
//! per-installation key. Engines' deserialize is `unsafe` (a crafted
//! artifact runs arbitrary code), so an entry is handed to an engine only
//! after its MAC checks out; a corrupt or foreign entry is discarded and
//! the module recompiled.
//!
//! **What the MAC protects against:** anyone who can write the cache
//! directory but cannot read the key (a shared or synced cache, a restored
//! backup, another local user with write access to it, a bug that writes
//! there): their entries are refused, never deserialized. **What it does
//! not:** someone who can read the key file or run code as this user can
//! forge entries; so the key lives outside the cache directory, in a file
//! only its owner may read, and the cache refuses a directory or key it
//! does not own or that others may write.
//!
//! Layout: the key file (base64, mode 0600) wherever the caller puts it
//! (the CLI: `<data dir>/keys/module-cache.key`); under the cache
//! directory, `<engine fingerprint digest>/<module digest>.bin`, each entry
//! being `MORPHMC1 || MAC (32 bytes) || engine artifact`. The directory is
//! bounded ([`DEFAULT_MAX_BYTES`]): past the bound the least recently used
//! entries are removed.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use morph_core::{MorphError, Result};
use morph_wasm::CompiledModuleCache;

use crate::keyfile::{load_or_create_key, write_private};

const MAGIC: &[u8; 8] = b"MORPHMC1";
const MAC_LEN: usize = 32;

/// The key file's name under the data directory's `keys/` (see
/// [`persistent_module_cache`](crate::persistent_module_cache)).
pub const CACHE_KEY_FILE: &str = "module-cache.key";

/// Bytes the cache directory may hold by default (1 GiB).
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// A directory of compiled modules, shared by the backends that can
/// serialize them (wasmtime, wasmer).
#[derive(Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    key: [u8; 32],
    max_bytes: u64,
}

impl std::fmt::Debug for ModuleCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleCache")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

fn fail(what: &Path, e: impl std::fmt::Display) -> MorphError {
    MorphError::io_error(format!("module cache {}: {e}", what.display()))
}

/// Creates `dir` (and missing parents) with mode 0700 where it does not
/// exist; an existing directory's mode is left alone.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Refuses `path` unless this user owns it and nobody else may write it
/// (and, when `secret`, read it): a cache or key others can change would
/// let them choose what an engine deserializes.
fn check_private(path: &Path, secret: bool) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).map_err(|e| fail(path, e))?;
        if meta.file_type().is_symlink() {
            return Err(fail(path, "is a symbolic link"));
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(fail(
                path,
                format!("is owned by uid {}, not by this user ({me})", meta.uid()),
            ));
        }
        let forbidden = if secret { 0o077 } else { 0o022 };
        if meta.mode() & forbidden != 0 {
            return Err(fail(
                path,
                format!(
                    "has mode {:o}: {} (chmod {} it)",
                    meta.mode() & 0o777,
                    if secret {
                        "others may read or write it"
                    } else {
                        "others may write it"
                    },
                    if secret { "600" } else { "go-w" }
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, secret);
    Ok(())
}

impl ModuleCache {
    /// Opens the cache in `dir` (created with mode 0700 when missing; an
    /// existing directory must belong to this user and be writable by it
    /// alone, and is never changed) with the MAC key in `key_path`
    /// (generated on first use, mode 0600; it must not be inside `dir`).
    pub fn open(dir: &Path, key_path: &Path) -> Result<Self> {
        if key_path.starts_with(dir) {
            return Err(fail(
                key_path,
                "the MAC key must not live in the directory whose entries it authenticates",
            ));
        }
        create_private_dir(dir).map_err(|e| fail(dir, e))?;
        check_private(dir, false)?;
        if let Some(parent) = key_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(|e| fail(parent, e))?;
            check_private(parent, false)?;
        }
        let key = load_or_create_key(key_path).map_err(|e| fail(key_path, e))?;
        check_private(key_path, true)?;
        Ok(ModuleCache {
            dir: dir.to_path_buf(),
            key,
            max_bytes: DEFAULT_MAX_BYTES,
        })
    }

    /// Bounds the directory to `max_bytes` of entries (least recently used
    /// removed first).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
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
        // Recently used: eviction goes by modification time.
        if let Ok(file) = std::fs::File::options().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(bytes[header..].to_vec())
    }

    /// Stores `artifact` as `module` compiled by `engine` (atomically),
    /// then trims the directory to its bound.
    pub fn put(&self, engine: &str, module: &[u8], artifact: &[u8]) -> Result<()> {
        let path = self.entry_path(engine, module);
        let mac = self.mac(engine, module, artifact);
        let mut bytes = Vec::with_capacity(MAGIC.len() + MAC_LEN + artifact.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(mac.as_bytes());
        bytes.extend_from_slice(artifact);
        if let Some(parent) = path.parent() {
            create_private_dir(parent).map_err(|e| fail(parent, e))?;
        }
        write_private(&path, &bytes).map_err(|e| fail(&path, e))?;
        self.evict();
        Ok(())
    }

    /// Every entry with its size and last use.
    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let mut out = Vec::new();
        let Ok(engines) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for engine in engines.flatten() {
            let Ok(files) = std::fs::read_dir(engine.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "bin")
                    && let Ok(meta) = file.metadata()
                    && meta.is_file()
                {
                    let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    out.push((path, meta.len(), used));
                }
            }
        }
        out
    }

    /// Removes the least recently used entries until the directory holds
    /// at most `max_bytes`.
    fn evict(&self) {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort_by_key(|(_, _, used)| *used);
        for (path, len, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
                tracing::debug!(path = %path.display(), "module cache: evicted");
            }
        }
    }
}

// SAFETY: `get` returns only entries whose keyed MAC (BLAKE3 keyed with
// this installation's 32-byte random key, over the fingerprint, the module
// digest and the artifact) checks out, and only `put` writes entries under
// that key, so every artifact handed out is one `put` stored for the same
// fingerprint and module. The key lives outside the cache directory, and
// `open` refuses a directory or key file this user does not own or that
// others may write (or, for the key, read).
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
        let cache =
            ModuleCache::open(&dir.path().join("cache"), &dir.path().join("keys/k")).unwrap();
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
        let other = ModuleCache::open(
            &other_dir.path().join("cache"),
            &other_dir.path().join("keys/k"),
        )
        .unwrap();
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
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let key = dir.path().join("keys/k");
        std::fs::write(&key, "not a key").unwrap();
        let e = ModuleCache::open(&dir.path().join("cache"), &key).unwrap_err();
        assert!(e.to_string().contains("keys/k"), "{e}");
    }

    #[test]
    fn the_key_never_lives_among_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let e = ModuleCache::open(dir.path(), &dir.path().join("mac.key")).unwrap_err();
        assert!(e.message().contains("must not live"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn existing_directories_are_checked_not_changed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A shared directory (as /tmp is): others may write it.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = ModuleCache::open(&shared, &dir.path().join("keys/k")).unwrap_err();
        assert!(e.message().contains("others may write"), "{e}");
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "the directory was left as it was");
        // A key others may read is refused.
        let (dir2, _cache) = cache();
        let key = dir2.path().join("keys/k");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ModuleCache::open(&dir2.path().join("cache"), &key).unwrap_err();
        assert!(e.message().contains("others may read"), "{e}");
        // A new directory is created private.
        let fresh = dir.path().join("fresh/cache");
        ModuleCache::open(&fresh, &dir.path().join("keys2/k")).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn the_directory_is_bounded_least_recently_used_first() {
        let (_dir, cache) = cache();
        let cache = cache.with_max_bytes(3 * 1100);
        let artifact = vec![7u8; 1000];
        for m in [b"m1", b"m2", b"m3"] {
            cache.put("e", m, &artifact).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // m1 used again: m2 is now the least recently used.
        assert!(cache.get("e", b"m1").is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put("e", b"m4", &artifact).unwrap();
        assert!(cache.get("e", b"m1").is_some());
        assert!(cache.get("e", b"m2").is_none(), "the oldest went");
        assert!(cache.get("e", b"m3").is_some() && cache.get("e", b"m4").is_some());
        let total: u64 = cache.entries().iter().map(|(_, len, _)| len).sum();
        assert!(total <= 3 * 1100, "{total}");
    }
}
