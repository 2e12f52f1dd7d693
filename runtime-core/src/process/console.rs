//! The container's terminal: a pty allocated from the container's own devpts, the
//! peer end bind-mounted at /dev/console and made the process' stdio and controlling
//! terminal, and the master sent to the `--console-socket` with SCM_RIGHTS, as runc
//! does. The slave is obtained with TIOCGPTPEER, never by path, and /dev/console is
//! refused if it is a symlink (CVE-2025-52565). See pty(7), ioctl_tty(2).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::rootfs::safe;
use crate::sys::{self, fd_path, SysError};

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// Console failures.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A syscall failed.
    #[error("{0}")]
    Sys(&'static str, #[source] SysError),
    /// The container has no devpts at /dev/pts.
    #[error("process.terminal needs a devpts mount at /dev/pts in the container")]
    NoDevpts,
    /// /dev/console is something else than a plain file or device.
    #[error("/dev/console in the container is not a regular file or character device; refusing to mount the console over it")]
    BadConsole,
    /// Sending the master to the console socket failed.
    #[error("send the pty master to the console socket")]
    Send(#[source] nix::Error),
}

/// An allocated pty.
pub struct Pty {
    /// The master side, for the console socket's receiver.
    pub master: OwnedFd,
    /// The peer (slave) side, the container's terminal.
    pub slave: OwnedFd,
}

/// Allocate a pty from the devpts mounted at `/dev/pts` inside `root`.
pub fn open_pty(root: BorrowedFd<'_>) -> Result<Pty, ConsoleError> {
    let master = sys::openat2(
        root,
        Path::new("dev/pts/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY,
        0,
        sys::resolve::IN_ROOT | sys::resolve::NO_SYMLINKS,
    )
    .map_err(|e| {
        if e.errno() == Some(libc::ENOENT) {
            ConsoleError::NoDevpts
        } else {
            ConsoleError::Sys("open /dev/pts/ptmx", e)
        }
    })?;
    let magic =
        sys::fstatfs_type(master.as_fd()).map_err(|e| ConsoleError::Sys("statfs ptmx", e))?;
    if magic != DEVPTS_SUPER_MAGIC {
        return Err(ConsoleError::NoDevpts);
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the valid pointer we pass.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(ConsoleError::Sys(
            "unlock pty",
            SysError::last("ioctl(TIOCSPTLCK)", "ptmx"),
        ));
    }
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor.
    let peer = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if peer < 0 {
        return Err(ConsoleError::Sys(
            "open pty peer",
            SysError::last("ioctl(TIOCGPTPEER)", "ptmx"),
        ));
    }
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(peer) };
    Ok(Pty { master, slave })
}

/// Set the window size of a terminal.
pub fn resize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), ConsoleError> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer we pass.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(ConsoleError::Sys(
            "resize pty",
            SysError::last("ioctl(TIOCSWINSZ)", "pty"),
        ));
    }
    Ok(())
}

/// Bind-mount the pty peer over /dev/console inside `root`.
pub fn mount_console(root: BorrowedFd<'_>, slave: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    let dev = safe::mkdir_all(root, Path::new("/dev"), 0o755)
        .map_err(|e| ConsoleError::Sys("create /dev", e))?;
    match sys::openat(
        dev.as_fd(),
        Path::new("console"),
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
        0o600,
    ) {
        Ok(_) => {}
        Err(e) if e.errno() == Some(libc::EEXIST) => {}
        Err(e) => return Err(ConsoleError::Sys("create /dev/console", e)),
    }
    let target = sys::openat2(
        dev.as_fd(),
        Path::new("console"),
        libc::O_PATH,
        0,
        sys::resolve::NO_SYMLINKS | sys::resolve::BENEATH,
    )
    .map_err(|e| match e.errno() {
        Some(libc::ELOOP) => ConsoleError::BadConsole,
        _ => ConsoleError::Sys("open /dev/console", e),
    })?;
    let st = sys::fstat(target.as_fd()).map_err(|e| ConsoleError::Sys("stat /dev/console", e))?;
    let fmt = st.st_mode & libc::S_IFMT;
    if fmt != libc::S_IFREG && fmt != libc::S_IFCHR {
        return Err(ConsoleError::BadConsole);
    }
    sys::mount(
        Some(&fd_path(slave)),
        &fd_path(target.as_fd()),
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(|e| ConsoleError::Sys("mount /dev/console", e))
}

/// Send the pty master over a connected console socket (runc's wire format: the
/// payload is a name, the descriptor travels as SCM_RIGHTS).
pub fn send_master(sock: BorrowedFd<'_>, master: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    let name = b"/dev/ptmx";
    let iov = [IoSlice::new(name)];
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(ConsoleError::Send)?;
    Ok(())
}

/// Make `slave` the process' stdin/stdout/stderr and controlling terminal.
pub fn become_stdio(slave: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    for target in 0..3 {
        // SAFETY: dup2 onto 0..2 replaces the process' stdio, which is the point.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(ConsoleError::Sys(
                "dup2 pty",
                SysError::last("dup2", target.to_string()),
            ));
        }
    }
    // SAFETY: TIOCSCTTY takes an int argument by value.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(ConsoleError::Sys(
            "set controlling terminal",
            SysError::last("ioctl(TIOCSCTTY)", "0"),
        ));
    }
    Ok(())
}

/// Receive a pty master sent with [`send_master`] (the receiving side of a console socket).
pub fn recv_master(sock: BorrowedFd<'_>) -> Result<OwnedFd, ConsoleError> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(ConsoleError::Send)?;
    for c in msg.cmsgs().map_err(ConsoleError::Send)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&f) = fds.first() {
                // SAFETY: the kernel installed this descriptor for us just now.
                return Ok(unsafe { OwnedFd::from_raw_fd(f) });
            }
        }
    }
    Err(ConsoleError::Send(nix::Error::EBADMSG))
}
