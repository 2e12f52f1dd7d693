//! The error type of runtime-core's public API, wrapping each module's error, with a
//! [`Kind`] for callers that map errors to protocol codes (the shim's gRPC codes).

use std::path::PathBuf;

pub use crate::fault::{chain, Kind};
use crate::state::Status;

/// A runtime-core failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.
    #[error("invalid configuration")]
    Spec(#[from] crate::spec::SpecError),
    /// State persistence.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// cgroups.
    #[error("{}", cgroup_context(.0))]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// Spawning init, or init's own report.
    #[error("unable to start container process")]
    Spawn(#[from] crate::process::spawn::SpawnError),
    /// A hook.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// A syscall.
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
    /// The seccomp profile.
    #[error("{}", seccomp_context(.0))]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// An AppArmor/SELinux label.
    #[error(transparent)]
    Lsm(#[from] crate::lsm::LsmError),
    /// The bundle directory.
    #[error("bundle {0}")]
    Bundle(PathBuf, #[source] std::io::Error),
    /// The state directory.
    #[error("state directory {0}")]
    StateDir(PathBuf, #[source] std::io::Error),
    /// The pid file.
    #[error("write pid file {0}")]
    PidFile(PathBuf, #[source] std::io::Error),
    /// The console socket.
    #[error("connect to console socket {0}")]
    ConsoleSocket(PathBuf, #[source] std::io::Error),
    /// The container's cgroup already holds processes.
    #[error("the container's cgroup {0} is not empty")]
    CgroupBusy(String),
    /// The container's (pre-existing) cgroup is frozen: init would hang in it.
    #[error("the container's cgroup {0} is frozen (thaw it or choose another cgroupsPath)")]
    CgroupFrozen(String),
    /// A verb the container's status does not allow.
    #[error("cannot {action} container {id}: it is {status}, must be {want}")]
    WrongState {
        /// The container.
        id: String,
        /// Its status.
        status: Status,
        /// The verb.
        action: &'static str,
        /// What it would need to be.
        want: &'static str,
    },
    /// The container is not running.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The OOM killer ended init before the container was created: the memory limit
    /// (the first field) is below what init needs; the second says what the cgroup saw.
    #[error("init was killed by the OOM killer before the container was created: memory limit {0} is too low ({1})")]
    InitOom(i64, String),
    /// Init exited between create and start.
    #[error("container {0}: init exited before it was started")]
    InitDied(String),
    /// Checkpoint or restore with CRIU.
    #[error(transparent)]
    Criu(#[from] crate::criu::CriuError),
    /// Bad usage of the API or CLI.
    #[error("{0}")]
    Usage(String),
    /// Intel RDT (resctrl).
    #[error(transparent)]
    Rdt(#[from] crate::rdt::RdtError),
    /// sd_notify readiness.
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    /// A startContainer hook failed; init exited without running the program.
    #[error("start container {id}: {message}")]
    StartHook {
        /// The container.
        id: String,
        /// The hook's error.
        message: String,
    },
}

/// runc's "invalid configuration" for a cgroup setting the runtime refuses (callers
/// match on the words), "cgroup" for the host failing.
fn cgroup_context(e: &crate::cgroups::CgroupError) -> &'static str {
    use crate::cgroups::CgroupError::{BadPath, Resource};
    if matches!(e, Resource { .. } | BadPath(..)) {
        "invalid configuration"
    } else {
        "cgroup"
    }
}

/// "invalid configuration" for a profile the runtime refuses, "seccomp" otherwise.
fn seccomp_context(e: &crate::seccomp::SeccompError) -> &'static str {
    if matches!(e, crate::seccomp::SeccompError::Invalid { .. }) {
        "invalid configuration"
    } else {
        "seccomp"
    }
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::State(crate::state::StateError::NotFound(_)) => Kind::NotFound,
            Error::State(crate::state::StateError::Exists(_)) => Kind::AlreadyExists,
            Error::State(crate::state::StateError::BadId(..)) => Kind::InvalidArgument,
            Error::Spec(_) | Error::Usage(_) | Error::Bundle(..) => Kind::InvalidArgument,
            Error::Seccomp(crate::seccomp::SeccompError::Invalid { .. }) => Kind::InvalidArgument,
            Error::Seccomp(crate::seccomp::SeccompError::FlagUnsupported { .. })
            | Error::Lsm(crate::lsm::LsmError::Unsupported { .. }) => Kind::FailedPrecondition,
            Error::Rdt(crate::rdt::RdtError::Invalid { .. })
            | Error::Rdt(crate::rdt::RdtError::NotMounted)
            | Error::Rdt(crate::rdt::RdtError::MissingClos(..))
            | Error::Rdt(crate::rdt::RdtError::Mismatch { .. })
            | Error::Notify(crate::notify::NotifyError::BadContainerPath(..))
            | Error::Notify(crate::notify::NotifyError::BadHostAddress(..))
            | Error::Notify(crate::notify::NotifyError::BadAnnotation(..))
            | Error::Notify(crate::notify::NotifyError::BadTimeout(..)) => Kind::InvalidArgument,
            Error::Rdt(crate::rdt::RdtError::Exists(_)) => Kind::AlreadyExists,
            Error::InitOom(..) => Kind::InvalidArgument,
            Error::Notify(crate::notify::NotifyError::ExitedBeforeReady { .. })
            | Error::Notify(crate::notify::NotifyError::Timeout { .. })
            | Error::Notify(crate::notify::NotifyError::NotPrepared(_))
            | Error::StartHook { .. } => Kind::FailedPrecondition,
            Error::Cgroup(e) if e.is_invalid_config() => Kind::InvalidArgument,
            Error::Spawn(crate::process::spawn::SpawnError::Cgroup(e)) if e.is_invalid_config() => {
                Kind::InvalidArgument
            }
            Error::WrongState { .. }
            | Error::NotRunning(_)
            | Error::InitDied(_)
            | Error::CgroupBusy(_)
            | Error::CgroupFrozen(_) => Kind::FailedPrecondition,
            Error::Criu(e) => e.kind(),
            Error::Spawn(crate::process::spawn::SpawnError::Init { kind, .. }) => *kind,
            _ => Kind::Internal,
        }
    }
}
