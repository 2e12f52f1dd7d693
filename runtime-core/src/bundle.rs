//! The rootfs mounts a container manager hands the runtime (containerd's snapshot
//! mounts: overlay, bind), mounted onto `<bundle>/rootfs` in the runtime's own mount
//! namespace before the container is created, and unmounted after it is deleted.
//! Long overlay option strings (more than a page) are shortened the way containerd
//! does: relative lowerdirs from their common parent, in a short-lived thread that
//! has its own working directory (unshare(CLONE_FS)). See mount(2), overlayfs docs.

use std::path::{Path, PathBuf};

use crate::rootfs::flags;
use crate::sys::c;
use crate::sys::{self, SysError};

/// One mount of the rootfs stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootfsMount {
    /// Filesystem type (`overlay`, `bind`, ...).
    pub typ: String,
    /// Source.
    pub source: String,
    /// Options, as in fstab.
    pub options: Vec<String>,
}

/// Mounting the rootfs failed.
#[derive(Debug, thiserror::Error)]
#[error("mount rootfs {typ} {source_path} on {target}")]
pub struct MountError {
    /// Type.
    pub typ: String,
    /// Source.
    pub source_path: String,
    /// Target.
    pub target: PathBuf,
    /// The failed call.
    #[source]
    pub source: SysError,
}

const PAGE: usize = 4096;

/// Mount `mounts` in order on `target`; on failure, unmount what was mounted.
pub fn mount_all(mounts: &[RootfsMount], target: &Path) -> Result<(), MountError> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            for _ in 0..i {
                let _ = sys::umount2(target, c::MNT_DETACH);
            }
            return Err(MountError {
                typ: m.typ.clone(),
                source_path: m.source.clone(),
                target: target.to_path_buf(),
                source: e,
            });
        }
    }
    Ok(())
}

fn mount_one(m: &RootfsMount, target: &Path) -> Result<(), SysError> {
    let opts = flags::parse(&m.options);
    let t = target.to_string_lossy().into_owned();
    if opts.is_bind() || m.typ == "bind" {
        sys::mount(
            Some(&m.source),
            &t,
            None,
            c::MS_BIND | (opts.flags & c::MS_REC),
            None,
        )?;
        let extra = opts.flags & !(c::MS_BIND | c::MS_REC | c::MS_REMOUNT);
        if extra != 0 {
            sys::mount(None, &t, None, c::MS_BIND | c::MS_REMOUNT | extra, None)?;
        }
        for p in &opts.propagation {
            sys::mount(None, &t, None, *p, None)?;
        }
        return Ok(());
    }
    let data = opts.data_string().unwrap_or_default();
    if m.typ == "overlay" && data.len() >= PAGE {
        return mount_overlay_relative(&m.source, &t, opts.flags, &data);
    }
    sys::mount(
        Some(&m.source),
        &t,
        Some(&m.typ),
        opts.flags,
        if data.is_empty() { None } else { Some(&data) },
    )
}

/// The longest common parent directory of `paths`.
fn common_dir(paths: &[&str]) -> String {
    let mut prefix: Vec<&str> = paths[0].split('/').collect();
    prefix.pop();
    for p in &paths[1..] {
        let parts: Vec<&str> = p.split('/').collect();
        let n = prefix
            .iter()
            .zip(parts.iter())
            .take_while(|(a, b)| a == b)
            .count();
        prefix.truncate(n);
    }
    let s = prefix.join("/");
    if s.is_empty() {
        "/".into()
    } else {
        s
    }
}

/// Shorten `lowerdir=` by making the layers relative to their common parent.
pub fn compact_lowerdirs(data: &str) -> Option<(String, String)> {
    let opts: Vec<&str> = data.split(',').collect();
    let lower = opts.iter().find_map(|o| o.strip_prefix("lowerdir="))?;
    let layers: Vec<&str> = lower.split(':').collect();
    let dir = common_dir(&layers);
    if dir == "/" {
        return None;
    }
    let rel: Vec<String> = layers
        .iter()
        .map(|l| l.strip_prefix(&format!("{dir}/")).unwrap_or(l).to_string())
        .collect();
    let new: Vec<String> = opts
        .iter()
        .map(|o| {
            if o.starts_with("lowerdir=") {
                format!("lowerdir={}", rel.join(":"))
            } else {
                o.to_string()
            }
        })
        .collect();
    Some((dir, new.join(",")))
}

fn mount_overlay_relative(
    source: &str,
    target: &str,
    flags: u64,
    data: &str,
) -> Result<(), SysError> {
    let Some((dir, short)) = compact_lowerdirs(data) else {
        return sys::mount(Some(source), target, Some("overlay"), flags, Some(data));
    };
    let (source, target) = (source.to_string(), target.to_string());
    // A thread of our own, so the chdir does not leak into other threads' cwd.
    std::thread::spawn(move || -> Result<(), SysError> {
        sys::unshare(c::CLONE_FS)?;
        sys::chdir(Path::new(&dir))?;
        sys::mount(Some(&source), &target, Some("overlay"), flags, Some(&short))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(SysError::new(
            "mount",
            "overlay",
            std::io::Error::other("mount thread panicked"),
        ))
    })
}

/// Unmount everything stacked on `target` (until it is no longer a mount point).
pub fn unmount_all(target: &Path) -> Result<(), SysError> {
    for _ in 0..64 {
        match sys::umount2(target, c::MNT_DETACH) {
            Ok(()) => continue,
            Err(e) if matches!(e.errno(), Some(c::EINVAL) | Some(c::ENOENT)) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_lowerdirs() {
        let data = "index=off,lowerdir=/var/lib/c/snapshots/3/fs:/var/lib/c/snapshots/2/fs,upperdir=/var/lib/c/snapshots/4/fs";
        let (dir, short) = compact_lowerdirs(data).expect("compact");
        assert_eq!(dir, "/var/lib/c/snapshots");
        assert_eq!(
            short,
            "index=off,lowerdir=3/fs:2/fs,upperdir=/var/lib/c/snapshots/4/fs"
        );
    }
}
