//! `linux.sysctl`: only namespaced kernel parameters are accepted, and only when the
//! container has the namespace that scopes them (net.* needs a network namespace,
//! IPC parameters an IPC namespace, kernel.hostname a UTS namespace), as runc checks.
//! Values are written through a procfs handle opened by runrs itself, refusing
//! symlinks and anything that is not procfs (CVE-2025-52881). See sysctl(8), proc(5).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::spec::{has_namespace, SpecError};
use crate::sys::c;
use crate::sys::{self, resolve, SysError};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Writing a sysctl failed.
#[derive(Debug, thiserror::Error)]
#[error("set sysctl {key}={value}")]
pub struct SysctlError {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Why.
    #[source]
    pub source: SysError,
}

/// Check every sysctl of the spec against the namespaces it has.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        let invalid = |reason: &str| SpecError::Invalid {
            field: format!("linux.sysctl[{key:?}]"),
            value: sysctls[key].clone(),
            reason: reason.to_string(),
        };
        if key.contains("..") || key.starts_with('/') || key.is_empty() {
            return Err(invalid("is not a valid sysctl name"));
        }
        let k = key.replace('/', ".");
        let ipc = matches!(
            k.as_str(),
            "kernel.msgmax"
                | "kernel.msgmnb"
                | "kernel.msgmni"
                | "kernel.sem"
                | "kernel.shmall"
                | "kernel.shmmax"
                | "kernel.shmmni"
                | "kernel.shm_rmid_forced"
        ) || k.starts_with("fs.mqueue.");
        if ipc {
            if !has_namespace(spec, LinuxNamespaceType::Ipc) {
                return Err(invalid("needs a private IPC namespace"));
            }
            continue;
        }
        if k.starts_with("net.") {
            if !has_namespace(spec, LinuxNamespaceType::Network) {
                return Err(invalid("needs a private network namespace"));
            }
            continue;
        }
        if k == "kernel.hostname" || k == "kernel.domainname" {
            if !has_namespace(spec, LinuxNamespaceType::Uts) {
                return Err(invalid("needs a private UTS namespace"));
            }
            continue;
        }
        return Err(invalid(
            "is not namespaced; setting it would change the host (runrs, like runc, refuses)",
        ));
    }
    Ok(())
}

/// The path below /proc of a sysctl key.
pub fn proc_path(key: &str) -> PathBuf {
    let k = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    PathBuf::from("sys").join(k)
}

/// Write every sysctl through `proc` (a descriptor of a procfs root).
pub fn apply(spec: &Spec, proc: BorrowedFd<'_>) -> Result<(), SysctlError> {
    let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctls {
        let err = |source| SysctlError {
            key: key.clone(),
            value: value.clone(),
            source,
        };
        let fd = sys::openat2(
            proc,
            &proc_path(key),
            c::O_WRONLY | c::O_TRUNC,
            0,
            resolve::BENEATH | resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS | resolve::NO_XDEV,
        )
        .map_err(err)?;
        if sys::fstatfs_type(fd.as_fd()).map_err(err)? != PROC_SUPER_MAGIC {
            return Err(err(SysError::new(
                "verify procfs",
                key.clone(),
                std::io::Error::from_raw_os_error(c::EXDEV),
            )));
        }
        sys::write_all(fd.as_fd(), value.as_bytes(), key).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: &[&str], sysctl: serde_json::Value) -> Spec {
        let ns: Vec<serde_json::Value> =
            ns.iter().map(|t| serde_json::json!({"type": t})).collect();
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "linux": {"namespaces": ns, "sysctl": sysctl}
        }))
        .expect("spec")
    }

    #[test]
    fn net_needs_netns() {
        let s = spec(&["pid"], serde_json::json!({"net.ipv4.ip_forward": "1"}));
        let e = validate(&s).expect_err("no netns").to_string();
        assert!(
            e.contains("network namespace") && e.contains("net.ipv4.ip_forward"),
            "{e}"
        );
        let s = spec(
            &["network"],
            serde_json::json!({"net.ipv4.ip_forward": "1"}),
        );
        validate(&s).expect("ok");
    }

    #[test]
    fn host_wide_refused() {
        let s = spec(
            &["ipc", "network", "uts"],
            serde_json::json!({"vm.swappiness": "1"}),
        );
        assert!(validate(&s)
            .expect_err("global")
            .to_string()
            .contains("not namespaced"));
        let s = spec(
            &["ipc"],
            serde_json::json!({"kernel.shmmax": "1", "fs.mqueue.msg_max": "5"}),
        );
        validate(&s).expect("ipc ok");
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            PathBuf::from("sys/net/ipv4/ip_forward")
        );
    }
}
