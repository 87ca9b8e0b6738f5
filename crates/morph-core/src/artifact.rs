//! An extension as delivered: manifest plus entry bytes.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{MorphError, Result};
use crate::extension_file::{MAX_ENTRY_BYTES, read_extension_file};
use crate::manifest::ExtensionManifest;

/// A manifest and its entry file's bytes.
#[derive(Debug, Clone)]
pub struct ExtensionArtifact {
    /// The validated manifest.
    pub manifest: ExtensionManifest,
    /// The manifest's text as read (`None` when built from parts).
    pub manifest_text: Option<String>,
    /// The entry file's bytes (`.wasm`, `.wat`, `.js`, `.py`).
    pub entry: Vec<u8>,
    /// Where it was read from, if from a directory.
    pub dir: Option<PathBuf>,
}

impl ExtensionArtifact {
    /// Reads `<dir>/manifest.yaml` and the entry it names. Both must be
    /// regular files in `dir` itself (a symbolic link, a FIFO or a device
    /// is refused without being opened for reading), of at most
    /// [`MAX_MANIFEST_BYTES`](crate::MAX_MANIFEST_BYTES) and
    /// [`MAX_ENTRY_BYTES`](crate::MAX_ENTRY_BYTES).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(MorphError::not_found(format!(
                "extension directory {} does not exist",
                dir.display()
            )));
        }
        let (manifest, text) = ExtensionManifest::read_from_dir(dir)?;
        let entry = Self::read_entry(dir, manifest.entry_file())?;
        Ok(ExtensionArtifact {
            manifest,
            manifest_text: Some(text),
            entry,
            dir: Some(dir.to_path_buf()),
        })
    }

    /// Reads entry file `name` of `dir` under the rules of
    /// [`from_dir`](Self::from_dir); errors are `invalid_module` naming the
    /// file.
    pub fn read_entry(dir: &Path, name: &str) -> Result<Vec<u8>> {
        read_extension_file(dir, name, MAX_ENTRY_BYTES).map_err(|e| {
            MorphError::invalid_module(format!("entry {}: {e}", dir.join(name).display()))
        })
    }

    /// From a manifest and entry bytes already in memory.
    pub fn from_parts(manifest: ExtensionManifest, entry: Vec<u8>) -> Self {
        ExtensionArtifact {
            manifest,
            manifest_text: None,
            entry,
            dir: None,
        }
    }

    /// The content digest of the extension: SHA-256, in lowercase hex,
    /// over each of its files (the manifest text, then the entry), each
    /// as its name and its bytes with their lengths (64-bit little
    /// endian) in front, so no two different sets of files share one.
    /// What an installation records and checks at every load.
    pub fn digest(&self) -> String {
        let manifest = self.manifest_text.as_deref().unwrap_or_default();
        let mut hasher = Sha256::new();
        for (name, bytes) in [
            (crate::manifest::MANIFEST_FILE, manifest.as_bytes()),
            (self.manifest.entry_file(), self.entry.as_slice()),
        ] {
            for part in [name.as_bytes(), bytes] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
        }
        sha256_hex(&hasher.finalize())
    }

    /// A name for the entry in messages: its path when read from disk.
    pub fn entry_origin(&self) -> String {
        match &self.dir {
            Some(dir) => dir.join(self.manifest.entry_file()).display().to_string(),
            None => self.manifest.entry_file().to_string(),
        }
    }
}

/// `bytes` in lowercase hex.
fn sha256_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `data` in lowercase hex (64 characters).
pub fn sha256(data: &[u8]) -> String {
    sha256_hex(&Sha256::digest(data))
}
