//! Linux namespaces: which ones a container creates, which it joins by path, and the
//! order in which init does it (user first, so the rest are owned by it; pid last, as it
//! only applies to children). See namespaces(7), setns(2), unshare(2), user_namespaces(7).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::sys::c;
use crate::sys::{self, SysError};

/// A namespace type, in runrs' own (serialisable) form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// user_namespaces(7)
    User,
    /// mount_namespaces(7)
    Mount,
    /// uts_namespaces(7)
    Uts,
    /// ipc_namespaces(7)
    Ipc,
    /// network_namespaces(7)
    Network,
    /// cgroup_namespaces(7)
    Cgroup,
    /// time_namespaces(7)
    Time,
    /// pid_namespaces(7)
    Pid,
}

impl Kind {
    /// All kinds in the order init joins or creates them.
    pub const ORDER: [Kind; 8] = [
        Kind::User,
        Kind::Mount,
        Kind::Uts,
        Kind::Ipc,
        Kind::Network,
        Kind::Cgroup,
        Kind::Time,
        Kind::Pid,
    ];

    /// The CLONE_NEW* flag.
    pub fn flag(self) -> i32 {
        match self {
            Kind::User => c::CLONE_NEWUSER,
            Kind::Mount => c::CLONE_NEWNS,
            Kind::Uts => c::CLONE_NEWUTS,
            Kind::Ipc => c::CLONE_NEWIPC,
            Kind::Network => c::CLONE_NEWNET,
            Kind::Cgroup => c::CLONE_NEWCGROUP,
            Kind::Time => crate::sys::CLONE_NEWTIME,
            Kind::Pid => c::CLONE_NEWPID,
        }
    }

    /// The file name under /proc/PID/ns.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Mount => "mnt",
            Kind::Uts => "uts",
            Kind::Ipc => "ipc",
            Kind::Network => "net",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time",
            Kind::Pid => "pid",
        }
    }
}

impl From<LinuxNamespaceType> for Kind {
    fn from(t: LinuxNamespaceType) -> Self {
        match t {
            LinuxNamespaceType::User => Kind::User,
            LinuxNamespaceType::Mount => Kind::Mount,
            LinuxNamespaceType::Uts => Kind::Uts,
            LinuxNamespaceType::Ipc => Kind::Ipc,
            LinuxNamespaceType::Network => Kind::Network,
            LinuxNamespaceType::Cgroup => Kind::Cgroup,
            LinuxNamespaceType::Time => Kind::Time,
            LinuxNamespaceType::Pid => Kind::Pid,
        }
    }
}

/// One namespace of the container: created new, or joined from a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Which namespace.
    pub kind: Kind,
    /// Join this existing namespace instead of creating one.
    pub path: Option<PathBuf>,
}

/// The container's namespaces, sorted in [`Kind::ORDER`].
pub fn from_spec(spec: &Spec) -> Vec<Namespace> {
    let mut v: Vec<Namespace> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|ns| {
            ns.iter()
                .map(|n| Namespace {
                    kind: n.typ().into(),
                    path: n.path().clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|n| Kind::ORDER.iter().position(|k| *k == n.kind));
    v
}

/// Namespaces to join, opened before any of them is entered (once in another mount
/// namespace, the paths may no longer resolve).
pub struct Joins {
    fds: Vec<(Kind, PathBuf, OwnedFd)>,
}

/// Open every namespace path of `list`.
pub fn open_joins(list: &[Namespace]) -> Result<Joins, SysError> {
    let mut fds = Vec::new();
    for ns in list {
        if let Some(p) = &ns.path {
            let fd = sys::open(p, c::O_RDONLY, 0)?;
            fds.push((ns.kind, p.clone(), fd));
        }
    }
    Ok(Joins { fds })
}

impl Joins {
    /// Join the user namespace, if one is to be joined.
    pub fn join_user(&self) -> Result<bool, SysError> {
        for (k, p, fd) in &self.fds {
            if *k == Kind::User {
                sys::setns(fd.as_fd(), k.flag(), &p.display().to_string())?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Join every other namespace (pid applies to children only).
    pub fn join_rest(&self) -> Result<(), SysError> {
        for (k, p, fd) in &self.fds {
            if *k != Kind::User {
                sys::setns(fd.as_fd(), k.flag(), &p.display().to_string())?;
            }
        }
        Ok(())
    }
}

/// CLONE_NEW* flags for the namespaces to create, excluding user.
pub fn new_flags_except_user(list: &[Namespace]) -> i32 {
    list.iter()
        .filter(|n| n.path.is_none() && n.kind != Kind::User)
        .fold(0, |acc, n| acc | n.kind.flag())
}

/// Whether a new namespace of `kind` is created.
pub fn creates(list: &[Namespace], kind: Kind) -> bool {
    list.iter().any(|n| n.kind == kind && n.path.is_none())
}

/// Whether the container has its own namespace of `kind` (created or joined).
pub fn has(list: &[Namespace], kind: Kind) -> bool {
    list.iter().any(|n| n.kind == kind)
}

/// Set the loopback interface of the current network namespace up (SIOCSIFFLAGS).
pub fn loopback_up() -> Result<(), SysError> {
    crate::sys::net::loopback_up()
}

/// Path of a process' namespace file.
pub fn proc_path(pid: i32, kind: Kind) -> PathBuf {
    Path::new("/proc")
        .join(pid.to_string())
        .join("ns")
        .join(kind.proc_name())
}

/// Whether this process runs in a user namespace other than the initial one (its
/// uid_map is not the whole range; runc's `userns.RunningInUserNS`).
pub fn running_in_userns() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_user_first_pid_last() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/x"}, {"type": "user"}]}
        }))
        .expect("spec");
        let ns = from_spec(&spec);
        assert_eq!(ns[0].kind, Kind::User);
        assert_eq!(ns[2].kind, Kind::Pid);
        assert_eq!(new_flags_except_user(&ns), c::CLONE_NEWPID);
        assert_eq!(
            crate::sys::describe_clone_flags(c::CLONE_NEWPID | c::CLONE_NEWNS),
            "CLONE_NEWNS|CLONE_NEWPID"
        );
    }
}
