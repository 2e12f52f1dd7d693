//! The init side of `exec`: stage 1 (in init.rs) has joined every namespace of the
//! running container, including its pid namespace by forking; this stage 2 sets up the
//! terminal, applies the process spec (shared with a container's init, see
//! [`super::init::finalize`]) and execs. There is no start barrier: the runtime waits
//! on the sync socket until execve closes it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Process;

use super::init::{finalize, Finalize, InitConfig, InitError, Prepared};
use super::sync::{self, Msg};
use super::{console, execve};
use crate::lsm;
use crate::namespaces::{self, Kind};
use crate::sys::c;
use crate::sys::{self, SysError};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// The container's /proc, checked to be a procfs root (a mount the container put there
/// instead is refused; writes below it refuse symlinks and mount crossings).
fn container_proc() -> Result<OwnedFd, InitError> {
    let fd = sys::open(Path::new("/proc"), c::O_PATH | c::O_DIRECTORY, 0)
        .map_err(|e| InitError::Sys("open the container's /proc", e))?;
    let magic = sys::fstatfs_type(fd.as_fd()).map_err(|e| InitError::Sys("statfs /proc", e))?;
    if magic != PROC_SUPER_MAGIC {
        return Err(InitError::Sys(
            "verify the container's /proc",
            SysError::new(
                "statfs",
                "/proc",
                std::io::Error::from_raw_os_error(c::EXDEV),
            ),
        ));
    }
    Ok(fd)
}

/// Returns only when execve failed.
pub(super) fn stage2(
    cfg: &InitConfig,
    process: &Process,
    s: BorrowedFd<'_>,
    mut fds: Vec<OwnedFd>,
) -> Result<execve::ExecError, InitError> {
    let console_sock = if cfg.console_socket {
        Some(
            fds.pop()
                .ok_or(InitError::Protocol("console socket descriptor"))?,
        )
    } else {
        None
    };
    // A forked child is never a group leader: setsid succeeds.
    sys::setsid();
    if !namespaces::has(&cfg.namespaces, Kind::Mount) {
        // The container shares the runtime's mount namespace and runs chrooted into its
        // rootfs (see crate::rootfs::hostns): so does what is exec'd into it, rather
        // than seeing the host's files (runc 1.1 fails such an exec).
        sys::chroot(&cfg.rootfs)
            .and_then(|()| sys::chdir(Path::new("/")))
            .map_err(|e| InitError::Sys("enter the container's rootfs", e))?;
    }
    if process.terminal() == Some(true) {
        // Joining the mount namespace made its root ours: the container's devpts is at
        // /dev/pts.
        let root = sys::open(Path::new("/"), c::O_PATH | c::O_DIRECTORY, 0)
            .map_err(|e| InitError::Sys("open container root", e))?;
        let pty = console::open_pty(root.as_fd())?;
        if let Some(b) = process.console_size() {
            console::resize(pty.master.as_fd(), b.height() as u16, b.width() as u16)?;
        }
        let cs = console_sock
            .as_ref()
            .ok_or(InitError::Protocol("console socket"))?;
        console::send_master(cs.as_fd(), pty.master.as_fd())?;
        console::become_stdio(pty.slave.as_fd())?;
    }
    drop(console_sock);
    // Exec labels go through the container's procfs (we are in its mount and pid
    // namespaces now): only a verified procfs root, and only where there are labels.
    let labels = lsm::ExecLabels::of(&cfg.spec, Some(process));
    let proc = if labels.is_empty() {
        None
    } else {
        Some(container_proc()?)
    };
    let Prepared { path, args, env } = finalize(&Finalize {
        process,
        userns: namespaces::has(&cfg.namespaces, Kind::User),
        sock: s,
        preserve_fds: cfg.preserve_fds,
        seccomp: cfg.seccomp.as_ref(),
        // getpid: our pid in the container's procfs.
        labels: proc.as_ref().map(|p| (&labels, p.as_fd(), sys::getpid())),
    })?;
    sync::send(s, &Msg::Ready, &[])?;
    execve::cloexec_from(3 + cfg.preserve_fds);
    execve::reset_signals();
    Ok(execve::exec(&path, &args, &env))
}
