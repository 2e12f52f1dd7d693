//! The container's terminal: a pty allocated from the container's own devpts, the
//! peer end bind-mounted at /dev/console and made the process' stdio and controlling
//! terminal, and the master sent to the `--console-socket` with SCM_RIGHTS, as runc
//! does. The slave is obtained with TIOCGPTPEER, never by path, and /dev/console is
//! refused if it is a symlink (CVE-2025-52565). See pty(7), ioctl_tty(2).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::rootfs::safe;
use crate::sys::{self, c, fd_path, term, SysError};

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
        c::O_RDWR | c::O_NOCTTY,
        0,
        sys::resolve::IN_ROOT | sys::resolve::NO_SYMLINKS,
    )
    .map_err(|e| {
        if e.errno() == Some(c::ENOENT) {
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
    term::unlock_pty(master.as_fd()).map_err(|e| ConsoleError::Sys("unlock pty", e))?;
    let slave = term::pty_peer(master.as_fd(), c::O_RDWR | c::O_NOCTTY)
        .map_err(|e| ConsoleError::Sys("open pty peer", e))?;
    Ok(Pty { master, slave })
}

/// Set the window size of a terminal.
pub fn resize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), ConsoleError> {
    term::set_winsize(fd, rows, cols).map_err(|e| ConsoleError::Sys("resize pty", e))
}

/// Bind-mount the pty peer over /dev/console inside `root`.
pub fn mount_console(root: BorrowedFd<'_>, slave: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    let dev = safe::mkdir_all(root, Path::new("/dev"), 0o755)
        .map_err(|e| ConsoleError::Sys("create /dev", e))?;
    match sys::openat(
        dev.as_fd(),
        Path::new("console"),
        c::O_CREAT | c::O_EXCL | c::O_WRONLY | c::O_NOFOLLOW,
        0o600,
    ) {
        Ok(_) => {}
        Err(e) if e.errno() == Some(c::EEXIST) => {}
        Err(e) => return Err(ConsoleError::Sys("create /dev/console", e)),
    }
    let target = sys::openat2(
        dev.as_fd(),
        Path::new("console"),
        c::O_PATH,
        0,
        sys::resolve::NO_SYMLINKS | sys::resolve::BENEATH,
    )
    .map_err(|e| match e.errno() {
        Some(c::ELOOP) => ConsoleError::BadConsole,
        _ => ConsoleError::Sys("open /dev/console", e),
    })?;
    let st = sys::fstat(target.as_fd()).map_err(|e| ConsoleError::Sys("stat /dev/console", e))?;
    let fmt = st.st_mode & c::S_IFMT;
    if fmt != c::S_IFREG && fmt != c::S_IFCHR {
        return Err(ConsoleError::BadConsole);
    }
    sys::mount(
        Some(&fd_path(slave)),
        &fd_path(target.as_fd()),
        None,
        c::MS_BIND,
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
        sys::dup2(slave, target).map_err(|e| ConsoleError::Sys("dup2 pty", e))?;
    }
    // The slave is now also fd 0: make it the controlling terminal through its own
    // descriptor (the same terminal).
    term::set_controlling_terminal(slave)
        .map_err(|e| ConsoleError::Sys("set controlling terminal", e))
}

/// Receive a pty master sent with [`send_master`] (the receiving side of a console socket).
pub fn recv_master(sock: BorrowedFd<'_>) -> Result<OwnedFd, ConsoleError> {
    let mut buf = [0u8; 4096];
    let (_, fds) = sys::recv_with_fds(sock, &mut buf).map_err(ConsoleError::Send)?;
    fds.into_iter()
        .next()
        .ok_or(ConsoleError::Send(nix::Error::EBADMSG))
}
