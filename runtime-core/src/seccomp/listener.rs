//! `linux.seccomp.listenerPath`: the runtime connects to the seccomp agent's unix socket
//! and sends one message, the OCI `ContainerProcessState` as JSON (`fds:
//! ["seccompFd"]`, the process' pid, `listenerMetadata`, and the container state: status
//! `creating` for the container's init, `running` with the init's pid for an exec'd
//! process) with the listener descriptor attached as SCM_RIGHTS — runc's wire format.
//! See the OCI config-linux.md "Seccomp" and runtime.md "State".

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::Spec;
use serde::Serialize;

use crate::state::OCI_VERSION;

/// The name of the listener descriptor in `fds`.
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// Handing the listener to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The agent's socket cannot be reached (runc's wording, which callers match on).
    #[error("failed to connect with seccomp agent specified in the seccomp profile: {0}")]
    Connect(PathBuf, #[source] std::io::Error),
    /// Sending the state and descriptor failed.
    #[error("send the seccomp listener descriptor to {0}")]
    Send(PathBuf, #[source] nix::Error),
    /// Init sent a listener but the spec names no agent.
    #[error("init sent a seccomp listener but linux.seccomp.listenerPath is not set")]
    NoPath,
}

/// The OCI state as the runtime spec defines it (the agent's view).
#[derive(Debug, Serialize)]
struct State<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    id: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    pid: i32,
    bundle: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

fn is_zero(p: &i32) -> bool {
    *p == 0
}

/// OCI `ContainerProcessState`.
#[derive(Debug, Serialize)]
struct ContainerProcessState<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    fds: [&'a str; 1],
    pid: i32,
    #[serde(skip_serializing_if = "str::is_empty")]
    metadata: &'a str,
    state: State<'a>,
}

/// Where and what to send for one container.
#[derive(Debug, Clone)]
pub struct Listener {
    path: PathBuf,
    metadata: String,
    id: String,
    bundle: String,
    annotations: BTreeMap<String, String>,
    /// For an exec'd process: the container's init pid (the state's pid).
    init_pid: Option<i32>,
}

impl Listener {
    /// The listener of an exec'd process: the state it sends names the container's
    /// init pid (`init_pid`), not the exec'd process.
    pub fn for_exec(mut self, init_pid: i32) -> Listener {
        self.init_pid = Some(init_pid);
        self
    }

    /// The listener of `spec`, if it names one.
    pub fn from_spec(id: &str, bundle: &Path, spec: &Spec) -> Option<Listener> {
        let s = spec.linux().as_ref()?.seccomp().as_ref()?;
        let path = s
            .listener_path()
            .clone()
            .filter(|p| !p.as_os_str().is_empty())?;
        Some(Listener {
            path,
            metadata: s.listener_metadata().clone().unwrap_or_default(),
            id: id.to_string(),
            bundle: bundle.display().to_string(),
            annotations: spec
                .annotations()
                .as_ref()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            init_pid: None,
        })
    }

    /// The JSON document sent with the descriptor for the process `pid`.
    pub fn message(&self, pid: i32) -> Vec<u8> {
        let doc = ContainerProcessState {
            oci_version: OCI_VERSION,
            fds: [SECCOMP_FD_NAME],
            pid,
            metadata: &self.metadata,
            state: State {
                oci_version: OCI_VERSION,
                id: &self.id,
                status: if self.init_pid.is_some() {
                    "running"
                } else {
                    "creating"
                },
                pid: self.init_pid.unwrap_or(pid),
                bundle: &self.bundle,
                annotations: &self.annotations,
            },
        };
        serde_json::to_vec(&doc).expect("serializing plain strings and numbers cannot fail")
    }

    /// Connect to the agent and send the state of the container whose init is `pid`,
    /// with `fd` attached. The caller closes its copy afterwards.
    pub fn send(&self, pid: i32, fd: BorrowedFd<'_>) -> Result<(), ListenerError> {
        let conn = UnixStream::connect(&self.path)
            .map_err(|e| ListenerError::Connect(self.path.clone(), e))?;
        let body = self.message(pid);
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(&body)];
        loop {
            match sendmsg::<()>(conn.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(n) if n == body.len() => return Ok(()),
                // A stream socket may take part of a large message; runc sends one
                // message too, so a short write is reported rather than split.
                Ok(_) => return Err(ListenerError::Send(self.path.clone(), nix::Error::EMSGSIZE)),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(ListenerError::Send(self.path.clone(), e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_the_oci_container_process_state() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "annotations": {"a": "b"},
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": "/run/agent.sock", "listenerMetadata": "meta"}}
        }))
        .expect("spec");
        let l = Listener::from_spec("c1", Path::new("/b"), &spec).expect("listener");
        let v: serde_json::Value = serde_json::from_slice(&l.message(42)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": 42, "metadata": "meta",
                "state": {"ociVersion": OCI_VERSION, "id": "c1", "status": "creating", "pid": 42,
                          "bundle": "/b", "annotations": {"a": "b"}}
            })
        );
        let none: Spec =
            serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2"})).expect("spec");
        assert!(Listener::from_spec("c1", Path::new("/b"), &none).is_none());
    }
}
