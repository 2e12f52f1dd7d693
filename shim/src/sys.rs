//! The shim's one syscall module: every `unsafe` block and every `libc::` use of the
//! shim lives here, behind safe functions whose errors name the call (STYLE.md "The
//! kernel boundary is narrow"). Everything else in the shim goes through these.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;

/// No such process.
pub const ESRCH: i32 = libc::ESRCH;
/// SIGKILL.
pub const SIGKILL: i32 = libc::SIGKILL;

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
pub fn async_fd<T: AsFd>(owner: T) -> std::io::Result<AsyncFd<Pollable<T>>> {
    // SAFETY: `AsFd` borrows a descriptor the owner keeps open, and returns the same one
    // for as long as the owner lives; the AsyncFd owns the owner, so the descriptor stays
    // open and unchanged for the AsyncFd's whole life, as `register` requires.
    unsafe { AsyncFd::register(Pollable(owner)) }.map_err(std::io::Error::from)
}
