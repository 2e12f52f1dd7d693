//! The OCI `mounts` list: bind and rbind mounts with their remount options, proc,
//! sysfs, tmpfs (with runc's `tmpcopyup`), devpts, mqueue, and cgroup/cgroup2 (v1
//! hierarchies are emulated with a tmpfs and one mount per controller, like runc).
//!
//! Destinations are resolved with [`super::safe`] and mounted through their
//! `/proc/self/fd/N` magic link, so the kernel mounts on exactly the file that was
//! resolved inside the rootfs. See mount(2), mount_setattr(2).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use super::flags::{self, MountOptions};
use super::{safe, RootfsError};
use crate::cgroups::{CgroupPaths, Mode, UNIFIED};
use crate::sys::c;
use crate::sys::{self, fd_path};

/// What the mount code needs to know about the container.
pub struct MountContext<'a> {
    /// O_PATH descriptor of the rootfs.
    pub root: BorrowedFd<'a>,
    /// The container's cgroups, for cgroup mounts.
    pub cgroup: &'a CgroupPaths,
    /// v1 hierarchy mountpoint names (`cpu,cpuacct`, `systemd`) with their controllers.
    pub cgroup_mounts: &'a [(String, Vec<String>)],
    /// The container has its own user namespace.
    pub userns: bool,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// SELinux mount label, appended as `context=` for filesystems that take it.
    pub mount_label: Option<&'a str>,
}

/// Files under /proc that may be mounted over (lxcfs and friends), as runc allows.
const PROC_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Mount one entry of the spec's `mounts`.
pub fn mount(ctx: &MountContext<'_>, m: &Mount) -> Result<(), RootfsError> {
    let dest = m.destination().clone();
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = flags::parse(m.options().as_deref().unwrap_or_default());
    let err = |e: sys::SysError| RootfsError::Mount {
        dest: dest.clone(),
        typ: if opts.is_bind() {
            "bind".into()
        } else {
            typ.into()
        },
        source: e,
    };
    check_proc_dest(&dest, typ, m.source().as_deref())?;
    if opts.is_bind() || typ == "bind" {
        let source = m.source().clone().unwrap_or_default();
        return bind(ctx, &source, &dest, &opts).map_err(err);
    }
    if matches!(typ, "proc" | "sysfs") {
        check_plain_dir(ctx.root, &dest).map_err(|e| match e.errno() {
            Some(c::ELOOP) | Some(c::EXDEV) | Some(c::ENOTDIR) => RootfsError::Forbidden {
                dest: dest.clone(),
                // runc's wording, which callers match on.
                reason: if typ == "proc" {
                    "filesystem \"proc\" must be mounted on ordinary directory (not a symlink or a file)"
                } else {
                    "filesystem \"sysfs\" must be mounted on ordinary directory (not a symlink or a file)"
                },
            },
            _ => err(e),
        })?;
    }
    match typ {
        "cgroup" | "cgroup2" => cgroup(ctx, &dest, typ, &opts).map_err(err),
        "sysfs" => {
            let r = plain(ctx, m, &dest, &opts);
            match r {
                // In a user namespace without its own network namespace sysfs cannot be
                // mounted; runc falls back to a recursive bind of the host's /sys.
                Err(e) if ctx.userns && e.errno() == Some(c::EPERM) => {
                    let mut o = opts.clone();
                    o.flags |= c::MS_BIND | c::MS_REC;
                    bind(ctx, Path::new("/sys"), &dest, &o).map_err(err)
                }
                r => r.map_err(err),
            }
        }
        _ => plain(ctx, m, &dest, &opts).map_err(err),
    }
}

/// The destination of a proc or sysfs mount, if it exists, must be a directory reached
/// without any symlink (runc: "must be mounted on ordinary directory"), so the kernel
/// interfaces the runtime and the container rely on are where they are expected.
fn check_plain_dir(root: BorrowedFd<'_>, dest: &Path) -> Result<(), sys::SysError> {
    match safe::open_in_root_nofollow(root, dest) {
        Ok(fd) if safe::is_dir(fd.as_fd())? => Ok(()),
        Ok(_) => Err(sys::SysError::new(
            "check mount destination",
            dest.display().to_string(),
            std::io::Error::from_raw_os_error(c::ENOTDIR),
        )),
        Err(e) if e.errno() == Some(c::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

fn check_proc_dest(dest: &Path, typ: &str, source: Option<&Path>) -> Result<(), RootfsError> {
    let clean = Path::new("/").join(safe::relative(dest));
    if clean == Path::new("/proc") || !clean.starts_with("/proc") {
        return Ok(());
    }
    if PROC_ALLOWED.iter().any(|p| clean == Path::new(p)) {
        return Ok(());
    }
    // A procfs mounted over a procfs subdirectory is harmless; anything else could hide
    // or replace kernel interfaces the runtime relies on.
    if typ == "proc" || source == Some(Path::new("proc")) {
        return Ok(());
    }
    Err(RootfsError::Forbidden {
        dest: dest.to_path_buf(),
        reason: "cannot be mounted because it is inside /proc",
    })
}

/// Bind-mount host `source` at `dest`, then apply the options a bind cannot take at once.
pub fn bind(
    ctx: &MountContext<'_>,
    source: &Path,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), sys::SysError> {
    let is_dir = std::fs::metadata(source)
        .map_err(|e| sys::SysError::new("stat", source.display().to_string(), e))?
        .is_dir();
    let target = safe::ensure(ctx.root, dest, is_dir)?;
    let src = source.to_string_lossy();
    sys::mount(
        Some(&src),
        &fd_path(target.as_fd()),
        None,
        c::MS_BIND | (opts.flags & c::MS_REC),
        None,
    )?;
    let mounted = safe::open_in_root(ctx.root, dest)?;
    let extra = opts.flags & !(c::MS_REC | c::MS_REMOUNT | c::MS_BIND);
    if extra != 0 {
        remount_bind(mounted.as_fd(), extra, opts.cleared)?;
    }
    finish(mounted.as_fd(), opts)
}

/// Remount a bind mount with `flags`, keeping flags the kernel locks (a bind in a
/// user namespace cannot drop nosuid/nodev/noexec/ro of its source).
pub fn remount_bind(target: BorrowedFd<'_>, flags: u64, cleared: u64) -> Result<(), sys::SysError> {
    let path = fd_path(target);
    let base = c::MS_BIND | c::MS_REMOUNT;
    match sys::mount(None, &path, None, base | flags, None) {
        Err(e) if e.errno() == Some(c::EPERM) => {
            let locked = flags::locked_from_statvfs(sys::statvfs_flags(&path)?)
                & (c::MS_NOSUID | c::MS_NODEV | c::MS_NOEXEC | c::MS_RDONLY)
                & !cleared;
            sys::mount(None, &path, None, base | flags | locked, None)
        }
        r => r,
    }
}

/// Apply propagation changes and recursive attributes to a mounted target.
fn finish(mounted: BorrowedFd<'_>, opts: &MountOptions) -> Result<(), sys::SysError> {
    let path = fd_path(mounted);
    for p in &opts.propagation {
        sys::mount(None, &path, None, *p, None)?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        mount_setattr_recursive(mounted, opts.rec_set, opts.rec_clear)?;
    }
    Ok(())
}

fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64, clear: u64) -> Result<(), sys::SysError> {
    const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
    let mut clr = clear;
    // Changing the atime mode needs the whole atime field cleared first.
    if set & MOUNT_ATTR_ATIME_MASK != 0 || clear & MOUNT_ATTR_ATIME_MASK != 0 {
        clr |= MOUNT_ATTR_ATIME_MASK;
    }
    sys::mount_setattr_recursive(fd, set, clr)
}

fn with_label(data: Option<String>, typ: &str, label: Option<&str>) -> Option<String> {
    let Some(l) = label.filter(|l| !l.is_empty()) else {
        return data;
    };
    // Filesystems without xattr labels take the label as a mount option.
    if matches!(
        typ,
        "proc" | "sysfs" | "cgroup" | "cgroup2" | "mqueue" | "bpf"
    ) {
        return data;
    }
    let ctx = format!("context=\"{l}\"");
    Some(match data {
        Some(d) => format!("{d},{ctx}"),
        None => ctx,
    })
}

/// A filesystem mount (proc, tmpfs, devpts, mqueue, overlay, …).
fn plain(
    ctx: &MountContext<'_>,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), sys::SysError> {
    let typ = m.typ().as_deref().unwrap_or("");
    let target = safe::ensure(ctx.root, dest, true)?;
    // Keep the directory's old contents reachable for tmpcopyup.
    let lower: Option<OwnedFd> = if opts.tmpcopyup && typ == "tmpfs" {
        Some(sys::openat2(
            target.as_fd(),
            Path::new("."),
            c::O_RDONLY | c::O_DIRECTORY,
            0,
            0,
        )?)
    } else {
        None
    };
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_string());
    let mut flags = opts.flags;
    // tmpcopyup writes into the new tmpfs: mount it writable, remount read-only after.
    // So for /dev, which is populated later (`super::readonly_dev` makes it read-only).
    let dev = super::is_dev(dest);
    let ro_later = (lower.is_some() || dev) && flags & c::MS_RDONLY != 0;
    if ro_later {
        flags &= !c::MS_RDONLY;
    }
    let data = with_label(opts.data_string(), typ, ctx.mount_label);
    sys::mount(
        Some(&source),
        &fd_path(target.as_fd()),
        Some(typ),
        flags,
        data.as_deref(),
    )?;
    let mounted = safe::open_in_root(ctx.root, dest)?;
    if let Some(lower) = lower {
        copy_tree(lower.as_fd(), mounted.as_fd())?;
        if ro_later && !dev {
            sys::mount(
                None,
                &fd_path(mounted.as_fd()),
                None,
                c::MS_REMOUNT | flags | c::MS_RDONLY,
                data.as_deref(),
            )?;
        }
    }
    finish(mounted.as_fd(), opts)
}

/// Copy a directory tree (files, dirs, symlinks; modes and owners) between two
/// directory descriptors, for tmpcopyup.
fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), sys::SysError> {
    use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
    let src_root = PathBuf::from(fd_path(from));
    let dst_root = PathBuf::from(fd_path(to));
    let io = |what: &'static str, p: &Path| {
        let p = p.display().to_string();
        move |e| sys::SysError::new(what, p, e)
    };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let src_dir = src_root.join(&rel);
        for entry in std::fs::read_dir(&src_dir).map_err(io("read_dir", &src_dir))? {
            let entry = entry.map_err(io("read_dir", &src_dir))?;
            let r = rel.join(entry.file_name());
            let s = src_root.join(&r);
            let d = dst_root.join(&r);
            let md = std::fs::symlink_metadata(&s).map_err(io("stat", &s))?;
            let ft = md.file_type();
            if ft.is_dir() {
                std::fs::create_dir(&d).map_err(io("mkdir", &d))?;
                stack.push(r);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&s).map_err(io("readlink", &s))?;
                std::os::unix::fs::symlink(&t, &d).map_err(io("symlink", &d))?;
            } else if ft.is_file() {
                std::fs::copy(&s, &d).map_err(io("copy", &d))?;
            } else {
                continue;
            }
            lchown(&d, Some(md.uid()), Some(md.gid())).map_err(io("chown", &d))?;
            if !ft.is_symlink() {
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                    .map_err(io("chmod", &d))?;
            }
        }
    }
    Ok(())
}

/// cgroup and cgroup2 mounts.
fn cgroup(
    ctx: &MountContext<'_>,
    dest: &Path,
    typ: &str,
    opts: &MountOptions,
) -> Result<(), sys::SysError> {
    let v2 = typ == "cgroup2" || ctx.cgroup.mode == Mode::Unified;
    if v2 {
        let target = safe::ensure(ctx.root, dest, true)?;
        let flags = opts.flags & !c::MS_BIND;
        if ctx.cgroupns {
            match sys::mount(
                Some("cgroup2"),
                &fd_path(target.as_fd()),
                Some("cgroup2"),
                flags,
                opts.data_string().as_deref(),
            ) {
                Ok(()) => {
                    let mounted = safe::open_in_root(ctx.root, dest)?;
                    return finish(mounted.as_fd(), opts);
                }
                Err(e) if !matches!(e.errno(), Some(c::EPERM) | Some(c::EBUSY)) => return Err(e),
                Err(_) => {}
            }
        }
        let mut o = opts.clone();
        o.flags |= c::MS_BIND | c::MS_REC;
        if ctx.userns && !ctx.cgroupns {
            // In a user namespace without a cgroup namespace cgroup2 cannot be mounted:
            // runc binds the host's whole hierarchy (a rootless container's cgroup, if
            // any, is found through /proc/self/cgroup).
            let host = crate::cgroups::Hierarchies::host().ok();
            if let Some(m) = host.as_ref().and_then(|h| h.mountpoint_of(UNIFIED)) {
                drop(target);
                return bind(ctx, m, dest, &o);
            }
        }
        // Without a cgroup namespace (or when the kernel refuses a new cgroup2
        // superblock view), show the container its own cgroup by binding it.
        let Some(dir) = ctx.cgroup.dirs.get(UNIFIED) else {
            return Err(sys::SysError::new(
                "mount cgroup2",
                dest.display().to_string(),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "this host has no cgroup2 hierarchy",
                ),
            ));
        };
        drop(target);
        return bind(ctx, dir, dest, &o);
    }

    // cgroup v1: a tmpfs holding one mount per hierarchy.
    let target = safe::ensure(ctx.root, dest, true)?;
    let tmpfs_flags = (opts.flags & !c::MS_RDONLY & !c::MS_BIND & !c::MS_REC)
        | c::MS_NOSUID
        | c::MS_NODEV
        | c::MS_NOEXEC;
    sys::mount(
        Some("tmpfs"),
        &fd_path(target.as_fd()),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )?;
    let base = Path::new("/").join(safe::relative(dest));
    for (name, controllers) in ctx.cgroup_mounts {
        let sub = base.join(name);
        let sub_fd = safe::ensure(ctx.root, &sub, true)?;
        let sub_flags =
            (opts.flags & !c::MS_BIND & !c::MS_REC) | c::MS_NOSUID | c::MS_NODEV | c::MS_NOEXEC;
        if ctx.cgroupns {
            let data = controllers
                .iter()
                .map(|c| {
                    if c.starts_with("name=") {
                        format!("none,{c}")
                    } else {
                        c.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            sys::mount(
                Some("cgroup"),
                &fd_path(sub_fd.as_fd()),
                Some("cgroup"),
                sub_flags,
                Some(&data),
            )?;
        } else {
            let Some(dir) = controllers.first().and_then(|c| ctx.cgroup.dirs.get(c)) else {
                continue;
            };
            drop(sub_fd);
            let mut o = MountOptions {
                flags: c::MS_BIND | c::MS_REC | sub_flags,
                ..Default::default()
            };
            o.cleared = opts.cleared;
            bind(ctx, dir, &sub, &o)?;
        }
        // Co-mounted controllers get a symlink per controller (cpu -> cpu,cpuacct).
        if controllers.len() > 1 {
            let dir = safe::open_in_root(ctx.root, &base)?;
            let dir = sys::openat2(
                dir.as_fd(),
                Path::new("."),
                c::O_PATH | c::O_DIRECTORY,
                0,
                0,
            )?;
            for c in controllers {
                if c != name && !c.starts_with("name=") {
                    match sys::symlinkat(Path::new(name), dir.as_fd(), Path::new(c)) {
                        Err(e) if e.errno() != Some(c::EEXIST) => return Err(e),
                        _ => {}
                    }
                }
            }
        }
    }
    let mounted = safe::open_in_root(ctx.root, dest)?;
    finish(mounted.as_fd(), opts)
}
