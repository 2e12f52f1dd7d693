//! The `criu swrk` transport: criu is started with one end of a SOCK_SEQPACKET
//! socketpair and serves exactly one request on it (criu_req → criu_resp, one packet
//! each, descriptors as SCM_RIGHTS). While it works it sends NOTIFY responses that
//! must each be answered with a NOTIFY request (notify_success) before it goes on.
//!
//! criu is a child of the caller and is reaped through [`crate::reap`], so a
//! process with its own reaper (the shim) keeps working. See criu.org "RPC".

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::socket::{recv, sendmsg, MsgFlags};
use prost::Message;
use runrs_proto::criu::{CriuFeatures, CriuReq, CriuReqType, CriuResp};

use super::{CriuError, MIN_VERSION};
use crate::reap;
use crate::sys::{self, c, SysError};

/// A CRIU version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Sublevel (patch).
    pub sublevel: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if self.sublevel != 0 {
            write!(f, ".{}", self.sublevel)?;
        }
        Ok(())
    }
}

/// A criu binary that was found and answered a version request with a usable version.
#[derive(Clone, Debug)]
pub struct Criu {
    /// Absolute path of the binary.
    pub path: PathBuf,
    /// Its version.
    pub version: Version,
}

impl Criu {
    /// Find `name` (looked up in PATH when it has no `/`), ask its version over RPC and
    /// check it against [`MIN_VERSION`].
    pub fn locate(name: &Path) -> Result<Criu, CriuError> {
        let path = find_binary(name)?;
        let mut w = Swrk::start(&path, SwrkStdio::Capture)?;
        let resp = w.call(&request(CriuReqType::Version), None, &mut |_| Ok(()));
        let resp = match resp {
            Ok(r) => r,
            // criu older than 3.0 does not know the request.
            Err(CriuError::Failed { .. }) => {
                return Err(CriuError::Unsupported(format!(
                "{} does not answer CRIU version requests: runrs needs CRIU {MIN_VERSION} or newer",
                path.display()
            )))
            }
            Err(e) => return Err(e),
        };
        w.finish()?;
        let v = resp
            .version
            .ok_or_else(|| CriuError::Protocol("version answer without a version".into()))?;
        let version = Version {
            major: v.major_number.max(0) as u32,
            minor: v.minor_number.max(0) as u32,
            sublevel: v.sublevel.unwrap_or(0).max(0) as u32,
        };
        if version < MIN_VERSION {
            return Err(CriuError::TooOld {
                found: version,
                path,
            });
        }
        Ok(Criu { path, version })
    }

    /// Which of the features asked for in `want` this criu and kernel support.
    pub fn features(&self, want: CriuFeatures) -> Result<CriuFeatures, CriuError> {
        let mut w = Swrk::start(&self.path, SwrkStdio::Capture)?;
        let mut req = request(CriuReqType::FeatureCheck);
        req.features = Some(want);
        let resp = w.call(&req, None, &mut |_| Ok(()))?;
        w.finish()?;
        Ok(resp.features.unwrap_or_default())
    }
}

/// A CRIU request of `t` with no options.
pub(crate) fn request(t: CriuReqType) -> CriuReq {
    CriuReq {
        r#type: t as i32,
        ..Default::default()
    }
}

fn find_binary(name: &Path) -> Result<PathBuf, CriuError> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.as_os_str().is_empty() {
        return Err(CriuError::NotFound {
            path: name.into(),
            where_: "(an empty name)",
        });
    }
    if name.to_string_lossy().contains('/') {
        if executable(name) {
            return Ok(std::path::absolute(name).unwrap_or_else(|_| name.to_path_buf()));
        }
        return Err(CriuError::NotFound {
            path: name.into(),
            where_: "does not exist or is not executable",
        });
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| executable(p))
        .ok_or_else(|| CriuError::NotFound {
            path: name.into(),
            where_: "is not in PATH",
        })
}

/// What a directly started criu gets as stdio.
pub(crate) enum SwrkStdio {
    /// stdin /dev/null; stdout and stderr into a memfd, quoted in errors.
    Capture,
}

/// A notification from criu while it works.
pub(crate) struct Notify {
    /// The action script name (`pre-dump`, `setup-namespaces`, `orphan-pts-master`, …).
    pub script: String,
    /// The root task's pid (setup-namespaces, post-restore).
    pub pid: Option<i32>,
    /// Descriptors that came with it (orphan-pts-master: the pty master).
    pub fds: Vec<OwnedFd>,
}

/// A running `criu swrk` and the runtime's end of its socket.
pub(crate) struct Swrk {
    sock: OwnedFd,
    pid: i32,
    window: reap::ExitWindow,
    reaped: bool,
    status: i32,
    output: Option<OwnedFd>,
}

impl Swrk {
    /// Start `<criu> swrk <fd>` as a child.
    pub(crate) fn start(criu: &Path, stdio: SwrkStdio) -> Result<Swrk, CriuError> {
        let (ours, theirs) = sys::seqpacket_pair()?;
        let raw = theirs.as_raw_fd();
        let mut cmd = Command::new(criu);
        cmd.arg("swrk").arg(raw.to_string());
        let output = match stdio {
            SwrkStdio::Capture => {
                let m = memfd("criu-output")?;
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::from(
                        m.try_clone()
                            .map_err(|e| SysError::new("dup", "criu output memfd", e))?,
                    ))
                    .stderr(Stdio::from(
                        m.try_clone()
                            .map_err(|e| SysError::new("dup", "criu output memfd", e))?,
                    ));
                Some(m)
            }
        };
        sys::keep_open_on_exec(&mut cmd, theirs.as_fd(), 0..0);
        // Opened before criu starts: its exit is kept even if it comes before the wait.
        let window = reap::ExitWindow::open();
        let child = reap::spawn(&mut cmd).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CriuError::NotFound {
                    path: criu.into(),
                    where_: "does not exist",
                }
            } else {
                CriuError::Start(criu.into(), e)
            }
        })?;
        drop(theirs);
        // The child is waited through the exit window, never through `child`.
        let pid = child.id() as i32;
        Ok(Swrk {
            sock: ours,
            pid,
            window,
            reaped: false,
            status: 0,
            output,
        })
    }

    /// A process that becomes `criu swrk` on `sock` by itself (the restore helper).
    /// `window` was opened before the process was started.
    pub(crate) fn adopt(sock: OwnedFd, pid: i32, window: reap::ExitWindow) -> Swrk {
        Swrk {
            sock,
            pid,
            window,
            reaped: false,
            status: 0,
            output: None,
        }
    }

    /// A `Swrk` on `sock` with no process behind it, as if criu had been reaped: the
    /// fuzz targets play criu on the other end.
    #[cfg(test)]
    pub(crate) fn fake(sock: OwnedFd) -> Swrk {
        Swrk {
            sock,
            pid: 0,
            window: reap::ExitWindow::open(),
            reaped: true,
            status: 0,
            output: None,
        }
    }

    /// The criu process' pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// The runtime's end of the socket.
    pub(crate) fn socket(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Talk to the process on another socket from now on.
    pub(crate) fn replace_socket(&mut self, sock: OwnedFd) {
        self.sock = sock;
    }

    /// Send `req`, answer criu's notifications with `on_notify` until the final answer,
    /// and return it if it reports success. `log` names criu's log file for errors.
    /// A failing handler makes criu abort; its error is returned.
    pub(crate) fn call(
        &mut self,
        req: &CriuReq,
        log: Option<&Path>,
        on_notify: &mut dyn FnMut(Notify) -> Result<(), CriuError>,
    ) -> Result<CriuResp, CriuError> {
        let name = type_name(req.r#type);
        self.send(req)?;
        let mut handler_err: Option<CriuError> = None;
        loop {
            let Some((resp, fds)) = self.recv()? else {
                if let Some(e) = handler_err {
                    return Err(e);
                }
                return Err(CriuError::Failed {
                    request: name,
                    message: format!("criu exited without answering{}", self.exit_note()),
                    log: log_note(log),
                });
            };
            if resp.r#type == CriuReqType::Notify as i32 {
                let n = resp.notify.unwrap_or_default();
                let script = n.script.unwrap_or_default();
                tracing::debug!("criu notify {script}");
                let r = if handler_err.is_some() {
                    Ok(())
                } else {
                    on_notify(Notify {
                        script,
                        pid: n.pid,
                        fds,
                    })
                };
                let ok = r.is_ok();
                if let Err(e) = r {
                    handler_err = Some(e);
                }
                let mut ack = request(CriuReqType::Notify);
                ack.notify_success = Some(ok);
                if let Err(e) = self.send(&ack) {
                    return Err(handler_err.unwrap_or(e));
                }
                continue;
            }
            if let Some(e) = handler_err {
                return Err(e);
            }
            if resp.r#type != req.r#type {
                return Err(CriuError::Protocol(format!(
                    "asked {name}, got an answer of type {}",
                    type_name(resp.r#type)
                )));
            }
            if !resp.success {
                // criu's cr_errmsg is the first error it logged, which is often a
                // harmless one (RLIMIT_NOFILE without CAP_SYS_RESOURCE): prefer the
                // log's meaningful errors.
                let from_log = log.map(log_errors).unwrap_or_default();
                let errmsg = resp
                    .cr_errmsg
                    .as_deref()
                    .map(strip_prefix)
                    .filter(|m| !m.is_empty() && !benign(m));
                let message = match (errmsg, resp.cr_errno) {
                    _ if !from_log.is_empty() => from_log.join("; "),
                    (Some(m), _) => m,
                    (_, Some(n)) if n != 0 => std::io::Error::from_raw_os_error(n).to_string(),
                    _ => {
                        let out = self.output_tail();
                        if out.is_empty() {
                            "no reason given".to_string()
                        } else {
                            out
                        }
                    }
                };
                return Err(CriuError::Failed {
                    request: name,
                    message,
                    log: log_note(log),
                });
            }
            return Ok(resp);
        }
    }

    fn send(&mut self, req: &CriuReq) -> Result<(), CriuError> {
        let buf = req.encode_to_vec();
        let iov = [IoSlice::new(&buf)];
        loop {
            match sendmsg::<()>(
                self.sock.as_raw_fd(),
                &iov,
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EPIPE) | Err(nix::Error::ECONNRESET) => {
                    return Err(CriuError::Protocol(format!(
                        "criu exited before taking a {} request{}",
                        type_name(req.r#type),
                        self.exit_note()
                    )))
                }
                Err(e) => {
                    return Err(SysError::new("sendmsg", "criu socket", e.into()).into());
                }
            }
        }
    }

    /// One answer and its descriptors; None when criu closed the socket.
    fn recv(&self) -> Result<Option<(CriuResp, Vec<OwnedFd>)>, CriuError> {
        let Some((bytes, fds)) = recv_packet(self.sock.as_fd())
            .map_err(|e| SysError::new("recvmsg", "criu socket", e.into()))?
        else {
            return Ok(None);
        };
        let resp = CriuResp::decode(bytes.as_slice())
            .map_err(|e| CriuError::Protocol(format!("malformed answer: {e}")))?;
        Ok(Some((resp, fds)))
    }

    /// Wait for criu to exit; an unsuccessful exit after a successful answer is only
    /// logged (the work is done).
    pub(crate) fn finish(mut self) -> Result<(), CriuError> {
        let st = self.wait();
        if let Ok(st) = st {
            if st != 0 {
                tracing::warn!("criu exited with {}", describe_status(st));
            }
        }
        Ok(())
    }

    fn wait(&mut self) -> std::io::Result<i32> {
        if self.reaped {
            return Ok(self.status);
        }
        self.reaped = true;
        let st = self.window.wait(self.pid)?;
        self.status = st;
        Ok(st)
    }

    /// " (criu exit status …; output …)" after criu went away.
    pub(crate) fn exit_note(&mut self) -> String {
        let st = match self.wait() {
            Ok(st) => describe_status(st),
            Err(e) => format!("unknown status ({e})"),
        };
        let out = self.output_tail();
        if out.is_empty() {
            format!(" ({st})")
        } else {
            format!(" ({st}: {out})")
        }
    }

    /// The last lines criu printed (stdout and stderr), when they were captured.
    fn output_tail(&self) -> String {
        let Some(m) = &self.output else {
            return String::new();
        };
        let text = std::fs::read_to_string(sys::fd_path(m.as_fd())).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join("; ")
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        if !self.reaped {
            // Abandoned (an error on our side): criu must not outlive the request.
            // The pid is our child criu, not yet reaped: it cannot be reused.
            let _ = sys::kill(self.pid, c::SIGKILL);
            let _ = self.window.wait(self.pid);
        }
    }
}

/// The errors of a criu log that explain a failure: the first two "Error (…): msg"
/// lines (prefix cut) that are not known noise.
pub(crate) fn log_errors(log: &Path) -> Vec<String> {
    errors_in(&std::fs::read_to_string(log).unwrap_or_default())
}

/// [`log_errors`] of a log's text.
pub(crate) fn errors_in(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("Error ("))
        .map(strip_prefix)
        .filter(|m| !m.is_empty() && !benign(m))
        .take(2)
        .collect()
}

/// "(00.1) Error (criu/x.c:1): msg" → "msg".
fn strip_prefix(line: &str) -> String {
    let rest = match line.find("Error (") {
        Some(i) => &line[i..],
        None => line,
    };
    match rest.find("): ") {
        Some(i) if rest.starts_with("Error (") => rest[i + 3..].trim().to_string(),
        _ => rest.trim().to_string(),
    }
}

/// Errors criu logs without failing because of them, or that only say it failed.
fn benign(m: &str) -> bool {
    const NOISE: &[&str] = &[
        "rlimit: Can't setup RLIMIT_NOFILE",
        "execvp(\"iptables",
        "execvp(\"ip6tables",
        "iptables-save -V failed",
        "ip6tables-save -V failed",
        "iptables-legacy-save -V failed",
        "ip6tables-legacy-save -V failed",
        "exited, status=",
        "Dumping FAILED",
        "Pre-dumping FAILED",
        "Restoring FAILED",
    ];
    NOISE.iter().any(|n| m.contains(n))
}

fn log_note(log: Option<&Path>) -> String {
    log.map(|l| format!(" (log: {})", l.display()))
        .unwrap_or_default()
}

/// "exit status 1" / "killed by signal 9".
pub(crate) fn describe_status(st: i32) -> String {
    if let Some(code) = sys::exited(st) {
        format!("exit status {code}")
    } else if let Some(sig) = sys::signaled(st) {
        format!("killed by signal {sig}")
    } else {
        format!("wait status {st:#x}")
    }
}

fn type_name(t: i32) -> &'static str {
    CriuReqType::try_from(t)
        .map(|t| t.as_str_name())
        .unwrap_or("UNKNOWN")
}

fn memfd(name: &str) -> Result<OwnedFd, SysError> {
    sys::memfd(name, false)
}

/// One packet and the descriptors that came with it.
pub(crate) type Packet = (Vec<u8>, Vec<OwnedFd>);

/// Receive one whole packet (its size peeked first) with any descriptors (O_CLOEXEC).
/// None when the peer closed the socket.
pub(crate) fn recv_packet(sock: BorrowedFd<'_>) -> Result<Option<Packet>, nix::Error> {
    let len = loop {
        match recv(
            sock.as_raw_fd(),
            &mut [],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
        ) {
            Ok(n) => break n,
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::ECONNRESET) => return Ok(None),
            Err(e) => return Err(e),
        }
    };
    if len == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; len];
    match sys::recv_with_fds(sock, &mut buf) {
        Ok((0, _)) | Err(nix::Error::ECONNRESET) => Ok(None),
        Ok((n, fds)) => {
            buf.truncate(n);
            Ok(Some((buf, fds)))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
