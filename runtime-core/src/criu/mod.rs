//! Checkpoint and restore with CRIU. runtime-core drives `criu swrk <fd>` over a
//! SOCK_SEQPACKET socketpair with CRIU's RPC protocol (proto/vendor/criu/rpc.proto), as
//! runc does through go-criu: one request per criu process (version, feature check,
//! dump, pre-dump, restore), notifications answered in between, nothing parsed from
//! criu's command-line output.
//!
//! [`rpc`] is the transport and the request loop, [`mounts`] the external mounts
//! (bind mounts, cgroup binds, masked paths, devices) criu must be told about,
//! [`image`] what runrs saves beside CRIU's images (runc's `descriptors.json` and the
//! container's config and state), and [`helper`] the re-exec'd process that prepares
//! the rootfs in a private mount namespace and becomes `criu swrk` for a restore.
//! See criu.org "RPC", "External bind mounts", "Inheriting FDs on restore",
//! "CGroups", and runc's libcontainer/criu_linux.go for the container conventions.

pub mod helper;
pub mod image;
pub mod mounts;
pub mod rpc;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::fault::Kind as ErrorKind;
use crate::namespaces::Kind;

pub use rpc::{Criu, Version};

/// The oldest CRIU runrs works with: cgroup v2 freezing and dumping, nftables network
/// locking, and the RPC fields runrs sets (cr_errmsg, orphan_pts_master) are all there.
pub const MIN_VERSION: Version = Version {
    major: 3,
    minor: 16,
    sublevel: 0,
};

/// The annotation naming a container's own CRIU configuration file (runc's).
pub const CONFIG_ANNOTATION: &str = "org.criu.config";

/// The CRIU configuration file used when a container has no [`CONFIG_ANNOTATION`]
/// (runc's; criu ignores a file that does not exist).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/criu/runc.conf";

/// The `config_file` to give criu for a container with `annotations`, as runc 1.1
/// does on checkpoint and restore: the annotation's path; none when it is set but
/// empty; [`DEFAULT_CONFIG_FILE`] without it. Settings in the file override the ones
/// runrs sends (criu's rule).
pub fn config_file(
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Option<String> {
    match annotations.and_then(|a| a.get(CONFIG_ANNOTATION)) {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p.clone()),
        None => Some(DEFAULT_CONFIG_FILE.to_string()),
    }
}

/// `--manage-cgroups-mode`: how criu treats the container's cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupsMode {
    /// Restore properties only of cgroups criu creates (criu's default).
    Soft,
    /// Restore properties of every cgroup.
    Full,
    /// Like full, and fail if a cgroup exists and differs.
    Strict,
    /// Leave cgroups alone.
    Ignore,
}

impl std::str::FromStr for CgroupsMode {
    type Err = CriuError;

    fn from_str(s: &str) -> Result<Self, CriuError> {
        match s {
            "soft" => Ok(CgroupsMode::Soft),
            "full" => Ok(CgroupsMode::Full),
            "strict" => Ok(CgroupsMode::Strict),
            "ignore" => Ok(CgroupsMode::Ignore),
            _ => Err(CriuError::Invalid(format!(
                "invalid manage-cgroups-mode {s:?} (soft, full, strict or ignore)"
            ))),
        }
    }
}

/// Parse namespace names as runc's `--empty-ns` takes them (`network`, `pid`, …).
pub fn parse_namespaces(names: &[String]) -> Result<Vec<Kind>, CriuError> {
    names
        .iter()
        .map(|n| match n.as_str() {
            "network" | "net" => Ok(Kind::Network),
            "pid" => Ok(Kind::Pid),
            "mount" | "mnt" => Ok(Kind::Mount),
            "ipc" => Ok(Kind::Ipc),
            "uts" => Ok(Kind::Uts),
            "user" => Ok(Kind::User),
            "cgroup" => Ok(Kind::Cgroup),
            "time" => Ok(Kind::Time),
            _ => Err(CriuError::Invalid(format!(
                "empty namespace {n:?} is not a namespace type"
            ))),
        })
        .collect()
}

/// What [`crate::Container::checkpoint`] does: runc's `checkpoint` flags, and what
/// containerd's CheckpointOptions carry (see the field docs for the mapping).
#[derive(Debug)]
pub struct CheckpointOptions {
    /// The criu binary (a name looked up in PATH, or a path).
    pub criu: PathBuf,
    /// Where the images go (created, mode 0700). containerd: `image_path`.
    pub image_path: PathBuf,
    /// Where criu's log and temporary files go (default: the image dir).
    /// containerd: `work_path`.
    pub work_path: Option<PathBuf>,
    /// Images of a previous (pre-)dump, relative to `image_path` (needs memory tracking).
    pub parent_path: Option<PathBuf>,
    /// Keep the container running after the dump. containerd: `!exit`.
    pub leave_running: bool,
    /// Dump established TCP connections. containerd: `open_tcp`.
    pub tcp_established: bool,
    /// Allow unix sockets connected to peers outside the container.
    /// containerd: `external_unix_sockets`.
    pub ext_unix_sk: bool,
    /// Allow a terminal (session) shared with the outside. containerd: `terminal`.
    pub shell_job: bool,
    /// Dump file locks. containerd: `file_locks`.
    pub file_locks: bool,
    /// Only dump memory (the container keeps running); needs soft-dirty tracking.
    pub pre_dump: bool,
    /// Lazy migration: memory is served from `page_server` on demand.
    pub lazy_pages: bool,
    /// `--status-fd`: gets a `\0` when the lazy page server is ready.
    pub status_fd: Option<OwnedFd>,
    /// `--page-server ADDRESS:PORT`: send memory pages there instead of the image dir.
    pub page_server: Option<(String, u16)>,
    /// How criu treats cgroups. containerd: `cgroups_mode`.
    pub manage_cgroups_mode: Option<CgroupsMode>,
    /// Namespaces whose contents are not dumped. containerd: `empty_namespaces`.
    pub empty_ns: Vec<Kind>,
    /// Deduplicate memory against the parent images.
    pub auto_dedup: bool,
}

impl CheckpointOptions {
    /// Defaults (criu from PATH, every option off) with the given image path.
    pub fn new(image_path: impl Into<PathBuf>) -> Self {
        CheckpointOptions {
            criu: PathBuf::from("criu"),
            image_path: image_path.into(),
            work_path: None,
            parent_path: None,
            leave_running: false,
            tcp_established: false,
            ext_unix_sk: false,
            shell_job: false,
            file_locks: false,
            pre_dump: false,
            lazy_pages: false,
            status_fd: None,
            page_server: None,
            manage_cgroups_mode: None,
            empty_ns: Vec::new(),
            auto_dedup: false,
        }
    }
}

/// Parse `--page-server ADDRESS:PORT`.
pub fn parse_page_server(s: &str) -> Result<(String, u16), CriuError> {
    let bad = || CriuError::Invalid(format!("page server {s:?}: want ADDRESS:PORT"));
    let (addr, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if addr.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((addr.trim_matches(['[', ']']).to_string(), port))
}

/// Failures of checkpoint and restore.
#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    /// The criu binary is missing.
    #[error("criu not found: {path:?} {where_} (install CRIU {MIN_VERSION} or newer, or pass --criu PATH)")]
    NotFound {
        /// What was looked for.
        path: PathBuf,
        /// "is not in PATH" / "does not exist".
        where_: &'static str,
    },
    /// criu could not be started.
    #[error("start {0}")]
    Start(PathBuf, #[source] std::io::Error),
    /// The installed criu is too old.
    #[error("criu {found} ({path}) is too old: runrs needs CRIU {MIN_VERSION} or newer")]
    TooOld {
        /// The version found.
        found: Version,
        /// The binary.
        path: PathBuf,
    },
    /// An option this kernel, criu or runrs cannot honour.
    #[error("{0}")]
    Unsupported(String),
    /// Bad options.
    #[error("{0}")]
    Invalid(String),
    /// The image or work directory.
    #[error("{what} {path}")]
    Dir {
        /// "image directory" or "work directory".
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: std::io::Error,
    },
    /// The image directory does not hold a usable checkpoint.
    #[error("{path} is not a checkpoint image: {reason}")]
    NotAnImage {
        /// The image directory.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// Talking to criu failed.
    #[error("criu swrk: {0}")]
    Protocol(String),
    /// criu answered a request with a failure.
    #[error("criu {request} failed: {message}{log}")]
    Failed {
        /// DUMP, RESTORE, …
        request: &'static str,
        /// criu's error message (cr_errmsg), or its errno.
        message: String,
        /// " (log: <path>)" when there is a log file.
        log: String,
    },
    /// A notification handler failed (hooks, console socket).
    #[error("{0}")]
    Notify(String),
    /// Preparing the restore (rootfs mounts in the helper).
    #[error("prepare restore: {0}")]
    Helper(String),
    /// A syscall.
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
}

impl CriuError {
    /// The kind of failure, for protocol status codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CriuError::Invalid(_) | CriuError::NotAnImage { .. } => ErrorKind::InvalidArgument,
            CriuError::NotFound { .. } | CriuError::TooOld { .. } | CriuError::Unsupported(_) => {
                ErrorKind::FailedPrecondition
            }
            _ => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        assert_eq!("full".parse::<CgroupsMode>().ok(), Some(CgroupsMode::Full));
        assert!("props".parse::<CgroupsMode>().is_err());
        let ns = parse_namespaces(&["network".into(), "pid".into()]).expect("ns");
        assert_eq!(ns, vec![Kind::Network, Kind::Pid]);
        assert!(parse_namespaces(&["bogus".into()]).is_err());
        assert_eq!(
            parse_page_server("127.0.0.1:27").expect("ps"),
            ("127.0.0.1".to_string(), 27)
        );
        assert_eq!(parse_page_server("[::1]:9").expect("ps").0, "::1");
        assert!(parse_page_server("host").is_err());
        assert!(parse_page_server("host:0").is_err());
    }

    #[test]
    fn config_file_follows_runc() {
        let with = |v: &str| {
            std::collections::HashMap::from([(CONFIG_ANNOTATION.to_string(), v.to_string())])
        };
        assert_eq!(
            config_file(Some(&with("/x/criu.conf"))).as_deref(),
            Some("/x/criu.conf")
        );
        assert_eq!(config_file(Some(&with(""))), None);
        assert_eq!(config_file(None).as_deref(), Some(DEFAULT_CONFIG_FILE));
    }
}
