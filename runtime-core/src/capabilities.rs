//! Process capabilities: the bounding set is reduced first, then (after the uid switch,
//! with PR_SET_KEEPCAPS) effective, permitted and inheritable are set with capset(2)
//! and ambient capabilities raised. Capabilities this kernel does not know are skipped
//! with a warning, as runc does for forward compatibility.
//! See capabilities(7), capset(2), prctl(2) PR_CAPBSET_DROP and PR_CAP_AMBIENT.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::sys::c;
use crate::sys::{self, SysError};

/// Capability names in kernel order (index = capability number).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Capability failures.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// A syscall failed.
    #[error("{0}")]
    Sys(&'static str, #[source] SysError),
}

/// The kernel number of a capability.
pub fn number(c: &Capability) -> Option<u32> {
    let name = format!("CAP_{c}");
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// The highest capability this kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// A set as a 64-bit mask; unknown capabilities are reported in `unknown`.
pub fn mask(set: Option<&Capabilities>, last: u32, unknown: &mut Vec<String>) -> u64 {
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        match number(c) {
            Some(n) if n <= last => m |= 1 << n,
            _ => unknown.push(format!("CAP_{c}")),
        }
    }
    m
}

/// The resolved sets of one process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
}

/// Resolve the spec's sets. Returns the sets and the names this kernel does not know.
pub fn resolve(c: &LinuxCapabilities) -> (Sets, Vec<String>) {
    let last = last_cap();
    let mut unknown = Vec::new();
    let s = Sets {
        bounding: mask(c.bounding().as_ref(), last, &mut unknown),
        effective: mask(c.effective().as_ref(), last, &mut unknown),
        permitted: mask(c.permitted().as_ref(), last, &mut unknown),
        inheritable: mask(c.inheritable().as_ref(), last, &mut unknown),
        ambient: mask(c.ambient().as_ref(), last, &mut unknown),
    };
    unknown.sort();
    unknown.dedup();
    (s, unknown)
}

/// Drop every capability outside `bounding` from the bounding set.
pub fn apply_bounding(bounding: u64) -> Result<(), CapsError> {
    for n in 0..=last_cap() {
        if bounding & (1 << n) == 0 {
            sys::prctl(
                c::PR_CAPBSET_DROP,
                u64::from(n),
                0,
                NAMES.get(n as usize).unwrap_or(&"?"),
            )
            .map_err(|e| CapsError::Sys("drop capability from the bounding set", e))?;
        }
    }
    Ok(())
}

/// Set effective, permitted and inheritable with capset(2), then raise ambient ones.
/// An ambient capability the kernel refuses (it must also be permitted and
/// inheritable) is returned by name, for a warning, as runc does.
pub fn apply(s: &Sets) -> Result<Vec<&'static str>, CapsError> {
    sys::capset(s.effective, s.permitted, s.inheritable)
        .map_err(|e| CapsError::Sys("set capabilities", e))?;
    // Clear, then raise: the ambient set must be a subset of permitted and inheritable.
    sys::prctl(
        c::PR_CAP_AMBIENT,
        c::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
        "clear ambient",
    )
    .map_err(|e| CapsError::Sys("clear ambient capabilities", e))?;
    let mut refused = Vec::new();
    for n in 0..64u32 {
        if s.ambient & (1 << n) != 0 {
            let name = NAMES.get(n as usize).copied().unwrap_or("?");
            if sys::prctl(
                c::PR_CAP_AMBIENT,
                c::PR_CAP_AMBIENT_RAISE as u64,
                u64::from(n),
                name,
            )
            .is_err()
            {
                refused.push(name);
            }
        }
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_kernel() {
        assert_eq!(number(&Capability::Chown), Some(0));
        assert_eq!(number(&Capability::SysAdmin), Some(21));
        assert_eq!(number(&Capability::NetBindService), Some(10));
        assert_eq!(number(&Capability::CheckpointRestore), Some(40));
        assert_eq!(number(&Capability::AuditWrite), Some(29));
    }

    #[test]
    fn resolves_sets() {
        let c: LinuxCapabilities = serde_json::from_value(serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"]
        }))
        .expect("caps");
        let (s, unknown) = resolve(&c);
        assert_eq!(s.bounding, (1 << 5) | 1);
        assert_eq!(s.effective, 1 << 5);
        assert_eq!(s.ambient, 0);
        assert!(unknown.is_empty());
    }
}
