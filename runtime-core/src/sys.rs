//! The kernel boundary: thin wrappers over the raw syscalls runtime-core needs.
//!
//! Every wrapper retries `EINTR`, takes descriptors as `BorrowedFd`/`OwnedFd` and
//! reports failures as [`SysError`], which names the syscall and its main argument
//! (path, fd, flags) so the message a user reads says what the runtime attempted.
//! See mount(2), openat2(2), pivot_root(2), setns(2), unshare(2).

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A failed system call: which call, on what, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{call} {arg}")]
pub struct SysError {
    /// The syscall (or libc function) that failed.
    pub call: &'static str,
    /// What it was called on, rendered for humans.
    pub arg: String,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl SysError {
    /// Build an error for `call` on `arg` from the current `errno`.
    pub fn last(call: &'static str, arg: impl Into<String>) -> Self {
        SysError {
            call,
            arg: arg.into(),
            source: io::Error::last_os_error(),
        }
    }

    /// Build an error from an explicit OS error.
    pub fn new(call: &'static str, arg: impl Into<String>, source: io::Error) -> Self {
        SysError {
            call,
            arg: arg.into(),
            source,
        }
    }

    /// The raw errno, if any.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// Result of a wrapper in this module.
pub type SysResult<T> = Result<T, SysError>;

/// Convert a path to a C string (paths with NUL bytes are rejected by the kernel anyway).
pub fn cstr(path: &Path) -> SysResult<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        SysError::new(
            "path",
            path.display().to_string(),
            io::Error::from_raw_os_error(libc::EINVAL),
        )
    })
}

/// Convert a string-like value to a C string.
pub fn cstring(s: &OsStr) -> SysResult<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        SysError::new(
            "string",
            s.to_string_lossy().into_owned(),
            io::Error::from_raw_os_error(libc::EINVAL),
        )
    })
}

/// Run `f` until it does not fail with EINTR; `f` returns -1 and sets errno on failure.
fn retry<F: FnMut() -> libc::c_long>(mut f: F) -> io::Result<libc::c_long> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Path of a descriptor through the host procfs, for syscalls that only take paths.
/// The kernel resolves this magic link to the exact file the fd refers to.
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// `RESOLVE_*` flags for openat2(2).
pub mod resolve {
    /// Resolve as if the dirfd were the root: `..` and absolute symlinks stay inside.
    pub const IN_ROOT: u64 = 0x10;
    /// Fail on any symlink component.
    pub const NO_SYMLINKS: u64 = 0x04;
    /// Fail on magic links (/proc/self/fd/...).
    pub const NO_MAGICLINKS: u64 = 0x02;
    /// Fail when crossing a mount point.
    pub const NO_XDEV: u64 = 0x01;
    /// Fail if the path leaves the dirfd's tree.
    pub const BENEATH: u64 = 0x08;
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2): open `path` relative to `dir` with `resolve` restrictions.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> SysResult<OwnedFd> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    let r = retry(|| {
        // SAFETY: `c` is a valid NUL-terminated string and `how` a correctly laid out
        // `struct open_how` that outlives the call; the size passed matches it.
        unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        }
    })
    .map_err(|e| SysError::new("openat2", path.display().to_string(), e))?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// open(2) with O_CLOEXEC.
pub fn open(path: &Path, flags: i32, mode: u32) -> SysResult<OwnedFd> {
    let c = cstr(path)?;
    let r = retry(|| {
        // SAFETY: `c` is a valid C string for the duration of the call.
        unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) as libc::c_long }
    })
    .map_err(|e| SysError::new("open", path.display().to_string(), e))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// openat(2) with O_CLOEXEC.
pub fn openat(dir: BorrowedFd<'_>, path: &Path, flags: i32, mode: u32) -> SysResult<OwnedFd> {
    let c = cstr(path)?;
    let r = retry(|| {
        // SAFETY: `c` is a valid C string for the duration of the call; `dir` is open.
        unsafe {
            libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, mode) as libc::c_long
        }
    })
    .map_err(|e| SysError::new("openat", path.display().to_string(), e))?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `s` as a C string for `call`; a NUL byte inside is an EINVAL error naming the value
/// (never an empty string in its place: that would name another path).
pub fn c_string(call: &'static str, s: &[u8]) -> SysResult<CString> {
    CString::new(s).map_err(|_| {
        SysError::new(
            call,
            format!("{:?} (contains a NUL byte)", String::from_utf8_lossy(s)),
            io::Error::from_raw_os_error(libc::EINVAL),
        )
    })
}

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
                crate::rootfs::flags::describe(flags),
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

/// setns(2) on a namespace descriptor.
pub fn setns(fd: BorrowedFd<'_>, nstype: i32, what: &str) -> SysResult<()> {
    // SAFETY: setns only reads the descriptor number and the flag.
    if unsafe { libc::setns(fd.as_raw_fd(), nstype) } < 0 {
        return Err(SysError::last("setns", what.to_string()));
    }
    Ok(())
}

/// unshare(2).
pub fn unshare(flags: i32) -> SysResult<()> {
    // SAFETY: unshare takes a flag word only.
    if unsafe { libc::unshare(flags) } < 0 {
        return Err(SysError::last(
            "unshare",
            crate::namespaces::describe_flags(flags),
        ));
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

/// fstat(2).
pub fn fstat(fd: BorrowedFd<'_>) -> SysResult<libc::stat> {
    // SAFETY: an all-zero `struct stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable `struct stat`.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(SysError::last("fstat", fd.as_raw_fd().to_string()));
    }
    Ok(st)
}

/// fstatfs(2): the filesystem magic of the file behind `fd`.
pub fn fstatfs_type(fd: BorrowedFd<'_>) -> SysResult<i64> {
    // SAFETY: an all-zero `struct statfs` is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable `struct statfs`.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(SysError::last("fstatfs", fd.as_raw_fd().to_string()));
    }
    Ok(st.f_type)
}

/// statfs(2) flags (`ST_*`) of the mount holding `path`.
pub fn statvfs_flags(path: &str) -> SysResult<u64> {
    let c = c_string("statvfs", path.as_bytes())?;
    // SAFETY: an all-zero `struct statvfs` is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` writable.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } < 0 {
        return Err(SysError::last("statvfs", path.to_string()));
    }
    Ok(st.f_flag)
}

/// Write all of `data` to `fd`.
pub fn write_all(fd: BorrowedFd<'_>, data: &[u8], what: &str) -> SysResult<()> {
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        let n = retry(|| {
            // SAFETY: `rest` is a valid readable slice of `rest.len()` bytes.
            unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) as libc::c_long }
        })
        .map_err(|e| SysError::new("write", what.to_string(), e))?;
        off += n as usize;
    }
    Ok(())
}

/// Read up to `buf.len()` bytes.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8], what: &str) -> SysResult<usize> {
    retry(|| {
        // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes.
        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) as libc::c_long }
    })
    .map(|n| n as usize)
    .map_err(|e| SysError::new("read", what.to_string(), e))
}

/// Clear FD_CLOEXEC so `fd` survives execve.
pub fn clear_cloexec(fd: BorrowedFd<'_>) -> SysResult<()> {
    // SAFETY: fcntl F_SETFD only changes descriptor flags.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } < 0 {
        return Err(SysError::last("fcntl(F_SETFD)", fd.as_raw_fd().to_string()));
    }
    Ok(())
}

/// Set FD_CLOEXEC on a raw descriptor number we do not own.
pub fn set_cloexec_raw(fd: RawFd) {
    // SAFETY: fcntl on a descriptor number that may or may not be open is harmless:
    // it fails with EBADF when closed.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

/// close_range(2) with CLOSE_RANGE_CLOEXEC: marks every descriptor from `first` upwards
/// close-on-exec. One raw syscall, so async-signal-safe: callable between fork and exec,
/// and it allocates nothing, not even for its error (a bare errno).
pub fn close_range_cloexec(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers and only changes descriptor flags of
    // this process.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// pidfd_open(2).
pub fn pidfd_open(pid: i32) -> SysResult<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(SysError::last("pidfd_open", pid.to_string()));
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// poll(2) a single descriptor for `events`, `timeout_ms` < 0 waits forever.
/// Returns the revents (0 on timeout).
pub fn poll_one(fd: BorrowedFd<'_>, events: i16, timeout_ms: i32) -> SysResult<i16> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    retry(|| {
        // SAFETY: `p` is one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout_ms) as libc::c_long }
    })
    .map_err(|e| SysError::new("poll", fd.as_raw_fd().to_string(), e))?;
    Ok(p.revents)
}

/// prctl(2) with integer arguments.
pub fn prctl(option: i32, arg2: u64, arg3: u64, what: &str) -> SysResult<i32> {
    // SAFETY: every prctl used by runtime-core takes integer arguments only.
    let r = unsafe { libc::prctl(option, arg2, arg3, 0u64, 0u64) };
    if r < 0 {
        return Err(SysError::last("prctl", what.to_string()));
    }
    Ok(r)
}

/// A pair of connected SOCK_SEQPACKET unix sockets, both O_CLOEXEC.
pub fn seqpacket_pair() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(SysError::last("socketpair", "SOCK_SEQPACKET"));
    }
    // SAFETY: socketpair returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Read a whole small file relative to `dir` (no symlinks followed out of it).
pub fn read_file_at(dir: BorrowedFd<'_>, path: &Path) -> SysResult<Vec<u8>> {
    let fd = openat2(dir, path, libc::O_RDONLY, 0, resolve::IN_ROOT)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = read(fd.as_fd(), &mut buf, &path.display().to_string())?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// The current errno description of a C function result, for `CStr` arguments.
pub fn check(r: libc::c_int, call: &'static str, arg: &CStr) -> SysResult<libc::c_int> {
    if r < 0 {
        return Err(SysError::last(call, arg.to_string_lossy().into_owned()));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15: a NUL byte in a config string turned into "" (another path) instead
    /// of an error.
    #[test]
    fn a_nul_byte_is_an_error_not_an_empty_string() {
        let e =
            mount(Some("/src\0evil"), "/nonexistent-target", None, 0, None).expect_err("refused");
        assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");
        assert!(e.to_string().contains("NUL"), "{e}");
        let e = statvfs_flags("/\0").expect_err("refused");
        assert!(e.to_string().contains("NUL"), "{e}");
        assert_eq!(c_string("x", b"ok").expect("fine").as_bytes(), b"ok");
    }
}
