//! Terminals: pty unlock and peer, window size, controlling terminal. See ioctl_tty(2),
//! pty(7).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{SysError, SysResult};

/// TIOCSPTLCK 0: unlock the pty behind `master`.
pub fn unlock_pty(master: BorrowedFd<'_>) -> SysResult<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the valid pointer we pass.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(SysError::last("ioctl(TIOCSPTLCK)", "ptmx"));
    }
    Ok(())
}

/// TIOCGPTPEER: open the peer (slave) of `master` with `flags` | O_CLOEXEC, without a
/// path.
pub fn pty_peer(master: BorrowedFd<'_>, flags: i32) -> SysResult<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor.
    let peer = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            flags | libc::O_CLOEXEC,
        )
    };
    if peer < 0 {
        return Err(SysError::last("ioctl(TIOCGPTPEER)", "ptmx"));
    }
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    Ok(unsafe { super::fd::owned(peer.into()) })
}

/// TIOCSWINSZ: set the window size of a terminal.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> SysResult<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer we pass.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(SysError::last("ioctl(TIOCSWINSZ)", "pty"));
    }
    Ok(())
}

/// TIOCGWINSZ: (rows, cols) of a terminal, None when `fd` is not one.
pub fn winsize(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the valid pointer we pass.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } < 0 {
        return None;
    }
    Some((ws.ws_row, ws.ws_col))
}

/// TIOCSCTTY: make the terminal `fd` the controlling terminal of this session.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> SysResult<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(SysError::last(
            "ioctl(TIOCSCTTY)",
            fd.as_raw_fd().to_string(),
        ));
    }
    Ok(())
}
