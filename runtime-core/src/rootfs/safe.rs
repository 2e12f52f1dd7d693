//! Path resolution inside the container's rootfs that never leaves it.
//!
//! Every path the spec names inside the container (mount destinations, devices,
//! masked paths) is opened with openat2(RESOLVE_IN_ROOT) relative to a descriptor of
//! the rootfs: `..` and absolute symlinks are clamped to the rootfs, so a malicious
//! image cannot point a mount at a host file (CVE-2021-30465, CVE-2024-45310).
//! Missing components are created one at a time, relative to an already verified
//! parent descriptor, never by path.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::sys::c;
use crate::sys::{self, resolve, SysError};

/// The path relative to the rootfs (no leading `/`, no `.`/`..` games left to the kernel).
pub fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Open `path` (container-absolute) inside `root` with O_PATH; symlinks resolve inside.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, SysError> {
    let rel = relative(path);
    let p = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    sys::openat2(root, &p, c::O_PATH, 0, resolve::IN_ROOT)
}

/// Open `path` inside `root`, refusing any symlink on the way (for masked and
/// read-only paths, whose targets must be exactly what the spec names).
pub fn open_in_root_nofollow(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, SysError> {
    let rel = relative(path);
    // No O_NOFOLLOW: with it, O_PATH would hand out the symlink itself; without it,
    // RESOLVE_NO_SYMLINKS fails with ELOOP on a trailing symlink too.
    sys::openat2(
        root,
        &rel,
        c::O_PATH,
        0,
        resolve::IN_ROOT | resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS,
    )
}

/// Create every missing directory of `path` inside `root`; returns the final directory.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, SysError> {
    let rel = relative(path);
    let mut cur = PathBuf::new();
    let mut dir = sys::openat2(
        root,
        Path::new("."),
        c::O_PATH | c::O_DIRECTORY,
        0,
        resolve::IN_ROOT,
    )?;
    for c in rel.components() {
        cur.push(c);
        match sys::openat2(root, &cur, c::O_PATH | c::O_DIRECTORY, 0, resolve::IN_ROOT) {
            Ok(fd) => dir = fd,
            Err(e) if e.errno() == Some(c::ENOENT) => {
                // Create the component relative to the verified parent, then open it
                // again through RESOLVE_IN_ROOT (a racing symlink stays inside).
                let name = Path::new(c.as_os_str());
                match sys::mkdirat(dir.as_fd(), name, mode) {
                    Ok(()) => {}
                    Err(e) if e.errno() == Some(c::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                dir = sys::openat2(root, &cur, c::O_PATH | c::O_DIRECTORY, 0, resolve::IN_ROOT)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

/// Make sure `path` exists inside `root` as a directory (`dir`) or a regular file, and
/// return an O_PATH descriptor of it.
pub fn ensure(root: BorrowedFd<'_>, path: &Path, dir: bool) -> Result<OwnedFd, SysError> {
    match open_in_root(root, path) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.errno() != Some(c::ENOENT) => return Err(e),
        Err(_) => {}
    }
    if dir {
        return mkdir_all(root, path, 0o755);
    }
    let rel = relative(path);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().map(PathBuf::from).unwrap_or_default();
    let pfd = mkdir_all(root, parent, 0o755)?;
    match sys::openat(
        pfd.as_fd(),
        &name,
        c::O_CREAT | c::O_EXCL | c::O_WRONLY | c::O_NOFOLLOW,
        0o644,
    ) {
        Ok(_) => {}
        Err(e) if e.errno() == Some(c::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open_in_root(root, path)
}

/// Whether the file behind `fd` is a directory.
pub fn is_dir(fd: BorrowedFd<'_>) -> Result<bool, SysError> {
    Ok(sys::fstat(fd)?.st_mode & c::S_IFMT == c::S_IFDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        // An absolute symlink and a ../ symlink that would escape on the host.
        symlink("/etc", root.join("abs")).expect("symlink");
        symlink("../../..", root.join("etc/up")).expect("symlink");
        symlink("../../outside", root.join("etc/dangling")).expect("symlink");
        let rfd = sys::open(&root, c::O_PATH | c::O_DIRECTORY, 0).expect("open");

        let d = mkdir_all(rfd.as_fd(), Path::new("/abs/new"), 0o755).expect("mkdir_all");
        assert!(is_dir(d.as_fd()).expect("stat"));
        assert!(root.join("etc/new").is_dir(), "created inside the rootfs");

        ensure(rfd.as_fd(), Path::new("/etc/up/file"), false).expect("ensure");
        assert!(root.join("file").exists(), "../ was clamped at the rootfs");
        assert!(!outside.join("file").exists(), "nothing created outside");
        assert!(!tmp.path().join("file").exists(), "nothing created outside");
        // A dangling symlink is not followed to create its target.
        assert!(ensure(rfd.as_fd(), Path::new("/etc/dangling/x"), false).is_err());
        assert!(!outside.join("x").exists());

        assert!(open_in_root_nofollow(rfd.as_fd(), Path::new("/abs")).is_err());
        assert_eq!(relative(Path::new("/../a/./b/..")), PathBuf::from("a"));
    }
}
