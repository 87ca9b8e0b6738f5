//! Files: a sandbox directory per extension, opened with `cap-std` so no
//! path (`..`, absolute, or a symlink) can leave it. Something else may
//! plant a link or a FIFO in a sandbox, so files are opened without
//! following a final symbolic link, without blocking, and used only when
//! they are regular files.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, OpenOptions};

use morph_core::host::FsProvider;
use morph_core::{MorphError, Result};

/// The embedded default: `<root>/<extension_id>/` per extension.
#[derive(Debug, Clone)]
pub struct SandboxFs {
    root: PathBuf,
}

impl SandboxFs {
    /// Sandboxes live under `root` (created when first used).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SandboxFs { root: root.into() }
    }

    /// The directory holding every extension's sandbox.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn sandbox(&self, extension_id: &str) -> Result<Dir> {
        let dir = self.root.join(extension_id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            MorphError::io_error(format!("cannot create sandbox {}: {e}", dir.display()))
        })?;
        let is_link = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            return Err(MorphError::permission_denied(format!(
                "the sandbox {} is a symbolic link",
                dir.display()
            )));
        }
        Dir::open_ambient_dir(&dir, ambient_authority()).map_err(|e| {
            MorphError::io_error(format!("cannot open sandbox {}: {e}", dir.display()))
        })
    }
}

/// Refuses what can never name a file inside the sandbox, with a clear
/// message (cap-std would refuse it too).
fn check_path<'p>(op: &str, path: &'p str, allow_root: bool) -> Result<&'p Path> {
    let p = Path::new(path);
    let escapes = p.is_absolute()
        || path.contains('\0')
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(MorphError::permission_denied(format!(
            "op `{op}`: path `{path}` leaves the extension's sandbox (only relative paths without `..`)"
        )));
    }
    if !allow_root && p.components().all(|c| c == Component::CurDir) {
        return Err(MorphError::host_error(format!("op `{op}`: path is empty")));
    }
    Ok(p)
}

/// Opens `p` in `dir` without following a final symbolic link and without
/// blocking (a FIFO opens at once), and checks it is a regular file.
fn open_regular(
    dir: &Dir,
    p: &Path,
    options: &mut OpenOptions,
    op: &str,
    path: &str,
) -> Result<File> {
    options.follow(FollowSymlinks::No);
    #[cfg(unix)]
    {
        use cap_std::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = dir.open_with(p, options).map_err(|e| {
        #[cfg(unix)]
        if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENXIO)) {
            return MorphError::permission_denied(format!(
                "op `{op}`: `{path}` is not a regular file in the sandbox (a symbolic link or a FIFO)"
            ));
        }
        io_error(op, path, e)
    })?;
    let meta = file.metadata().map_err(|e| io_error(op, path, e))?;
    if !meta.is_file() {
        return Err(MorphError::permission_denied(format!(
            "op `{op}`: `{path}` is not a regular file (only regular files can be read or written)"
        )));
    }
    Ok(file)
}

fn io_error(op: &str, path: &str, e: io::Error) -> MorphError {
    let message = format!("op `{op}`: `{path}`: {e}");
    match e.kind() {
        io::ErrorKind::NotFound => MorphError::not_found(message),
        io::ErrorKind::PermissionDenied => MorphError::permission_denied(message),
        _ => MorphError::host_error(message),
    }
}

fn too_big(op: &str, path: &str, size: u64, max: u64) -> MorphError {
    MorphError::quota_exceeded(format!(
        "op `{op}`: `{path}` is {size} bytes, above max_file_size_mb ({max} bytes)"
    ))
}

impl FsProvider for SandboxFs {
    fn read(&self, extension_id: &str, path: &str, max_bytes: u64) -> Result<String> {
        let op = "fs.read";
        let p = check_path(op, path, false)?;
        let dir = self.sandbox(extension_id)?;
        let file = open_regular(&dir, p, OpenOptions::new().read(true), op, path)?;
        let size = file.metadata().map_err(|e| io_error(op, path, e))?.len();
        if size > max_bytes {
            return Err(too_big(op, path, size, max_bytes));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(op, path, e))?;
        if bytes.len() as u64 > max_bytes {
            return Err(too_big(op, path, bytes.len() as u64, max_bytes));
        }
        String::from_utf8(bytes)
            .map_err(|_| MorphError::host_error(format!("op `{op}`: `{path}` is not UTF-8 text")))
    }

    fn write(&self, extension_id: &str, path: &str, data: &str, max_bytes: u64) -> Result<()> {
        let op = "fs.write";
        let p = check_path(op, path, false)?;
        if data.len() as u64 > max_bytes {
            return Err(too_big(op, path, data.len() as u64, max_bytes));
        }
        let dir = self.sandbox(extension_id)?;
        if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            dir.create_dir_all(parent)
                .map_err(|e| io_error(op, path, e))?;
        }
        let mut file = open_regular(
            &dir,
            p,
            OpenOptions::new().write(true).create(true),
            op,
            path,
        )?;
        // Truncated only now that it is known to be a regular file.
        file.set_len(0).map_err(|e| io_error(op, path, e))?;
        file.write_all(data.as_bytes())
            .map_err(|e| io_error(op, path, e))
    }

    fn list(&self, extension_id: &str, path: &str) -> Result<Vec<String>> {
        let op = "fs.list";
        let p = check_path(op, if path.is_empty() { "." } else { path }, true)?;
        let dir = self.sandbox(extension_id)?;
        let mut names = Vec::new();
        for entry in dir.read_dir(p).map_err(|e| io_error(op, path, e))? {
            let entry = entry.map_err(|e| io_error(op, path, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn delete(&self, extension_id: &str, path: &str) -> Result<()> {
        let op = "fs.delete";
        let p = check_path(op, path, false)?;
        let dir = self.sandbox(extension_id)?;
        dir.remove_file(p).map_err(|e| io_error(op, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morph_core::ErrorKind;

    #[test]
    fn files_stay_in_their_sandbox() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = SandboxFs::new(tmp.path().join("sandboxes"));
        fs.write("a", "notes/today.txt", "hello", 100).unwrap();
        assert_eq!(fs.read("a", "notes/today.txt", 100).unwrap(), "hello");
        assert_eq!(fs.list("a", "").unwrap(), vec!["notes"]);
        assert_eq!(
            fs.read("b", "notes/today.txt", 100).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        for bad in ["../b/x", "/etc/passwd", "notes/../../x", ""] {
            let e = fs.write("a", bad, "x", 100).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::HostError),
                "{bad}: {e}"
            );
        }
        assert!(!tmp.path().join("x").exists() && !tmp.path().join("sandboxes/x").exists());
        assert_eq!(
            fs.write("a", "big", "123456", 5).unwrap_err().kind(),
            ErrorKind::QuotaExceeded
        );
        fs.delete("a", "notes/today.txt").unwrap();
        assert_eq!(fs.list("a", "notes").unwrap(), Vec::<String>::new());
    }

    #[cfg(unix)]
    #[test]
    fn links_and_fifos_planted_in_the_sandbox_are_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "outside").unwrap();
        let fs = SandboxFs::new(tmp.path().join("sandboxes"));
        fs.write("a", "ok.txt", "in", 100).unwrap();
        let sandbox = tmp.path().join("sandboxes/a");
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), sandbox.join("out")).unwrap();
        std::os::unix::fs::symlink("ok.txt", sandbox.join("in")).unwrap();
        for link in ["out", "in"] {
            let e = fs.read("a", link, 100).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{link}: {e}");
            let e = fs.write("a", link, "x", 100).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{link}: {e}");
        }
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("secret.txt")).unwrap(),
            "outside"
        );
        assert_eq!(fs.read("a", "ok.txt", 100).unwrap(), "in");
        let made = std::process::Command::new("mkfifo")
            .arg(sandbox.join("fifo"))
            .status();
        if made.is_ok_and(|s| s.success()) {
            let started = std::time::Instant::now();
            let e = fs.read("a", "fifo", 100).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
            let e = fs.write("a", "fifo", "x", 100).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_sandbox_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "outside").unwrap();
        let fs = SandboxFs::new(tmp.path().join("sandboxes"));
        fs.write("a", "ok.txt", "in", 100).unwrap();
        std::os::unix::fs::symlink(
            tmp.path().join("secret.txt"),
            tmp.path().join("sandboxes/a/link"),
        )
        .unwrap();
        let e = fs.read("a", "link", 100).unwrap_err();
        assert_ne!(e.kind(), ErrorKind::ExtensionError);
        assert!(
            fs.read("a", "link", 100).is_err(),
            "a symlink out of the sandbox must not be followed"
        );
    }
}
