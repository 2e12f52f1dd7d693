//! Process resource limits (`process.rlimits`), applied by init with setrlimit(2)
//! before it drops privileges. Raising a hard limit above the runtime's own needs
//! CAP_SYS_RESOURCE; without it the error says so instead of a bare EPERM.
//! See getrlimit(2).

use crate::sys::c;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

/// rlimit failures.
#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    /// setrlimit refused.
    #[error("setrlimit {name} soft={soft} hard={hard}{hint}")]
    Set {
        /// RLIMIT_* name.
        name: &'static str,
        /// Requested soft limit.
        soft: u64,
        /// Requested hard limit.
        hard: u64,
        /// Explanation for EPERM.
        hint: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The resource number and name of a limit type.
pub fn resource(t: PosixRlimitType) -> (u32, &'static str) {
    match t {
        PosixRlimitType::RlimitCpu => (c::RLIMIT_CPU, "RLIMIT_CPU"),
        PosixRlimitType::RlimitFsize => (c::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        PosixRlimitType::RlimitData => (c::RLIMIT_DATA, "RLIMIT_DATA"),
        PosixRlimitType::RlimitStack => (c::RLIMIT_STACK, "RLIMIT_STACK"),
        PosixRlimitType::RlimitCore => (c::RLIMIT_CORE, "RLIMIT_CORE"),
        PosixRlimitType::RlimitRss => (c::RLIMIT_RSS, "RLIMIT_RSS"),
        PosixRlimitType::RlimitNproc => (c::RLIMIT_NPROC, "RLIMIT_NPROC"),
        PosixRlimitType::RlimitNofile => (c::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        PosixRlimitType::RlimitMemlock => (c::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        PosixRlimitType::RlimitAs => (c::RLIMIT_AS, "RLIMIT_AS"),
        PosixRlimitType::RlimitLocks => (c::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        PosixRlimitType::RlimitSigpending => (c::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        PosixRlimitType::RlimitMsgqueue => (c::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        PosixRlimitType::RlimitNice => (c::RLIMIT_NICE, "RLIMIT_NICE"),
        PosixRlimitType::RlimitRtprio => (c::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        PosixRlimitType::RlimitRttime => (c::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// Apply every limit of the spec to the calling process.
pub fn apply(limits: &[PosixRlimit]) -> Result<(), RlimitError> {
    for l in limits {
        let (res, name) = resource(l.typ());
        if let Err(source) = crate::sys::setrlimit(res, l.soft(), l.hard()) {
            let hint = if source.raw_os_error() == Some(c::EPERM) {
                " (raising a hard limit needs CAP_SYS_RESOURCE, which the runtime does not have)"
            } else if l.soft() > l.hard() {
                " (the soft limit exceeds the hard limit)"
            } else {
                ""
            };
            return Err(RlimitError::Set {
                name,
                soft: l.soft(),
                hard: l.hard(),
                hint,
                source,
            });
        }
    }
    Ok(())
}
