//! `start`: release a created container by reading its exec fifo, on which init is
//! blocked; then run the poststart hooks. A pidfd on init turns "init died before
//! start" into an error instead of a hang.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use super::Container;
use crate::error::Error;
use crate::state::Status;
use crate::sys;

impl Container {
    /// Start a created container.
    pub fn start(&mut self) -> Result<(), Error> {
        let status = self.status();
        if status != Status::Created {
            return Err(Error::WrongState {
                id: self.id().to_string(),
                status,
                action: "start",
                want: "created",
            });
        }
        let fifo_path = self.fifo();
        let fifo = sys::open(&fifo_path, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
        let pidfd = sys::pidfd_open(self.pid())?;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: fifo.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two pollfd structs.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(sys::SysError::new("poll", fifo_path.display().to_string(), e).into());
            }
            if fds[0].revents & libc::POLLIN != 0 {
                let mut b = [0u8; 1];
                match sys::read(fifo.as_fd(), &mut b, "exec fifo") {
                    Ok(1) => break,
                    Ok(_) => {}
                    Err(e) if e.errno() == Some(libc::EAGAIN) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if fds[1].revents != 0 {
                return Err(Error::InitDied(self.id().to_string()));
            }
            if fds[0].revents & libc::POLLHUP != 0 {
                return Err(Error::InitDied(self.id().to_string()));
            }
        }
        drop(fifo);
        remove_fifo(&fifo_path);
        self.state.recorded_status = Status::Running;
        self.save()?;
        if let Some(h) = self
            .state
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().as_ref())
        {
            // Poststart failures are logged, the container keeps running (runtime spec).
            if let Err(e) = crate::hooks::run("poststart", h, &self.oci_state()) {
                tracing::warn!("{e}");
            }
        }
        Ok(())
    }
}

fn remove_fifo(p: &Path) {
    if let Err(e) = std::fs::remove_file(p) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("remove {}: {e}", p.display());
        }
    }
}
