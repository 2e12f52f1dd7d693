//! The executable init runs from, which must not let the container reach the runrs
//! binary on the host (CVE-2019-5736): a process in the container that opens
//! /proc/<init>/exe must find a file it cannot write.
//!
//! Preferred: the binary opened through a detached, read-only overlayfs mount
//! (fsopen/fsmount, never attached to any mount tree) whose top layer is the binary's
//! directory. overlayfs without an upper layer refuses every write, and its pages are
//! the host binary's page cache: nothing is copied, and init's text is shared with
//! every other runrs process (runc 1.2 does the same). Fallback (no overlayfs or new
//! mount API, the binary replaced or deleted on disk, overlapping layers): a sealed
//! memfd copy of the binary. See memfd_create(2), fcntl(2) F_ADD_SEALS, fsopen(2),
//! Documentation/filesystems/overlayfs.rst.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sys::{self, c, SysError};

/// A descriptor of the running binary for init to exec, through a read-only overlay
/// when possible (`scratch`: an existing directory that is neither inside nor above
/// the binary's directory, used as the overlay's required second, bottom layer), else
/// a sealed memfd copy. Exec it through `/proc/self/fd/N` (see [`crate::sys::fd_path`]).
pub fn init_executable(scratch: &Path) -> Result<OwnedFd, SysError> {
    match overlay_view(scratch) {
        Ok(fd) => Ok(fd),
        Err(e) => {
            tracing::debug!("read-only overlay of the runrs binary unavailable ({e}): copying it to a sealed memfd");
            sealed_copy()
        }
    }
}

/// The running binary opened (O_PATH) through a detached read-only overlayfs whose
/// layers are the binary's directory over `scratch`. Checked to be the very file
/// that is running (inode, size, times), so a binary replaced on disk, or a file
/// of the same name in `scratch`, is never what init runs.
pub fn overlay_view(scratch: &Path) -> std::io::Result<OwnedFd> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
        MountAttrFlags,
    };
    let exe = std::fs::read_link("/proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(std::io::Error::other("no directory for /proc/self/exe"));
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    let lower = format!("{}:{}", escape_layer(dir), escape_layer(scratch));
    fsconfig_set_string(&fs, "lowerdir", lower.as_str())?;
    // xino is of no use here and only logs warnings when layers are on different
    // filesystems; older kernels do not know the option.
    let _ = fsconfig_set_string(&fs, "xino", "off");
    fsconfig_create(&fs)?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOSUID,
    )?;
    let file = crate::sys::openat(mnt.as_fd(), Path::new(name), c::O_PATH | c::O_NOFOLLOW, 0)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let via = crate::sys::fstat(file.as_fd()).map_err(|e| std::io::Error::other(e.to_string()))?;
    let running = std::fs::metadata("/proc/self/exe")?;
    use std::os::unix::fs::MetadataExt;
    let same = via.st_ino == running.ino()
        && via.st_size as u64 == running.size()
        && (via.st_mtime, via.st_mtime_nsec) == (running.mtime(), running.mtime_nsec())
        && (via.st_ctime, via.st_ctime_nsec) == (running.ctime(), running.ctime_nsec())
        && via.st_mode & c::S_IFMT == c::S_IFREG;
    if !same {
        return Err(std::io::Error::other(format!(
            "{} is no longer the running binary",
            PathBuf::from(dir).join(name).display()
        )));
    }
    Ok(file)
}

/// A layer path in overlayfs' lowerdir syntax (`:` separates layers; `\` escapes).
fn escape_layer(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

/// A sealed, read-only memfd copy of the running binary. Exec it through
/// `/proc/self/fd/N` (see [`crate::sys::fd_path`]). The copy is made per container
/// creation and dropped after the spawn, so a long-lived shim holds no extra memory.
pub fn sealed_copy() -> Result<OwnedFd, SysError> {
    let src =
        File::open("/proc/self/exe").map_err(|e| SysError::new("open", "/proc/self/exe", e))?;
    let len = src
        .metadata()
        .map_err(|e| SysError::new("stat", "/proc/self/exe", e))?
        .len();
    let mem = sys::memfd_c(c"runrs", true)?;
    sys::sendfile_all(mem.as_fd(), src.as_fd(), len, "/proc/self/exe to memfd")?;
    let seals = c::F_SEAL_SEAL | c::F_SEAL_SHRINK | c::F_SEAL_GROW | c::F_SEAL_WRITE;
    sys::add_seals(mem.as_fd(), seals, "runrs memfd")?;
    Ok(mem)
}

#[cfg(test)]
mod tests {
    #[test]
    fn layer_paths_are_escaped() {
        assert_eq!(
            super::escape_layer(std::path::Path::new("/a:b\\c")),
            "/a\\:b\\\\c"
        );
    }

    #[test]
    fn overlay_view_is_the_running_binary_and_readonly() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let fd = match super::overlay_view(scratch.path()) {
            Ok(fd) => fd,
            Err(e) => {
                println!("SKIPPED overlay_view: {e} (needs root and overlayfs with fsopen)");
                return;
            }
        };
        let p = crate::sys::fd_path(std::os::fd::AsFd::as_fd(&fd));
        let w = std::fs::OpenOptions::new().write(true).open(&p);
        assert_eq!(
            w.expect_err("writable").raw_os_error(),
            Some(crate::sys::c::EROFS),
            "the overlay must refuse writes"
        );
        let len = std::fs::metadata(&p).expect("stat").len();
        assert_eq!(len, std::fs::metadata("/proc/self/exe").expect("exe").len());
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "test scratch directory")]
    fn the_binary_layer_is_on_top_of_scratch() {
        // A file named like the binary in `scratch` must never shadow the binary.
        let scratch = tempfile::tempdir().expect("tempdir");
        if let Err(e) = super::overlay_view(scratch.path()) {
            println!("SKIPPED the_binary_layer_is_on_top_of_scratch: {e}");
            return;
        }
        let exe = std::fs::read_link("/proc/self/exe").expect("exe");
        let name = exe.file_name().expect("name");
        std::fs::write(scratch.path().join(name), b"#!/bin/sh\n").expect("decoy");
        let fd = super::overlay_view(scratch.path()).expect("binary found through overlay");
        let p = crate::sys::fd_path(std::os::fd::AsFd::as_fd(&fd));
        let len = std::fs::metadata(&p).expect("stat").len();
        assert_eq!(len, std::fs::metadata("/proc/self/exe").expect("exe").len());
    }

    #[test]
    fn copy_is_sealed_and_readonly() {
        let fd = super::sealed_copy().expect("sealed copy");
        let p = crate::sys::fd_path(std::os::fd::AsFd::as_fd(&fd));
        let r = std::fs::OpenOptions::new().write(true).open(&p);
        // Opening may succeed, but writing must not.
        if let Ok(mut f) = r {
            assert!(std::io::Write::write_all(&mut f, b"x").is_err());
        }
        let len = std::fs::metadata(&p).expect("stat").len();
        assert_eq!(len, std::fs::metadata("/proc/self/exe").expect("exe").len());
    }
}
