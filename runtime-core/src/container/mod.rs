//! Containers and their lifecycle verbs, one file per verb: [`create`], [`start`],
//! [`kill`], [`delete`], `pause`/`resume`, `update`, `checkpoint` and [`restore`]
//! (CRIU); `stats` holds the read-only cgroup views (stats, processes, OOM). A
//! [`Container`] is its persisted state plus the live status
//! derived from the kernel. See the OCI runtime spec, runtime.md "Lifecycle".

mod checkpoint;
mod create;
mod delete;
mod exec;
mod kill;
mod pause;
mod restore;
mod start;
mod stats;
mod update;

pub use create::{create, create_with, ConsoleSocket, CreateExtras, CreateOptions};
pub use exec::{ExecExtras, ExecOptions};
pub use kill::{parse_signal, process_handle, signal_pidfd};
pub use restore::{restore, RestoreOptions};
pub use start::{StartOptions, Started};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::namespaces::Kind;
use crate::state::{self, ContainerState, OciState, Status};
use crate::sys;

/// A container known to the runtime.
#[derive(Debug, Clone)]
pub struct Container {
    /// The runtime's state root.
    pub root: PathBuf,
    /// The persisted state.
    pub state: ContainerState,
}

impl Container {
    /// Load a container from the state root.
    pub fn load(root: &Path, id: &str) -> Result<Self, Error> {
        Ok(Container {
            root: root.to_path_buf(),
            state: state::load(root, id)?,
        })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Host pid of the container's init.
    pub fn pid(&self) -> i32 {
        self.state.init_pid
    }

    /// The container's state directory.
    pub fn dir(&self) -> PathBuf {
        state::dir(&self.root, &self.state.id)
    }

    /// The exec fifo path (exists until start).
    pub fn fifo(&self) -> PathBuf {
        self.dir().join(state::EXEC_FIFO)
    }

    /// Persist the state.
    pub fn save(&self) -> Result<(), Error> {
        Ok(state::save(&self.root, &self.state)?)
    }

    /// The live status.
    pub fn status(&self) -> Status {
        let s = &self.state;
        if !state::alive(s.init_pid, s.init_start_time) {
            return Status::Stopped;
        }
        if s.recorded_status == Status::Creating {
            return Status::Creating;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        if self.frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    /// Whether the container's cgroup is frozen.
    pub fn frozen(&self) -> bool {
        crate::cgroups::is_frozen(&self.state.cgroup)
    }

    /// The OCI state document with the live status.
    pub fn oci_state(&self) -> OciState {
        self.state.oci(self.status())
    }

    /// Whether the container has its own pid namespace (then killing init kills all).
    pub fn own_pid_ns(&self) -> bool {
        crate::namespaces::from_spec(&self.state.config)
            .iter()
            .any(|n| n.kind == Kind::Pid && n.path.is_none())
    }
}

/// Every container under `root`, sorted by id. Unreadable entries are skipped.
pub fn list(root: &Path) -> Result<Vec<Container>, Error> {
    Ok(state::list(root)?
        .into_iter()
        .filter_map(|id| Container::load(root, &id).ok())
        .collect())
}

/// Wait until `pid` has exited (or `timeout` passed). Works for non-children through a
/// pidfd. Returns whether it is gone.
pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    sys::wait_gone(pid, timeout)
}

/// Wait until the cgroup has no processes left, signalling stragglers with SIGKILL.
pub(crate) fn drain_cgroup(cg: &crate::cgroups::CgroupPaths, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = cg.pids().unwrap_or_default();
        if pids.is_empty() || Instant::now() >= deadline {
            return;
        }
        for p in &pids {
            // Processes of the container (ESRCH when one exited meanwhile).
            let _ = sys::kill(*p, sys::c::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
