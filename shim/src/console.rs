//! A terminal's console socket: runtime-core sends the pty master over it (the OCI
//! console-socket protocol), the shim receives it and relays the terminal.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use runtime_core::ConsoleSocket;

use crate::error::{Result, ShimError};

/// The two ends of a console socket.
pub struct Pair {
    ours: UnixStream,
    theirs: UnixStream,
}

/// Our end, to receive the pty master from.
pub struct Receiver(UnixStream);

impl Pair {
    /// A new socket pair.
    pub fn new() -> Result<Pair> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| ShimError::Internal(format!("socketpair: {e}")))?;
        Ok(Pair { ours, theirs })
    }

    /// Our end and runtime-core's.
    pub fn split(self) -> (Receiver, ConsoleSocket) {
        (Receiver(self.ours), ConsoleSocket::Fd(self.theirs.into()))
    }
}

impl Receiver {
    /// The pty master runtime-core sent (blocking).
    pub fn master(self) -> Result<OwnedFd> {
        runtime_core::recv_master(std::os::fd::AsFd::as_fd(&self.0))
            .map_err(|e| ShimError::Internal(runtime_core::chain(&e)))
    }
}

/// Split an optional pair.
pub fn split(pair: Option<Pair>) -> (Option<Receiver>, Option<ConsoleSocket>) {
    match pair.map(Pair::split) {
        Some((r, s)) => (Some(r), Some(s)),
        None => (None, None),
    }
}
