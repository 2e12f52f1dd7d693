//! How init enters the container's cgroups without paying for a cgroup migration by
//! another process.
//!
//! Writing a pid to `cgroup.procs` takes the kernel's global threadgroup rwsem for
//! writing, and that waits for an RCU grace period whenever no writer took it
//! recently: 6-15 ms on the development machine, the largest single cost of creating
//! a container when the runtime moved init from outside. Two ways skip it
//! (kernel/cgroup/cgroup.c: `cgroup_procs_write_start`, `cgroup_css_set_fork`):
//! - each v1 hierarchy: init, still single-threaded, moves itself by writing `0` to
//!   `tasks` (a thread moving itself does not take the rwsem);
//! - the cgroup2 hierarchy: the container's process is forked straight into it with
//!   `clone3(CLONE_INTO_CGROUP)` (the rwsem is only taken for reading). As with crun,
//!   init's first stage itself stays outside the cgroup2 directory.
//!
//! When init goes on into a user namespace, or the kernel has no `CLONE_INTO_CGROUP`
//! (before 5.7), init writes `0` to cgroup2's `cgroup.procs` itself before forking:
//! the old cost, still correct. See cgroups(7), clone(2).

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::cgroups::{CgroupPaths, UNIFIED};
use crate::sys::{self, c, SysError};

/// Where init's next fork must land.
#[derive(Debug)]
pub struct Placement {
    /// The cgroup2 directory (opened), when the child is to be forked into it.
    unified: Option<(OwnedFd, PathBuf)>,
}

/// Move the calling process (init's first stage: single-threaded, host namespaces)
/// into every v1 hierarchy of `cg`. The cgroup2 directory is either joined now
/// (`unified_now`: a user namespace follows, in which clone3 may not be allowed to
/// place the child) or opened for [`fork`].
pub fn enter(cg: &CgroupPaths, unified_now: bool) -> Result<Placement, SysError> {
    let mut v1: Vec<&PathBuf> = cg
        .dirs
        .iter()
        .filter(|(k, _)| k.as_str() != UNIFIED)
        .map(|(_, d)| d)
        .collect();
    v1.sort();
    v1.dedup();
    for dir in v1 {
        write_zero(&dir.join("tasks"))?;
    }
    let unified = match cg.dirs.get(UNIFIED) {
        None => None,
        Some(dir) if unified_now => {
            write_zero(&dir.join("cgroup.procs"))?;
            None
        }
        Some(dir) => Some((sys::open(dir, c::O_PATH | c::O_DIRECTORY, 0)?, dir.clone())),
    };
    Ok(Placement { unified })
}

fn write_zero(path: &std::path::Path) -> Result<(), SysError> {
    let fd = sys::open(path, c::O_WRONLY, 0)?;
    sys::write_all(
        std::os::fd::AsFd::as_fd(&fd),
        b"0",
        &path.display().to_string(),
    )
}

/// fork(2), with the child placed in the cgroup2 directory of `p` if there is one.
/// Returns 0 in the child and the child's pid in the parent, like fork. The process
/// must be single-threaded (the child runs arbitrary code after the fork): the
/// [`sys::fork`] wrappers refuse otherwise.
pub fn fork(p: &Placement) -> Result<i32, SysError> {
    if let Some((fd, dir)) = &p.unified {
        match sys::clone3_into_cgroup(fd.as_fd(), dir) {
            Ok(pid) => return Ok(pid),
            // No clone3 (< 5.3) or no CLONE_INTO_CGROUP (< 5.7): join, then fork.
            Err(e) if matches!(e.errno(), Some(c::ENOSYS | c::E2BIG | c::EINVAL)) => {
                write_zero(&dir.join("cgroup.procs"))?;
            }
            Err(e) => return Err(e),
        }
    }
    sys::fork()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_has_the_kernel_layout() {
        // CLONE_ARGS_SIZE_VER2: through the `cgroup` field.
        assert_eq!(std::mem::size_of::<sys::process::CloneArgs>(), 88);
    }

    #[test]
    fn no_cgroups_means_plain_fork_placement() {
        let p = enter(&CgroupPaths::default(), false).expect("nothing to join");
        assert!(p.unified.is_none());
    }

    #[test]
    fn missing_v1_directory_is_reported_with_its_path() {
        let mut cg = CgroupPaths::default();
        cg.dirs.insert(
            "pids".into(),
            PathBuf::from("/nonexistent/runrs-bench-cgroup"),
        );
        let e = enter(&cg, false).expect_err("no such cgroup");
        assert!(
            e.to_string()
                .contains("/nonexistent/runrs-bench-cgroup/tasks"),
            "{e}"
        );
    }
}
