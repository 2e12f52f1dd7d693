//! The init side of container creation (`runrs init`), run in a freshly exec'd,
//! single-threaded copy of the runrs binary.
//!
//! Stage 1 joins or creates the namespaces (user first, with the parent writing the id
//! maps) and forks; the child, stage 2, is the container's init: it builds the rootfs,
//! console, hostname, sysctls, masked/read-only paths, pivots, applies rlimits, user,
//! capabilities and no_new_privs, reports Ready, waits on the exec fifo for `start`,
//! and execs the user's program. Every failure before Ready travels to the parent as a
//! structured [`Msg::Error`]. See DESIGN.md "Process model".

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::sync::{self, Msg};
use super::{cgroup_join, console, execve, user};
use crate::cgroups::CgroupPaths;
use crate::fault::Kind as ErrorKind;
use crate::namespaces::{self, Kind, Namespace};
use crate::rootfs::{self, mounts::MountContext};
use crate::state::{OciState, Status, OCI_VERSION};
use crate::sys::c;
use crate::sys::{self, SysError};
use crate::{capabilities, hooks, lsm, rlimits, seccomp, sysctl};

/// Environment variable carrying the sync socket's descriptor number to init.
pub const INIT_ENV: &str = "_RUNRS_INIT_FD";

/// What init builds, sent by the parent as the first message.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitConfig {
    /// Container id.
    pub id: String,
    /// The validated spec.
    pub spec: Spec,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Namespaces, in join/create order.
    pub namespaces: Vec<Namespace>,
    /// The container's cgroups.
    pub cgroup: CgroupPaths,
    /// v1 hierarchies (mountpoint name, controllers), for cgroup mounts.
    pub cgroup_mounts: Vec<(String, Vec<String>)>,
    /// MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Descriptors 3..3+N are passed to the container process.
    pub preserve_fds: u32,
    /// A console socket descriptor follows the exec fifo descriptor.
    pub console_socket: bool,
    /// The parent runs prestart/createRuntime hooks: sync before pivot.
    pub parent_hooks: bool,
    /// Creation time, for hook state.
    pub created: String,
    /// Exec mode: run this process in the (running) container's namespaces instead of
    /// creating a container. `namespaces` then holds the paths to join.
    #[serde(default)]
    pub exec: Option<Box<oci_spec::runtime::Process>>,
    /// The compiled seccomp filter (see [`crate::security::preflight`]).
    #[serde(default)]
    pub seccomp: Option<crate::seccomp::Program>,
    /// Intel RDT groups to join first thing, so every process of the container
    /// (hooks included) is in them before it runs.
    #[serde(default)]
    pub rdt: Option<crate::rdt::RdtState>,
    /// The runtime logs at debug level: init reports each step of its setup (runc's
    /// nsexec and init lines under `--debug`).
    #[serde(default)]
    pub debug: bool,
}

/// If this process was started as runrs' init, run it; never returns then.
/// Called from [`crate::entry::maybe_run`] (the only entry point: a binary that called
/// this alone would not dispatch the criu helper), before any thread exists.
pub(crate) fn run_if_init() {
    let Some(v) = std::env::var_os(INIT_ENV) else {
        return;
    };
    let fd: i32 = v.to_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
    if fd < 0 {
        eprintln!("runrs init: bad {INIT_ENV}");
        std::process::exit(1);
    }
    std::env::remove_var(INIT_ENV);
    let sock = match sys::adopt_inherited_fd(fd, INIT_ENV, true) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("runrs init: {e}");
            std::process::exit(1);
        }
    };
    stage1(sock)
}

fn fail(sock: BorrowedFd<'_>, err: &InitError) -> ! {
    let kind = err.kind();
    let mut message = err.to_string();
    let err: &dyn std::error::Error = err;
    let mut src = err.source();
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    let _ = sync::send(sock, &Msg::Error { message, kind }, &[]);
    std::process::exit(1)
}

fn stage1(sock: OwnedFd) -> ! {
    let s = sock.as_fd();
    // Non-dumpable until execve: the container cannot open /proc/<init>/exe or fds
    // (CVE-2019-5736).
    let _ = sys::prctl(c::PR_SET_DUMPABLE, 0, 0, "PR_SET_DUMPABLE");
    let (cfg, fds) = match sync::recv(s) {
        Ok((Msg::Config(c), fds)) => (c, fds),
        Ok(_) => fail(s, &InitError::Protocol("config")),
        Err(e) => fail(s, &InitError::Sync(e)),
    };
    // Descriptors the caller leaked to us (not close-on-exec) must not reach hooks or
    // the container (CVE-2024-21626); only the preserved ones stay inheritable.
    execve::cloexec_from(3 + cfg.preserve_fds);
    match stage1_inner(&cfg, s) {
        Ok((0, after_child)) => {
            // Speak only after stage 1 has told the runtime our pid (it closes its end
            // of this pipe after that), so the runtime sees Child before anything else.
            let mut b = [0u8; 1];
            let _ = sys::read(after_child.as_fd(), &mut b, "stage 1 handoff");
            drop(after_child);
            stage2(cfg, sock, fds)
        }
        Ok((child, after_child)) => {
            if let Err(e) = sync::send(s, &Msg::Child { pid: child }, &[]) {
                fail(s, &InitError::Sync(e));
            }
            drop(after_child);
            std::process::exit(0)
        }
        Err(e) => fail(s, &e),
    }
}

/// Returns the child's pid in the parent branch, 0 in the child, and the end of the
/// handoff pipe each keeps (the parent's write end, the child's read end).
#[allow(
    clippy::disallowed_methods,
    reason = "the process' own procfs file, not under the rootfs"
)]
fn stage1_inner(cfg: &InitConfig, s: BorrowedFd<'_>) -> Result<(i32, OwnedFd), InitError> {
    let process = match cfg.exec.as_deref() {
        Some(p) => p,
        None => cfg
            .spec
            .process()
            .as_ref()
            .ok_or(InitError::Protocol("process"))?,
    };
    // Into the container's cgroups first, so that what follows is charged to them. A
    // new cgroup namespace is rooted where its creator is: stage 1 must then be in the
    // cgroup2 directory itself (not only fork into it) before it unshares, or the
    // container sees its host path ("0::/<path>", on hybrid and v2 hosts) instead of "/".
    // An exec joining the container's cgroup namespace must enter before it joins: where
    // cgroup2 is mounted with nsdelegate (systemd hosts), the kernel refuses a move (and a
    // clone3 into a cgroup) whose source is outside the caller's cgroup namespace (ENOENT).
    let unified_now = namespaces::has(&cfg.namespaces, Kind::User)
        || namespaces::has(&cfg.namespaces, Kind::Cgroup);
    progress(cfg, s, || {
        format!("stage-1 (pid {}): config received", sys::getpid())
    });
    let placement = cgroup_join::enter(&cfg.cgroup, unified_now)
        .map_err(|e| InitError::Sys("join the container's cgroups", e))?;
    progress(cfg, s, || {
        format!("joined the cgroups of {:?}", cfg.cgroup.path)
    });
    if let Some(r) = &cfg.rdt {
        crate::rdt::add_task(r, std::process::id() as i32)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        // Inherited by the container's init across fork.
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|source| {
            InitError::OomScore {
                value: adj,
                hint: if matches!(source.raw_os_error(), Some(c::EACCES) | Some(c::EPERM)) {
                    " (lowering oom_score_adj needs CAP_SYS_RESOURCE, which the runtime does not have)"
                } else {
                    ""
                },
                source,
            }
        })?;
    }
    let joins = namespaces::open_joins(&cfg.namespaces).map_err(InitError::Namespace)?;
    let mut in_userns = joins.join_user().map_err(InitError::Namespace)?;
    if !in_userns && namespaces::creates(&cfg.namespaces, Kind::User) {
        sys::unshare(c::CLONE_NEWUSER).map_err(InitError::Namespace)?;
        // The runtime writes our id maps, and /proc/<pid>/{setgroups,uid_map,gid_map} of
        // a non-dumpable process belong to root, which a rootless runtime is not:
        // dumpable while it writes them, as runc's nsexec does (nothing of the container
        // has run yet).
        let _ = sys::prctl(c::PR_SET_DUMPABLE, 1, 0, "PR_SET_DUMPABLE");
        progress(cfg, s, || {
            "unshare user namespace; asking the runtime for the id maps".into()
        });
        sync::send(s, &Msg::MapRequest, &[])?;
        let done = sync::recv(s)?.0;
        let _ = sys::prctl(c::PR_SET_DUMPABLE, 0, 0, "PR_SET_DUMPABLE");
        match done {
            Msg::MapDone => {}
            _ => return Err(InitError::Protocol("map_done")),
        }
        progress(cfg, s, || "id maps written".into());
        in_userns = true;
    }
    if in_userns {
        // Become root of the user namespace (runc does the same in nsexec).
        user::switch(0, 0, &[], false)
            .map_err(|e| InitError::Sys("become root in the user namespace", e))?;
    }
    joins.join_rest().map_err(InitError::Namespace)?;
    progress(cfg, s, || {
        let joined: Vec<String> = cfg
            .namespaces
            .iter()
            .filter(|n| n.path.is_some())
            .map(|n| format!("{:?}", n.kind))
            .collect();
        format!("joined namespaces by path: {joined:?}")
    });
    let flags = namespaces::new_flags_except_user(&cfg.namespaces);
    if flags != 0 {
        progress(cfg, s, || {
            let new: Vec<String> = cfg
                .namespaces
                .iter()
                .filter(|n| n.path.is_none() && n.kind != Kind::User)
                .map(|n| format!("{:?}", n.kind))
                .collect();
            format!("unshare namespaces: {new:?}")
        });
        sys::unshare(flags).map_err(InitError::Namespace)?;
    }
    if flags & Kind::Time.flag() != 0 {
        write_time_offsets(&cfg.spec)?;
    }
    let (r, w) = sys::pipe("init handoff").map_err(|e| InitError::Sys("handoff pipe", e))?;
    progress(cfg, s, || "spawn stage-2 (the container's init)".into());
    // Init is single-threaded (a fresh exec that never spawned a thread), so the child
    // may run arbitrary code after fork.
    match cgroup_join::fork(&placement) {
        Err(e) => Err(InitError::Sys("fork container init", e)),
        Ok(0) => Ok((0, r)),
        Ok(pid) => Ok((pid, w)),
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the process' own procfs file, not under the rootfs"
)]
fn write_time_offsets(spec: &Spec) -> Result<(), InitError> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{} {} {}\n",
            clock,
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", text).map_err(|e| {
        InitError::Sys(
            "write time namespace offsets",
            SysError::new("write", "/proc/self/timens_offsets", e),
        )
    })
}

fn stage2(cfg: Box<InitConfig>, sock: OwnedFd, fds: Vec<OwnedFd>) -> ! {
    let s = sock.as_fd();
    let result = match cfg.exec.as_deref() {
        Some(process) => super::exec_init::stage2(&cfg, process, s, fds),
        None => stage2_inner(&cfg, s, fds),
    };
    let err = match result {
        Ok(e) if cfg.exec.is_some() => {
            // The runtime waits for exec's outcome on the socket.
            fail(s, &InitError::Exec(e))
        }
        Ok(e) => e,
        Err(e) => fail(s, &e),
    };
    // Only reached when execve failed after start: nobody listens on the socket any
    // more, the container's stderr is the only place left.
    eprintln!("runrs: {err}");
    std::process::exit(match err {
        execve::ExecError::Exec(_, ref e) if e.errno() == Some(c::ENOENT) => 127,
        _ => 126,
    })
}

fn hook_state(cfg: &InitConfig, pid: i32) -> OciState {
    OciState {
        oci_version: OCI_VERSION.into(),
        id: cfg.id.clone(),
        pid,
        status: Status::Creating,
        bundle: cfg.bundle.display().to_string(),
        rootfs: cfg.rootfs.display().to_string(),
        created: cfg.created.clone(),
        owner: String::new(),
        annotations: cfg
            .spec
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

/// Returns only when execve failed after start.
fn stage2_inner(
    cfg: &InitConfig,
    s: BorrowedFd<'_>,
    mut fds: Vec<OwnedFd>,
) -> Result<execve::ExecError, InitError> {
    let spec = &cfg.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or(InitError::Protocol("process"))?;
    let linux = spec.linux().as_ref().ok_or(InitError::Protocol("linux"))?;
    if fds.is_empty() {
        return Err(InitError::Protocol("exec fifo descriptor"));
    }
    let fifo = fds.remove(0);
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

    // Handles on the host's /proc and /dev/null, taken before the container's mounts
    // can shadow anything.
    let host_proc = sys::open(Path::new("/proc"), c::O_PATH | c::O_DIRECTORY, 0)
        .map_err(|e| InitError::Sys("open host /proc", e))?;
    let devnull = sys::open(Path::new("/dev/null"), c::O_PATH, 0)
        .map_err(|e| InitError::Sys("open host /dev/null", e))?;
    let host_pid = std::fs::read_link(format!("{}/self", sys::fd_path(host_proc.as_fd())))
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(sys::getpid);
    // Hooks run in the container's namespaces see the pid as the container sees it
    // (runtime.md "State"; runc passes getpid() too).
    let own_pid = std::process::id() as i32;

    let own_mntns = namespaces::has(&cfg.namespaces, Kind::Mount);
    // In a user namespace, the config's or the caller's (rootless Podman runs the
    // runtime as uid 0 of its own): no mknod, bind mounts instead (runc does the same).
    let userns = namespaces::has(&cfg.namespaces, Kind::User) || namespaces::running_in_userns();
    progress(cfg, s, || {
        format!(
            "stage-2 (pid {host_pid}, {own_pid} in the container): preparing rootfs {}",
            cfg.rootfs.display()
        )
    });
    let root = rootfs::enter(spec, &cfg.rootfs, own_mntns)?;
    let ctx = MountContext {
        root: root.as_fd(),
        cgroup: &cfg.cgroup,
        cgroup_mounts: &cfg.cgroup_mounts,
        userns,
        cgroupns: namespaces::has(&cfg.namespaces, Kind::Cgroup),
        mount_label: linux.mount_label().as_deref(),
    };
    for m in spec.mounts().iter().flatten() {
        progress(cfg, s, || format!("mount {}", m.destination().display()));
        rootfs::mounts::mount(&ctx, m)?;
    }
    rootfs::setup_dev(spec, root.as_fd(), userns)?;
    // runc creates a missing cwd inside the rootfs. Magic links are refused (EXDEV).
    rootfs::safe::mkdir_all(root.as_fd(), process.cwd(), 0o755).map_err(|e| match e.errno() {
        Some(c::EXDEV) => InitError::CwdEscape(process.cwd().clone()),
        _ => InitError::Sys("create process.cwd", e),
    })?;

    if cfg.parent_hooks {
        progress(cfg, s, || {
            "asking the runtime to run the prestart and createRuntime hooks".into()
        });
        sync::send(s, &Msg::Hooks, &[])?;
        match sync::recv(s)?.0 {
            Msg::HooksDone => {}
            _ => return Err(InitError::Protocol("hooks_done")),
        }
        progress(cfg, s, || "hooks done".into());
    }
    if let Some(h) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().as_ref())
    {
        sys::fchdir(root.as_fd()).map_err(|e| InitError::Sys("enter rootfs", e))?;
        hooks::run("createContainer", h, &hook_state(cfg, own_pid))?;
    }

    let pty = if process.terminal() == Some(true) {
        let pty = console::open_pty(root.as_fd())?;
        if let Some(b) = process.console_size() {
            console::resize(pty.master.as_fd(), b.height() as u16, b.width() as u16)?;
        }
        console::mount_console(root.as_fd(), pty.slave.as_fd())?;
        let cs = console_sock
            .as_ref()
            .ok_or(InitError::Protocol("console socket"))?;
        console::send_master(cs.as_fd(), pty.master.as_fd())?;
        Some(pty.slave)
    } else {
        None
    };
    drop(console_sock);

    if namespaces::creates(&cfg.namespaces, Kind::Network) {
        // A new network namespace has only a loopback device, down; runc brings it up.
        namespaces::loopback_up().map_err(|e| InitError::Sys("bring up lo", e))?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(|e| {
            InitError::Sys("set hostname", SysError::new("sethostname", h, e.into()))
        })?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        set_domainname(d)?;
    }
    sysctl::apply(spec, host_proc.as_fd())?;
    rootfs::protect_paths(spec, root.as_fd(), devnull.as_fd())?;
    rootfs::readonly_dev(spec, root.as_fd())?;
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        rootfs::readonly_root(&cfg.rootfs)?;
    }
    progress(cfg, s, || {
        if !own_mntns {
            "switch root: chroot (no mount namespace)".into()
        } else if cfg.no_pivot {
            "switch root: MS_MOVE and chroot (--no-pivot)".into()
        } else {
            "switch root: pivot_root".into()
        }
    });
    rootfs::switch_root(&cfg.rootfs, root.as_fd(), cfg.no_pivot, own_mntns)?;
    if !rootfs::dev_is_bind(spec) {
        rootfs::devices::reopen_devnull()?;
    }
    drop(root);
    drop(devnull);
    if let Some(slave) = pty {
        console::become_stdio(slave.as_fd())?;
    }

    let labels = lsm::ExecLabels::of(spec, None);
    let Prepared { path, args, env } = finalize(&Finalize {
        process,
        userns,
        sock: s,
        preserve_fds: cfg.preserve_fds,
        seccomp: cfg.seccomp.as_ref(),
        labels: Some((&labels, host_proc.as_fd(), host_pid)),
    })?;

    progress(cfg, s, || {
        format!(
            "ready: {} resolved; waiting for start on the exec fifo",
            path.display()
        )
    });
    sync::send(s, &Msg::Ready, &[])?;

    // Wait for start: opening the fifo for writing blocks until `start` opens it for
    // reading. Reopen through the host procfs: the fifo lives outside our root.
    let wfd = sys::openat(
        host_proc.as_fd(),
        Path::new(&format!("thread-self/fd/{}", fifo.as_raw_fd())),
        c::O_WRONLY,
        0,
    )
    .map_err(|e| InitError::Sys("open exec fifo", e))?;
    drop(fifo);
    drop(host_proc);
    // `start` is reading now. The startContainer hooks are part of start: their
    // result goes back over the fifo, "0" for success, "1" and the error otherwise.
    let mut st = hook_state(cfg, own_pid);
    st.status = Status::Created;
    let hooked = hooks::run(
        "startContainer",
        hooks::of_kind(spec, "startContainer"),
        &st,
    );
    let reply = match &hooked {
        Ok(()) => b"0".to_vec(),
        Err(e) => format!("1{}", crate::fault::chain(e)).into_bytes(),
    };
    sys::write_all(wfd.as_fd(), &reply, "exec fifo")
        .map_err(|e| InitError::Sys("write exec fifo", e))?;
    drop(wfd);
    if hooked.is_err() {
        std::process::exit(1);
    }
    execve::cloexec_from(3 + cfg.preserve_fds);
    execve::reset_signals();
    Ok(execve::exec(&path, &args, &env))
}

/// A debug line for the runtime's log when it runs with `--debug` (the message is
/// built only then).
fn progress(cfg: &InitConfig, s: BorrowedFd<'_>, message: impl FnOnce() -> String) {
    if cfg.debug {
        send_log(s, "debug", &message());
    }
}

fn send_log(s: BorrowedFd<'_>, level: &str, message: &str) {
    let _ = sync::send(
        s,
        &Msg::Log {
            level: level.into(),
            message: message.into(),
        },
        &[],
    );
}

fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() == "allow")
        .unwrap_or(true)
}

fn set_domainname(d: &str) -> Result<(), InitError> {
    sys::setdomainname(d).map_err(|e| InitError::Sys("set domainname", e))
}

mod error;
mod finalize;

pub use error::InitError;
pub(crate) use finalize::{finalize, Finalize, Prepared};

#[cfg(test)]
mod tests;
