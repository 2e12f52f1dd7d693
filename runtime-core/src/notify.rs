//! sd_notify readiness, with runc's semantics (runc `notify_socket.go`).
//!
//! At create, a container that takes part gets a directory `<state>/notify`,
//! bind-mounted read-only into the container at `/run/notify` with
//! `NOTIFY_SOCKET=/run/notify/notify.sock` in its environment, exactly as runc 1.1
//! does. A container whose `process.env` already names an absolute `NOTIFY_SOCKET`
//! keeps that path: the directory is mounted on its parent instead.
//!
//! At start, the runtime binds the datagram socket in that directory (the directory
//! mount makes it visible inside), releases the container and waits until it sends
//! `READY=1`, relaying READY, STATUS, MAINPID (translated from the container's pid
//! namespace to the host's) and the other state lines systemd understands to the
//! host's socket, followed by `MAINPID=<host pid>` if the container did not name one.
//! Like runc 1.1 (which sends `READY=1` and `MAINPID=<pid>` and nothing else), no
//! sd_notify barrier follows: a `BARRIER=1` carrying a descriptor would make start wait
//! for a receiver that keeps descriptors (`socat UNIX-RECV`). Unlike runc, the wait is
//! bounded, other state lines are relayed too, and a container that exits before
//! READY=1 fails start instead of passing silently.
//! See sd_notify(3), systemd.service(5) `Type=notify`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Mount, Spec};

use crate::sys;
use crate::sys::c;

/// The annotation by which a container asks for sd_notify readiness whoever creates
/// it (a shim has no NOTIFY_SOCKET of its own to go by): `"true"` or `"false"`.
pub const ANNOTATION: &str = "io.github.runrs.notify";
/// Directory under the container's state dir holding the socket.
pub const SOCKET_DIR: &str = "notify";
/// Where runc (and runrs) puts the socket inside the container by default.
pub const DEFAULT_CONTAINER_PATH: &str = "/run/notify/notify.sock";
/// Default bound on the wait for READY=1: systemd's DefaultTimeoutStartSec.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Lines of the sd_notify protocol passed on to the host before READY=1.
const RELAYED: [&str; 10] = [
    "READY",
    "STATUS",
    "MAINPID",
    "ERRNO",
    "BUSERROR",
    "EXTEND_TIMEOUT_USEC",
    "RELOADING",
    "STOPPING",
    "WATCHDOG",
    "WATCHDOG_USEC",
];

/// sd_notify failures.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The runtime's NOTIFY_SOCKET is not usable.
    #[error("NOTIFY_SOCKET {0:?}: {1}")]
    BadHostAddress(String, &'static str),
    /// The opt-in annotation has a value other than true/false.
    #[error("annotations[{ANNOTATION:?}] {0:?}: must be \"true\" or \"false\"")]
    BadAnnotation(String),
    /// The READY=1 timeout annotation is not a number of seconds.
    #[error(
        "annotations[{TIMEOUT_ANNOTATION:?}] {0:?}: must be a number of seconds (0: no bound)"
    )]
    BadTimeout(String),
    /// The container's own NOTIFY_SOCKET cannot be honoured.
    #[error("process.env NOTIFY_SOCKET {0:?}: {1}")]
    BadContainerPath(String, &'static str),
    /// Creating the socket directory.
    #[error("create notify socket directory {0}")]
    Dir(PathBuf, #[source] io::Error),
    /// Binding the socket.
    #[error("bind notify socket {0}")]
    Bind(PathBuf, #[source] io::Error),
    /// Receiving from the container.
    #[error("receive on the notify socket")]
    Recv(#[source] io::Error),
    /// Talking to the host's socket.
    #[error("relay to the host's NOTIFY_SOCKET {0}")]
    Relay(String, #[source] io::Error),
    /// The container's init exited before READY=1.
    #[error("container {id} exited before it sent READY=1{status}")]
    ExitedBeforeReady {
        /// The container.
        id: String,
        /// How it ended, when the runtime is its parent.
        status: String,
    },
    /// No READY=1 within the bound.
    #[error("container {id} did not send READY=1 within {secs} s (it keeps running)")]
    Timeout {
        /// The container.
        id: String,
        /// The bound.
        secs: u64,
    },
    /// start was asked to relay for a container created without a notify socket.
    #[error(
        "container {0} was created without sd_notify support (NOTIFY_SOCKET was not set \
         for create), so start cannot wait for READY=1"
    )]
    NotPrepared(String),
    /// Waiting failed.
    #[error(transparent)]
    Sys(#[from] sys::SysError),
}

/// The runtime's own notify socket (the value of its `NOTIFY_SOCKET`): a path, or an
/// abstract name written with a leading `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSocket(String);

impl HostSocket {
    /// Parse a `NOTIFY_SOCKET` value.
    pub fn parse(value: &str) -> Result<Self, NotifyError> {
        if value.is_empty() {
            return Err(NotifyError::BadHostAddress(value.into(), "is empty"));
        }
        if !value.starts_with('/') && !value.starts_with('@') {
            return Err(NotifyError::BadHostAddress(
                value.into(),
                "must be an absolute path or an abstract name starting with @",
            ));
        }
        Ok(HostSocket(value.into()))
    }

    /// `NOTIFY_SOCKET` of this process, if set (the CLI's opt-in, as runc).
    pub fn from_env() -> Result<Option<Self>, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(v) => Self::parse(&v).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn connect(&self) -> Result<UnixDatagram, NotifyError> {
        let err = |e| NotifyError::Relay(self.0.clone(), e);
        let s = UnixDatagram::unbound().map_err(err)?;
        match self.0.strip_prefix('@') {
            Some(name) => {
                let addr = SocketAddr::from_abstract_name(name.as_bytes()).map_err(err)?;
                s.connect_addr(&addr).map_err(err)?;
            }
            None => s.connect(&self.0).map_err(err)?,
        }
        Ok(s)
    }
}

/// What the container reported when it became ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Host pid of the service's main process (the container's MAINPID, translated,
    /// or the container's init).
    pub main_pid: i32,
    /// The last STATUS= line, if any.
    pub status: Option<String>,
}

/// The container's own bound on the wait for READY=1, in seconds (0: wait as long as
/// its init lives), over the caller's default ([`DEFAULT_READY_TIMEOUT`] in a shim).
pub const TIMEOUT_ANNOTATION: &str = "io.github.runrs.notify-timeout";

/// The bound [`TIMEOUT_ANNOTATION`] sets: `None` without the annotation, `Some(None)`
/// for 0 (no bound), `Some(Some(d))` otherwise.
pub fn ready_timeout(spec: &Spec) -> Result<Option<Option<Duration>>, NotifyError> {
    let Some(v) = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(TIMEOUT_ANNOTATION))
    else {
        return Ok(None);
    };
    match v.trim().parse::<u64>() {
        Ok(0) => Ok(Some(None)),
        Ok(secs) => Ok(Some(Some(Duration::from_secs(secs)))),
        Err(_) => Err(NotifyError::BadTimeout(v.clone())),
    }
}

/// Whether the spec opts in with [`ANNOTATION`].
pub fn requested(spec: &Spec) -> Result<bool, NotifyError> {
    match spec.annotations().as_ref().and_then(|a| a.get(ANNOTATION)) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(NotifyError::BadAnnotation(v.clone())),
    }
}

/// Where the socket goes inside the container: the container's own absolute
/// `NOTIFY_SOCKET`, or runc's default.
fn container_path(spec: &Spec) -> Result<PathBuf, NotifyError> {
    let env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().as_ref())
        .into_iter()
        .flatten();
    let mut value = None;
    for e in env {
        if let Some(v) = e.strip_prefix("NOTIFY_SOCKET=") {
            value = Some(v);
        }
    }
    let Some(v) = value else {
        return Ok(PathBuf::from(DEFAULT_CONTAINER_PATH));
    };
    let p = Path::new(v);
    if !p.is_absolute() {
        return Err(NotifyError::BadContainerPath(
            v.into(),
            "must be an absolute path to be bind-mounted into the container",
        ));
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(_)) if parent != Path::new("/") => Ok(p.to_path_buf()),
        _ => Err(NotifyError::BadContainerPath(
            v.into(),
            "must be in a directory below / (the directory is mounted over)",
        )),
    }
}

/// Make a container take part in sd_notify: create `<state_dir>/notify`, mount it
/// into the container and set `NOTIFY_SOCKET` in `spec` (called by create before the
/// spec is persisted and handed to init).
pub fn prepare(spec: &mut Spec, state_dir: &Path) -> Result<(), NotifyError> {
    use std::os::unix::fs::DirBuilderExt;
    let inside = container_path(spec)?;
    let dir = state_dir.join(SOCKET_DIR);
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .map_err(|e| NotifyError::Dir(dir.clone(), e))?;
    let mount: Mount = serde_json::from_value(serde_json::json!({
        "destination": inside.parent().expect("checked by container_path"),
        "type": "bind",
        "source": dir,
        "options": ["bind", "nosuid", "noexec", "nodev", "ro"],
    }))
    .expect("a valid mount");
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    if let Some(p) = spec.process_mut() {
        let mut env: Vec<String> = p
            .env()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| !e.starts_with("NOTIFY_SOCKET="))
            .collect();
        env.push(format!("NOTIFY_SOCKET={}", inside.display()));
        p.set_env(Some(env));
    }
    Ok(())
}

/// The socket start listens on, bound in the container's notify directory.
#[derive(Debug)]
pub struct Listener {
    sock: UnixDatagram,
}

/// What [`Listener::wait_ready`] watches.
pub struct WaitFor<'a> {
    /// Container id (for messages).
    pub id: &'a str,
    /// Host pid of the container's init.
    pub init_pid: i32,
    /// A pidfd of the container's init.
    pub init: BorrowedFd<'a>,
    /// Host pids of the container's processes (for MAINPID translation).
    pub cgroup_pids: &'a dyn Fn() -> Vec<i32>,
    /// Where to relay, if anywhere.
    pub host: Option<&'a HostSocket>,
    /// Bound on the wait; None waits while init lives.
    pub timeout: Option<Duration>,
    /// The host's procfs (a parameter for tests).
    pub proc_root: &'a Path,
}

impl Listener {
    /// Bind the socket of a container created with [`prepare`]; `None` if it was not.
    pub fn bind(state_dir: &Path, spec: &Spec) -> Result<Option<Listener>, NotifyError> {
        let dir = state_dir.join(SOCKET_DIR);
        if !dir.is_dir() {
            return Ok(None);
        }
        let inside = container_path(spec)?;
        let name = inside.file_name().expect("checked by container_path");
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(NotifyError::Bind(path, e)),
        }
        // sun_path holds 108 bytes; a deep --root goes through the directory's fd.
        let dirfd = sys::open(&dir, c::O_PATH | c::O_DIRECTORY, 0)?;
        let short = Path::new(&sys::fd_path(dirfd.as_fd())).join(name);
        let sock = UnixDatagram::bind(if path.as_os_str().len() < 100 {
            &path
        } else {
            &short
        })
        .map_err(|e| NotifyError::Bind(path.clone(), e))?;
        // The container's user may be anyone.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| NotifyError::Bind(path.clone(), e))?;
        sock.set_nonblocking(true)
            .map_err(|e| NotifyError::Bind(path.clone(), e))?;
        Ok(Some(Listener { sock }))
    }

    /// Wait for READY=1, relaying to the host. See the module doc.
    pub fn wait_ready(&self, w: &WaitFor<'_>) -> Result<Ready, NotifyError> {
        let host = w.host.map(HostSocket::connect).transpose()?;
        let mut deadline = w.timeout.map(|t| Instant::now() + t);
        let mut status = None;
        let mut main_pid = None;
        let mut buf = vec![0u8; 8192];
        loop {
            // Drain what is queued first: a container may say READY=1 and exit.
            loop {
                let n = match self.sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(NotifyError::Recv(e)),
                };
                let msg = Message::parse(&buf[..n]);
                if let Some(s) = &msg.status {
                    status = Some(s.clone());
                }
                if let Some(usec) = msg.extend_usec {
                    let to = Instant::now() + Duration::from_micros(usec);
                    deadline = deadline.map(|d| d.max(to));
                }
                let mut out = Vec::new();
                for (k, v) in &msg.lines {
                    if k == "MAINPID" {
                        let host_pid = v
                            .parse()
                            .ok()
                            .and_then(|p| translate_pid(p, &(w.cgroup_pids)(), w.proc_root));
                        match host_pid {
                            Some(p) => {
                                main_pid = Some(p);
                                out.push(format!("MAINPID={p}"));
                            }
                            None => tracing::warn!(
                                "container {}: MAINPID={v} is not a process of the container; ignored",
                                w.id
                            ),
                        }
                    } else {
                        out.push(format!("{k}={v}"));
                    }
                }
                if msg.ready && main_pid.is_none() {
                    main_pid = Some(w.init_pid);
                    out.push(format!("MAINPID={}", w.init_pid));
                }
                if let (Some(h), false) = (&host, out.is_empty()) {
                    let host_name = w.host.map(|h| h.as_str().to_string()).unwrap_or_default();
                    h.send(out.join("\n").as_bytes())
                        .map_err(|e| NotifyError::Relay(host_name, e))?;
                }
                if msg.ready {
                    return Ok(Ready {
                        main_pid: main_pid.unwrap_or(w.init_pid),
                        status,
                    });
                }
            }
            let timeout_ms = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(NotifyError::Timeout {
                            id: w.id.to_string(),
                            secs: w.timeout.unwrap_or_default().as_secs(),
                        });
                    }
                    left.as_millis().clamp(1, i32::MAX as u128) as i32
                }
                None => -1,
            };
            let mut fds = [
                sys::PollFd::new(self.sock.as_fd(), c::POLLIN),
                sys::PollFd::new(w.init, c::POLLIN),
            ];
            sys::poll(&mut fds, timeout_ms, "notify socket")?;
            let revents = [fds[0].revents(), fds[1].revents()];
            if revents[1] != 0 && revents[0] & c::POLLIN == 0 {
                return Err(NotifyError::ExitedBeforeReady {
                    id: w.id.to_string(),
                    status: exit_note(w.init),
                });
            }
        }
    }
}

/// One datagram of the sd_notify protocol: newline-separated KEY=VALUE lines.
#[derive(Debug, Default, PartialEq, Eq)]
struct Message {
    /// Lines to relay, in order.
    lines: Vec<(String, String)>,
    ready: bool,
    status: Option<String>,
    extend_usec: Option<u64>,
}

impl Message {
    fn parse(data: &[u8]) -> Message {
        let mut m = Message::default();
        for line in String::from_utf8_lossy(data).split('\n') {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "READY" if v == "1" => m.ready = true,
                "STATUS" => m.status = Some(v.to_string()),
                "EXTEND_TIMEOUT_USEC" => m.extend_usec = v.parse().ok(),
                _ => {}
            }
            if RELAYED.contains(&k) {
                m.lines.push((k.to_string(), v.to_string()));
            }
        }
        m
    }
}

/// Translate a pid of the container's pid namespace to the host's: the process among
/// `candidates` (host pids) whose innermost `NSpid` is `ns_pid`. A container without
/// its own pid namespace reports host pids, which match their own NSpid.
pub fn translate_pid(ns_pid: i32, candidates: &[i32], proc_root: &Path) -> Option<i32> {
    if ns_pid <= 0 {
        return None;
    }
    candidates.iter().copied().find(|host| {
        std::fs::read_to_string(proc_root.join(host.to_string()).join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|l| l.split_whitespace().last())
                    .and_then(|p| p.parse::<i32>().ok())
            })
            == Some(ns_pid)
    })
}

/// " (exit status N)" when init is our child (runrs run), else "".
fn exit_note(pidfd: BorrowedFd<'_>) -> String {
    match sys::peek_exit(pidfd) {
        None => String::new(),
        Some(sys::Exited::Code(st)) => format!(" (exit status {st})"),
        Some(sys::Exited::Signal(st)) => format!(" (killed by signal {st})"),
    }
}

#[cfg(test)]
mod tests;
