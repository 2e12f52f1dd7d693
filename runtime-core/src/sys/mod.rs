//! The kernel boundary: thin wrappers over the raw syscalls runtime-core needs.
//!
//! Every wrapper retries `EINTR`, takes descriptors as `BorrowedFd`/`OwnedFd` and
//! reports failures as [`SysError`], which names the syscall and its main argument
//! (path, fd, flags) so the message a user reads says what the runtime attempted.
//! See mount(2), openat2(2), pivot_root(2), setns(2), unshare(2).
//!
//! This tree is the only place in runtime-core with `unsafe` blocks and `libc::` paths
//! (`integration/scripts/check-structure.sh` enforces it). It imports nothing else of
//! runtime-core: callers pass plain flags and values. The constants and plain C types
//! other modules need are re-exported in [`c`].
//!
//! - [`fd`]: opening files (openat2 in a root), reading, writing, descriptor flags,
//!   pipes, memfds, stat, inotify and eventfd;
//! - [`mount`]: mount, pivot_root, mknod, mkdir, symlink, chown relative to a directory;
//! - [`process`]: fork, exec and what surrounds them, pidfds, signals, waiting, ids,
//!   namespaces, prctl, rlimits, capabilities;
//! - [`poll`]: poll(2) over borrowed descriptors;
//! - [`socket`]: socket pairs and receiving descriptors (SCM_RIGHTS);
//! - [`term`]: pty and terminal ioctls;
//! - [`seccomp`], [`bpf`], [`net`]: the seccomp(2) and bpf(2) calls, the loopback link.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub mod bpf;
pub mod c;
pub mod fd;
pub mod mount;
pub mod net;
pub mod poll;
pub mod process;
pub mod seccomp;
pub mod socket;
pub mod term;
#[cfg(test)]
pub(crate) mod testing;

pub use fd::*;
pub use mount::*;
pub use poll::*;
pub use process::*;
pub use socket::*;

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
