//! The host's view of a containerd task: its shim process and socket, and what must be
//! gone once it is deleted (on top of [`crate::leaks::leftovers`]: state dir, mounts, cgroup
//! dirs, processes): the bundle containerd made, the shim's socket in
//! /run/containerd/s.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::SOCKET_DIR;
use crate::cmd::{run_capture, CMD_TIMEOUT};
use crate::leaks;

/// What to look for after a task is deleted.
#[derive(Debug, Clone)]
pub struct TaskTarget {
    /// Container id.
    pub id: String,
    /// Its cgroup, `/<ns>/<id>` for ctr.
    pub cgroups_path: String,
    /// The bundle containerd made (or the test made, for a shim driven directly).
    pub bundle: PathBuf,
    /// The shim's state root (its containers' state dirs are `<root>/<id>`).
    pub state_root: PathBuf,
    /// The shim's ttrpc socket.
    pub socket: PathBuf,
    /// True if the bundle directory itself must be gone too (containerd removes it).
    pub bundle_removed: bool,
}

impl TaskTarget {
    /// Everything of the task still present, one line per finding (empty: clean).
    pub fn find(&self) -> Vec<String> {
        let mut found = leaks::leftovers(&leaks::Target {
            root: &self.state_root,
            id: &self.id,
            bundle: &self.bundle,
            cgroups_path: &self.cgroups_path,
        });
        if self.bundle_removed && self.bundle.exists() {
            found.push(format!("bundle {} exists", self.bundle.display()));
        }
        if self.socket.exists() {
            found.push(format!("shim socket {} exists", self.socket.display()));
        }
        found
    }

    /// Fails unless [`TaskTarget::find`] comes back empty within `timeout` (exited
    /// processes may take a moment to be reaped).
    pub fn assert_clean(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.find();
            if found.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "container {} left things behind:\n  {}",
                    self.id,
                    found.join("\n  ")
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The socket a shim v2 binds for `grouping` (the container id unless grouped), given
/// containerd's address and namespace: `/run/containerd/s/<hex sha256 of
/// "<address>/<ns>/<grouping>">`, the formula of Go's `shim.SocketAddress` and the Rust
/// crate's `socket_address`.
pub fn shim_socket(address: &Path, ns: &str, grouping: &str) -> Result<PathBuf> {
    let mut cmd = Command::new("sha256sum");
    cmd.arg("-");
    let input = format!("{}/{ns}/{grouping}", address.display());
    let out = run_capture(cmd, Some(input.into_bytes()), CMD_TIMEOUT)?.ok()?;
    let hex = out
        .stdout
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?;
    Ok(Path::new(SOCKET_DIR).join(hex))
}

/// The command line of process `pid` as arguments (empty if it is gone).
pub fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every live pid (the numeric entries of /proc).
pub fn pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// The shim daemons serving container `id`: processes whose program is a
/// `containerd-shim-*` binary with `-id <id>` and no sub-command (`start`/`delete`).
pub fn shim_pids(id: &str) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|&pid| {
            let args = cmdline(pid);
            let is_shim = args.first().is_some_and(|a| {
                Path::new(a)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("containerd-shim-"))
            });
            let has_id = args.windows(2).any(|w| w[0] == "-id" && w[1] == id);
            let action = args.last().is_some_and(|a| a == "start" || a == "delete");
            is_shim && has_id && !action && crate::proc::pid_alive(i64::from(pid))
        })
        .collect()
}

/// SIGKILLs every process (but this one) whose command line contains `needle`: the
/// leftovers of an instance this suite started.
pub fn kill_processes_mentioning(needle: &str) {
    let me = std::process::id() as i32;
    for pid in pids() {
        if pid != me && cmdline(pid).iter().any(|a| a.contains(needle)) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
}

/// Waits until process `pid` is gone (or a zombie), up to `timeout`.
pub fn wait_gone(pid: i32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while crate::proc::pid_alive(i64::from(pid)) {
        if Instant::now() > deadline {
            bail!(
                "process {pid} ({:?}) still alive after {timeout:?}",
                cmdline(pid).join(" ")
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Removes directory `dir` if it is empty (ignoring every error): the per-namespace dirs
/// that shims and runtimes create and never remove.
pub fn remove_if_empty(dir: &Path) {
    let _ = fs::remove_dir(dir);
}
