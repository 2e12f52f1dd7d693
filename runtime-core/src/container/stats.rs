//! Read-only views of a container's cgroups for `events`, `ps` and the shim's
//! Stats/Pids: usage statistics, the pids in the cgroup, and OOM watching.

use super::Container;
use crate::cgroups::oom::{self, OomWatcher};
use crate::cgroups::stats::{self, Stats};
use crate::error::Error;
use crate::state::Status;

impl Container {
    /// Usage statistics of the container's cgroups.
    pub fn stats(&self) -> Result<Stats, Error> {
        if self.status() == Status::Stopped && !self.state.cgroup.exists() {
            return Err(Error::NotRunning(self.id().to_string()));
        }
        Ok(stats::read(&self.state.cgroup)?)
    }

    /// Host pids of every process in the container's cgroup.
    pub fn processes(&self) -> Result<Vec<i32>, Error> {
        let mut pids = self.state.cgroup.pids()?;
        pids.sort_unstable();
        Ok(pids)
    }

    /// A watcher for OOM events of the container's memory cgroup (see
    /// [`crate::cgroups::oom`] for how a shim orders TaskOOM before TaskExit).
    pub fn oom_watcher(&self) -> Result<OomWatcher, Error> {
        Ok(OomWatcher::new(&self.state.cgroup)?)
    }

    /// OOM kills so far in the container's memory cgroup.
    pub fn oom_kill_count(&self) -> u64 {
        oom::oom_kill_count(&self.state.cgroup)
    }
}

impl Container {
    /// The container's RDT statistics; None without `linux.intelRdt`.
    pub fn rdt_stats(&self) -> Result<Option<crate::rdt::Stats>, Error> {
        match &self.state.rdt {
            Some(r) => Ok(Some(crate::rdt::stats(r)?)),
            None => Ok(None),
        }
    }
}
