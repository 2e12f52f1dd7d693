//! Mounts and filesystem nodes: mount, umount2, pivot_root, mount_setattr, mknod,
//! mkdir, symlink, unlink, chown, mkfifo, umask. See mount(2), mount_setattr(2),
//! pivot_root(2), mknod(2).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{c_string, cstr, retry, SysError, SysResult};

/// mount(2). `source`, `fstype` and `data` may be absent.
pub fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> SysResult<()> {
    let c = |s: &str| c_string("mount", s.as_bytes());
    let s = source.map(c).transpose()?;
    let t = c(target)?;
    let f = fstype.map(c).transpose()?;
    let d = data.map(c).transpose()?;
    retry(|| {
        // SAFETY: every pointer is either null or a valid C string living across the call.
        unsafe {
            libc::mount(
                s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                t.as_ptr(),
                f.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                flags as libc::c_ulong,
                d.as_ref()
                    .map_or(std::ptr::null(), |c| c.as_ptr() as *const libc::c_void),
            ) as libc::c_long
        }
    })
    .map(|_| ())
    .map_err(|e| {
        SysError::new(
            "mount",
            format!(
                "source={} target={} type={} flags={} data={}",
                source.unwrap_or("none"),
                target,
                fstype.unwrap_or("none"),
                describe_mount_flags(flags),
                data.unwrap_or("")
            ),
            e,
        )
    })
}

/// umount2(2).
pub fn umount2(target: &Path, flags: i32) -> SysResult<()> {
    let c = cstr(target)?;
    retry(|| {
        // SAFETY: `c` is a valid C string.
        unsafe { libc::umount2(c.as_ptr(), flags) as libc::c_long }
    })
    .map(|_| ())
    .map_err(|e| SysError::new("umount2", target.display().to_string(), e))
}

/// pivot_root(2).
pub fn pivot_root(new_root: &Path, put_old: &Path) -> SysResult<()> {
    let n = cstr(new_root)?;
    let o = cstr(put_old)?;
    retry(|| {
        // SAFETY: both are valid C strings.
        unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) }
    })
    .map(|_| ())
    .map_err(|e| SysError::new("pivot_root", new_root.display().to_string(), e))
}

/// fchdir(2).
pub fn fchdir(fd: BorrowedFd<'_>) -> SysResult<()> {
    // SAFETY: fchdir only reads the descriptor number.
    let r = unsafe { libc::fchdir(fd.as_raw_fd()) };
    if r < 0 {
        return Err(SysError::last("fchdir", fd.as_raw_fd().to_string()));
    }
    Ok(())
}

/// chdir(2).
pub fn chdir(path: &Path) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid C string.
    if unsafe { libc::chdir(c.as_ptr()) } < 0 {
        return Err(SysError::last("chdir", path.display().to_string()));
    }
    Ok(())
}

/// chroot(2).
pub fn chroot(path: &Path) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid C string.
    if unsafe { libc::chroot(c.as_ptr()) } < 0 {
        return Err(SysError::last("chroot", path.display().to_string()));
    }
    Ok(())
}

/// mknodat(2).
pub fn mknodat(dir: BorrowedFd<'_>, name: &Path, mode: u32, dev: u64) -> SysResult<()> {
    let c = cstr(name)?;
    // SAFETY: `c` is a valid C string and `dir` an open directory.
    if unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), mode, dev) } < 0 {
        return Err(SysError::last("mknod", name.display().to_string()));
    }
    Ok(())
}

/// mkdirat(2); EEXIST is reported to the caller.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> SysResult<()> {
    let c = cstr(name)?;
    // SAFETY: `c` is a valid C string and `dir` an open directory.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) } < 0 {
        return Err(SysError::last("mkdir", name.display().to_string()));
    }
    Ok(())
}

/// symlinkat(2).
pub fn symlinkat(target: &Path, dir: BorrowedFd<'_>, name: &Path) -> SysResult<()> {
    let t = cstr(target)?;
    let n = cstr(name)?;
    // SAFETY: both are valid C strings and `dir` an open directory.
    if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } < 0 {
        return Err(SysError::last(
            "symlink",
            format!("{} -> {}", name.display(), target.display()),
        ));
    }
    Ok(())
}

/// unlinkat(2).
pub fn unlinkat(dir: BorrowedFd<'_>, name: &Path, flags: i32) -> SysResult<()> {
    let n = cstr(name)?;
    // SAFETY: `n` is a valid C string and `dir` an open directory.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), n.as_ptr(), flags) } < 0 {
        return Err(SysError::last("unlink", name.display().to_string()));
    }
    Ok(())
}

/// fchownat(2) on an fd itself (AT_EMPTY_PATH).
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> SysResult<()> {
    // SAFETY: fchown only reads the descriptor and ids.
    if unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) } < 0 {
        return Err(SysError::last("fchown", fd.as_raw_fd().to_string()));
    }
    Ok(())
}

/// Render MS_* flags by name, for error messages.
pub fn describe_mount_flags(flags: u64) -> String {
    let mut names: Vec<&str> = Vec::new();
    let table: &[(&str, u64)] = &[
        ("MS_RDONLY", libc::MS_RDONLY),
        ("MS_NOSUID", libc::MS_NOSUID),
        ("MS_NODEV", libc::MS_NODEV),
        ("MS_NOEXEC", libc::MS_NOEXEC),
        ("MS_SYNCHRONOUS", libc::MS_SYNCHRONOUS),
        ("MS_REMOUNT", libc::MS_REMOUNT),
        ("MS_MANDLOCK", libc::MS_MANDLOCK),
        ("MS_DIRSYNC", libc::MS_DIRSYNC),
        ("MS_NOSYMFOLLOW", libc::MS_NOSYMFOLLOW),
        ("MS_NOATIME", libc::MS_NOATIME),
        ("MS_NODIRATIME", libc::MS_NODIRATIME),
        ("MS_BIND", libc::MS_BIND),
        ("MS_MOVE", libc::MS_MOVE),
        ("MS_REC", libc::MS_REC),
        ("MS_SILENT", libc::MS_SILENT),
        ("MS_UNBINDABLE", libc::MS_UNBINDABLE),
        ("MS_PRIVATE", libc::MS_PRIVATE),
        ("MS_SLAVE", libc::MS_SLAVE),
        ("MS_SHARED", libc::MS_SHARED),
        ("MS_RELATIME", libc::MS_RELATIME),
        ("MS_I_VERSION", libc::MS_I_VERSION),
        ("MS_STRICTATIME", libc::MS_STRICTATIME),
        ("MS_LAZYTIME", libc::MS_LAZYTIME),
    ];
    let mut rest = flags;
    for (n, f) in table {
        if flags & f != 0 {
            names.push(n);
            rest &= !f;
        }
    }
    if names.is_empty() && rest == 0 {
        return "0".into();
    }
    let mut s = names.join("|");
    if rest != 0 {
        if !s.is_empty() {
            s.push('|');
        }
        s.push_str(&format!("{rest:#x}"));
    }
    s
}

/// The kernel's `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on the mount `fd` is open on and every mount below it
/// (AT_RECURSIVE): set the MOUNT_ATTR_* bits `set`, clear `clear`.
pub fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64, clear: u64) -> SysResult<()> {
    const AT_RECURSIVE: u32 = 0x8000;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    retry(|| {
        // SAFETY: `empty` is a valid C string, `attr` a correctly laid out
        // `struct mount_attr` that outlives the call, and the size passed matches it.
        unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_EMPTY_PATH as u32 | AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        }
    })
    .map(|_| ())
    .map_err(|e| {
        SysError::new(
            "mount_setattr",
            format!("{} set={set:#x} clear={clear:#x}", super::fd_path(fd)),
            e,
        )
    })
}

/// chown(2) by path (following symlinks; used on /proc/self/fd magic links).
pub fn chown(path: &Path, uid: u32, gid: u32) -> SysResult<()> {
    let c = c_string("chown", path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid C string.
    if unsafe { libc::chown(c.as_ptr(), uid, gid) } < 0 {
        return Err(SysError::last("chown", path.display().to_string()));
    }
    Ok(())
}

/// chmod(2) by path.
pub fn chmod(path: &Path, mode: u32) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid C string.
    if unsafe { libc::chmod(c.as_ptr(), mode) } < 0 {
        return Err(SysError::last("chmod", path.display().to_string()));
    }
    Ok(())
}

/// mkfifo(3) by path (the mode is filtered by the umask).
pub fn mkfifo(path: &Path, mode: u32) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), mode) } < 0 {
        return Err(SysError::last("mkfifo", path.display().to_string()));
    }
    Ok(())
}

/// umask(2): set the file mode creation mask, returning the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask only swaps the process' file mode mask.
    unsafe { libc::umask(mask) }
}
