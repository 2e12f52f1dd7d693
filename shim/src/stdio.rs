//! Container stdio from containerd's fifos (or `file://` URIs).
//!
//! The container writes stdout and stderr into pipes; the shim moves the bytes on to the
//! fifos (or files) with splice(2): page references move between the pipes, nothing is
//! copied through the shim's memory, and memory stays bounded by the pipe buffers
//! whatever the output rate. Pipes (not the fifos themselves) keep the container
//! checkpointable: criu can dump and reconnect a pipe, not a fifo on a host mount. A
//! keep-alive reader held by the shim keeps a vanished client from turning into EPIPE.
//! stdin goes through a pipe the shim feeds from the fifo, so CloseIO can end it with
//! EOF whatever the client does. A terminal's pty master is relayed to the stdout fifo
//! and from the stdin fifo.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use runtime_core::InitStdio;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::{Result, ShimError};

/// What containerd asked for.
#[derive(Clone, Debug, Default)]
pub struct StdioSpec {
    /// stdin fifo path (empty: none).
    pub stdin: String,
    /// stdout fifo path or URI.
    pub stdout: String,
    /// stderr fifo path or URI.
    pub stderr: String,
    /// Terminal mode.
    pub terminal: bool,
}

/// The shim's side of a process' stdio.
#[derive(Default)]
pub struct Io {
    /// Readers that keep the output fifos open (no EPIPE for the container).
    keepalive: Vec<OwnedFd>,
    /// Ends the stdin relay (CloseIO).
    stdin_close: Option<Arc<Notify>>,
    /// The pty master (terminal mode).
    master: Option<Arc<AsyncFd<OwnedFd>>>,
    /// The relay of the terminal's output, finished when the pty hangs up.
    output: Option<JoinHandle<()>>,
    /// The stdout/stderr relays, finished when every writer of their pipe is gone.
    relays: Vec<JoinHandle<()>>,
    /// A `binary://` logging process (stopped when the Io is dropped).
    logger: Option<crate::logger::Logger>,
}

/// Gives the container's end of a stdio pipe to IoUid/IoGid (a user-namespaced or
/// non-root container must be able to reopen it via /proc/self/fd); a failure is an error,
/// not a container that later cannot write its output.
fn chown_pipe(fd: &OwnedFd, uid: u32, gid: u32, what: &str) -> Result<()> {
    if (uid, gid) == (0, 0) {
        return Ok(());
    }
    crate::sys::fchown(fd.as_fd(), uid, gid).map_err(|e| {
        sys_err(
            "fchown",
            &format!("{what} to IoUid {uid} IoGid {gid}"),
            e.source,
        )
    })?;
    Ok(())
}

fn sys_err(what: &str, path: &str, e: std::io::Error) -> ShimError {
    ShimError::Internal(format!("{what} {path}: {e}"))
}

fn open(path: &str, flags: i32, mode: u32) -> Result<OwnedFd> {
    crate::sys::open(path, flags, mode).map_err(|e| sys_err("open", path, e.source))
}

/// Register an owned descriptor with the runtime's reactor.
fn async_fd(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    crate::sys::register(fd)
}

fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> std::io::Result<()> {
    crate::sys::set_nonblocking(fd, on).map_err(|e| e.source)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    crate::sys::pipe().map_err(|e| sys_err("pipe2", "", e.source))
}

/// Strip a `fifo://` scheme; reject what this shim does not handle.
pub(crate) fn fifo_path(uri: &str) -> Result<Option<&str>> {
    if let Some(p) = uri.strip_prefix("fifo://") {
        return Ok(Some(p));
    }
    if uri.starts_with("binary://") {
        return Err(ShimError::InvalidArgument(format!(
            "stdio {uri}: a binary:// logger takes stdout and stderr, not this stream"
        )));
    }
    if uri.contains("://") && !uri.starts_with("file://") {
        return Err(ShimError::InvalidArgument(format!(
            "stdio {uri}: unknown scheme"
        )));
    }
    Ok(None)
}

/// Open an output destination for the container: the pipe end it writes to, plus the
/// relay the shim runs into the destination. An empty spec is /dev/null.
fn output(uri: &str, io: &mut Io, io_uid: u32, io_gid: u32) -> Result<OwnedFd> {
    if uri.is_empty() {
        return open("/dev/null", crate::sys::O_WRONLY, 0);
    }
    let dst = if let Some(file) = uri.strip_prefix("file://") {
        if let Some(dir) = Path::new(file).parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| sys_err("create", &dir.display().to_string(), e))?;
        }
        Dest::File(open(
            file,
            crate::sys::O_WRONLY | crate::sys::O_CREAT | crate::sys::O_APPEND,
            0o644,
        )?)
    } else {
        let path = fifo_path(uri)?.unwrap_or(uri);
        // Reader first: opening the writer then never blocks and never fails with ENXIO.
        io.keepalive.push(open(
            path,
            crate::sys::O_RDONLY | crate::sys::O_NONBLOCK,
            0,
        )?);
        let w = open(path, crate::sys::O_WRONLY | crate::sys::O_NONBLOCK, 0)?;
        Dest::Pipe(async_fd(w).map_err(|e| sys_err("register", path, e))?)
    };
    let (r, w) = pipe()?;
    chown_pipe(&w, io_uid, io_gid, "output pipe")?;
    // A bigger pipe moves more per splice; the kernel caps it (fs.pipe-max-size).
    crate::sys::grow_pipe(r.as_fd(), 1 << 20);
    set_nonblocking(r.as_fd(), true).map_err(|e| sys_err("fcntl", "output pipe", e))?;
    let src = async_fd(r).map_err(|e| sys_err("register", "output pipe", e))?;
    io.relays.push(tokio::spawn(async move {
        // splice(2) cannot write to a file opened O_APPEND (EINVAL), and file:// logs are
        // appended to: they get a read/write copy.
        let r = match &dst {
            Dest::File(f) => copy_to_file(&src, f).await,
            Dest::Pipe(d) => splice_relay(&src, d).await,
        };
        if let Err(e) = r {
            tracing::debug!("output relay ended: {e}");
        }
    }));
    Ok(w)
}

/// Where an output relay writes.
enum Dest {
    /// A fifo (non-blocking, polled for room): spliced into.
    Pipe(AsyncFd<OwnedFd>),
    /// A regular file opened O_APPEND: copied into.
    File(OwnedFd),
}

fn splice_now(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> std::io::Result<usize> {
    crate::sys::splice(from, to, 1 << 20)
}

fn pending_bytes(fd: BorrowedFd<'_>) -> usize {
    crate::sys::pending_bytes(fd)
}

/// Move everything from the pipe to `dst` with splice until every writer is gone.
/// Readiness is only cleared through `try_io` after a splice that would block, so an
/// edge that arrives between a failed splice and the wait is never lost.
async fn splice_relay(src: &AsyncFd<OwnedFd>, dst: &AsyncFd<OwnedFd>) -> std::io::Result<()> {
    let step = |r: std::io::Result<usize>| -> Option<std::io::Result<()>> {
        match r {
            Ok(0) => Some(Ok(())),
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(e)),
        }
    };
    loop {
        match splice_now(src.get_ref().as_fd(), dst.get_ref().as_fd()) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            r => {
                if let Some(done) = step(r) {
                    return done;
                }
                continue;
            }
        }
        // Would block: the destination is full if the pipe still holds data.
        if pending_bytes(src.get_ref().as_fd()) > 0 {
            let mut g = dst.writable().await?;
            if let Ok(r) = g.try_io(|d| splice_now(src.get_ref().as_fd(), d.get_ref().as_fd())) {
                if let Some(done) = step(r) {
                    return done;
                }
            }
        } else {
            let mut g = src.readable().await?;
            if let Ok(r) = g.try_io(|s| splice_now(s.get_ref().as_fd(), dst.get_ref().as_fd())) {
                if let Some(done) = step(r) {
                    return done;
                }
            }
        }
    }
}

/// Who the stdio belongs to, for `binary://` loggers.
pub struct Owner<'a> {
    /// Container id.
    pub id: &'a str,
    /// containerd namespace.
    pub namespace: &'a str,
    /// The shim's reaper (loggers are its children).
    pub reaper: &'a crate::reaper::Reaper,
}

/// The container's end of stdio plus the shim's end, for a non-terminal process.
pub async fn prepare(
    spec: &StdioSpec,
    io_uid: u32,
    io_gid: u32,
    owner: &Owner<'_>,
) -> Result<(InitStdio, Io)> {
    let mut io = Io::default();
    let (stdout, stderr) = if spec.stdout.starts_with("binary://") {
        let (o, e, logger) =
            crate::logger::start(&spec.stdout, owner.id, owner.namespace, owner.reaper).await?;
        io.logger = Some(logger);
        (o, e)
    } else {
        (
            output(&spec.stdout, &mut io, io_uid, io_gid)?,
            output(&spec.stderr, &mut io, io_uid, io_gid)?,
        )
    };
    let stdin = if spec.stdin.is_empty() {
        open("/dev/null", crate::sys::O_RDONLY, 0)?
    } else {
        let (r, w) = pipe()?;
        chown_pipe(&r, io_uid, io_gid, "stdin pipe")?;
        let stop = Arc::new(Notify::new());
        let (fifo, keep) = open_stdin_fifo(&spec.stdin)?;
        set_nonblocking(w.as_fd(), true).map_err(|e| sys_err("fcntl", "stdin pipe", e))?;
        let src = async_fd(fifo).map_err(|e| sys_err("register", &spec.stdin, e))?;
        let dst = async_fd(w).map_err(|e| sys_err("register", "stdin pipe", e))?;
        let s = stop.clone();
        tokio::spawn(async move {
            let _keep = keep;
            relay_stdin(&src, &dst, &s).await;
            // Dropping `dst` closes the pipe: the container reads EOF.
        });
        io.stdin_close = Some(stop);
        r
    };
    Ok((
        InitStdio::Fds {
            stdin,
            stdout,
            stderr,
        },
        io,
    ))
}

/// Open the stdin fifo for reading, plus a keep-alive writer so the relay does not see
/// EOF when the client reconnects.
fn open_stdin_fifo(uri: &str) -> Result<(OwnedFd, OwnedFd)> {
    let path = fifo_path(uri)?.unwrap_or(uri);
    let r = open(path, crate::sys::O_RDONLY | crate::sys::O_NONBLOCK, 0)?;
    let w = open(path, crate::sys::O_WRONLY | crate::sys::O_NONBLOCK, 0)?;
    Ok((r, w))
}

/// Relay a terminal: the pty master to the stdout fifo and the stdin fifo to the master.
pub fn relay_terminal(spec: &StdioSpec, master: OwnedFd) -> Result<Io> {
    let mut io = Io::default();
    set_nonblocking(master.as_fd(), true).map_err(|e| sys_err("fcntl", "pty master", e))?;
    let master = Arc::new(async_fd(master).map_err(|e| sys_err("register", "pty master", e))?);
    if !spec.stdout.is_empty() && !spec.stdout.starts_with("file://") {
        let path = fifo_path(&spec.stdout)?.unwrap_or(&spec.stdout).to_string();
        io.keepalive.push(open(
            &path,
            crate::sys::O_RDONLY | crate::sys::O_NONBLOCK,
            0,
        )?);
        let w = open(&path, crate::sys::O_WRONLY | crate::sys::O_NONBLOCK, 0)?;
        let dst = async_fd(w).map_err(|e| sys_err("register", &path, e))?;
        let src = master.clone();
        io.output = Some(tokio::spawn(async move {
            let _ = copy(&src, &dst).await;
        }));
    } else if let Some(file) = spec.stdout.strip_prefix("file://") {
        let f = open(
            file,
            crate::sys::O_WRONLY | crate::sys::O_CREAT | crate::sys::O_APPEND,
            0o644,
        )?;
        let src = master.clone();
        io.output = Some(tokio::spawn(async move {
            let _ = copy_to_file(&src, &f).await;
        }));
    }
    if !spec.stdin.is_empty() {
        let stop = Arc::new(Notify::new());
        let (fifo, keep) = open_stdin_fifo(&spec.stdin)?;
        let src = async_fd(fifo).map_err(|e| sys_err("register", &spec.stdin, e))?;
        let dst = master.clone();
        let s = stop.clone();
        tokio::spawn(async move {
            let _keep = keep;
            relay_stdin(&src, &dst, &s).await;
            // A terminal has no EOF of its own: send the EOF character (^D), as a
            // user closing the input would.
            let _ = write_all(&dst, &[4]).await;
        });
        io.stdin_close = Some(stop);
    }
    io.master = Some(master);
    Ok(io)
}

impl Io {
    /// CloseIO: end the stdin relay once what is already written has been passed on.
    pub fn close_stdin(&mut self) {
        if let Some(n) = self.stdin_close.take() {
            n.notify_one();
        }
    }

    /// Resize the terminal, if there is one.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        if let Some(m) = &self.master {
            runtime_core::resize_console(m.get_ref().as_fd(), height as u16, width as u16)
                .map_err(|e| ShimError::Internal(runtime_core::chain(&e)))?;
        }
        Ok(())
    }

    /// Wait until the output has been relayed (pipes at EOF, the pty hung up), bounded:
    /// what the process wrote reaches the client before its exit is reported. A relay
    /// still held open by a surviving process keeps running until the Io is dropped.
    pub async fn drained(&mut self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        if let Some(h) = self.output.take() {
            let abort = h.abort_handle();
            if tokio::time::timeout_at(deadline, h).await.is_err() {
                abort.abort();
            }
        }
        for mut h in std::mem::take(&mut self.relays) {
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                // Still held open (a process outside the init survives): keep it.
                self.relays.push(h);
            }
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        self.close_stdin();
        if let Some(h) = self.output.take() {
            h.abort();
        }
        for h in self.relays.drain(..) {
            h.abort();
        }
    }
}

/// Copy the stdin fifo into `dst` until EOF or `stop`; on `stop`, pass on what is
/// already readable first. Only the wait for input races with `stop`: a write that
/// has begun always completes, so no byte read from the fifo is ever dropped.
async fn relay_stdin(src: &AsyncFd<OwnedFd>, dst: &AsyncFd<OwnedFd>, stop: &Notify) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut stopping = false;
    loop {
        let n = if stopping {
            match read_now(src.get_ref().as_fd(), &mut buf) {
                Ok(n) => n,
                // Nothing more right now (EAGAIN) or an error: done.
                Err(_) => return,
            }
        } else {
            let ready = tokio::select! {
                biased;
                r = src.readable() => Some(r),
                _ = stop.notified() => None,
            };
            let Some(Ok(mut g)) = ready else {
                stopping = true;
                continue;
            };
            match g.try_io(|fd| read_now(fd.get_ref().as_fd(), &mut buf)) {
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.raw_os_error() == Some(crate::sys::EIO) => 0,
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            }
        };
        if n == 0 || write_all(dst, &buf[..n]).await.is_err() {
            return;
        }
    }
}

fn read_now(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    crate::sys::read(fd, buf)
}

fn write_now(fd: BorrowedFd<'_>, buf: &[u8]) -> std::io::Result<usize> {
    crate::sys::write(fd, buf)
}

async fn write_all(dst: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut g = dst.writable().await?;
        match g.try_io(|fd| write_now(fd.get_ref().as_fd(), data)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// Copy until EOF (or EIO: a pty whose every slave is closed).
async fn copy(src: &AsyncFd<OwnedFd>, dst: &AsyncFd<OwnedFd>) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut total = 0u64;
    loop {
        let mut g = src.readable().await?;
        match g.try_io(|fd| read_now(fd.get_ref().as_fd(), &mut buf)) {
            Ok(Ok(0)) => return Ok(total),
            Ok(Ok(n)) => {
                write_all(dst, &buf[..n]).await?;
                total += n as u64;
            }
            Ok(Err(e)) if e.raw_os_error() == Some(crate::sys::EIO) => return Ok(total),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

async fn copy_to_file(src: &AsyncFd<OwnedFd>, file: &OwnedFd) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut g = src.readable().await?;
        match g.try_io(|fd| read_now(fd.get_ref().as_fd(), &mut buf)) {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => {
                let mut d = &buf[..n];
                while !d.is_empty() {
                    let w = write_now(file.as_fd(), d)?;
                    d = &d[w..];
                }
            }
            Ok(Err(e)) if e.raw_os_error() == Some(crate::sys::EIO) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15: the IoUid/IoGid fchown result was ignored.
    #[test]
    fn a_failed_chown_of_a_stdio_pipe_is_an_error() {
        // fchown(2) refuses an O_PATH descriptor (EBADF): a failure we can cause as root.
        let fd = open("/", crate::sys::O_PATH, 0).expect("open /");
        let e = chown_pipe(&fd, 1000, 1000, "output pipe").expect_err("refused");
        assert!(
            e.to_string().contains("fchown output pipe to IoUid 1000"),
            "{e}"
        );
        chown_pipe(&fd, 0, 0, "output pipe").expect("nothing to do for root");
        let (_r, w) = pipe().expect("pipe");
        chown_pipe(&w, 1000, 1000, "output pipe").expect("a pipe can be given away");
    }
}
