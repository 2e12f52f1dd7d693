//! OCI lifecycle hooks: each hook is a program run with the container's state JSON on
//! stdin, its own args and env, and an optional timeout. A hook that exits non-zero or
//! times out fails the lifecycle step it belongs to (except poststop, whose failures
//! the caller only logs). Runs without threads, so init can call it.
//! See the OCI runtime spec, config.md "POSIX-platform Hooks" and runtime.md "Lifecycle".

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::state::OciState;
use crate::sys;

/// Hook failures.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started.
    #[error("{kind} hook {path}: start")]
    Spawn {
        /// Hook kind.
        kind: &'static str,
        /// Program.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The hook exited unsuccessfully.
    #[error("{kind} hook {path} {status}{output}")]
    Failed {
        /// Hook kind.
        kind: &'static str,
        /// Program.
        path: String,
        /// How it ended.
        status: String,
        /// What it printed (stderr, then stdout), if anything.
        output: String,
    },
    /// The hook ran past its timeout and was killed.
    #[error("{kind} hook {path} timed out after {secs} s and was killed")]
    Timeout {
        /// Hook kind.
        kind: &'static str,
        /// Program.
        path: String,
        /// The timeout.
        secs: i64,
    },
    /// Waiting for the hook failed.
    #[error("{kind} hook {path}: wait")]
    Wait {
        /// Hook kind.
        kind: &'static str,
        /// Program.
        path: String,
        /// Why.
        #[source]
        source: sys::SysError,
    },
}

/// Run `hooks` in order with `state` on stdin; stop at the first failure.
pub fn run(kind: &'static str, hooks: &[Hook], state: &OciState) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state).unwrap_or_default();
    for h in hooks {
        run_one(kind, h, &json)?;
    }
    Ok(())
}

fn run_one(kind: &'static str, h: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = h.path().display().to_string();
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        cmd.args(args.iter().skip(1));
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        kind,
        path: path.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may not read its stdin at all: EPIPE is fine.
        let _ = stdin.write_all(state);
    }
    let pidfd = sys::pidfd_open(child.id() as i32).map_err(|source| HookError::Wait {
        kind,
        path: path.clone(),
        source,
    })?;
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    loop {
        let timeout_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = child.kill();
                    let _ = crate::process::reap::wait_child(child.id() as i32);
                    return Err(HookError::Timeout {
                        kind,
                        path,
                        secs: h.timeout().unwrap_or_default(),
                    });
                }
                left.as_millis().min(i32::MAX as u128) as i32
            }
            None => -1,
        };
        let mut fds = vec![libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        for p in [
            stdout.as_ref().map(|s| s.as_fd()),
            stderr.as_ref().map(|s| s.as_fd()),
        ]
        .into_iter()
        .flatten()
        {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(HookError::Wait {
                kind,
                path,
                source: sys::SysError::new("poll", "hook", e),
            });
        }
        drain(&mut stdout, &mut out);
        drain(&mut stderr, &mut err);
        if fds[0].revents != 0 {
            break;
        }
    }
    drain_all(&mut stdout, &mut out);
    drain_all(&mut stderr, &mut err);
    let raw = crate::process::reap::wait_child(child.id() as i32).map_err(|e| HookError::Wait {
        kind,
        path: path.clone(),
        source: sys::SysError::new("wait", "hook", e),
    })?;
    let status = <std::process::ExitStatus as std::os::unix::process::ExitStatusExt>::from_raw(raw);
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
        path,
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

const KEEP: usize = 64 * 1024;

fn drain<R: std::io::Read + AsFd>(r: &mut Option<R>, buf: &mut Vec<u8>) {
    let Some(rd) = r.as_mut() else { return };
    if sys::poll_one(rd.as_fd(), libc::POLLIN, 0).unwrap_or(0) == 0 {
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

fn drain_all<R: std::io::Read + AsFd>(r: &mut Option<R>, buf: &mut Vec<u8>) {
    while r.is_some() {
        let before = buf.len();
        drain(r, buf);
        if r.is_some() && buf.len() == before {
            // Nothing readable right now and the writer is gone with the hook; stop.
            if r.as_ref()
                .map(|x| sys::poll_one(x.as_fd(), libc::POLLIN, 0).unwrap_or(0) == 0)
                .unwrap_or(true)
            {
                break;
            }
        }
    }
}
