//! Init's failures, one variant per step, and whose fault each is.

use super::*;

/// Failures inside init, one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Talking to the parent.
    #[error("sync with runtime")]
    Sync(#[from] sync::SyncError),
    /// The parent sent something unexpected.
    #[error("protocol error: expected {0}")]
    Protocol(&'static str),
    /// A namespace step.
    #[error("namespaces")]
    Namespace(#[source] SysError),
    /// A process attribute step.
    #[error("{0}")]
    Sys(&'static str, #[source] SysError),
    /// The rootfs.
    #[error("rootfs")]
    Rootfs(#[from] rootfs::RootfsError),
    /// The console.
    #[error("console")]
    Console(#[from] console::ConsoleError),
    /// A sysctl.
    #[error(transparent)]
    Sysctl(#[from] sysctl::SysctlError),
    /// A hook run by init.
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    /// Joining the Intel RDT groups.
    #[error(transparent)]
    Rdt(#[from] crate::rdt::RdtError),
    /// rlimits.
    #[error(transparent)]
    Rlimit(#[from] rlimits::RlimitError),
    /// Capabilities.
    #[error("capabilities")]
    Caps(#[from] capabilities::CapsError),
    /// The program cannot be run.
    #[error(transparent)]
    Exec(#[from] execve::ExecError),
    /// process.cwd resolves outside the container.
    #[error("process.cwd {0:?} resolves outside the container's root (through a magic link such as /proc/self/fd/N); refusing it")]
    CwdEscape(PathBuf),
    /// Seccomp.
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    /// AppArmor/SELinux labels.
    #[error(transparent)]
    Lsm(#[from] lsm::LsmError),
    /// oom_score_adj.
    #[error("set oom_score_adj to {value}{hint}")]
    OomScore {
        /// The requested value.
        value: i32,
        /// Explanation for EACCES.
        hint: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    /// Whose fault it is: what only init can check of the configuration (a mount
    /// source that is missing, a destination or cwd that is not a directory, a program
    /// that is missing or not executable, a refused path, an invalid seccomp profile)
    /// is the caller's (InvalidArgument); a missing kernel feature is a precondition;
    /// the rest is ours (Internal).
    pub fn kind(&self) -> ErrorKind {
        let bad_path = |e: &SysError| {
            matches!(
                e.errno(),
                Some(c::ENOENT | c::ENOTDIR | c::EISDIR | c::ELOOP)
            )
        };
        match self {
            InitError::Exec(_) | InitError::CwdEscape(_) => ErrorKind::InvalidArgument,
            InitError::Rootfs(rootfs::RootfsError::Forbidden { .. }) => ErrorKind::InvalidArgument,
            InitError::Rootfs(rootfs::RootfsError::Mount { source, .. }) if bad_path(source) => {
                ErrorKind::InvalidArgument
            }
            InitError::Sys("create process.cwd" | "enter process.cwd", e)
                if bad_path(e) || e.errno() == Some(c::EEXIST) =>
            {
                ErrorKind::InvalidArgument
            }
            InitError::Seccomp(seccomp::SeccompError::Invalid { .. }) => ErrorKind::InvalidArgument,
            InitError::Seccomp(seccomp::SeccompError::FlagUnsupported { .. })
            | InitError::Lsm(lsm::LsmError::Unsupported { .. }) => ErrorKind::FailedPrecondition,
            _ => ErrorKind::Internal,
        }
    }
}
