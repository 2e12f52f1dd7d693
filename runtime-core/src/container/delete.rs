//! `delete`: remove a container's resources. A created container's init is killed; a
//! running or paused one only with `force`. Processes left in the cgroup are killed
//! (thawing a frozen cgroup so the signal lands), the cgroup, the RDT groups the
//! container created and the state dir removed, then the poststop hooks run (their
//! failures are logged, not fatal).
//!
//! Delete cannot finish without removing the state dir, so on a read-only state root it
//! fails before it kills or removes anything: an operation either takes effect and
//! succeeds, or fails and changes nothing (runc 1.1 removes the cgroup, then fails to
//! remove the state dir and still exits 0).

use std::time::Duration;

use super::{drain_cgroup, wait_gone, Container};
use crate::error::Error;
use crate::state::Status;
use crate::sys;
use crate::sys::c;

impl Container {
    /// Delete the container.
    pub fn delete(self, force: bool) -> Result<(), Error> {
        self.check_state_removable()?;
        let status = self.status();
        match status {
            Status::Stopped => {}
            Status::Created | Status::Creating => self.kill_and_wait(),
            Status::Running | Status::Paused => {
                if !force {
                    return Err(Error::WrongState {
                        id: self.id().to_string(),
                        status,
                        action: "delete",
                        want: "stopped (or use --force)",
                    });
                }
                self.kill_and_wait();
            }
        }
        self.destroy()
    }

    /// Fails with EROFS if the state dir is on a read-only mount (statvfs(3) ST_RDONLY).
    fn check_state_removable(&self) -> Result<(), Error> {
        let dir = self.dir();
        match sys::statvfs_flags(&dir.to_string_lossy()) {
            Ok(flags) if flags & c::ST_RDONLY != 0 => Err(Error::StateDir(
                dir,
                std::io::Error::from_raw_os_error(c::EROFS),
            )),
            // Unknown: let the removal itself report what is wrong.
            _ => Ok(()),
        }
    }

    fn kill_and_wait(&self) {
        let _ = self.signal_all(c::SIGKILL);
        let _ = super::kill::signal_pid(self.pid(), c::SIGKILL);
        wait_gone(self.pid(), Duration::from_secs(10));
    }

    /// Remove cgroup and state; run poststop hooks.
    fn destroy(self) -> Result<(), Error> {
        let cg = &self.state.cgroup;
        if cg.exists() {
            if self.frozen() {
                let _ = crate::cgroups::freeze(cg, false);
            }
            // Without its own pid namespace, the container's other processes survive
            // init: kill them too (runc does the same). In a cgroup that held processes
            // before the container (see `CgroupPaths::shared`) those are not ours: with
            // a pid namespace, leave them and the directories they keep (runc too).
            let own_pidns = crate::namespaces::creates(
                &crate::namespaces::from_spec(&self.state.config),
                crate::namespaces::Kind::Pid,
            );
            if !(cg.shared && own_pidns) {
                drain_cgroup(cg, Duration::from_secs(10));
            }
            match cg.remove() {
                Err(e) if cg.shared => tracing::warn!("leave the shared cgroup {}: {e}", cg.path),
                r => r?,
            }
        }
        if let Some(r) = &self.state.rdt {
            crate::rdt::remove(r)?;
        }
        if let Some(keep) = self.state.host_mounts {
            crate::rootfs::hostns::detach_above(&self.state.rootfs, keep);
        }
        let st = self.state.oci(Status::Stopped);
        let dir = self.dir();
        std::fs::remove_dir_all(&dir).map_err(|e| Error::StateDir(dir.clone(), e))?;
        // Failures are logged; the remaining hooks still run (runtime.md step 13).
        crate::hooks::run_all(
            "poststop",
            crate::hooks::of_kind(&self.state.config, "poststop"),
            &st,
        );
        Ok(())
    }
}
