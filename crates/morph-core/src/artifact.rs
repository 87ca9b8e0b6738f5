//! An extension as delivered: manifest plus entry bytes.

use std::path::{Path, PathBuf};

use crate::error::{MorphError, Result};
use crate::manifest::ExtensionManifest;

/// A manifest and its entry file's bytes.
#[derive(Debug, Clone)]
pub struct ExtensionArtifact {
    /// The validated manifest.
    pub manifest: ExtensionManifest,
    /// The entry file's bytes (`.wasm`, `.wat`, `.js`, `.py`).
    pub entry: Vec<u8>,
    /// Where it was read from, if from a directory.
    pub dir: Option<PathBuf>,
}

impl ExtensionArtifact {
    /// Reads `<dir>/manifest.yaml` and the entry it names.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(MorphError::not_found(format!(
                "extension directory {} does not exist",
                dir.display()
            )));
        }
        let manifest = ExtensionManifest::from_dir(dir)?;
        let path = dir.join(manifest.entry_file());
        let entry = std::fs::read(&path).map_err(|e| {
            MorphError::invalid_module(format!("cannot read entry {}: {e}", path.display()))
        })?;
        Ok(ExtensionArtifact {
            manifest,
            entry,
            dir: Some(dir.to_path_buf()),
        })
    }

    /// From a manifest and entry bytes already in memory.
    pub fn from_parts(manifest: ExtensionManifest, entry: Vec<u8>) -> Self {
        ExtensionArtifact {
            manifest,
            entry,
            dir: None,
        }
    }

    /// A name for the entry in messages: its path when read from disk.
    pub fn entry_origin(&self) -> String {
        match &self.dir {
            Some(dir) => dir.join(self.manifest.entry_file()).display().to_string(),
            None => self.manifest.entry_file().to_string(),
        }
    }
}
