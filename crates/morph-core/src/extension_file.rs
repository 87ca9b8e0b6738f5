//! Reading the files of an extension directory, which an untrusted author
//! wrote: only regular files that are really inside the directory, never
//! through a symbolic link, never blocking (a FIFO), never unbounded (a
//! device like `/dev/zero`, a file that grows while read).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Largest manifest read, in bytes (256 KiB).
pub const MAX_MANIFEST_BYTES: u64 = 256 << 10;

/// Largest entry file read (module or script), in bytes (64 MiB).
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;

/// Why a file of the extension directory was not read.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionFileError {
    /// The name is not a plain file name in the directory.
    #[error("`{0}` is not a file name inside the extension directory")]
    NotAName(String),
    /// A symbolic link (whatever it points at).
    #[error(
        "is a symbolic link; extension files must be regular files inside the extension directory"
    )]
    Symlink,
    /// A directory, FIFO, socket or device.
    #[error("is not a regular file ({0}); extension files must be regular files")]
    NotRegular(&'static str),
    /// Larger than allowed.
    #[error("is larger than the {max}-byte limit")]
    TooLarge {
        /// The limit in bytes.
        max: u64,
    },
    /// The file system said no.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl ExtensionFileError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ExtensionFileError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

fn kind_name(ty: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ty.is_fifo() {
            return "a FIFO";
        }
        if ty.is_socket() {
            return "a socket";
        }
        if ty.is_char_device() || ty.is_block_device() {
            return "a device";
        }
    }
    if ty.is_dir() {
        return "a directory";
    }
    "not a file"
}

/// Opens `path` without following a final symbolic link and without
/// blocking on a FIFO.
fn open_no_follow(path: &Path) -> Result<File, ExtensionFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    ExtensionFileError::Symlink
                } else {
                    ExtensionFileError::Io(e)
                }
            })
    }
    #[cfg(not(unix))]
    {
        // No O_NOFOLLOW: refuse a link seen now (a race with a process
        // swapping the file remains on these systems).
        if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            return Err(ExtensionFileError::Symlink);
        }
        Ok(File::open(path)?)
    }
}

/// Whether `name` names a file directly inside a directory on every
/// system Morph runs on: not empty, not `.` or `..`, no separator (`/`,
/// `\\`), no NUL, and no `:` (on Windows `C:x` is relative to a drive's
/// current directory and `a:b` opens the alternate data stream `b` of
/// `a`), so exactly one normal path component.
fn is_plain_file_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    !name.is_empty()
        && !name.contains(['/', '\\', '\0', ':'])
        && matches!(parts.next(), Some(std::path::Component::Normal(_)))
        && parts.next().is_none()
}

/// Reads `dir/name`, which must be a plain file name (see
/// `is_plain_file_name`) of a regular file of at most `max` bytes.
pub fn read_extension_file(
    dir: &Path,
    name: &str,
    max: u64,
) -> Result<Vec<u8>, ExtensionFileError> {
    if !is_plain_file_name(name) {
        return Err(ExtensionFileError::NotAName(name.to_string()));
    }
    let file = open_no_follow(&dir.join(name))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ExtensionFileError::NotRegular(kind_name(&meta.file_type())));
    }
    if meta.len() > max {
        return Err(ExtensionFileError::TooLarge { max });
    }
    // Read at most one byte past the limit: a file that grows while it is
    // read (or reports a wrong size) is still caught.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ExtensionFileError::TooLarge { max });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn regular_files_are_read() {
        let d = dir();
        std::fs::write(d.path().join("a.txt"), b"hello").unwrap();
        assert_eq!(
            read_extension_file(d.path(), "a.txt", 10).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn names_must_stay_in_the_directory() {
        let d = dir();
        for name in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            "a\\b",
            "C:x",
            "main.wasm:stream",
            "nul\0",
        ] {
            let e = read_extension_file(d.path(), name, 10).unwrap_err();
            assert!(matches!(e, ExtensionFileError::NotAName(_)), "{name}: {e}");
        }
    }

    #[test]
    fn oversized_files_are_refused() {
        let d = dir();
        std::fs::write(d.path().join("big"), vec![0u8; 11]).unwrap();
        let e = read_extension_file(d.path(), "big", 10).unwrap_err();
        assert!(matches!(e, ExtensionFileError::TooLarge { max: 10 }), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn links_fifos_and_devices_are_refused_without_blocking() {
        let d = dir();
        std::fs::write(d.path().join("target"), b"outside").unwrap();
        std::os::unix::fs::symlink(d.path().join("target"), d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.path().join("zero")).unwrap();
        let e = read_extension_file(d.path(), "link", 100).unwrap_err();
        assert!(matches!(e, ExtensionFileError::Symlink), "{e}");
        let e = read_extension_file(d.path(), "zero", 100).unwrap_err();
        assert!(matches!(e, ExtensionFileError::Symlink), "{e}");
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let e = read_extension_file(d.path(), "sub", 100).unwrap_err();
        assert!(matches!(e, ExtensionFileError::NotRegular(_)), "{e}");
        let fifo = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let started = std::time::Instant::now();
            let e = read_extension_file(d.path(), "fifo", 100).unwrap_err();
            assert!(matches!(e, ExtensionFileError::NotRegular("a FIFO")), "{e}");
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
        // A character device (mknod needs root; skipped elsewhere).
        let dev = d.path().join("zero-device");
        let made = std::process::Command::new("mknod")
            .args([dev.as_os_str(), "c".as_ref(), "1".as_ref(), "5".as_ref()])
            .stderr(std::process::Stdio::null())
            .status();
        if made.is_ok_and(|s| s.success()) {
            let e = read_extension_file(d.path(), "zero-device", 100).unwrap_err();
            assert!(
                matches!(e, ExtensionFileError::NotRegular("a device")),
                "{e}"
            );
        }
    }
}
