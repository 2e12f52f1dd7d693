//! Descriptors and files: open (openat2 confined to a root), read, write, descriptor
//! flags, pipes, memfds, stat, inotify, eventfd. See open(2), openat2(2), fcntl(2),
//! pipe(2), memfd_create(2), sendfile(2), inotify(7), eventfd(2).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::{c_string, cstr, retry, SysError, SysResult};

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
    Ok(unsafe { owned(r) })
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
    Ok(unsafe { owned(r) })
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
    Ok(unsafe { owned(r) })
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

/// Whether `fd` is an open descriptor of this process (fcntl F_GETFD).
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed number fails EBADF.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

/// Take ownership of a descriptor number this process was handed by its parent (an
/// environment variable, a command-line flag), marking it close-on-exec when `cloexec`
/// (else its flags stay as inherited: a `--status-fd` is handed on to criu by number).
/// Call it once, at start-up, for a number nothing else in the process refers to; a
/// number that is not open is an EBADF error naming `what`.
pub fn adopt_inherited_fd(fd: RawFd, what: &str, cloexec: bool) -> SysResult<OwnedFd> {
    if !fd_is_open(fd) {
        return Err(SysError::new(
            "fcntl(F_GETFD)",
            format!("{what} {fd}"),
            io::Error::from_raw_os_error(libc::EBADF),
        ));
    }
    if cloexec {
        set_cloexec_raw(fd);
    }
    // SAFETY: the descriptor is open and was handed to this process for this one use
    // (the caller's contract above); nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Take ownership of the new descriptor a syscall returned.
///
/// # Safety
/// `r` must be a descriptor the kernel just created for the caller, owned by nothing else.
pub(super) unsafe fn owned(r: libc::c_long) -> OwnedFd {
    // SAFETY: per this function's contract.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

/// pipe2(2) with O_CLOEXEC: (read end, write end).
pub fn pipe(what: &str) -> SysResult<(OwnedFd, OwnedFd)> {
    let mut p = [0 as RawFd; 2];
    // SAFETY: `p` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(SysError::last("pipe2", what));
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// memfd_create(2) with MFD_CLOEXEC (and MFD_ALLOW_SEALING when `sealing`).
pub fn memfd(name: &str, sealing: bool) -> SysResult<OwnedFd> {
    let c = c_string("memfd_create", name.as_bytes())?;
    memfd_c(&c, sealing)
}

/// [`memfd`] with a name that is already a C string (no allocation).
pub fn memfd_c(name: &CStr, sealing: bool) -> SysResult<OwnedFd> {
    let mut flags = libc::MFD_CLOEXEC;
    if sealing {
        flags |= libc::MFD_ALLOW_SEALING;
    }
    // SAFETY: `name` is a valid C string; flags are plain integers.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if raw < 0 {
        return Err(SysError::last(
            "memfd_create",
            name.to_string_lossy().into_owned(),
        ));
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    Ok(unsafe { owned(raw.into()) })
}

/// sendfile(2) `len` bytes from `src`'s file position to `dst` (fewer if `src` ends).
pub fn sendfile_all(
    dst: BorrowedFd<'_>,
    src: BorrowedFd<'_>,
    len: u64,
    what: &str,
) -> SysResult<()> {
    let mut left = len;
    while left > 0 {
        let chunk = left.min(1 << 30) as usize;
        let n = retry(|| {
            // SAFETY: both descriptors are open; a null offset uses and advances the
            // source's file position.
            unsafe {
                libc::sendfile(
                    dst.as_raw_fd(),
                    src.as_raw_fd(),
                    std::ptr::null_mut(),
                    chunk,
                ) as libc::c_long
            }
        })
        .map_err(|e| SysError::new("sendfile", what.to_string(), e))?;
        if n == 0 {
            break;
        }
        left -= n as u64;
    }
    Ok(())
}

/// fcntl(F_ADD_SEALS).
pub fn add_seals(fd: BorrowedFd<'_>, seals: i32, what: &str) -> SysResult<()> {
    // SAFETY: F_ADD_SEALS takes an int of seal flags.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(SysError::last("fcntl(F_ADD_SEALS)", what));
    }
    Ok(())
}

/// Set O_NONBLOCK on `fd` (errors are ignored: the descriptor then stays blocking).
pub fn set_nonblock(fd: BorrowedFd<'_>) {
    // SAFETY: fcntl on an open descriptor; only changes its status flags.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// dup2(2) `src` onto the descriptor number `target` (a stdio slot), atomically
/// replacing what was there.
pub fn dup2(src: BorrowedFd<'_>, target: RawFd) -> SysResult<()> {
    // SAFETY: dup2 onto a slot replaces that descriptor atomically; taking the slot
    // over is the caller's purpose, and nothing in runtime-core owns 0..=2 as OwnedFd.
    if unsafe { libc::dup2(src.as_raw_fd(), target) } < 0 {
        return Err(SysError::last("dup2", target.to_string()));
    }
    Ok(())
}

/// A borrow of stdio slot `slot` (0, 1 or 2), None when it is not open.
pub fn stdio(slot: RawFd) -> Option<BorrowedFd<'static>> {
    if !(0..=2).contains(&slot) || !fd_is_open(slot) {
        return None;
    }
    // SAFETY: the slot is open; runtime-core never closes 0..=2, it only replaces them
    // atomically with dup2, so the number stays open for the life of the process.
    Some(unsafe { BorrowedFd::borrow_raw(slot) })
}

/// Whether `fd` refers to a terminal.
pub fn isatty(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty takes a descriptor number.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// `major(dev)`.
pub fn major(dev: u64) -> u32 {
    libc::major(dev)
}

/// `minor(dev)`.
pub fn minor(dev: u64) -> u32 {
    libc::minor(dev)
}

/// `makedev(major, minor)`.
pub fn makedev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

/// Whether `st` is the null character device (1:3).
pub fn is_null_device(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3
}

/// access(2) with X_OK, in the current root; the OS error on failure.
pub fn access_executable(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is a valid C string.
    if unsafe { libc::access(path.as_ptr(), libc::X_OK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// faccessat(2) of the directory `dir` itself with W_OK and AT_EACCESS.
pub fn dir_writable(dir: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: "." is a valid C string and `dir` an open directory descriptor.
    let r =
        unsafe { libc::faccessat(dir.as_raw_fd(), c".".as_ptr(), libc::W_OK, libc::AT_EACCESS) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// inotify_init1(2) with IN_CLOEXEC | IN_NONBLOCK.
pub fn inotify() -> SysResult<OwnedFd> {
    // SAFETY: inotify_init1 takes flags only.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return Err(SysError::last("inotify_init1", ""));
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { owned(fd.into()) })
}

/// inotify_add_watch(2) on `path`; returns the watch descriptor.
pub fn inotify_add_watch(inotify: BorrowedFd<'_>, path: &Path, mask: u32) -> SysResult<i32> {
    let c = cstr(path)?;
    // SAFETY: valid descriptor and NUL-terminated path.
    let w = unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), c.as_ptr(), mask) };
    if w < 0 {
        return Err(SysError::last(
            "inotify_add_watch",
            path.display().to_string(),
        ));
    }
    Ok(w)
}

/// eventfd(2) with EFD_CLOEXEC | EFD_NONBLOCK.
pub fn eventfd() -> SysResult<OwnedFd> {
    // SAFETY: eventfd takes integers only.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(SysError::last("eventfd", ""));
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { owned(fd.into()) })
}
