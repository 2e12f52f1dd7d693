//! seccomp(2): probing filter flags, loading a classic-BPF filter, and sending the
//! notify listener without allocating. See seccomp(2), seccomp_unotify(2).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{SysError, SysResult};

/// SECCOMP_FILTER_FLAG_LOG.
pub const FLAG_LOG: u32 = libc::SECCOMP_FILTER_FLAG_LOG as u32;
/// SECCOMP_FILTER_FLAG_SPEC_ALLOW.
pub const FLAG_SPEC_ALLOW: u32 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
/// SECCOMP_FILTER_FLAG_NEW_LISTENER.
pub const FLAG_NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
/// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19).
pub const FLAG_WAIT_KILLABLE_RECV: u32 = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32;

/// Whether the kernel accepts `flags` for SECCOMP_SET_MODE_FILTER: with a null program
/// a known flag set fails with EFAULT, an unknown one with EINVAL (runc's probe).
pub fn flag_supported(flags: u32) -> io::Result<()> {
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
    let e = io::Error::last_os_error();
    match (r, e.raw_os_error()) {
        (r, _) if r >= 0 => Ok(()),
        (_, Some(libc::EFAULT)) => Ok(()),
        _ => Err(e),
    }
}

/// SECCOMP_SET_MODE_FILTER of `instructions` (each u64 one `struct sock_filter` in its
/// native layout) with `flags` into the calling thread. Needs no_new_privs or
/// CAP_SYS_ADMIN. Returns the listener descriptor when `flags` asks for one
/// (FLAG_NEW_LISTENER).
pub fn load_filter(instructions: &[u64], flags: u32) -> SysResult<Option<OwnedFd>> {
    let what = || format!("{} instructions, flags {flags:#x}", instructions.len());
    let len = u16::try_from(instructions.len()).map_err(|_| {
        SysError::new(
            "seccomp",
            format!("{} instructions", instructions.len()),
            io::Error::from_raw_os_error(libc::E2BIG),
        )
    })?;
    let prog = libc::sock_fprog {
        len,
        // Each u64 holds one `struct sock_filter` in its native layout (8 bytes,
        // alignment 4 <= 8); the kernel only reads through this pointer.
        filter: instructions.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points to `len` valid instructions that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(SysError::last("seccomp(SECCOMP_SET_MODE_FILTER)", what()));
    }
    if flags & FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER seccomp returns a new descriptor that nothing else owns.
    Ok(Some(unsafe { super::fd::owned(r) }))
}

/// sendmsg(2) `msg` with `fd` attached (SCM_RIGHTS) over `sock`, using only the stack:
/// safe to call after a seccomp filter is loaded, when every syscall counts, and
/// without allocating. Allocates only for an error other than EINTR.
pub fn send_fd_static(
    sock: BorrowedFd<'_>,
    msg: &'static [u8],
    fd: BorrowedFd<'_>,
    what: &'static str,
) -> SysResult<()> {
    // Room for one cmsghdr carrying one int, 8-byte aligned.
    let mut cbuf = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut libc::c_void,
        iov_len: msg.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    hdr.msg_controllen =
        unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    debug_assert!(hdr.msg_controllen <= std::mem::size_of_val(&cbuf));
    // SAFETY: msg_control points to `cbuf`, large enough for one header with an int
    // (checked above); CMSG_FIRSTHDR/CMSG_DATA stay inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&hdr);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: `hdr` and everything it points to live across the call.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(SysError::new("sendmsg", what, e));
        }
    }
}
