//! Control groups (cgroupfs driver): find the hierarchies of this host (v1, v2 or
//! hybrid), resolve the container's `linux.cgroupsPath` in each, create the
//! directories, place processes in them and remove them again.
//!
//! Hybrid hosts (v1 controllers plus a cgroup2 mount, usually at `unified`) get the
//! container placed in the unified hierarchy too, as runc does. The cgroup root and the
//! mount table are parameters, so this logic is tested against a temp dir.
//! See cgroups(7), Documentation/admin-guide/cgroup-v1 and cgroup-v2.rst.
//!
//! The rest of the container's cgroup life lives in submodules: [`limits`] writes
//! `linux.resources`, [`devices`] builds the device policy (v1 lists, v2 BPF filter),
//! [`stats`] reads usage, [`oom`] watches for OOM kills.

pub mod devices;
mod hierarchy;
pub mod limits;
pub mod oom;
pub mod stats;
pub mod systemd;

pub use hierarchy::{Hierarchies, Mode};

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys::c;
use serde::{Deserialize, Serialize};

/// Where the cgroup filesystems are normally mounted.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Key of the unified (cgroup2) hierarchy in [`CgroupPaths::dirs`].
pub const UNIFIED: &str = "";

impl CgroupError {
    /// Whether the kernel refused for want of permission (EPERM, EACCES, EROFS).
    pub fn is_permission(&self) -> bool {
        let io = match self {
            CgroupError::Create(_, e) | CgroupError::Write { source: e, .. } => e,
            _ => return false,
        };
        matches!(
            io.raw_os_error(),
            Some(crate::sys::c::EPERM | crate::sys::c::EACCES | crate::sys::c::EROFS)
        )
    }
}

/// Errors of cgroup placement.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup filesystem found.
    #[error("no cgroup filesystem mounted under {0}")]
    NoCgroupFs(PathBuf),
    /// A cgroupsPath that cannot be used.
    #[error("linux.cgroupsPath {0:?}: {1}")]
    BadPath(String, &'static str),
    /// Creating a cgroup directory failed.
    #[error("create cgroup {0}")]
    Create(PathBuf, #[source] std::io::Error),
    /// Writing a cgroup file failed.
    #[error("write {value:?} to {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Reading a cgroup file failed.
    #[error("read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// Removing a cgroup failed.
    #[error("remove cgroup {0}")]
    Remove(PathBuf, #[source] std::io::Error),
    /// A `linux.resources` setting that is invalid or that this host cannot apply.
    #[error("linux.resources.{field}: {reason}")]
    Resource {
        /// The field, below linux.resources (`memory.limit`, `unified.cpu.max`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing a resource's cgroup file failed.
    #[error("linux.resources.{field}: write {value:?} to {}{hint}", path.display())]
    Limit {
        /// The field, below linux.resources.
        field: String,
        /// The cgroup file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// An explanation of the errno, or empty.
        hint: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Installing the cgroup v2 device filter (BPF) failed.
    #[error("linux.resources.devices: install the cgroup v2 device filter")]
    DeviceFilter(#[source] crate::sys::SysError),
    /// No freezer for this container's cgroups.
    #[error("cannot freeze cgroup {0}: no freezer controller (v1) and no cgroup2 hierarchy")]
    NoFreezer(String),
    /// systemd refused or failed a unit operation (systemd cgroup driver).
    #[error("systemd unit {unit}: {what}: {reason}")]
    Systemd {
        /// The unit.
        unit: String,
        /// start, update or stop.
        what: &'static str,
        /// systemd's answer.
        reason: String,
    },
    /// The systemd driver run by an unprivileged user cannot reach or use the user's
    /// systemd (runc's rootless systemd cgroup manager).
    #[error("--systemd-cgroup as an unprivileged user: {0}")]
    SystemdUser(String),
    /// An OOM watcher could not be set up or read.
    #[error("watch {what} for OOM events")]
    Oom {
        /// The file or descriptor.
        what: String,
        /// The error.
        #[source]
        source: crate::sys::SysError,
    },
}

impl CgroupError {
    /// Whether the error is the caller's configuration (not the host failing).
    pub fn is_invalid_config(&self) -> bool {
        match self {
            CgroupError::Resource { .. } | CgroupError::BadPath(..) => true,
            CgroupError::Limit { source, .. } => {
                matches!(source.raw_os_error(), Some(c::EINVAL) | Some(c::ERANGE))
            }
            _ => false,
        }
    }
}

/// The cgroups of one container: one directory per hierarchy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// The host's cgroup mode.
    pub mode: Mode,
    /// The container's path inside each hierarchy (absolute, e.g. `/e2e/t1`).
    pub path: String,
    /// Controller name (`memory`, `name=systemd`, or [`UNIFIED`]) to directory.
    pub dirs: BTreeMap<String, PathBuf>,
    /// The systemd unit that owns these cgroups (systemd driver), or None (cgroupfs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
    /// Made by a rootless runtime ([`CgroupPaths::create_rootless`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rootless: bool,
    /// Controllers left out because a rootless runtime may not create their cgroup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<String>,
    /// The cgroup already held processes when the container was created (runc 1.1
    /// warns and goes on): those are not the container's, so cleanup leaves them
    /// (and the directories they keep busy) alone when the container has its own pid
    /// namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

impl CgroupPaths {
    /// Distinct directories (co-mounted controllers share one).
    pub fn unique_dirs(&self) -> Vec<&PathBuf> {
        let mut v: Vec<&PathBuf> = self.dirs.values().collect();
        v.sort();
        v.dedup();
        v
    }

    /// The directory of a controller (v1) or the unified one (v2: any name).
    pub fn dir(&self, controller: &str) -> Option<&PathBuf> {
        match self.mode {
            Mode::Unified => self.dirs.get(UNIFIED),
            _ => self.dirs.get(controller),
        }
    }

    /// A directory whose cgroup.procs lists every process of the container.
    pub fn procs_dir(&self) -> Option<&PathBuf> {
        self.dir("pids")
            .or_else(|| self.dir("freezer"))
            .or_else(|| self.dirs.get(UNIFIED))
            .or_else(|| self.dirs.values().next())
    }

    /// Create every directory. On v1, a new cpuset cgroup inherits the parent's cpus
    /// and mems (the kernel leaves them empty, which would refuse tasks). On v2, the
    /// available controllers are enabled in every ancestor's subtree_control.
    pub fn create(&self, hier: &Hierarchies) -> Result<(), CgroupError> {
        for (name, dir) in &self.dirs {
            let mount = hier.mountpoint_of(name).unwrap_or(Path::new("/"));
            if name == "cpuset" {
                create_cpuset(mount, dir)?;
            } else {
                std::fs::create_dir_all(dir).map_err(|e| CgroupError::Create(dir.clone(), e))?;
            }
            // Under systemd the unit's ancestors are systemd's to configure.
            if self.mode == Mode::Unified && self.systemd.is_none() {
                enable_controllers(mount, dir);
            }
        }
        Ok(())
    }

    /// [`create`](Self::create) for a rootless runtime and a container without a
    /// cgroupsPath, as runc's rootless cgroup manager does it: a hierarchy whose
    /// directory the caller may not make (EPERM, EACCES, EROFS: a hierarchy owned by
    /// the real root) is left out and named in `denied`; the container runs without it,
    /// and a limit for it fails naming it. Other errors fail as in `create`.
    pub fn create_rootless(&mut self, hier: &Hierarchies) -> Result<(), CgroupError> {
        self.rootless = true;
        let names: Vec<String> = self.dirs.keys().cloned().collect();
        for name in names {
            let Some(dir) = self.dirs.get(&name).cloned() else {
                continue;
            };
            let one = CgroupPaths {
                dirs: BTreeMap::from([(name.clone(), dir)]),
                denied: Vec::new(),
                ..self.clone()
            };
            match one.create(hier) {
                Ok(()) => {}
                Err(e) if e.is_permission() => {
                    tracing::debug!("rootless: no {name} cgroup: {e}");
                    self.dirs.remove(&name);
                    self.denied.push(name);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Move `pid` (a whole process) into every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Pids of every process in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(dir) = self.procs_dir() else {
            return Ok(Vec::new());
        };
        let p = dir.join("cgroup.procs");
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(CgroupError::Read(p, e)),
        }
    }

    /// Whether any directory still exists.
    pub fn exists(&self) -> bool {
        self.dirs.values().any(|d| d.exists())
    }

    /// Remove every directory (children first). Retries while the kernel still holds
    /// exiting tasks (EBUSY), as runc does.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        if let Some(unit) = &self.systemd {
            // Stopping the unit removes the directories systemd made; the ones of
            // controllers systemd does not manage (v1 cpuset, freezer, ...) go below.
            if let Err(e) = systemd::stop(unit) {
                first_err = Some(e);
            }
        }
        // A rootless container has no device filter (see limits::apply_spec).
        if self.mode == Mode::Unified && !self.rootless {
            if let Some(d) = self.dirs.get(UNIFIED) {
                // rmdir would release the device filter too; detach it explicitly.
                if let Err(e) = devices::bpf::remove(d) {
                    tracing::warn!("detach the device filter of {}: {e}", d.display());
                }
            }
        }
        for dir in self.unique_dirs() {
            if let Err(e) = remove_dir(dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Freeze (or thaw) every process of the container: the v1 freezer controller, or
/// cgroup.freeze of the cgroup2 hierarchy (v2, or a hybrid host without a v1 freezer).
/// Waits until the kernel reports the new state.
pub fn freeze(cg: &CgroupPaths, frozen: bool) -> Result<(), CgroupError> {
    if let Some(d) = cg.dirs.get("freezer") {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        let file = d.join("freezer.state");
        for _ in 0..1000 {
            write(&file, want)?;
            let now =
                std::fs::read_to_string(&file).map_err(|e| CgroupError::Read(file.clone(), e))?;
            if now.trim() == want {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        return Err(CgroupError::Write {
            path: file,
            value: want.into(),
            source: std::io::Error::from_raw_os_error(c::EBUSY),
        });
    }
    let Some(d) = cg.dirs.get(UNIFIED) else {
        return Err(CgroupError::NoFreezer(cg.path.clone()));
    };
    write(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
    let events = d.join("cgroup.events");
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    for _ in 0..1000 {
        let s =
            std::fs::read_to_string(&events).map_err(|e| CgroupError::Read(events.clone(), e))?;
        if s.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(CgroupError::Write {
        path: d.join("cgroup.freeze"),
        value: want.into(),
        source: std::io::Error::from_raw_os_error(c::EBUSY),
    })
}

/// Whether the container's cgroup is frozen (by [`freeze`]).
pub fn is_frozen(cg: &CgroupPaths) -> bool {
    if let Some(d) = cg.dirs.get("freezer") {
        return std::fs::read_to_string(d.join("freezer.state"))
            .map(|s| s.trim() == "FROZEN")
            .unwrap_or(false);
    }
    cg.dirs.get(UNIFIED).is_some_and(|d| {
        std::fs::read_to_string(d.join("cgroup.freeze"))
            .map(|s| s.trim() == "1")
            .unwrap_or(false)
    })
}

/// Why the systemd cgroup driver cannot be used, for `--systemd-cgroup` and the
/// shim's SystemdCgroup option. `run` is the /run directory (systemd marks a
/// systemd-booted host with /run/systemd/system, see sd_booted(3)).
pub fn systemd_driver_unavailable(run: &Path) -> Option<String> {
    systemd::unavailable(run)
}

/// Write a value to a cgroup file.
#[allow(
    clippy::disallowed_methods,
    reason = "cgroupfs, not a container rootfs"
)]
pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Write a resource value, naming the OCI field and explaining common errnos.
pub fn write_field(field: &str, path: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    tracing::debug!("cgroup: write {value:?} to {}", path.display());
    // Never create: a missing control file is an error, on cgroupfs and in test trees.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Limit {
            field: field.to_string(),
            path: path.to_path_buf(),
            value: value.to_string(),
            hint: match source.raw_os_error() {
                Some(c::ENOENT) => {
                    " (no such file: this kernel or this cgroup does not offer the setting)"
                }
                Some(c::EINVAL) | Some(c::ERANGE) => " (the kernel rejected the value)",
                Some(c::EACCES) | Some(c::EPERM) => " (permission denied by the kernel)",
                _ => "",
            },
            source,
        })
}

fn create_cpuset(mount: &Path, dir: &Path) -> Result<(), CgroupError> {
    let rel = dir.strip_prefix(mount).unwrap_or(dir);
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CgroupError::Create(cur, e)),
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = cur.join(f);
            let cur_val = std::fs::read_to_string(&mine).unwrap_or_default();
            if cur_val.trim().is_empty() {
                let from = parent.join(f);
                let v = std::fs::read_to_string(&from).map_err(|e| CgroupError::Read(from, e))?;
                if !v.trim().is_empty() {
                    write(&mine, v.trim())?;
                }
            }
        }
    }
    Ok(())
}

/// Enable in every ancestor of `dir` (below `mount`) the controllers its parent offers.
#[allow(
    clippy::disallowed_methods,
    reason = "cgroupfs, not a container rootfs"
)]
fn enable_controllers(mount: &Path, dir: &Path) {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return;
    };
    let mut cur = mount.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for comp in comps.iter().take(comps.len().saturating_sub(1)) {
        let avail = std::fs::read_to_string(cur.join("cgroup.controllers")).unwrap_or_default();
        let want: Vec<String> = avail.split_whitespace().map(|c| format!("+{c}")).collect();
        if !want.is_empty() {
            // Best effort: a controller may be unavailable (e.g. cpuset partitions,
            // processes in an inner node); resource issues surface when limits are set.
            let _ = std::fs::write(cur.join("cgroup.subtree_control"), want.join(" "));
        }
        cur.push(comp);
    }
    let avail = std::fs::read_to_string(cur.join("cgroup.controllers")).unwrap_or_default();
    let want: Vec<String> = avail.split_whitespace().map(|c| format!("+{c}")).collect();
    if !want.is_empty() && cur != dir {
        let _ = std::fs::write(cur.join("cgroup.subtree_control"), want.join(" "));
    }
}

fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    // Children first (a container may have made sub-cgroups with cgroupns).
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_dir(&e.path())?;
            }
        }
    }
    let mut delay = Duration::from_millis(1);
    for attempt in 0..8 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(c::EBUSY) && attempt < 7 => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(CgroupError::Remove(dir.to_path_buf(), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_usage;
