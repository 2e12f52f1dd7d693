//! The shim's one syscall module: every `unsafe` block and every `libc::` use of the
//! shim lives here, behind safe functions (STYLE.md "The kernel boundary is narrow").
//! Setup calls return a [`SysError`] naming the call and what it was applied to; the
//! relay's hot-path calls (read, write, splice) return the bare `io::Error`, whose
//! errno their callers inspect (EAGAIN, EIO). Man pages: open(2), pipe(2), fcntl(2),
//! splice(2), ioctl_fionread (FIONREAD), fchown(2), waitpid(2), prctl(2) for
//! PR_SET_CHILD_SUBREAPER, mallopt(3).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use tokio::io::unix::AsyncFd;

/// No such process.
pub const ESRCH: i32 = libc::ESRCH;
/// Input/output error (a pty whose every slave is closed).
pub const EIO: i32 = libc::EIO;
/// SIGKILL.
pub const SIGKILL: i32 = libc::SIGKILL;
/// SIGTERM.
pub const SIGTERM: i32 = libc::SIGTERM;
/// O_PATH (tests: a descriptor fchown refuses).
#[cfg(test)]
pub use libc::O_PATH;
/// open(2) flags the shim uses.
pub use libc::{O_APPEND, O_CREAT, O_NONBLOCK, O_RDONLY, O_WRONLY};

/// A failed system call: which, on what, and the OS error (runtime-core's type: one
/// error shape for every kernel call of the runtime).
pub use runtime_core::host::SysError;

/// The OS error of a call that returned `ret` (negative: failed).
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// open(2) `path` with `flags` (always O_CLOEXEC) and `mode`.
pub fn open(path: &str, flags: i32, mode: u32) -> Result<OwnedFd, SysError> {
    let c = CString::new(path).map_err(|_| SysError {
        call: "open",
        arg: format!("{path:?}"),
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(SysError::last("open", path));
    }
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A pipe (read end, write end), both O_CLOEXEC.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), SysError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(SysError::last("pipe2", "O_CLOEXEC"));
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// fchown(2) the file of `fd`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), SysError> {
    // SAFETY: fchown reads only the descriptor and the ids.
    if unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) } < 0 {
        return Err(SysError::last("fchown", format!("uid {uid} gid {gid}")));
    }
    Ok(())
}

/// Set or clear O_NONBLOCK on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> Result<(), SysError> {
    // SAFETY: F_GETFL only reads the file status flags of an open descriptor.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if fl < 0 {
        return Err(SysError::last("fcntl", "F_GETFL"));
    }
    let fl = if on {
        fl | libc::O_NONBLOCK
    } else {
        fl & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL only changes the file status flags of an open descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl) } < 0 {
        return Err(SysError::last("fcntl", "F_SETFL O_NONBLOCK"));
    }
    Ok(())
}

/// Grow a pipe's buffer to `size` bytes, as far as the kernel allows (best effort:
/// fs.pipe-max-size caps it; a failure keeps the default size).
pub fn grow_pipe(fd: BorrowedFd<'_>, size: i32) {
    // SAFETY: F_SETPIPE_SZ takes an int and only resizes the pipe's buffer.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
}

/// splice(2) up to `len` bytes from `from` to `to` without blocking.
pub fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open; null offsets use the file positions.
    let n = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Bytes waiting in a pipe (FIONREAD); 0 if that cannot be told.
pub fn pending_bytes(fd: BorrowedFd<'_>) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes an int into the valid pointer we pass.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) } < 0 {
        return 0;
    }
    n as usize
}

/// read(2) into `buf`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable buffer of its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// write(2) from `buf`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable buffer of its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The next exited child, without blocking: (pid, raw wait status), None if none.
pub fn reap_one() -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a valid int.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Make this process the subreaper of its descendants (orphans are reparented to it).
pub fn set_child_subreaper() -> Result<(), SysError> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(SysError::last("prctl", "PR_SET_CHILD_SUBREAPER"));
    }
    Ok(())
}

/// One malloc arena for the whole process. Call before any other thread exists.
pub fn single_malloc_arena() {
    // SAFETY: mallopt only tunes malloc; the caller runs before any other thread.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Take ownership of the listening socket `start` passed as descriptor `fd`, with
/// FD_CLOEXEC set again (start had to clear it to hand it over).
pub fn adopt_listener(fd: RawFd) -> Result<std::os::unix::net::UnixListener, SysError> {
    // Refuse a descriptor that is not open at all before claiming it.
    // SAFETY: F_GETFD only reads the descriptor flags; an unknown number fails (EBADF).
    check(unsafe { libc::fcntl(fd, libc::F_GETFD) }).map_err(|e| SysError {
        call: "fcntl",
        arg: format!("F_GETFD {fd}"),
        source: e,
    })?;
    // SAFETY: `start` passed this descriptor to this process, for it alone (the
    // environment variable names it); nothing else in the process uses or closes it.
    let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    // SAFETY: F_SETFD only sets the descriptor flags of the open descriptor.
    check(unsafe { libc::fcntl(l.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) }).map_err(|e| {
        SysError {
            call: "fcntl",
            arg: format!("F_SETFD FD_CLOEXEC {fd}"),
            source: e,
        }
    })?;
    Ok(l)
}

/// Give the child `cmd` starts the descriptors `fds` as 3, 4, 5, … (without
/// FD_CLOEXEC); every other descriptor of ours stays close-on-exec.
pub fn pass_fds(cmd: &mut Command, fds: Vec<RawFd>) {
    let hook = move || -> io::Result<()> {
        // Move the sources out of the way first, so placing them at 3, 4, … cannot
        // overwrite one another. CLOEXEC: these copies must not reach the child.
        let mut high = [0; 8];
        for (i, fd) in fds.iter().enumerate().take(high.len()) {
            // SAFETY: fcntl on a descriptor number; async-signal-safe.
            high[i] = check(unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) })?;
        }
        for (i, fd) in high.iter().enumerate().take(fds.len().min(high.len())) {
            // SAFETY: dup2 on descriptor numbers; async-signal-safe.
            check(unsafe { libc::dup2(*fd, 3 + i as i32) })?;
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and only calls fcntl and dup2
    // (async-signal-safe) on descriptor numbers it owns by value; it allocates nothing.
    unsafe { cmd.pre_exec(hook) };
}

/// Something that owns a descriptor, as tokio's reactor wants it ([`AsRawFd`]).
pub struct Pollable<T>(T);

impl<T: AsFd> AsRawFd for Pollable<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl<T> std::ops::Deref for Pollable<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Pollable<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Register `owner`'s descriptor with the runtime's reactor.
pub fn async_fd<T: AsFd>(owner: T) -> io::Result<AsyncFd<Pollable<T>>> {
    // SAFETY: `AsFd` borrows a descriptor the owner keeps open, and returns the same one
    // for as long as the owner lives; the AsyncFd owns the owner, so the descriptor stays
    // open and unchanged for the AsyncFd's whole life, as `register` requires.
    unsafe { AsyncFd::register(Pollable(owner)) }.map_err(io::Error::from)
}

/// Register an owned descriptor with the runtime's reactor.
pub fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd keeps its descriptor open and returns the same number for as
    // long as it lives, which is as long as the AsyncFd that owns it.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_call_and_what_it_was_applied_to() {
        let e = open("/nonexistent-runrs/x", O_RDONLY, 0).expect_err("missing");
        assert_eq!(e.to_string(), "open /nonexistent-runrs/x");
        assert_eq!(e.source.raw_os_error(), Some(libc::ENOENT));
        let e = open("a\0b", O_RDONLY, 0).expect_err("NUL");
        assert_eq!(e.call, "open");
        assert!(adopt_listener(-1).is_err());
    }

    #[test]
    fn a_pipe_carries_bytes_and_reports_what_waits() {
        let (r, w) = pipe().expect("pipe");
        assert_eq!(write(w.as_fd(), b"abc").expect("write"), 3);
        assert_eq!(pending_bytes(r.as_fd()), 3);
        let mut b = [0u8; 8];
        assert_eq!(read(r.as_fd(), &mut b).expect("read"), 3);
        set_nonblocking(r.as_fd(), true).expect("nonblocking");
        let e = read(r.as_fd(), &mut b).expect_err("empty");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn passed_descriptors_arrive_as_3_4_5() {
        let (r1, w1) = pipe().expect("pipe");
        let (r2, w2) = pipe().expect("pipe");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one >&3; echo two >&4"]);
        pass_fds(&mut cmd, vec![w1.as_raw_fd(), w2.as_raw_fd()]);
        let status = cmd.status().expect("sh");
        assert!(status.success());
        drop((w1, w2));
        let mut b = [0u8; 8];
        let n = read(r1.as_fd(), &mut b).expect("read");
        assert_eq!(&b[..n], b"one\n");
        let n = read(r2.as_fd(), &mut b).expect("read");
        assert_eq!(&b[..n], b"two\n");
    }
}
