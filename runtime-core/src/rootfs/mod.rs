//! The container's root filesystem, prepared by init inside its new mount namespace:
//! root propagation, the rootfs bind mount, the spec's mounts, /dev (devices, symlinks,
//! ptmx), masked and read-only paths, a read-only root, then pivot_root(2) (or
//! MS_MOVE + chroot with `--no-pivot`).
//!
//! Everything below the rootfs is resolved relative to an O_PATH descriptor of it (see
//! [`safe`]). See the OCI config.md "Root" and "Mounts", config-linux.md
//! "Rootfs Mount Propagation", "Masked Paths", "Readonly Paths"; pivot_root(2).

pub mod devices;
pub mod flags;
pub mod hostns;
pub mod mounts;
mod no_pivot;
pub mod paths;
pub mod safe;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::sys::c;
use crate::sys::{self, SysError};

/// Failures while preparing the rootfs.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Changing the propagation of `/` or the rootfs parent.
    #[error("set mount propagation of {0}")]
    Propagation(String, #[source] SysError),
    /// Bind-mounting the rootfs onto itself.
    #[error("bind mount rootfs {0}")]
    BindRoot(PathBuf, #[source] SysError),
    /// One of the spec's mounts.
    #[error("mount {typ} on {dest}")]
    Mount {
        /// Destination inside the container.
        dest: PathBuf,
        /// Mount type.
        typ: String,
        /// The failed step.
        #[source]
        source: SysError,
    },
    /// A destination the runtime refuses.
    #[error("{dest}: {reason}")]
    Forbidden {
        /// The path.
        dest: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// Creating a device node or /dev symlink.
    #[error("create device {path}")]
    Device {
        /// Container path of the device.
        path: PathBuf,
        /// The failed step.
        #[source]
        source: SysError,
    },
    /// Masking a path.
    #[error("mask {path}")]
    Masked {
        /// The masked path.
        path: PathBuf,
        /// The failed step.
        #[source]
        source: SysError,
    },
    /// Making a path read-only.
    #[error("make {path} read-only")]
    Readonly {
        /// The path.
        path: PathBuf,
        /// The failed step.
        #[source]
        source: SysError,
    },
    /// Remounting the root read-only.
    #[error("remount rootfs read-only")]
    ReadonlyRoot(#[source] SysError),
    /// Remounting a read-only /dev read-only once populated.
    #[error("remount /dev read-only")]
    ReadonlyDev(#[source] SysError),
    /// pivot_root or its fallback.
    #[error("switch root to {0}")]
    Pivot(PathBuf, #[source] SysError),
}

/// Whether the spec bind-mounts /dev from the host (then runrs creates no devices).
pub fn dev_is_bind(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        is_dev(m.destination())
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

/// Whether a mount destination is the container's /dev.
pub(crate) fn is_dev(dest: &Path) -> bool {
    Path::new("/").join(safe::relative(dest)) == Path::new("/dev")
}

/// Make a read-only /dev filesystem (`{destination: /dev, options: [ro, …]}`) read-only,
/// now that it is populated: it was mounted writable so that the devices, symlinks,
/// pts, shm and console could be made in it (runc's finalizeRootfs). The mounts below
/// it keep their own flags.
pub fn readonly_dev(spec: &Spec, root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let Some(m) = spec
        .mounts()
        .iter()
        .flatten()
        .rev()
        .find(|m| is_dev(m.destination()))
    else {
        return Ok(());
    };
    let opts = flags::parse(m.options().as_deref().unwrap_or_default());
    if opts.is_bind() || m.typ().as_deref() == Some("bind") || opts.flags & c::MS_RDONLY == 0 {
        return Ok(());
    }
    let dev = safe::open_in_root(root, Path::new("/dev")).map_err(RootfsError::ReadonlyDev)?;
    sys::mount(
        None,
        &sys::fd_path(dev.as_fd()),
        None,
        c::MS_REMOUNT | opts.flags | c::MS_RDONLY,
        None,
    )
    .map_err(RootfsError::ReadonlyDev)
}

/// Set the propagation of `/` (rootfsPropagation, default rslave) and bind-mount the
/// rootfs onto itself so it is a mount point pivot_root can use. Returns an O_PATH
/// descriptor of the rootfs. Without a mount namespace of its own (`own_mntns` false,
/// see [`hostns`]) the propagation of the runtime's mounts is left alone (runc would
/// change the host's).
pub fn enter(spec: &Spec, rootfs: &Path, own_mntns: bool) -> Result<OwnedFd, RootfsError> {
    if !own_mntns {
        return bind_root(rootfs);
    }
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(flags::propagation)
        .unwrap_or(c::MS_SLAVE | c::MS_REC);
    sys::mount(None, "/", None, prop | c::MS_REC, None)
        .map_err(|e| RootfsError::Propagation("/".into(), e))?;
    parent_mount_private(rootfs)?;
    bind_root(rootfs)
}

fn bind_root(rootfs: &Path) -> Result<OwnedFd, RootfsError> {
    let r = rootfs.to_string_lossy();
    sys::mount(Some(&r), &r, Some("bind"), c::MS_BIND | c::MS_REC, None)
        .map_err(|e| RootfsError::BindRoot(rootfs.to_path_buf(), e))?;
    sys::open(rootfs, c::O_PATH | c::O_DIRECTORY, 0)
        .map_err(|e| RootfsError::BindRoot(rootfs.to_path_buf(), e))
}

/// Make the mount that holds the rootfs private (runc's `rootfsParentMountPrivate`): the
/// rootfs bind below must not propagate to other namespaces, and pivot_root(2) fails
/// with EINVAL when the new root's parent mount is shared, as it is when the rootfs is
/// itself a mount point (containerd's overlay) and `/` is rshared (rootfsPropagation
/// rshared, or the host's default). Walks up from the rootfs: EINVAL means "not a mount
/// point", anything else is an error.
fn parent_mount_private(rootfs: &Path) -> Result<(), RootfsError> {
    let mut path = rootfs;
    loop {
        match sys::mount(None, &path.to_string_lossy(), None, c::MS_PRIVATE, None) {
            Ok(()) => return Ok(()),
            Err(e) if e.errno() == Some(c::EINVAL) => match path.parent() {
                Some(p) => path = p,
                None => return Err(RootfsError::Propagation(path.display().to_string(), e)),
            },
            Err(e) => return Err(RootfsError::Propagation(path.display().to_string(), e)),
        }
    }
}

/// Create the devices and /dev symlinks (unless /dev is a bind mount from the host).
pub fn setup_dev(spec: &Spec, root: BorrowedFd<'_>, userns: bool) -> Result<(), RootfsError> {
    if dev_is_bind(spec) {
        return Ok(());
    }
    let spec_devs = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    devices::create(root, &devices::from_spec(&spec_devs), userns)?;
    devices::symlinks(root)?;
    devices::ptmx(root)
}

/// Masked and read-only paths of the spec.
pub fn protect_paths(
    spec: &Spec,
    root: BorrowedFd<'_>,
    devnull: BorrowedFd<'_>,
) -> Result<(), RootfsError> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    if let Some(ro) = linux.readonly_paths() {
        paths::readonly(root, ro)?;
    }
    if let Some(masked) = linux.masked_paths() {
        if !masked.is_empty() {
            paths::verify_devnull(devnull)?;
            paths::mask(root, masked, devnull)?;
        }
    }
    Ok(())
}

/// Remount the rootfs read-only (root.readonly).
pub fn readonly_root(rootfs: &Path) -> Result<(), RootfsError> {
    let r = rootfs.to_string_lossy();
    let keep =
        flags::locked_from_statvfs(sys::statvfs_flags(&r).map_err(RootfsError::ReadonlyRoot)?);
    sys::mount(
        None,
        &r,
        None,
        c::MS_BIND | c::MS_REMOUNT | c::MS_RDONLY | keep,
        None,
    )
    .map_err(RootfsError::ReadonlyRoot)
}

/// Make the rootfs the process' root: pivot_root(".", ".") and detach the old root
/// (runc's trick, needs no directory in the rootfs), or MS_MOVE + chroot after the
/// host's full proc and sysfs mounts are out of reach ([`no_pivot`]); without a mount
/// namespace of its own, chroot alone (moving or pivoting would change the runtime's
/// root; runc chroots too).
pub fn switch_root(
    rootfs: &Path,
    root: BorrowedFd<'_>,
    no_pivot: bool,
    own_mntns: bool,
) -> Result<(), RootfsError> {
    let err = |e| RootfsError::Pivot(rootfs.to_path_buf(), e);
    if !own_mntns {
        sys::fchdir(root).map_err(err)?;
        sys::chroot(Path::new(".")).map_err(err)?;
        return sys::chdir(Path::new("/")).map_err(err);
    }
    if no_pivot {
        no_pivot::hide_host_procfs(rootfs).map_err(err)?;
        sys::fchdir(root).map_err(err)?;
        sys::mount(Some(&rootfs.to_string_lossy()), "/", None, c::MS_MOVE, None).map_err(err)?;
        sys::chroot(Path::new(".")).map_err(err)?;
        return sys::chdir(Path::new("/")).map_err(err);
    }
    let old = sys::open(Path::new("/"), c::O_DIRECTORY | c::O_RDONLY, 0).map_err(err)?;
    let new = sys::open(rootfs, c::O_DIRECTORY | c::O_RDONLY, 0).map_err(err)?;
    sys::fchdir(new.as_fd()).map_err(err)?;
    sys::pivot_root(Path::new("."), Path::new(".")).map_err(err)?;
    sys::fchdir(old.as_fd()).map_err(err)?;
    // The old root is now stacked on "."; make sure unmounting it does not propagate
    // to the host, then detach it.
    sys::mount(None, ".", None, c::MS_SLAVE | c::MS_REC, None).map_err(err)?;
    sys::umount2(Path::new("."), c::MNT_DETACH).map_err(err)?;
    sys::chdir(Path::new("/")).map_err(err)
}
