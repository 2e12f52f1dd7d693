//! Running a program on a terminal the test owns, as a user at a keyboard would: the
//! test opens a pty pair (openpty(3)) with a chosen window size, the program gets the
//! slave as stdin/stdout/stderr and controlling terminal (setsid(2) + TIOCSCTTY,
//! ioctl_tty(2)), and the test types on and reads from the master.
//!
//! A pty of our own rather than tmux or script(1): no extra package, no screen scraping,
//! and the window size and the exit status come straight from the kernel and waitpid.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, Winsize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Data,
    Idle,
    HungUp,
}

/// A child process running on a pty whose master the test holds.
pub struct PtyChild {
    master: OwnedFd,
    child: Child,
    argv: Vec<String>,
    output: Vec<u8>,
    closed: bool,
}

impl PtyChild {
    /// Starts `cmd` on a new pty of `rows` x `cols` (set before the program starts).
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Result<Self> {
        let ws = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&ws), None).context("openpty")?;
        nix::fcntl::fcntl(
            pty.master.as_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .context("set FD_CLOEXEC on the pty master")?;
        cmd.stdin(Stdio::from(pty.slave.try_clone()?))
            .stdout(Stdio::from(pty.slave.try_clone()?))
            .stderr(Stdio::from(pty.slave));
        // SAFETY: runs in the child between fork and exec; setsid and ioctl are
        // async-signal-safe and touch only the child's own session and fd 0.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let argv = crate::cmd::argv(&cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn `{}` on a pty", argv.join(" ")))?;
        // The Command holds the slave ends: drop them, so the master sees EIO once the
        // child and its descendants close the terminal.
        drop(cmd);
        Ok(Self {
            master: pty.master,
            child,
            argv,
            output: Vec::new(),
            closed: false,
        })
    }

    /// Changes the terminal's size; the kernel sends SIGWINCH to the child (its
    /// foreground process group), as a terminal emulator being resized would.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        let ws = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer we pass.
        if unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            bail!("resize pty: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Everything read from the terminal so far (lossy UTF-8).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    /// Types `data` (as keyboard input).
    pub fn write(&self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match nix::unistd::write(&self.master, data) {
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => {}
                Err(e) => bail!("write to the pty master: {e}"),
            }
        }
        Ok(())
    }

    /// Reads once, waiting up to `deadline` for something to read.
    fn read_some(&mut self, deadline: Instant) -> Result<Read> {
        if self.closed {
            return Ok(Read::HungUp);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => return Ok(Read::Idle),
            Ok(_) => {}
            Err(e) => bail!("poll the pty master: {e}"),
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(0) | Err(Errno::EIO) => {
                self.closed = true;
                Ok(Read::HungUp)
            }
            Ok(n) => {
                self.output.extend_from_slice(&buf[..n]);
                Ok(Read::Data)
            }
            Err(Errno::EINTR | Errno::EAGAIN) => Ok(Read::Idle),
            Err(e) => bail!("read the pty master: {e}"),
        }
    }

    /// Reads until the output after byte `from` contains `needle`; returns that part.
    pub fn read_until(&mut self, from: usize, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen =
                String::from_utf8_lossy(&self.output[from.min(self.output.len())..]).into_owned();
            if seen.contains(needle) {
                return Ok(seen);
            }
            if Instant::now() > deadline {
                bail!("no {needle:?} on the terminal within {timeout:?}; it shows {seen:?}");
            }
            if self.read_some(deadline)? == Read::HungUp {
                bail!("the terminal hung up before {needle:?}; it showed {seen:?}");
            }
        }
    }

    /// The number of bytes read so far (a mark for [`PtyChild::read_until`]).
    pub fn mark(&self) -> usize {
        self.output.len()
    }

    /// Waits for the child to exit (reading its output meanwhile), up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Collect what is still buffered, without waiting for more.
                while self.read_some(Instant::now())? == Read::Data {}
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "`{}` did not exit within {timeout:?}; the terminal shows {:?}",
                    self.argv.join(" "),
                    self.output()
                );
            }
            if self.closed {
                thread::sleep(Duration::from_millis(10));
            } else {
                let slice = (Instant::now() + Duration::from_millis(50)).min(deadline);
                self.read_some(slice)?;
            }
        }
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        // Our own child: if a check failed before it exited, kill it by its pid.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
