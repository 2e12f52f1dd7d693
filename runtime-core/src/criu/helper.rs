//! The restore helper: a fresh, single-threaded copy of the runtime binary (re-exec'd
//! like `runrs init`) that prepares the container's rootfs in a private mount namespace
//! and then execs `criu swrk` on the same socket, so criu finds the rootfs the way it
//! needs it (runc's restore):
//!
//! 1. `unshare(CLONE_NEWNS)`, `/` made rslave: nothing done here reaches the host, and
//!    everything is gone when criu exits (no mount to clean up, also after a failure);
//! 2. the rootfs bind-mounted onto itself (criu wants its root to be a mount point);
//! 3. the mount points of the spec created and its bind mounts mounted (see
//!    [`super::mounts::prepare_list`]);
//! 4. the image and work directories opened here (criu chdirs into the work directory
//!    and mounts a tmpfs there: a directory of the host's mount namespace would not do),
//!    the descriptors sent along (a network namespace to restore into) made
//!    inheritable, and a new socketpair made: one end goes to the runtime, criu gets the
//!    other. criu finds the directory descriptors by the socket's peer pid, which is
//!    then its own (SO_PEERCRED names the socketpair's creator). Then execve(criu swrk).
//!
//! The helper's pid becomes criu's, a child of the runtime: with criu's `rst_sibling`,
//! the restored container init is then a child of the runtime too, as after create.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::{Deserialize, Serialize};

use super::mounts::Prepare;
use super::rpc::{recv_packet, Swrk};
use super::CriuError;
use crate::process::spawn::InitStdio;
use crate::reap;
use crate::rootfs::safe;
use crate::sys::c;
use crate::sys::{self, fd_path, SysError};

/// Environment variable carrying the helper's socket descriptor number.
pub const HELPER_ENV: &str = "_RUNRS_CRIU_RESTORE_FD";

/// What the helper does before it becomes criu.
#[derive(Debug, Serialize, Deserialize)]
pub struct HelperConfig {
    /// The container's rootfs (host path).
    pub rootfs: PathBuf,
    /// Mount points to create and binds to mount.
    pub prepare: Vec<Prepare>,
    /// The criu binary (absolute).
    pub criu: PathBuf,
    /// The checkpoint's image directory.
    pub image_dir: PathBuf,
    /// criu's work directory, if not the image directory.
    pub work_dir: Option<PathBuf>,
}

/// Descriptor numbers in criu, for the restore request.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CriuFds {
    /// images_dir_fd.
    pub images: i32,
    /// work_dir_fd.
    pub work: Option<i32>,
    /// The descriptors passed to [`spawn`], in order.
    pub passed: Vec<i32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    /// Ready to exec criu; its socket comes with this message.
    Ready(CriuFds),
    /// Preparation failed.
    Error(String),
}

/// Start the helper with `stdio` as the restored process' stdio, have it prepare the
/// rootfs, and return criu (after the helper's exec) with its descriptor numbers.
pub(crate) fn spawn(
    cfg: &HelperConfig,
    stdio: InitStdio,
    fds: &[BorrowedFd<'_>],
) -> Result<(Swrk, CriuFds), CriuError> {
    let (ours, theirs) = sys::seqpacket_pair()?;
    let raw = theirs.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("runrs-criu-helper")
        .env(HELPER_ENV, raw.to_string());
    stdio.apply(&mut cmd);
    sys::keep_open_on_exec(&mut cmd, theirs.as_fd(), 0..0);
    // Opened before the helper starts: its exit is kept even if it comes before the wait.
    let window = reap::ExitWindow::open();
    let child = reap::spawn(&mut cmd)
        .map_err(|e| CriuError::Helper(format!("start the restore helper: {e}")))?;
    drop(theirs);
    let pid = child.id() as i32;
    // From here on, dropping `w` kills and reaps the helper (the socket is replaced by
    // criu's below).
    let mut w = Swrk::adopt(ours, pid, window);
    let sock = w.socket();
    let body = serde_json::to_vec(cfg).map_err(|e| CriuError::Helper(e.to_string()))?;
    let raws: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raws)];
    let cm: &[ControlMessage<'_>] = if raws.is_empty() { &[] } else { &cmsg };
    let iov = [std::io::IoSlice::new(&body)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, cm, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(|e| CriuError::Helper(format!("send the restore helper its config: {e}")))?;
    let reply = recv_packet(sock)
        .map_err(|e| SysError::new("recvmsg", "restore helper socket", e.into()))?;
    let Some((bytes, mut got)) = reply else {
        return Err(CriuError::Helper(format!(
            "the restore helper exited{}",
            w.exit_note()
        )));
    };
    match serde_json::from_slice::<Reply>(&bytes) {
        Ok(Reply::Ready(nums)) => {
            let criu_sock = got
                .pop()
                .ok_or_else(|| CriuError::Helper("the helper sent no criu socket".into()))?;
            w.replace_socket(criu_sock);
            Ok((w, nums))
        }
        Ok(Reply::Error(m)) => Err(CriuError::Helper(m)),
        Err(e) => Err(CriuError::Helper(format!("malformed helper reply: {e}"))),
    }
}

/// If this process was started as the restore helper, run it; never returns then.
/// Called from [`crate::entry::maybe_run`], before any thread exists.
pub(crate) fn run_if_helper() {
    let Some(v) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    std::env::remove_var(HELPER_ENV);
    let fd: RawFd = v.to_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
    if fd < 0 {
        eprintln!("runrs criu helper: bad {HELPER_ENV}");
        std::process::exit(1);
    }
    let sock = match sys::adopt_inherited_fd(fd, HELPER_ENV, true) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("runrs criu helper: {e}");
            std::process::exit(1);
        }
    };
    let err = match run(&sock) {
        Ok(e) => e,
        Err(e) => {
            reply(sock.as_fd(), &Reply::Error(e), None);
            std::process::exit(1)
        }
    };
    // Only reached when execve failed after Ready: the parent sees the socket close.
    eprintln!("runrs criu helper: {err}");
    std::process::exit(127)
}

fn reply(sock: BorrowedFd<'_>, r: &Reply, fd: Option<BorrowedFd<'_>>) {
    let body = serde_json::to_vec(r).unwrap_or_default();
    let raw: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cm: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    let iov = [std::io::IoSlice::new(&body)];
    let _ = sendmsg::<()>(sock.as_raw_fd(), &iov, cm, MsgFlags::MSG_NOSIGNAL, None);
}

/// Prepare and exec criu; returns the execve error.
fn run(sock: &OwnedFd) -> Result<String, String> {
    let (bytes, fds) = recv_packet(sock.as_fd())
        .map_err(|e| format!("receive config: {e}"))?
        .ok_or("the runtime closed the helper socket")?;
    let cfg: HelperConfig =
        serde_json::from_slice(&bytes).map_err(|e| format!("malformed config: {e}"))?;
    let s = |e: SysError| e.to_string() + ": " + &e.source.to_string();
    sys::unshare(c::CLONE_NEWNS).map_err(s)?;
    sys::mount(None, "/", None, c::MS_SLAVE | c::MS_REC, None).map_err(s)?;
    let r = cfg.rootfs.to_string_lossy();
    sys::mount(Some(&r), &r, Some("bind"), c::MS_BIND | c::MS_REC, None)
        .map_err(|e| format!("bind mount rootfs {r}: {}", s(e)))?;
    let root = sys::open(&cfg.rootfs, c::O_PATH | c::O_DIRECTORY, 0).map_err(s)?;
    for p in &cfg.prepare {
        let target = safe::ensure(root.as_fd(), &p.dest, p.dir)
            .map_err(|e| format!("create mount point {}: {}", p.dest.display(), s(e)))?;
        if let Some(src) = &p.bind {
            sys::mount(
                Some(&src.to_string_lossy()),
                &fd_path(target.as_fd()),
                None,
                c::MS_BIND | c::MS_REC,
                None,
            )
            .map_err(|e| {
                format!(
                    "bind mount {} on {}: {}",
                    src.display(),
                    p.dest.display(),
                    s(e)
                )
            })?;
        }
    }
    drop(root);
    // Everything below stays open across execve, for criu.
    let keep = |f: OwnedFd| -> Result<i32, String> {
        sys::clear_cloexec(f.as_fd()).map_err(s)?;
        let n = f.as_raw_fd();
        std::mem::forget(f);
        Ok(n)
    };
    let open_dir = |what: &str, p: &std::path::Path| {
        sys::open(p, c::O_RDONLY | c::O_DIRECTORY, 0)
            .map_err(|e| format!("open {what} {}: {}", p.display(), s(e)))
    };
    let mut nums = CriuFds {
        images: keep(open_dir("image directory", &cfg.image_dir)?)?,
        ..Default::default()
    };
    if let Some(w) = &cfg.work_dir {
        nums.work = Some(keep(open_dir("work directory", w)?)?);
    }
    for f in fds {
        nums.passed.push(keep(f)?);
    }
    let (runtime_end, criu_end) = sys::seqpacket_pair().map_err(s)?;
    let criu_fd = keep(criu_end)?;
    reply(sock.as_fd(), &Reply::Ready(nums), Some(runtime_end.as_fd()));
    drop(runtime_end);
    let err = Command::new(&cfg.criu)
        .arg0("criu")
        .arg("swrk")
        .arg(criu_fd.to_string())
        .exec();
    Ok(format!("execute {}: {err}", cfg.criu.display()))
}
