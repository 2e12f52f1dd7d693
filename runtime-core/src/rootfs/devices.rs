//! Device nodes in the container's /dev: runc's default set (null, zero, full, random,
//! urandom, tty) plus `linux.devices`, created with mknod, or bind-mounted from the host
//! where mknod is not allowed (user namespaces). Then the /dev symlinks (fd, stdin,
//! stdout, stderr, core) and ptmx pointing at the container's devpts.
//! See mknod(2), the OCI config-linux.md "Devices" and "Default Devices".

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::{safe, RootfsError};
use crate::sys::c;
use crate::sys::{self, fd_path};

/// A device node to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Container path (`/dev/null`).
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: u32,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// runc's default devices.
pub fn defaults() -> Vec<Device> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/tty", 5, 0),
        ("/dev/urandom", 1, 9),
        ("/dev/random", 1, 8),
    ]
    .into_iter()
    .map(|(p, major, minor)| Device {
        path: p.into(),
        kind: c::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The defaults overridden and extended by the spec's devices.
pub fn from_spec(spec_devices: &[LinuxDevice]) -> Vec<Device> {
    let mut all = defaults();
    for d in spec_devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => c::S_IFBLK,
            LinuxDeviceType::P => c::S_IFIFO,
            _ => c::S_IFCHR,
        };
        let dev = Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        all.retain(|x| x.path != dev.path);
        all.push(dev);
    }
    all
}

/// Create `devices` inside the rootfs. `bind` bind-mounts the host node instead of
/// calling mknod (user namespaces).
pub fn create(
    root: std::os::fd::BorrowedFd<'_>,
    devices: &[Device],
    bind: bool,
) -> Result<(), RootfsError> {
    let old = sys::umask(0);
    let r = devices.iter().try_for_each(|d| create_one(root, d, bind));
    sys::umask(old);
    r
}

fn create_one(
    root: std::os::fd::BorrowedFd<'_>,
    d: &Device,
    bind: bool,
) -> Result<(), RootfsError> {
    let err = |e: sys::SysError| RootfsError::Device {
        path: d.path.clone(),
        source: e,
    };
    let rel = safe::relative(&d.path);
    let name = PathBuf::from(rel.file_name().unwrap_or_default());
    let parent =
        safe::mkdir_all(root, rel.parent().unwrap_or(Path::new("")), 0o755).map_err(err)?;
    if bind {
        // An empty file to mount the host's node over.
        match sys::openat(
            parent.as_fd(),
            &name,
            c::O_CREAT | c::O_EXCL | c::O_WRONLY | c::O_NOFOLLOW,
            0o644,
        ) {
            Ok(_) => {}
            Err(e) if e.errno() == Some(c::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
        let target = safe::open_in_root_nofollow(root, &d.path).map_err(err)?;
        return sys::mount(
            Some(&d.path.to_string_lossy()),
            &fd_path(target.as_fd()),
            None,
            c::MS_BIND,
            None,
        )
        .map_err(err);
    }
    let dev = sys::makedev(d.major as u32, d.minor as u32);
    match sys::mknodat(parent.as_fd(), &name, d.kind | d.mode, dev) {
        Ok(()) => {}
        // runc leaves an existing node alone.
        Err(e) if e.errno() == Some(c::EEXIST) => return Ok(()),
        Err(e) => return Err(err(e)),
    }
    let node = sys::openat2(
        parent.as_fd(),
        &name,
        c::O_PATH,
        0,
        sys::resolve::NO_SYMLINKS,
    )
    .map_err(err)?;
    // fchown does not work on O_PATH descriptors; go through the magic link.
    chown_path(&fd_path(node.as_fd()), d.uid, d.gid).map_err(err)
}

fn chown_path(path: &str, uid: u32, gid: u32) -> Result<(), sys::SysError> {
    sys::chown(Path::new(path), uid, gid)
}

/// /dev/fd, /dev/std{in,out,err} (and /dev/core where the host has /proc/kcore).
pub fn symlinks(root: std::os::fd::BorrowedFd<'_>) -> Result<(), RootfsError> {
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    let dev = safe::mkdir_all(root, Path::new("/dev"), 0o755).map_err(|e| RootfsError::Device {
        path: "/dev".into(),
        source: e,
    })?;
    for (target, name) in links {
        match sys::symlinkat(Path::new(target), dev.as_fd(), Path::new(name)) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(c::EEXIST) => {}
            Err(e) => {
                return Err(RootfsError::Device {
                    path: Path::new("/dev").join(name),
                    source: e,
                })
            }
        }
    }
    Ok(())
}

/// Replace /dev/ptmx with a symlink to the container's devpts (pts/ptmx).
pub fn ptmx(root: std::os::fd::BorrowedFd<'_>) -> Result<(), RootfsError> {
    let err = |e| RootfsError::Device {
        path: "/dev/ptmx".into(),
        source: e,
    };
    let dev = safe::mkdir_all(root, Path::new("/dev"), 0o755).map_err(err)?;
    match sys::unlinkat(dev.as_fd(), Path::new("ptmx"), 0) {
        Ok(()) => {}
        Err(e) if e.errno() == Some(c::ENOENT) => {}
        Err(e) => return Err(err(e)),
    }
    sys::symlinkat(Path::new("pts/ptmx"), dev.as_fd(), Path::new("ptmx")).map_err(err)
}

/// runc's reOpenDevNull: after the root switch, stdio descriptors that are a null
/// device from outside the container (the host's /dev/null a runtime was given) are
/// replaced by the container's own /dev/null. A file on a mount the container does not
/// have cannot be checkpointed by CRIU ("Can't lookup mount"). Nothing happens when the
/// container's /dev/null is not the null device, a symlink included (CVE-2025-31133: the
/// image may point it at a /proc file; it is never followed).
pub fn reopen_devnull() -> Result<(), RootfsError> {
    let err = |e| RootfsError::Device {
        path: "/dev/null".into(),
        source: e,
    };
    let null = match sys::open(Path::new("/dev/null"), c::O_RDWR | c::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(e) if matches!(e.errno(), Some(c::ENOENT | c::ELOOP)) => return Ok(()),
        Err(e) => return Err(err(e)),
    };
    let ns = sys::fstat(null.as_fd()).map_err(err)?;
    if ns.st_mode & c::S_IFMT != c::S_IFCHR {
        return Ok(());
    }
    for fd in 0..3 {
        // 0, 1 and 2 stay open (dup2 below replaces them atomically).
        let Some(b) = sys::stdio(fd) else { continue };
        let Ok(st) = sys::fstat(b) else { continue };
        let same_file = st.st_dev == ns.st_dev && st.st_ino == ns.st_ino;
        if st.st_mode & c::S_IFMT == c::S_IFCHR && st.st_rdev == ns.st_rdev && !same_file {
            // `null` is a fresh descriptor, never `fd` itself: dup2 is dup3 here.
            sys::dup2(null.as_fd(), fd).map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_devices_override_defaults() {
        let d: LinuxDevice = serde_json::from_value(serde_json::json!({
            "path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 5, "gid": 6
        }))
        .expect("device");
        let f: LinuxDevice = serde_json::from_value(serde_json::json!({
            "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229
        }))
        .expect("device");
        let all = from_spec(&[d, f]);
        assert_eq!(all.len(), 7);
        let null = all
            .iter()
            .find(|d| d.path == Path::new("/dev/null"))
            .expect("null");
        assert_eq!((null.mode, null.uid, null.gid), (0o600, 5, 6));
        assert!(all
            .iter()
            .any(|d| d.path == Path::new("/dev/fuse") && d.minor == 229));
    }
}
