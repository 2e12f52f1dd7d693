//! The seccomp(2) side: probing which filter flags this kernel accepts, loading a
//! compiled [`Program`] in init, and handing a notify listener to the runtime over the
//! sync socket without allocating (after the filter is loaded, every syscall init makes
//! is subject to the container's profile). See seccomp(2), seccomp_unotify(2).

use std::os::fd::{BorrowedFd, OwnedFd};

use super::{Program, SeccompError};
use crate::sys::{self, SysError};

pub use crate::sys::seccomp::{
    FLAG_LOG, FLAG_NEW_LISTENER, FLAG_SPEC_ALLOW, FLAG_WAIT_KILLABLE_RECV,
};

/// The sync message announcing the listener ([`crate::process::sync::Msg::SeccompFd`]),
/// pre-encoded in the sync framing (first byte 1 = last packet) so sending it allocates
/// nothing.
pub const LISTENER_MSG: &[u8] = b"\x01{\"type\":\"seccomp_fd\"}";

/// Whether the kernel accepts `flags` for SECCOMP_SET_MODE_FILTER: with a null program
/// a known flag set fails with EFAULT, an unknown one with EINVAL (runc's probe).
pub fn flag_supported(flags: u32) -> Result<(), std::io::Error> {
    sys::seccomp::flag_supported(flags)
}

/// Load `p` into the calling thread. Needs no_new_privs or CAP_SYS_ADMIN. Returns the
/// listener descriptor (O_CLOEXEC) when the program notifies.
pub fn load(p: &Program) -> Result<Option<OwnedFd>, SeccompError> {
    // The listener comes back exactly when the program notifies (FLAG_NEW_LISTENER).
    sys::seccomp::load_filter(&p.instructions, p.flags).map_err(SeccompError::Load)
}

/// Send [`LISTENER_MSG`] with `fd` attached over the sync socket, using only the stack.
pub fn send_listener(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), SysError> {
    sys::seccomp::send_fd_static(sock, LISTENER_MSG, fd, "seccomp listener to the runtime")
}

/// Load `p` and hand its listener, if any, to the runtime over `sock`; init keeps no
/// copy of the listener (only the agent should hold it).
pub fn install(p: &Program, sock: BorrowedFd<'_>) -> Result<(), SeccompError> {
    if let Some(fd) = load(p)? {
        send_listener(sock, std::os::fd::AsFd::as_fd(&fd)).map_err(SeccompError::SendListener)?;
    }
    Ok(())
}
