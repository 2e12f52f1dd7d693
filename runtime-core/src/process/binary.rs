//! The executable init runs from: a sealed memfd copy of the runrs binary, so a
//! process in the container that reaches /proc/<init>/exe finds a file it cannot
//! write, and the binary on the host stays out of reach (CVE-2019-5736). A process
//! makes a fresh copy for each container it creates.
//! See memfd_create(2), fcntl(2) F_ADD_SEALS.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sys::SysError;

/// A sealed, read-only memfd copy of the running binary. Exec it through
/// `/proc/self/fd/N` (see [`crate::sys::fd_path`]). The copy is made per container
/// creation and dropped after the spawn, so a long-lived shim holds no extra memory.
pub fn sealed_copy() -> Result<OwnedFd, SysError> {
    let src =
        File::open("/proc/self/exe").map_err(|e| SysError::new("open", "/proc/self/exe", e))?;
    let len = src
        .metadata()
        .map_err(|e| SysError::new("stat", "/proc/self/exe", e))?
        .len();
    let name = c"runrs";
    // SAFETY: `name` is a valid C string; flags are plain integers.
    let raw =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(SysError::last("memfd_create", "runrs"));
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let mem = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut left = len;
    while left > 0 {
        // SAFETY: both descriptors are open; a null offset uses and advances the
        // source's file position.
        let n = unsafe {
            libc::sendfile(
                mem.as_raw_fd(),
                src.as_raw_fd(),
                std::ptr::null_mut(),
                left.min(1 << 30) as usize,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(SysError::new("sendfile", "/proc/self/exe to memfd", e));
        }
        if n == 0 {
            break;
        }
        left -= n as u64;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS takes an int of seal flags.
    if unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(SysError::last("fcntl(F_ADD_SEALS)", "runrs memfd"));
    }
    Ok(mem)
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_is_sealed_and_readonly() {
        let fd = super::sealed_copy().expect("sealed copy");
        let p = crate::sys::fd_path(std::os::fd::AsFd::as_fd(&fd));
        let r = std::fs::OpenOptions::new().write(true).open(&p);
        // Opening may succeed, but writing must not.
        if let Ok(mut f) = r {
            assert!(std::io::Write::write_all(&mut f, b"x").is_err());
        }
        let len = std::fs::metadata(&p).expect("stat").len();
        assert_eq!(len, std::fs::metadata("/proc/self/exe").expect("exe").len());
    }
}
