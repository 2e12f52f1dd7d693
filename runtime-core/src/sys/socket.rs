//! Unix sockets: connected pairs, and messages that carry descriptors (SCM_RIGHTS).
//! See unix(7), socketpair(2), recvmsg(2).

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use super::{SysError, SysResult};

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

/// recvmsg(2) one message into `buf` with up to 8 descriptors (received O_CLOEXEC),
/// retrying EINTR: (bytes, descriptors). Other errors are returned as nix reports
/// them (ECONNRESET is the peer closing, for a SOCK_SEQPACKET).
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Vec<OwnedFd>), nix::Error> {
    loop {
        let mut cmsg = nix::cmsg_space!([RawFd; 8]);
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => {
                let mut fds = Vec::new();
                for c in m.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(r) = c {
                        // SAFETY: the kernel just installed these descriptors in this
                        // process for us; nothing else owns them.
                        fds.extend(r.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                    }
                }
                return Ok((m.bytes, fds));
            }
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
