//! `start`: release a created container by reading its exec fifo, on which init is
//! blocked. Init then runs the startContainer hooks and answers over the same fifo
//! ("0", or "1" and the hook's error). Then the poststart hooks run and, when the
//! container was created with sd_notify support, start waits for its READY=1 (see
//! [`crate::notify`]). A pidfd on init turns "init died" into an error, not a hang.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use super::Container;
use crate::error::Error;
use crate::notify::{self, HostSocket, Ready};
use crate::state::Status;
use crate::sys;
use crate::sys::c;

/// Options of [`Container::start_with`].
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Where to relay the container's READY/STATUS/MAINPID messages: the runtime's own
    /// `$NOTIFY_SOCKET` (CLI). `None`: wait for READY=1 without relaying (a shim).
    pub notify_host: Option<HostSocket>,
    /// Bound on the wait for READY=1; `None` waits as long as init lives (runc).
    pub ready_timeout: Option<Duration>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            notify_host: None,
            ready_timeout: Some(notify::DEFAULT_READY_TIMEOUT),
        }
    }
}

/// What [`Container::start_with`] observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Started {
    /// The container's readiness report, when it was created with sd_notify support.
    pub ready: Option<Ready>,
}

impl Container {
    /// Start a created container with default [`StartOptions`]: when the container
    /// was created with sd_notify support, wait up to
    /// [`notify::DEFAULT_READY_TIMEOUT`] for READY=1, relaying nothing.
    pub fn start(&mut self) -> Result<(), Error> {
        self.start_with(&StartOptions::default()).map(|_| ())
    }

    /// Start a created container. Returns once the user's program runs and, for a
    /// container created with [`super::CreateOptions::notify`], once it sent READY=1
    /// (or fails: it exited first, or `ready_timeout` passed; the container is then
    /// left as it is, for the caller to kill or delete).
    pub fn start_with(&mut self, opts: &StartOptions) -> Result<Started, Error> {
        let status = self.status();
        if status != Status::Created {
            return Err(Error::WrongState {
                id: self.id().to_string(),
                status,
                action: "start",
                want: "created",
            });
        }
        let listener = notify::Listener::bind(&self.dir(), &self.state.config)?;
        if listener.is_none() && opts.notify_host.is_some() {
            return Err(notify::NotifyError::NotPrepared(self.id().to_string()).into());
        }
        let pidfd = sys::pidfd_open(self.pid())?;
        let fifo_path = self.fifo();
        // Everything that can fail happens before init is released: once it runs the
        // user's program, start must not report an error (runc has nothing to write
        // after the release either). A failed save leaves the state file as it was.
        self.state.recorded_status = Status::Running;
        if let Err(e) = self.save() {
            self.state.recorded_status = Status::Created;
            return Err(e);
        }
        if let Err(e) = release(&fifo_path, &pidfd, self.id()) {
            // Init did not start the program (it died, a startContainer hook failed, or
            // the fifo could not be opened): the recorded status goes back. The live
            // status never depended on it, so a failure to save is only logged.
            self.state.recorded_status = Status::Created;
            if let Err(se) = self.save() {
                tracing::warn!("{}", crate::error::chain(&se));
            }
            return Err(e);
        }
        remove_fifo(&fifo_path);
        // Poststart: after the user's program started, before start returns. Failures
        // are logged, the container keeps running (runtime.md step 9).
        crate::hooks::run_all(
            "poststart",
            crate::hooks::of_kind(&self.state.config, "poststart"),
            &self.oci_state(),
        );
        let ready = match listener {
            Some(l) => Some(l.wait_ready(&notify::WaitFor {
                id: self.id(),
                init_pid: self.pid(),
                init: pidfd.as_fd(),
                cgroup_pids: &|| self.state.cgroup.pids().unwrap_or_default(),
                host: opts.notify_host.as_ref(),
                // The container's own annotation, else the caller's bound.
                timeout: notify::ready_timeout(&self.state.config)?.unwrap_or(opts.ready_timeout),
                proc_root: Path::new("/proc"),
            })?),
            None => None,
        };
        Ok(Started { ready })
    }
}

/// Open the fifo for reading (which lets init's blocked open return) and read init's
/// answer: "0" once the startContainer hooks passed, "1<error>" if one failed.
fn release(fifo_path: &Path, pidfd: &OwnedFd, id: &str) -> Result<(), Error> {
    let fifo = sys::open(fifo_path, c::O_RDONLY | c::O_NONBLOCK, 0)?;
    let mut answer = Vec::new();
    loop {
        let mut fds = [
            sys::PollFd::new(fifo.as_fd(), c::POLLIN),
            sys::PollFd::new(pidfd.as_fd(), c::POLLIN),
        ];
        sys::poll(&mut fds, -1, &fifo_path.display().to_string())?;
        let revents = [fds[0].revents(), fds[1].revents()];
        if revents[0] & (c::POLLIN | c::POLLHUP) != 0 {
            let mut b = [0u8; 4096];
            match sys::read(fifo.as_fd(), &mut b, "exec fifo") {
                Ok(0) => {
                    // Writer gone: the whole answer is in.
                    if !answer.is_empty() {
                        break;
                    }
                    if revents[0] & c::POLLHUP != 0 {
                        return Err(Error::InitDied(id.to_string()));
                    }
                }
                Ok(k) => {
                    answer.extend_from_slice(&b[..k]);
                    if answer == b"0" {
                        break;
                    }
                    continue;
                }
                Err(e) if e.errno() == Some(c::EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if revents[1] != 0 && revents[0] & c::POLLIN == 0 {
            // Init is gone; whatever it wrote has been read above.
            if answer.is_empty() {
                return Err(Error::InitDied(id.to_string()));
            }
            break;
        }
    }
    match answer.split_first() {
        Some((b'0', _)) => Ok(()),
        Some((b'1', msg)) => {
            // Init exits right after answering: report the container stopped.
            let _ = sys::poll_one(pidfd.as_fd(), c::POLLIN, 5000);
            Err(Error::StartHook {
                id: id.to_string(),
                message: String::from_utf8_lossy(msg).into_owned(),
            })
        }
        _ => Err(Error::InitDied(id.to_string())),
    }
}

fn remove_fifo(p: &Path) {
    if let Err(e) = std::fs::remove_file(p) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("remove {}: {e}", p.display());
        }
    }
}
