//! The parent side of container creation: start `runrs init` from a read-only view
//! of the binary (see [`binary`]) (which joins the container's cgroups itself, first thing), send it the
//! config, answer its requests (id maps, hooks) and wait for Ready or an error.
//! The caller decides who reaps the short-lived stage-1 process (see [`Reap`]).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::binary;
use super::init::{InitConfig, INIT_ENV};
use super::sync::{self, Msg, SyncError};
use crate::sys::SysError;

/// Who reaps the stage-1 init process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reap {
    /// This call waits for it (CLI: the runtime is its parent and nothing else reaps).
    Here,
    /// A process-wide reaper owns all children (the shim): do not wait.
    External,
}

/// Stdio of the container's process.
#[derive(Debug, Default)]
pub enum InitStdio {
    /// Inherit the caller's stdin/stdout/stderr (runc's pass-through).
    #[default]
    Inherit,
    /// These descriptors become 0, 1, 2.
    Fds {
        /// stdin.
        stdin: OwnedFd,
        /// stdout.
        stdout: OwnedFd,
        /// stderr.
        stderr: OwnedFd,
    },
}

impl InitStdio {
    /// Make these the stdin, stdout and stderr of `cmd` (nothing for `Inherit`).
    pub(crate) fn apply(self, cmd: &mut Command) {
        if let InitStdio::Fds {
            stdin,
            stdout,
            stderr,
        } = self
        {
            cmd.stdin(Stdio::from(stdin))
                .stdout(Stdio::from(stdout))
                .stderr(Stdio::from(stderr));
        }
    }
}

/// Failures of the parent side.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The init process could not be started.
    #[error("start init process")]
    Start(#[source] std::io::Error),
    /// Preparing the executable.
    #[error("prepare init executable")]
    Binary(#[source] SysError),
    /// Talking to init.
    #[error("talk to init")]
    Sync(#[source] SyncError),
    /// Writing the id maps.
    #[error("write {file} of pid {pid}")]
    IdMap {
        /// uid_map or gid_map.
        file: &'static str,
        /// The process.
        pid: i32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// newuidmap/newgidmap refused or failed.
    #[error("{tool} of pid {pid}: {message}")]
    IdMapTool {
        /// newuidmap or newgidmap.
        tool: &'static str,
        /// The process.
        pid: i32,
        /// What it said.
        message: String,
    },
    /// Init reported a failure.
    #[error("{message}")]
    Init {
        /// What failed, with its causes.
        message: String,
        /// Whose fault, as init classified it.
        kind: crate::fault::Kind,
    },
    /// Init died without saying why.
    #[error("init exited before the container was created{0}")]
    Died(String),
    /// A parent-side hook failed.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// A descriptor to preserve is not open.
    #[error("preserved fd {0} (of --preserve-fds {1}) is not open")]
    Preserved(i32, u32),
    /// Init sent a message out of order.
    #[error("unexpected message from init: {0}")]
    Protocol(String),
    /// Setting up the container's cgroups with init's pid failed (systemd driver).
    #[error(transparent)]
    Cgroup(crate::cgroups::CgroupError),
    /// Handing the seccomp listener to the agent failed.
    #[error(transparent)]
    SeccompListener(#[from] crate::seccomp::listener::ListenerError),
}

/// A running init that reported Ready.
#[derive(Debug)]
pub struct Spawned {
    /// Host pid of the container's init.
    pub pid: i32,
}

/// Extra descriptors handed to init with the config.
pub struct InitFds<'a> {
    /// O_PATH descriptor of the exec fifo (create only).
    pub exec_fifo: Option<BorrowedFd<'a>>,
    /// Connected console socket, when the process has a terminal.
    pub console_socket: Option<BorrowedFd<'a>>,
    /// Runs with init's first-stage pid before init gets its config (and so before it
    /// joins its cgroups): the systemd driver starts the container's scope with it.
    pub on_stage1: Option<&'a mut dyn FnMut(i32) -> Result<(), crate::cgroups::CgroupError>>,
}

/// Spawn init and drive it to Ready. Init places itself in `cfg.cgroup` (see
/// [`super::cgroup_join`]) before it creates anything. `on_hooks` runs the parent's hooks (prestart,
/// createRuntime) with the container's host pid when init asks for them. On error the
/// init processes are killed; cgroup and state cleanup is the caller's.
pub fn spawn(
    cfg: InitConfig,
    fds: InitFds<'_>,
    stdio: InitStdio,
    reap: Reap,
    mut on_hooks: impl FnMut(i32) -> Result<(), crate::hooks::HookError>,
) -> Result<Spawned, SpawnError> {
    let exe = binary::init_executable(&cfg.bundle).map_err(SpawnError::Binary)?;
    let (parent, child) = crate::sys::seqpacket_pair().map_err(SpawnError::Binary)?;
    let child_raw = child.as_raw_fd();
    let preserved = 3..3 + cfg.preserve_fds as i32;
    for fd in preserved.clone() {
        if !crate::sys::fd_is_open(fd) {
            return Err(SpawnError::Preserved(fd, cfg.preserve_fds));
        }
    }
    let mut cmd = Command::new(crate::sys::fd_path(exe.as_fd()));
    cmd.arg0("runrs")
        .arg("init")
        .env_clear()
        .env(INIT_ENV, child_raw.to_string());
    stdio.apply(&mut cmd);
    // The sync socket and the preserved descriptors (--preserve-fds, LISTEN_FDS)
    // reach init open.
    crate::sys::keep_open_on_exec(&mut cmd, child.as_fd(), preserved);
    let mut proc = crate::reap::spawn(&mut cmd).map_err(SpawnError::Start)?;
    drop(child);
    drop(exe);
    let stage1 = proc.id() as i32;
    let mut guard = Guard {
        stage1,
        child: None,
        reap,
        proc: Some(&mut proc),
    };

    if let Some(place) = fds.on_stage1 {
        place(stage1).map_err(SpawnError::Cgroup)?;
    }

    let spec_maps = IdMaps::from_spec(&cfg.spec);
    // An exec's process runs as soon as it is ready: then wait for execve itself (the
    // socket closes on exec) so its failure is reported to the caller.
    let wait_exec = cfg.exec.is_some();
    let mut extra: Vec<BorrowedFd<'_>> = fds.exec_fifo.into_iter().collect();
    let listener = listener_of(&cfg);
    extra.extend(fds.console_socket);
    sync::send(parent.as_fd(), &Msg::Config(Box::new(cfg)), &extra).map_err(SpawnError::Sync)?;

    loop {
        let (msg, received) = match sync::recv(parent.as_fd()) {
            Ok(m) => m,
            Err(SyncError::Closed) => return Err(SpawnError::Died(guard.exit_note())),
            Err(e) => return Err(SpawnError::Sync(e)),
        };
        match msg {
            Msg::MapRequest => {
                spec_maps.write(stage1)?;
                sync::send(parent.as_fd(), &Msg::MapDone, &[]).map_err(SpawnError::Sync)?;
            }
            Msg::Child { pid } => {
                guard.child = Some(pid);
                guard.reap_stage1();
            }
            Msg::Hooks => {
                let pid = guard
                    .child
                    .ok_or_else(|| SpawnError::Protocol("hooks before child".into()))?;
                on_hooks(pid)?;
                sync::send(parent.as_fd(), &Msg::HooksDone, &[]).map_err(SpawnError::Sync)?;
            }
            Msg::Ready => {
                let pid = guard
                    .child
                    .ok_or_else(|| SpawnError::Protocol("ready before child".into()))?;
                if wait_exec {
                    match sync::recv(parent.as_fd()) {
                        Err(SyncError::Closed) => {}
                        Ok((Msg::Error { message, kind }, _)) => {
                            return Err(SpawnError::Init { message, kind })
                        }
                        Ok((other, _)) => return Err(SpawnError::Protocol(format!("{other:?}"))),
                        Err(e) => return Err(SpawnError::Sync(e)),
                    }
                }
                guard.disarm();
                return Ok(Spawned { pid });
            }
            Msg::SeccompFd => {
                let pid = guard
                    .child
                    .ok_or_else(|| SpawnError::Protocol("seccomp listener before child".into()))?;
                let fd = received.first().ok_or_else(|| {
                    SpawnError::Protocol("seccomp_fd without a descriptor".into())
                })?;
                let l = listener
                    .as_ref()
                    .ok_or(crate::seccomp::listener::ListenerError::NoPath)?;
                // Our copy closes when `received` drops: the agent holds the only one.
                l.send(pid, fd.as_fd())?;
            }
            Msg::Error { message, kind } => return Err(SpawnError::Init { message, kind }),
            Msg::Log { level, message } => match level.as_str() {
                "error" => tracing::error!("init: {message}"),
                "warn" => tracing::warn!("init: {message}"),
                "info" => tracing::info!("init: {message}"),
                _ => tracing::debug!("init: {message}"),
            },
            other => return Err(SpawnError::Protocol(format!("{other:?}"))),
        }
    }
}

/// The seccomp listener of the container or exec `cfg` describes, if its spec names one.
fn listener_of(cfg: &InitConfig) -> Option<crate::seccomp::listener::Listener> {
    let l = crate::seccomp::listener::Listener::from_spec(&cfg.id, &cfg.bundle, &cfg.spec)?;
    if cfg.exec.is_none() {
        return Some(l);
    }
    // An exec joins the init's namespaces by /proc/<pid>/ns/<type> paths.
    let init_pid = cfg
        .namespaces
        .iter()
        .filter_map(|n| n.path.as_ref())
        .find_map(|p| {
            p.strip_prefix("/proc")
                .ok()?
                .iter()
                .next()?
                .to_str()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Some(l.for_exec(init_pid))
}

/// Kills init on early return.
struct Guard<'a> {
    stage1: i32,
    child: Option<i32>,
    reap: Reap,
    proc: Option<&'a mut std::process::Child>,
}

impl Guard<'_> {
    fn reap_stage1(&mut self) {
        if self.reap == Reap::Here {
            if let Some(p) = self.proc.take() {
                let _ = p.wait();
            }
        } else {
            self.proc = None;
        }
    }

    fn exit_note(&mut self) -> String {
        if self.reap == Reap::Here {
            if let Some(p) = self.proc.take() {
                if let Ok(st) = p.wait() {
                    return format!(" ({st})");
                }
            }
        }
        String::new()
    }

    fn disarm(&mut self) {
        self.child = None;
        self.proc = None;
        self.stage1 = 0;
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.child {
            // The container init we made.
            let _ = crate::sys::kill(c, crate::sys::c::SIGKILL);
            crate::sys::wait_gone(c, std::time::Duration::from_secs(5));
        }
        if self.stage1 > 0 {
            if let Some(p) = self.proc.take() {
                let _ = p.kill();
                // With a process-wide reaper (the shim), it reaps stage 1: a second
                // waiter here would race it.
                if self.reap == Reap::Here {
                    let _ = p.wait();
                }
            }
        }
    }
}

/// uid/gid maps of a new user namespace: (container id, host id, size) triples.
struct IdMaps {
    uid: Vec<[u32; 3]>,
    gid: Vec<[u32; 3]>,
}

impl IdMaps {
    fn from_spec(spec: &Spec) -> Self {
        let triples = |m: Option<&Vec<LinuxIdMapping>>| {
            m.into_iter()
                .flatten()
                .map(|m| [m.container_id(), m.host_id(), m.size()])
                .collect()
        };
        let l = spec.linux().as_ref();
        IdMaps {
            uid: triples(l.and_then(|l| l.uid_mappings().as_ref())),
            gid: triples(l.and_then(|l| l.gid_mappings().as_ref())),
        }
    }

    /// Write the maps of `pid`: directly as root, or for an unprivileged runtime
    /// mapping only its own id; other mappings of an unprivileged runtime go through
    /// the setuid newuidmap/newgidmap helpers, which check them against /etc/subuid and
    /// /etc/subgid (as runc does). The maps were checked by security::preflight.
    #[allow(
        clippy::disallowed_methods,
        reason = "host procfs files of the child, not under a rootfs"
    )]
    fn write(&self, pid: i32) -> Result<(), SpawnError> {
        let (euid, egid) = crate::sys::effective_ids();
        for (file, tool, maps, own) in [
            ("uid_map", "newuidmap", &self.uid, euid),
            ("gid_map", "newgidmap", &self.gid, egid),
        ] {
            if euid != 0 && !crate::idmap::own_id_only(maps, own) {
                map_with_tool(tool, pid, maps)?;
                continue;
            }
            if euid != 0 && file == "gid_map" {
                // An unprivileged writer must give up setgroups before it may write
                // gid_map (user_namespaces(7)).
                std::fs::write(format!("/proc/{pid}/setgroups"), "deny").map_err(|source| {
                    SpawnError::IdMap {
                        file: "setgroups",
                        pid,
                        source,
                    }
                })?;
            }
            let text: String = maps
                .iter()
                .map(|[c, h, n]| format!("{c} {h} {n}\n"))
                .collect();
            std::fs::write(format!("/proc/{pid}/{file}"), text)
                .map_err(|source| SpawnError::IdMap { file, pid, source })?;
        }
        Ok(())
    }
}

/// `newuidmap PID C H N ...` (or newgidmap).
fn map_with_tool(tool: &'static str, pid: i32, maps: &[[u32; 3]]) -> Result<(), SpawnError> {
    let fail = |message: String| SpawnError::IdMapTool { tool, pid, message };
    let path = crate::idmap::tool(tool)
        .ok_or_else(|| fail("not found (install the uidmap package)".into()))?;
    let mut cmd = std::process::Command::new(&path);
    cmd.arg(pid.to_string())
        .args(maps.iter().flatten().map(u32::to_string));
    let out = crate::reap::output(&mut cmd, &[])
        .map_err(|e| fail(format!("run {}: {e}", path.display())))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
