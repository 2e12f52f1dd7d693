//! The shim's log goes to the bundle's `log` fifo, which containerd reads and copies to
//! its own log. Writes never block: the fifo is opened O_NONBLOCK and a line that does
//! not fit is dropped. Level: info, debug with `-debug`.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

struct FifoWriter(OwnedFd);

impl Write for FifoWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // EAGAIN (containerd not reading) or EPIPE: drop the line rather than block.
        Ok(crate::sys::write(self.0.as_fd(), buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log to `<cwd>/log` (the bundle's fifo) if it can be opened without blocking.
pub fn init(debug: bool) {
    let Ok(fd) = crate::sys::open("log", crate::sys::O_WRONLY | crate::sys::O_NONBLOCK, 0) else {
        return;
    };
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
