//! The shim's log goes to the bundle's `log` fifo, which containerd reads and copies to
//! its own log. Writes never block: the fifo is opened O_NONBLOCK and a line that does
//! not fit is dropped. Level: info, debug with `-debug`.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

struct FifoWriter(OwnedFd);

impl Write for FifoWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: `buf` is valid for reads of its length.
        let n = unsafe { libc::write(self.0.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        // EAGAIN (containerd not reading) or EPIPE: drop the line rather than block.
        Ok(if n < 0 { buf.len() } else { n as usize })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log to `<cwd>/log` (the bundle's fifo) if it can be opened without blocking.
pub fn init(debug: bool) {
    let path = c"log";
    // SAFETY: `path` is a valid C string.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return;
    }
    // SAFETY: open returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let writer = std::sync::Mutex::new(FifoWriter(fd));
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false)
        .with_writer(writer)
        .try_init();
}
