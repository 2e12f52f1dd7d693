//! The parent/init protocol: JSON messages over a SOCK_SEQPACKET socketpair, with
//! descriptors attached as SCM_RIGHTS. Large messages (a spec with a big seccomp
//! profile) are split into packets, each prefixed by one byte: 1 = last, 0 = more.
//! See unix(7), cmsg(3).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::{Deserialize, Serialize};

use super::init::InitConfig;

const PACKET: usize = 32 * 1024;

/// One message between the runtime (parent) and init.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    /// Parent → init: what to build.
    Config(Box<InitConfig>),
    /// Init (stage 1) → parent: I have unshared the user namespace, write my id maps.
    MapRequest,
    /// Parent → init: id maps written.
    MapDone,
    /// Init (stage 1) → parent: the container's init has this host pid.
    Child {
        /// Host pid of the container's init.
        pid: i32,
    },
    /// Init → parent: mounts are ready, run prestart/createRuntime hooks now.
    Hooks,
    /// Parent → init: hooks done.
    HooksDone,
    /// Init → parent: everything is set up; waiting for start.
    Ready,
    /// Init → parent: the seccomp notify listener is attached; hand it to the agent at
    /// linux.seccomp.listenerPath (sent pre-encoded, see [`crate::seccomp::kernel`]).
    SeccompFd,
    /// Init → parent: setup failed.
    Error {
        /// What failed, with its causes.
        message: String,
        /// Whose fault: a configuration only init can check (a missing mount source,
        /// a cwd that is a file, a program that is not there) is the caller's.
        #[serde(default)]
        kind: crate::fault::Kind,
    },
    /// Init → parent: a log line.
    Log {
        /// `debug`, `info`, `warn` or `error`.
        level: String,
        /// The message.
        message: String,
    },
}

/// Protocol failures.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The socket failed.
    #[error("{0} on the init sync socket")]
    Socket(&'static str, #[source] nix::Error),
    /// The peer closed the socket.
    #[error("the peer closed the sync socket")]
    Closed,
    /// A message was not valid JSON for [`Msg`].
    #[error("malformed sync message")]
    Decode(#[source] serde_json::Error),
}

/// Send `msg` with `fds` attached to its first packet.
pub fn send(sock: BorrowedFd<'_>, msg: &Msg, fds: &[BorrowedFd<'_>]) -> Result<(), SyncError> {
    let body = serde_json::to_vec(msg).map_err(SyncError::Decode)?;
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let mut chunks = body.chunks(PACKET).peekable();
    let mut first = true;
    loop {
        let chunk = chunks.next().unwrap_or(&[]);
        let last = chunks.peek().is_none();
        let flag = [u8::from(last)];
        let iov = [IoSlice::new(&flag), IoSlice::new(chunk)];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cm: &[ControlMessage<'_>] = if first && !raw.is_empty() { &cmsg } else { &[] };
        loop {
            match sendmsg::<()>(sock.as_raw_fd(), &iov, cm, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(_) => break,
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EPIPE) | Err(nix::Error::ECONNRESET) => {
                    return Err(SyncError::Closed)
                }
                Err(e) => return Err(SyncError::Socket("send", e)),
            }
        }
        first = false;
        if last {
            return Ok(());
        }
    }
}

/// Receive one message and the descriptors that came with it (all O_CLOEXEC).
pub fn recv(sock: BorrowedFd<'_>) -> Result<(Msg, Vec<OwnedFd>), SyncError> {
    let mut body = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; PACKET + 1];
    loop {
        let (n, last) = match crate::sys::recv_with_fds(sock, &mut buf) {
            Ok((n, received)) => {
                fds.extend(received);
                (n, n > 0 && buf[0] == 1)
            }
            Err(nix::Error::ECONNRESET) => return Err(SyncError::Closed),
            Err(e) => return Err(SyncError::Socket("recv", e)),
        };
        if n == 0 {
            return Err(SyncError::Closed);
        }
        body.extend_from_slice(&buf[1..n]);
        if last {
            break;
        }
    }
    let msg = serde_json::from_slice(&body).map_err(SyncError::Decode)?;
    Ok((msg, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn roundtrip_large_with_fds() {
        let (a, b) = crate::sys::seqpacket_pair().expect("pair");
        let big = "x".repeat(100_000);
        let devnull = std::fs::File::open("/dev/null").expect("open");
        let t = std::thread::spawn(move || {
            let kind = crate::fault::Kind::InvalidArgument;
            send(
                a.as_fd(),
                &Msg::Error { message: big, kind },
                &[devnull.as_fd()],
            )
            .expect("send");
            send(a.as_fd(), &Msg::Ready, &[]).expect("send");
        });
        let (m, fds) = recv(b.as_fd()).expect("recv");
        match m {
            Msg::Error { message, kind } => {
                assert_eq!(message.len(), 100_000);
                assert_eq!(kind, crate::fault::Kind::InvalidArgument);
            }
            m => panic!("unexpected {m:?}"),
        }
        assert_eq!(fds.len(), 1);
        assert!(matches!(recv(b.as_fd()).expect("recv").0, Msg::Ready));
        t.join().expect("join");
        assert!(matches!(recv(b.as_fd()), Err(SyncError::Closed)));
    }
}
