//! Network links: the loopback interface. See netdevice(7).

use std::os::fd::{AsRawFd, OwnedFd};

use super::{SysError, SysResult};

/// Set the loopback interface of the current network namespace up (SIOCSIFFLAGS).
pub fn loopback_up() -> SysResult<()> {
    // SAFETY: socket takes plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(SysError::last("socket", "AF_INET"));
    }
    // SAFETY: socket returned a new descriptor that nothing else owns.
    let sock: OwnedFd = unsafe { super::fd::owned(fd.into()) };
    // SAFETY: an all-zero ifreq is valid; the name is set below.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    let raw = sock.as_raw_fd();
    // SAFETY: SIOCGIFFLAGS fills the flags of the valid ifreq we pass.
    if unsafe { libc::ioctl(raw, libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(SysError::last("ioctl(SIOCGIFFLAGS)", "lo"));
    }
    // SAFETY: the union member for SIOCGIFFLAGS/SIOCSIFFLAGS is ifru_flags.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the valid ifreq we pass.
    if unsafe { libc::ioctl(raw, libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(SysError::last("ioctl(SIOCSIFFLAGS)", "lo up"));
    }
    Ok(())
}
