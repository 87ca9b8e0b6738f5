//! Secrets encrypted at rest: one JSON file of ChaCha20-Poly1305
//! ciphertexts, the key in a separate file (created with mode 0600) or in
//! `MORPH_VAULT_KEY`. Each ciphertext is bound to its extension and key
//! (associated data), so entries cannot be swapped between namespaces.
//! What it protects against: a copy of the vault file alone (a backup, a
//! log upload). What it does not: someone who can read the key file too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

use crate::keyfile::{decode_key, load_or_create_key, write_private};
use morph_core::host::VaultProvider;
use morph_core::{MorphError, Result};

/// The environment variable that may hold the vault key (base64, 32 bytes)
/// instead of the key file.
pub const VAULT_KEY_ENV: &str = "MORPH_VAULT_KEY";

#[derive(Default, Serialize, Deserialize)]
struct VaultFile {
    version: u32,
    /// extension id -> key -> base64(nonce || ciphertext)
    secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// A [`VaultProvider`] in an encrypted file.
pub struct FileVault {
    path: PathBuf,
    cipher: ChaCha20Poly1305,
    lock: Mutex<()>,
}

impl std::fmt::Debug for FileVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileVault")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> MorphError {
    MorphError::io_error(format!("vault: {what}: {e}"))
}

fn load_key(key_path: &Path) -> Result<[u8; 32]> {
    if let Ok(text) = std::env::var(VAULT_KEY_ENV) {
        return decode_key(&text).ok_or_else(|| failed(VAULT_KEY_ENV, "not a base64 32-byte key"));
    }
    load_or_create_key(key_path).map_err(|e| failed(&key_path.display().to_string(), e))
}

fn aad(extension_id: &str, key: &str) -> Vec<u8> {
    format!("{extension_id}\0{key}").into_bytes()
}

impl FileVault {
    /// Opens the vault file at `path` (created on first write) with the key
    /// from `MORPH_VAULT_KEY`, else `key_path` (generated on first use).
    pub fn open(path: &Path, key_path: &Path) -> Result<Self> {
        let key = load_key(key_path)?;
        Ok(FileVault {
            path: path.to_path_buf(),
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            lock: Mutex::new(()),
        })
    }

    fn read(&self) -> Result<VaultFile> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| failed(&self.path.display().to_string(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(VaultFile::default()),
            Err(e) => Err(failed(&self.path.display().to_string(), e)),
        }
    }

    /// Holds the vault's lock file, exclusively, across processes: every
    /// read-modify-write of the vault file happens under it, so two
    /// processes setting secrets at once both keep theirs. (Reads need no
    /// lock: writes replace the file atomically.)
    fn exclusive(&self) -> Result<std::fs::File> {
        let mut name = self.path.clone().into_os_string();
        name.push(".lock");
        let lock_path = PathBuf::from(name);
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| failed(&dir.display().to_string(), e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| failed(&lock_path.display().to_string(), e))?;
        file.lock()
            .map_err(|e| failed(&lock_path.display().to_string(), e))?;
        Ok(file)
    }

    fn write(&self, file: &VaultFile) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(file).map_err(|e| failed("encode", e))?;
        write_private(&self.path, &bytes).map_err(|e| failed(&self.path.display().to_string(), e))
    }

    /// The keys stored for `extension_id`, sorted.
    pub fn list(&self, extension_id: &str) -> Result<Vec<String>> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self
            .read()?
            .secrets
            .get(extension_id)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Removes a secret; whether it existed.
    pub fn remove(&self, extension_id: &str, key: &str) -> Result<bool> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let _across_processes = self.exclusive()?;
        let mut file = self.read()?;
        let removed = file
            .secrets
            .get_mut(extension_id)
            .and_then(|m| m.remove(key))
            .is_some();
        if removed {
            file.secrets.retain(|_, m| !m.is_empty());
            self.write(&file)?;
        }
        Ok(removed)
    }
}

impl VaultProvider for FileVault {
    fn get(&self, extension_id: &str, key: &str) -> Result<Option<String>> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let file = self.read()?;
        let Some(sealed) = file.secrets.get(extension_id).and_then(|m| m.get(key)) else {
            return Ok(None);
        };
        let bytes = BASE64.decode(sealed).map_err(|e| failed("entry", e))?;
        if bytes.len() < 12 {
            return Err(failed("entry", "too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad(extension_id, key),
                },
            )
            .map_err(|_| failed(key, "cannot decrypt (wrong key or a tampered entry)"))?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|e| failed(key, e))
    }

    fn set(&self, extension_id: &str, key: &str, value: &str) -> Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| failed("random nonce", e))?;
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad(extension_id, key),
                },
            )
            .map_err(|_| failed(key, "cannot encrypt"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        let _across_processes = self.exclusive()?;
        let mut file = self.read()?;
        file.version = 1;
        file.secrets
            .entry(extension_id.to_string())
            .or_default()
            .insert(key.to_string(), BASE64.encode(sealed));
        self.write(&file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_encrypted_at_rest_and_bound_to_their_slot() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, key) = (tmp.path().join("vault.json"), tmp.path().join("vault.key"));
        let vault = FileVault::open(&path, &key).unwrap();
        vault.set("a", "token", "s3cret-value").unwrap();
        vault.set("a", "other", "x").unwrap();
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(!on_disk.contains("s3cret-value"));
        let reopened = FileVault::open(&path, &key).unwrap();
        assert_eq!(
            reopened.get("a", "token").unwrap().as_deref(),
            Some("s3cret-value")
        );
        assert_eq!(reopened.get("b", "token").unwrap(), None);
        assert_eq!(reopened.list("a").unwrap(), ["other", "token"]);
        // Moving a ciphertext to another slot does not decrypt.
        let mut file: VaultFile = serde_json::from_str(&on_disk).unwrap();
        let sealed = file.secrets["a"]["token"].clone();
        file.secrets
            .entry("b".into())
            .or_default()
            .insert("token".into(), sealed);
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        assert!(reopened.get("b", "token").is_err());
        assert!(reopened.remove("a", "token").unwrap());
        assert_eq!(reopened.get("a", "token").unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn concurrent_writers_keep_every_secret() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, key) = (tmp.path().join("vault.json"), tmp.path().join("vault.key"));
        FileVault::open(&path, &key)
            .unwrap()
            .set("x", "before", "0")
            .unwrap();
        // Two writers with their own handles, as two processes have.
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (path, key) = (path.clone(), key.clone());
                std::thread::spawn(move || {
                    let vault = FileVault::open(&path, &key).unwrap();
                    for i in 0..40 {
                        vault.set("x", &format!("w{w}-{i}"), "v").unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let keys = FileVault::open(&path, &key).unwrap().list("x").unwrap();
        assert_eq!(keys.len(), 81, "{keys:?}");
    }
}
