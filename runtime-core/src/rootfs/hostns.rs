//! A container without a mount namespace of its own (none listed in linux.namespaces:
//! the runtime's is inherited, as the runtime spec says). Its rootfs and mounts are made
//! in the runtime's mount namespace and it enters its rootfs with chroot(2), as runc
//! does; unlike runc, which leaves those mounts behind on the host, delete detaches them.
//! What to detach is told by counting the mounts stacked at the rootfs path before
//! create (a containerd rootfs is itself a mount point, which must stay). See
//! mount_namespaces(7), proc_pid_mountinfo(5).

use std::path::Path;

use crate::sys::{self, c};

/// How many mounts are stacked at `path` in this mount namespace.
pub fn mounts_at(path: &Path) -> usize {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    count_at(&text, path)
}

fn count_at(mountinfo: &str, path: &Path) -> usize {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| crate::mountinfo::unescape(mp) == path)
        .count()
}

/// Detach (lazily, with everything mounted below them) the mounts stacked at `path`
/// above the first `keep`: the rootfs bind and the container's mounts.
pub fn detach_above(path: &Path, keep: usize) {
    let mut left = mounts_at(path).saturating_sub(keep);
    while left > 0 {
        if let Err(e) = sys::umount2(path, c::MNT_DETACH) {
            tracing::warn!("detach the container's mounts at {}: {e}", path.display());
            return;
        }
        left -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_counted_at_their_unescaped_path() {
        let mi = "27 1 254:0 / / rw - ext4 /dev/vda rw\n\
                  46 27 254:0 /b/root /b/root rw - ext4 /dev/vda rw\n\
                  47 46 0:40 / /b/root/proc rw - proc proc rw\n\
                  48 46 254:0 /b/root /b/root rw - ext4 /dev/vda rw\n\
                  49 27 0:41 / /a\\040b rw - tmpfs tmpfs rw\n";
        assert_eq!(count_at(mi, Path::new("/b/root")), 2);
        assert_eq!(count_at(mi, Path::new("/b/root/proc")), 1);
        assert_eq!(count_at(mi, Path::new("/a b")), 1);
        assert_eq!(count_at(mi, Path::new("/b")), 0);
    }
}
