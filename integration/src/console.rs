//! A console-socket receiver, like runc's `recvtty`: the runtime connects to a unix socket
//! given with `--console-socket` and sends the pty master as SCM_RIGHTS (unix(7),
//! cmsg(3)); the payload is a name, runc sends the pty path it opened ("/dev/ptmx").

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use tempfile::TempDir;

/// A listening console socket in a private temp dir.
pub struct ConsoleSocket {
    _dir: TempDir,
    path: PathBuf,
    listener: UnixListener,
}

fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, deadline: Instant, what: &str) -> Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out waiting for {what}");
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => bail!("poll for {what}: {e}"),
        }
    }
}

impl ConsoleSocket {
    /// Binds `<tmp>/console.sock`.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("runrs-it-console-")
            .tempdir()?;
        let path = dir.path().join("console.sock");
        let listener =
            UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
        Ok(Self {
            _dir: dir,
            path,
            listener,
        })
    }

    /// The socket path to pass as `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection and receives the pty master (and the name sent with it).
    pub fn receive(&self, timeout: Duration) -> Result<Pty> {
        let deadline = Instant::now() + timeout;
        wait_readable(
            self.listener.as_fd(),
            deadline,
            "the runtime to connect to the console socket",
        )?;
        let (conn, _) = self
            .listener
            .accept()
            .context("accept on the console socket")?;
        wait_readable(
            conn.as_fd(),
            deadline,
            "the pty master on the console socket",
        )?;
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let msg = recvmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("recvmsg on the console socket")?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().context("control messages")? {
            if let ControlMessageOwned::ScmRights(r) = c {
                fds.extend(r);
            }
        }
        let len = msg.bytes;
        let name = String::from_utf8_lossy(&buf[..len]).into_owned();
        let mut owned: Vec<OwnedFd> = fds
            .into_iter()
            // SAFETY: the kernel just installed these descriptors in our table for this
            // message (SCM_RIGHTS); nothing else owns them.
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
            .collect();
        if owned.len() != 1 {
            bail!(
                "expected exactly one fd on the console socket, got {} (payload {name:?})",
                owned.len()
            );
        }
        let master = owned.pop().ok_or_else(|| anyhow!("no fd"))?;
        Ok(Pty { master, name })
    }
}

/// The pty master received from the runtime.
pub struct Pty {
    master: OwnedFd,
    /// The payload sent with the fd.
    pub name: String,
}

impl Pty {
    /// The master fd.
    pub fn fd(&self) -> &OwnedFd {
        &self.master
    }

    /// Writes `data` to the terminal (the container reads it as keyboard input).
    pub fn write_all(&self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match nix::unistd::write(&self.master, data) {
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => {}
                Err(e) => bail!("write to pty master: {e}"),
            }
        }
        Ok(())
    }

    /// Reads until every slave fd is closed (read gives EIO or 0), or fails at `timeout`.
    pub fn read_to_end(&self, timeout: Duration) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            wait_readable(self.master.as_fd(), deadline, "output on the pty")
                .with_context(|| format!("read so far: {:?}", String::from_utf8_lossy(&out)))?;
            match nix::unistd::read(&self.master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => bail!("read from pty master: {e}"),
            }
        }
    }

    /// Reads until the output contains `needle` (or fails at `timeout`); returns all read.
    pub fn read_until(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&out).contains(needle) {
            wait_readable(
                self.master.as_fd(),
                deadline,
                &format!("{needle:?} on the pty"),
            )
            .with_context(|| format!("read so far: {:?}", String::from_utf8_lossy(&out)))?;
            match nix::unistd::read(&self.master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => bail!(
                    "pty closed before {needle:?}: {:?}",
                    String::from_utf8_lossy(&out)
                ),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(e) => bail!("read from pty master: {e}"),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}
