//! `--no-pivot` keeps the host's mounts: MS_MOVE + chroot(2) only change what `/`
//! means, the rest of the mount namespace (a copy of the host's) stays in it. The kernel
//! lets a process mount a new proc or sysfs only where a *full* one (its root, not a
//! subdirectory) is already visible without anything mounted over parts of it; the
//! host's /proc qualifies, so a process in a nested user and pid namespace could
//! mount a bare /proc (no masked paths, writable sysrq-trigger). Like runc's
//! msMoveRoot, init first takes away every full proc and sysfs mount outside the
//! rootfs: unmounted (after making it a slave, so the host keeps its own), or covered
//! with a tmpfs where it cannot be unmounted. See mount_namespaces(7), proc(5),
//! the kernel's mount_too_revealing().

use std::path::{Path, PathBuf};

use crate::sys::c;
use crate::sys::{self, SysError};

/// The mountpoints of full (root `/`) proc and sysfs mounts in `mountinfo` that are
/// not inside `rootfs`, in mountinfo order.
pub(super) fn revealing_mounts(mountinfo: &str, rootfs: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            let (root, point) = (f.get(3)?, crate::mountinfo::unescape(f.get(4)?));
            let full = *root == "/" && matches!(fstype, "proc" | "sysfs");
            (full && !point.starts_with(rootfs)).then_some(point)
        })
        .collect()
}

/// Unmount (or cover) every full proc and sysfs mount outside `rootfs` in this mount
/// namespace. Runs in init, before the rootfs is moved onto `/`.
pub(super) fn hide_host_procfs(rootfs: &Path) -> Result<(), SysError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| SysError::new("read", "/proc/self/mountinfo", e))?;
    for p in revealing_mounts(&mountinfo, rootfs) {
        let target = p.to_string_lossy();
        match sys::mount(None, &target, None, c::MS_SLAVE | c::MS_REC, None) {
            // A parent was unmounted before: nothing left to hide here.
            Err(e) if e.errno() == Some(c::ENOENT) => continue,
            r => r?,
        }
        match sys::umount2(&p, c::MNT_DETACH) {
            Err(e) if matches!(e.errno(), Some(c::EINVAL) | Some(c::EPERM)) => {
                // Not ours to unmount (a locked mount of a user namespace): hide it.
                sys::mount(Some("tmpfs"), &target, Some("tmpfs"), 0, None)?;
            }
            r => r?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_full_proc_and_sysfs_outside_the_rootfs() {
        let mi = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
23 1 0:22 / /sys rw - sysfs sysfs rw
24 22 0:23 / /proc/sys/fs/binfmt_misc rw - autofs systemd-1 rw
25 1 0:24 /sub /mnt/partial rw - proc proc rw
26 1 0:25 / /run/b/rootfs/proc rw - proc proc rw
27 1 0:26 / /with\\040space rw - sysfs sysfs rw
28 1 0:27 / /run/b/rootfs-other rw - proc proc rw
";
        assert_eq!(
            revealing_mounts(mi, Path::new("/run/b/rootfs")),
            vec![
                PathBuf::from("/proc"),
                PathBuf::from("/sys"),
                PathBuf::from("/with space"),
                PathBuf::from("/run/b/rootfs-other"),
            ]
        );
    }
}
