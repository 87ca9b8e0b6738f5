//! Private files: atomic writes with mode 0600, and the random 32-byte keys
//! kept in them (the vault key, the module cache's MAC key).

use std::io;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Writes `bytes` atomically (temp file + rename) with mode 0600.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    private_temp(path, bytes)?
        .persist(path)
        .map_err(|e| e.error)?;
    Ok(())
}

/// A synced temp file beside `path` holding `bytes`, mode 0600.
fn private_temp(path: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))?;
    }
    io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Decodes a base64 32-byte key.
pub(crate) fn decode_key(text: &str) -> Option<[u8; 32]> {
    BASE64
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
}

/// The key in `path` (base64), generated and written with mode 0600 on
/// first use. Two processes creating it at once agree on one key (the
/// file is never replaced once it exists). A file that holds no valid key
/// is an `InvalidData` error.
pub(crate) fn load_or_create_key(path: &Path) -> io::Result<[u8; 32]> {
    let read = || -> io::Result<[u8; 32]> {
        let text = std::fs::read_to_string(path)?;
        decode_key(&text)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a base64 32-byte key"))
    };
    match read() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(io::Error::other)?;
            let tmp = private_temp(path, BASE64.encode(key).as_bytes())?;
            match tmp.persist_noclobber(path) {
                Ok(_) => Ok(key),
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => read(),
                Err(e) => Err(e.error),
            }
        }
        other => other,
    }
}
