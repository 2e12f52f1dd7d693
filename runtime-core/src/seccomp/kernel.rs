//! The seccomp(2) side: probing which filter flags this kernel accepts, loading a
//! compiled [`Program`] in init, and handing a notify listener to the runtime over the
//! sync socket without allocating (after the filter is loaded, every syscall init makes
//! is subject to the container's profile). See seccomp(2), seccomp_unotify(2).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{Program, SeccompError};
use crate::sys::SysError;

/// SECCOMP_FILTER_FLAG_LOG.
pub const FLAG_LOG: u32 = libc::SECCOMP_FILTER_FLAG_LOG as u32;
/// SECCOMP_FILTER_FLAG_SPEC_ALLOW.
pub const FLAG_SPEC_ALLOW: u32 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
/// SECCOMP_FILTER_FLAG_NEW_LISTENER.
pub const FLAG_NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
/// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19).
pub const FLAG_WAIT_KILLABLE_RECV: u32 = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32;

/// The sync message announcing the listener ([`crate::process::sync::Msg::SeccompFd`]),
/// pre-encoded in the sync framing (first byte 1 = last packet) so sending it allocates
/// nothing.
pub const LISTENER_MSG: &[u8] = b"\x01{\"type\":\"seccomp_fd\"}";

/// Whether the kernel accepts `flags` for SECCOMP_SET_MODE_FILTER: with a null program
/// a known flag set fails with EFAULT, an unknown one with EINVAL (runc's probe).
pub fn flag_supported(flags: u32) -> Result<(), std::io::Error> {
    // SAFETY: a null program pointer is never dereferenced by user space; the kernel
    // validates the flags, then fails copying the program with EFAULT.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    let e = std::io::Error::last_os_error();
    match (r, e.raw_os_error()) {
        (r, _) if r >= 0 => Ok(()),
        (_, Some(libc::EFAULT)) => Ok(()),
        _ => Err(e),
    }
}

/// Load `p` into the calling thread. Needs no_new_privs or CAP_SYS_ADMIN. Returns the
/// listener descriptor (O_CLOEXEC) when the program notifies.
pub fn load(p: &Program) -> Result<Option<OwnedFd>, SeccompError> {
    let len = u16::try_from(p.instructions.len()).map_err(|_| {
        SeccompError::Load(SysError::new(
            "seccomp",
            format!("{} instructions", p.instructions.len()),
            std::io::Error::from_raw_os_error(libc::E2BIG),
        ))
    })?;
    let prog = libc::sock_fprog {
        len,
        // Each u64 holds one `struct sock_filter` in its native layout (8 bytes,
        // alignment 4 <= 8); the kernel only reads through this pointer.
        filter: p.instructions.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points to `len` valid instructions that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            p.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(SeccompError::Load(SysError::last(
            "seccomp(SECCOMP_SET_MODE_FILTER)",
            format!(
                "{} instructions, flags {:#x}",
                p.instructions.len(),
                p.flags
            ),
        )));
    }
    if !p.notifies() {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER seccomp returns a new descriptor that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }))
}

/// Send [`LISTENER_MSG`] with `fd` attached over the sync socket, using only the stack.
pub fn send_listener(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), SysError> {
    // Room for one cmsghdr carrying one int, 8-byte aligned.
    let mut cbuf = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: LISTENER_MSG.as_ptr() as *mut libc::c_void,
        iov_len: LISTENER_MSG.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen =
        unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    debug_assert!(msg.msg_controllen <= std::mem::size_of_val(&cbuf));
    // SAFETY: msg_control points to `cbuf`, large enough for one header with an int
    // (checked above); CMSG_FIRSTHDR/CMSG_DATA stay inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: `msg` and everything it points to live across the call.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(SysError::new(
                "sendmsg",
                "seccomp listener to the runtime",
                e,
            ));
        }
    }
}

/// Load `p` and hand its listener, if any, to the runtime over `sock`; init keeps no
/// copy of the listener (only the agent should hold it).
pub fn install(p: &Program, sock: BorrowedFd<'_>) -> Result<(), SeccompError> {
    if let Some(fd) = load(p)? {
        send_listener(sock, std::os::fd::AsFd::as_fd(&fd)).map_err(SeccompError::SendListener)?;
    }
    Ok(())
}
