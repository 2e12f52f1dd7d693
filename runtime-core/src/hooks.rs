//! OCI lifecycle hooks: each hook is a program run with the container's state JSON on
//! stdin, its own args and env, and an optional timeout. Runs without threads, so init
//! can call it.
//!
//! Where and with what state each kind runs (runtime.md "Lifecycle", config.md
//! "POSIX-platform Hooks", and runc for the details the spec leaves open):
//!
//! | kind            | run by / namespace              | status     | pid                    | on failure                 |
//! |-----------------|---------------------------------|------------|------------------------|----------------------------|
//! | prestart        | create, runtime namespace       | `creating` | init, host view        | create fails, undone       |
//! | createRuntime   | create, runtime namespace       | `creating` | init, host view        | create fails, undone       |
//! | createContainer | init, container ns, before pivot| `creating` | init, container view   | create fails, undone       |
//! | startContainer  | init, container ns, after pivot | `created`  | init, container view   | start fails, init exits    |
//! | poststart       | start, runtime namespace        | `running`  | init, host view        | warning, next hooks run    |
//! | poststop        | delete, runtime namespace       | `stopped`  | 0                      | warning, next hooks run    |
//!
//! A failed create (from the prestart hooks on) continues at lifecycle step 12: the
//! container is destroyed and the poststop hooks run.
//!
//! Each hook runs in its own process group; on timeout the whole group is killed, so
//! a hook script's children do not outlive it.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

use crate::reap;
use crate::spec::SpecError;
use crate::state::OciState;
use crate::sys::{self, c};

/// Hook kind names, as in config.json and `runrs features`.
pub const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Hook failures. Each message starts with runc's "error running hook", which
/// callers match on.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started.
    #[error("error running hook: {kind} hook #{index} {path}: start")]
    Spawn {
        /// Hook kind.
        kind: &'static str,
        /// Position in its list.
        index: usize,
        /// Program.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The hook exited unsuccessfully.
    #[error("error running hook: {kind} hook #{index} {path} {status}{output}")]
    Failed {
        /// Hook kind.
        kind: &'static str,
        /// Position in its list.
        index: usize,
        /// Program.
        path: String,
        /// How it ended.
        status: String,
        /// What it printed (stderr, then stdout), if anything.
        output: String,
    },
    /// The hook ran past its timeout and was killed.
    #[error(
        "error running hook: {kind} hook #{index} {path} timed out after {secs} s and was killed"
    )]
    Timeout {
        /// Hook kind.
        kind: &'static str,
        /// Position in its list.
        index: usize,
        /// Program.
        path: String,
        /// The timeout.
        secs: i64,
    },
    /// Waiting for the hook failed.
    #[error("error running hook: {kind} hook #{index} {path}: wait")]
    Wait {
        /// Hook kind.
        kind: &'static str,
        /// Position in its list.
        index: usize,
        /// Program.
        path: String,
        /// Why.
        #[source]
        source: sys::SysError,
    },
}

/// The hooks of one kind in `spec` (empty when none).
pub fn of_kind<'a>(spec: &'a Spec, kind: &str) -> &'a [Hook] {
    let Some(h) = spec.hooks().as_ref() else {
        return &[];
    };
    #[allow(deprecated)]
    let list = match kind {
        "prestart" => h.prestart(),
        "createRuntime" => h.create_runtime(),
        "createContainer" => h.create_container(),
        "startContainer" => h.start_container(),
        "poststart" => h.poststart(),
        "poststop" => h.poststop(),
        _ => &None,
    };
    list.as_deref().unwrap_or_default()
}

/// Whether any hook of the create phase (prestart, createRuntime, createContainer) is set.
pub fn has_create_hooks(spec: &Spec) -> bool {
    ["prestart", "createRuntime", "createContainer"]
        .iter()
        .any(|k| !of_kind(spec, k).is_empty())
}

/// Check every hook: `path` absolute (config.md: "path MUST be absolute") and
/// `timeout`, when set, greater than zero.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    if spec.hooks().is_none() {
        return Ok(());
    }
    for kind in KINDS {
        for (i, h) in of_kind(spec, kind).iter().enumerate() {
            if !h.path().is_absolute() {
                return Err(SpecError::Invalid {
                    field: format!("hooks.{kind}[{i}].path"),
                    value: h.path().display().to_string(),
                    reason: "must be an absolute path".into(),
                });
            }
            if let Some(t) = h.timeout().filter(|t| *t <= 0) {
                return Err(SpecError::Invalid {
                    field: format!("hooks.{kind}[{i}].timeout"),
                    value: t.to_string(),
                    reason: "must be greater than zero".into(),
                });
            }
        }
    }
    Ok(())
}

/// Run `hooks` in order with `state` on stdin; stop at the first failure (the create
/// phase and startContainer).
pub fn run(kind: &'static str, hooks: &[Hook], state: &OciState) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let json = state_json(state);
    for (i, h) in hooks.iter().enumerate() {
        run_one(kind, i, h, &json)?;
    }
    Ok(())
}

/// Run every hook of `hooks` even when some fail, logging each failure as a warning
/// (poststart and poststop: "the remaining hooks and lifecycle continue as if the hook
/// had succeeded"). Returns the failures.
pub fn run_all(kind: &'static str, hooks: &[Hook], state: &OciState) -> Vec<HookError> {
    let json = state_json(state);
    let mut failed = Vec::new();
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run_one(kind, i, h, &json) {
            tracing::warn!("{}", crate::fault::chain(&e));
            failed.push(e);
        }
    }
    failed
}

fn state_json(state: &OciState) -> Vec<u8> {
    serde_json::to_vec(state).expect("the state document always serialises")
}

fn run_one(kind: &'static str, index: usize, h: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = h.path().display().to_string();
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        cmd.args(args.iter().skip(1));
    }
    // Like runc (Go's exec.Cmd with a nil Env): without `env` the hook inherits the
    // runtime's environment; with one, it gets exactly that.
    if let Some(env) = h.env() {
        cmd.env_clear();
        for e in env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a timeout kills the hook and whatever it started.
        .process_group(0);
    // The hook gets its three pipes and nothing else of the runtime's (as with runc,
    // whose Go exec passes only what it is given): not a shim's ttrpc listener or
    // fifos, not init's sync socket, not what the runtime's own caller leaked to it.
    // A kernel without close_range (< 5.11) leaves the descriptors as they are.
    crate::sys::cloexec_from_on_exec(&mut cmd, 3);
    // Opened before the hook starts: its exit is kept even if it comes before the wait.
    let window = reap::ExitWindow::open();
    let child = reap::spawn(&mut cmd).map_err(|source| HookError::Spawn {
        kind,
        index,
        path: path.clone(),
        source,
    })?;
    let mut run = Running {
        kind,
        index,
        path,
        child,
        window,
        reaped: false,
    };
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let out = run.pump(state, deadline)?;
    let Some((out, err)) = out else {
        return Err(HookError::Timeout {
            kind,
            index,
            path: run.path.clone(),
            secs: h.timeout().unwrap_or_default(),
        });
    };
    let status = run.wait()?;
    if status.success() {
        return Ok(());
    }
    let mut output = String::from_utf8_lossy(&err).trim().to_string();
    let o = String::from_utf8_lossy(&out).trim().to_string();
    if !o.is_empty() {
        if !output.is_empty() {
            output.push_str("; ");
        }
        output.push_str(&o);
    }
    Err(HookError::Failed {
        kind,
        index,
        path: run.path.clone(),
        status: match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => format!(
                "was killed by signal {}",
                std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            ),
        },
        output: if output.is_empty() {
            String::new()
        } else {
            format!(": {output}")
        },
    })
}

/// A started hook; killed (with its process group) and reaped if dropped early.
/// Reaping goes through [`crate::reap`], so a process-wide reaper (the shim)
/// is never robbed of an exit status.
struct Running {
    kind: &'static str,
    index: usize,
    path: String,
    child: Child,
    window: reap::ExitWindow,
    reaped: bool,
}

impl Running {
    fn wait(&mut self) -> Result<std::process::ExitStatus, HookError> {
        let raw = self
            .window
            .wait(self.child.id() as i32)
            .map_err(|e| self.wait_err(e))?;
        self.reaped = true;
        Ok(std::process::ExitStatus::from_raw(raw))
    }

    fn wait_err(&self, e: std::io::Error) -> HookError {
        HookError::Wait {
            kind: self.kind,
            index: self.index,
            path: self.path.clone(),
            source: sys::SysError::new("wait", "hook", e),
        }
    }

    /// Feed stdin and collect stdout/stderr until the hook exits. Returns None when
    /// the deadline passed (the hook's group is then killed and reaped).
    #[allow(clippy::type_complexity)]
    fn pump(
        &mut self,
        state: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, HookError> {
        let pidfd = sys::pidfd_open(self.child.id() as i32).map_err(|source| HookError::Wait {
            kind: self.kind,
            index: self.index,
            path: self.path.clone(),
            source,
        })?;
        let mut stdin = self.child.stdin.take();
        if let Some(s) = &stdin {
            set_nonblock(s.as_fd());
        }
        let mut written = 0;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut stdout = self.child.stdout.take();
        let mut stderr = self.child.stderr.take();
        loop {
            let timeout_ms = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.kill();
                        return Ok(None);
                    }
                    left.as_millis().clamp(1, i32::MAX as u128) as i32
                }
                None => -1,
            };
            let mut fds = vec![sys::PollFd::new(pidfd.as_fd(), c::POLLIN)];
            let stdin_at = stdin.as_ref().map(|s| {
                fds.push(sys::PollFd::new(s.as_fd(), c::POLLOUT));
                fds.len() - 1
            });
            // Output is read as it comes: a hook that writes more than a pipe holds
            // (64 KiB) blocks in write(2) until it is read, and would never exit.
            for r in [
                stdout.as_ref().map(|o| o.as_fd()),
                stderr.as_ref().map(|e| e.as_fd()),
            ]
            .into_iter()
            .flatten()
            {
                fds.push(sys::PollFd::new(r, c::POLLIN));
            }
            if let Err(e) = sys::poll(&mut fds, timeout_ms, "hook pidfd and pipes") {
                return Err(self.wait_err(e.source));
            }
            let revents: Vec<i16> = fds.iter().map(|p| p.revents()).collect();
            drop(fds);
            if stdin.is_some() && stdin_at.is_some_and(|i| revents[i] != 0) {
                let s = stdin.as_mut().expect("checked above");
                match s.write(&state[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // EPIPE: the hook does not read its stdin, which is fine.
                    Err(_) => written = state.len(),
                }
                if written >= state.len() {
                    stdin = None;
                }
            }
            drain(&mut stdout, &mut out);
            drain(&mut stderr, &mut err);
            if revents[0] != 0 {
                break;
            }
        }
        drop(stdin);
        drain_all(&mut stdout, &mut out);
        drain_all(&mut stderr, &mut err);
        Ok(Some((out, err)))
    }

    fn kill(&mut self) {
        let pgid = self.child.id() as i32;
        // The group is the hook's own (process_group(0)), its leader not yet reaped.
        let _ = sys::kill(-pgid, c::SIGKILL);
        let _ = self.window.wait(pgid);
        self.reaped = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only on an early error return: the hook may still run.
        if !self.reaped {
            self.kill();
        }
    }
}

fn set_nonblock(fd: BorrowedFd<'_>) {
    sys::set_nonblock(fd);
}

const KEEP: usize = 64 * 1024;

fn drain<R: Read + AsFd>(r: &mut Option<R>, buf: &mut Vec<u8>) {
    let Some(rd) = r.as_mut() else { return };
    if sys::poll_one(rd.as_fd(), c::POLLIN, 0).unwrap_or(0) == 0 {
        return;
    }
    let mut chunk = [0u8; 4096];
    match rd.read(&mut chunk) {
        Ok(0) | Err(_) => *r = None,
        Ok(n) => {
            if buf.len() < KEEP {
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// Read what is readable now; a writer left behind by the hook (a background child)
/// does not make us wait.
fn drain_all<R: Read + AsFd>(r: &mut Option<R>, buf: &mut Vec<u8>) {
    while let Some(rd) = r.as_ref() {
        if sys::poll_one(rd.as_fd(), c::POLLIN, 0).unwrap_or(0) == 0 {
            return;
        }
        drain(r, buf);
    }
}

#[cfg(test)]
mod tests;
