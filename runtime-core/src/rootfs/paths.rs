//! `linux.maskedPaths` and `linux.readonlyPaths`.
//!
//! Masked files get the host's /dev/null bind-mounted over them (opened by runrs before
//! it entered the container, and checked to be the real 1:3 character device), masked
//! directories a read-only empty tmpfs; targets are opened without following any
//! symlink, so a container cannot redirect a mask onto another file (CVE-2025-31133).
//! Read-only paths are bind-mounted onto themselves and remounted read-only.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::{flags, safe, RootfsError};
use crate::sys::c;
use crate::sys::{self, fd_path};

/// Check that `fd` is the real null device (character device 1:3).
pub fn verify_devnull(fd: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let st = sys::fstat(fd).map_err(|e| RootfsError::Masked {
        path: "/dev/null".into(),
        source: e,
    })?;
    if !sys::is_null_device(&st) {
        return Err(RootfsError::Forbidden {
            dest: "/dev/null".into(),
            reason: "is not the null device (1:3); refusing to use it for masking",
        });
    }
    Ok(())
}

/// Mask every path in `paths`. Missing paths are skipped, as runc does.
pub fn mask(
    root: BorrowedFd<'_>,
    paths: &[String],
    devnull: BorrowedFd<'_>,
) -> Result<(), RootfsError> {
    for p in paths {
        let err = |e| RootfsError::Masked {
            path: p.into(),
            source: e,
        };
        let target = match safe::open_in_root_nofollow(root, Path::new(p)) {
            Ok(fd) => fd,
            Err(e) if e.errno() == Some(c::ENOENT) => continue,
            Err(e) if e.errno() == Some(c::ELOOP) || e.errno() == Some(c::EXDEV) => {
                return Err(RootfsError::Forbidden {
                    dest: p.into(),
                    reason: "is a symlink (or crosses one); refusing to mask it",
                })
            }
            Err(e) => return Err(err(e)),
        };
        if safe::is_dir(target.as_fd()).map_err(err)? {
            sys::mount(
                Some("tmpfs"),
                &fd_path(target.as_fd()),
                Some("tmpfs"),
                c::MS_RDONLY,
                Some("size=0k"),
            )
            .map_err(err)?;
        } else {
            sys::mount(
                Some(&fd_path(devnull)),
                &fd_path(target.as_fd()),
                None,
                c::MS_BIND,
                None,
            )
            .map_err(err)?;
        }
    }
    Ok(())
}

/// Make every path in `paths` read-only. Missing paths are skipped.
pub fn readonly(root: BorrowedFd<'_>, paths: &[String]) -> Result<(), RootfsError> {
    for p in paths {
        let err = |e| RootfsError::Readonly {
            path: p.into(),
            source: e,
        };
        let target = match safe::open_in_root_nofollow(root, Path::new(p)) {
            Ok(fd) => fd,
            Err(e) if e.errno() == Some(c::ENOENT) => continue,
            Err(e) if e.errno() == Some(c::ELOOP) || e.errno() == Some(c::EXDEV) => {
                return Err(RootfsError::Forbidden {
                    dest: p.into(),
                    reason: "is a symlink (or crosses one); refusing to make it read-only",
                })
            }
            Err(e) => return Err(err(e)),
        };
        let path = fd_path(target.as_fd());
        sys::mount(Some(&path), &path, None, c::MS_BIND | c::MS_REC, None).map_err(err)?;
        let mounted = safe::open_in_root_nofollow(root, Path::new(p)).map_err(err)?;
        // Keep the mount's existing flags (relatime, nosuid, …), add read-only.
        let path = fd_path(mounted.as_fd());
        let keep = flags::locked_from_statvfs(sys::statvfs_flags(&path).map_err(err)?);
        sys::mount(
            None,
            &path,
            None,
            c::MS_BIND | c::MS_REMOUNT | c::MS_RDONLY | keep,
            None,
        )
        .map_err(err)?;
    }
    Ok(())
}
