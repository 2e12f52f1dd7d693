//! Process resource limits (`process.rlimits`), applied by init with setrlimit(2)
//! before it drops privileges. Raising a hard limit above the runtime's own needs
//! CAP_SYS_RESOURCE; without it the error says so instead of a bare EPERM.
//! See getrlimit(2).

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
pub fn resource(t: PosixRlimitType) -> (libc::__rlimit_resource_t, &'static str) {
    match t {
        PosixRlimitType::RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        PosixRlimitType::RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        PosixRlimitType::RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        PosixRlimitType::RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        PosixRlimitType::RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        PosixRlimitType::RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        PosixRlimitType::RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        PosixRlimitType::RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        PosixRlimitType::RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        PosixRlimitType::RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        PosixRlimitType::RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        PosixRlimitType::RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        PosixRlimitType::RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        PosixRlimitType::RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        PosixRlimitType::RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        PosixRlimitType::RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// Apply every limit of the spec to the calling process.
pub fn apply(limits: &[PosixRlimit]) -> Result<(), RlimitError> {
    for l in limits {
        let (res, name) = resource(l.typ());
        let rl = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: `rl` is a valid rlimit struct for the duration of the call.
        if unsafe { libc::setrlimit(res, &rl) } < 0 {
            let source = std::io::Error::last_os_error();
            let hint = if source.raw_os_error() == Some(libc::EPERM) {
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
