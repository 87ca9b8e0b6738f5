//! The file capability: a sandbox directory per extension. Providers
//! (such as `morph_host::SandboxFs`) implement [`FsProvider`].

use crate::error::Result;

/// Files of one extension's sandbox. Paths are relative to it.
pub trait FsProvider: Send + Sync {
    /// Reads a UTF-8 text file of at most `max_bytes`.
    fn read(&self, extension_id: &str, path: &str, max_bytes: u64) -> Result<String>;
    /// Writes (creates or replaces) a text file of at most `max_bytes`,
    /// creating parent directories.
    fn write(&self, extension_id: &str, path: &str, data: &str, max_bytes: u64) -> Result<()>;
    /// Names in a directory (`""` or `"."` for the sandbox root), sorted.
    fn list(&self, extension_id: &str, path: &str) -> Result<Vec<String>>;
    /// Removes a file.
    fn delete(&self, extension_id: &str, path: &str) -> Result<()>;
}
