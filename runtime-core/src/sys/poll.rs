//! poll(2) over borrowed descriptors, retrying EINTR.

use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::{retry, SysError, SysResult};

/// poll(2) a single descriptor for `events`, `timeout_ms` < 0 waits forever.
/// Returns the revents (0 on timeout).
pub fn poll_one(fd: BorrowedFd<'_>, events: i16, timeout_ms: i32) -> SysResult<i16> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    retry(|| {
        // SAFETY: `p` is one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout_ms) as libc::c_long }
    })
    .map_err(|e| SysError::new("poll", fd.as_raw_fd().to_string(), e))?;
    Ok(p.revents)
}

/// One entry of a [`poll`] set: a `struct pollfd` that borrows its descriptor.
#[repr(transparent)]
pub struct PollFd<'a> {
    raw: libc::pollfd,
    _fd: PhantomData<BorrowedFd<'a>>,
}

impl<'a> PollFd<'a> {
    /// Wait for `events` (POLLIN, POLLOUT, ...) on `fd`.
    pub fn new(fd: BorrowedFd<'a>, events: i16) -> Self {
        PollFd {
            raw: libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            },
            _fd: PhantomData,
        }
    }

    /// The events that occurred in the last [`poll`].
    pub fn revents(&self) -> i16 {
        self.raw.revents
    }
}

/// poll(2) `fds`, `timeout_ms` < 0 waits forever; on EINTR it polls again for what is
/// left of the timeout. Returns how many entries have events (0 on timeout). `what`
/// names the set in the error.
pub fn poll(fds: &mut [PollFd<'_>], timeout_ms: i32, what: &str) -> SysResult<usize> {
    let deadline =
        (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
    loop {
        let timeout = match deadline {
            None => -1,
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
        };
        // SAFETY: `PollFd` is a transparent `struct pollfd`, so `fds` is a valid array
        // of `fds.len()` pollfds whose descriptors are borrowed for the call.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr().cast::<libc::pollfd>(),
                fds.len() as libc::nfds_t,
                timeout,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(SysError::new("poll", what.to_string(), e));
        }
    }
}
