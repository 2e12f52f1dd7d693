//! `linux.resources`: write every limit of the spec into the container's cgroup files.
//!
//! One writer per cgroup version ([`v1`] for v1 and hybrid hosts, [`v2`] for unified
//! ones); both follow runc's file formats, write order and "0 means not set"
//! conventions. A setting this host cannot apply is an error naming the field and the
//! reason, with three runc-compatible exceptions that are only logged: the deprecated
//! kernel memory limits, and on cgroup v2 the v1-only knobs swappiness,
//! disableOOMKiller and the network classID/priorities. On a hybrid host, hugepage
//! limits and `unified` keys go to the cgroup2 hierarchy when their controller lives
//! there (runc ignores both).
//!
//! The cgroup tree comes in as [`Hierarchies`] + [`CgroupPaths`], so all of this runs
//! against a temp dir in the unit tests. See cgroups(7), cgroup-v1/*.rst, cgroup-v2.rst.

pub mod conv;
pub mod merge;
mod v1;
mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::devices::Policy;
use super::{CgroupError, CgroupPaths, Hierarchies, Mode, UNIFIED};

/// Apply `res` to the container's cgroups. `devices` is the device policy to install
/// (`None` leaves the current one alone, e.g. on an update that does not mention it).
/// `live` marks an update of a running container (enables memory.checkBeforeUpdate).
pub fn apply(
    hier: &Hierarchies,
    cg: &CgroupPaths,
    res: &LinuxResources,
    devices: Option<&Policy>,
    live: bool,
) -> Result<(), CgroupError> {
    validate(res)?;
    let ctx = Ctx { hier, cg, live };
    match cg.mode {
        Mode::Unified => v2::apply(&ctx, res, devices),
        Mode::Legacy | Mode::Hybrid => v1::apply(&ctx, res, devices),
    }
}

/// Apply a spec's `linux.resources` and its device policy (the spec's rules plus
/// the default allow list) to a container's new cgroups, before init runs.
pub fn apply_spec(
    hier: &Hierarchies,
    cg: &CgroupPaths,
    spec: &oci_spec::runtime::Spec,
) -> Result<(), CgroupError> {
    let res = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let policy = Policy::from_rules(&super::devices::rules_for(spec)?);
    if cg.rootless {
        // Rootless (runc: device cgroup errors are ignored, "not expected to work"):
        // the device nodes are bind mounts of the host's, which the caller may use anyway.
        return apply(hier, cg, &res, None, false);
    }
    apply(hier, cg, &res, Some(&policy), false)
}

/// Checks that need no cgroup files.
pub fn validate(res: &LinuxResources) -> Result<(), CgroupError> {
    let bad = |field: &str, reason: String| {
        Err(CgroupError::Resource {
            field: field.into(),
            reason,
        })
    };
    if let Some(m) = res.memory() {
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return bad("memory.swappiness", format!("{s} is out of range 0-100"));
            }
        }
        let (l, s) = (m.limit().unwrap_or(0), m.swap().unwrap_or(0));
        if l < -1 || s < -1 {
            return bad("memory", format!("negative limit (limit {l}, swap {s})"));
        }
        if l > 0 && s > 0 && s < l {
            return bad(
                "memory.swap",
                format!("{s} is memory+swap and must not be less than memory.limit ({l})"),
            );
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(i) = c.idle() {
            if i != 0 && i != 1 {
                return bad("cpu.idle", format!("{i} is not 0 or 1"));
            }
        }
    }
    if let Some(b) = res.block_io() {
        for (f, w) in [
            ("blockIO.weight", b.weight()),
            ("blockIO.leafWeight", b.leaf_weight()),
        ] {
            if let Some(w) = w.filter(|w| *w != 0) {
                if !(10..=1000).contains(&w) {
                    return bad(f, format!("{w} is out of range 10-1000"));
                }
            }
        }
    }
    for (k, _) in res.unified().iter().flatten() {
        if k.is_empty() || k.contains('/') || k.starts_with('.') || !k.contains('.') {
            return bad("unified", format!("invalid key {k:?} (a cgroup file name)"));
        }
    }
    for l in res.hugepage_limits().iter().flatten() {
        let ps = l.page_size();
        let ok = ps.len() > 2
            && (ps.ends_with("KB") || ps.ends_with("MB") || ps.ends_with("GB"))
            && ps[..ps.len() - 2].bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return bad(
                "hugepageLimits",
                format!("invalid pageSize {ps:?} (like 2MB or 1GB)"),
            );
        }
    }
    Ok(())
}

/// The container's cgroups with what the writers need to know.
pub(crate) struct Ctx<'a> {
    pub hier: &'a Hierarchies,
    pub cg: &'a CgroupPaths,
    pub live: bool,
}

impl Ctx<'_> {
    /// The directory of a v1 controller, or an error naming the field.
    fn v1_dir(&self, controller: &str, field: &str) -> Result<&Path, CgroupError> {
        if self.cg.mode != Mode::Unified {
            if let Some(d) = self.cg.dirs.get(controller) {
                return Ok(d);
            }
        }
        Err(CgroupError::Resource {
            field: field.into(),
            reason: self.missing(controller),
        })
    }

    /// Why the container has no `controller` cgroup.
    fn missing(&self, controller: &str) -> String {
        if self.cg.denied.iter().any(|d| d == controller) {
            // runc's wording for a rootless container.
            format!("cannot set {controller} limit: container could not join or create cgroup")
        } else {
            format!("the {controller} cgroup controller is not mounted on this host")
        }
    }

    /// The unified directory with `controller` usable in it: on v2 it must be in the
    /// cgroup's cgroup.controllers; on a hybrid host it is enabled down the path if the
    /// unified hierarchy offers it. `controller` "cgroup" means the core files.
    fn unified_dir(&self, controller: &str, field: &str) -> Result<PathBuf, CgroupError> {
        let err = |reason: String| CgroupError::Resource {
            field: field.into(),
            reason,
        };
        let Some(dir) = self.cg.dirs.get(UNIFIED) else {
            return Err(err(format!(
                "needs the {controller} controller of cgroup v2, and this host has no cgroup2 hierarchy"
            )));
        };
        if controller == "cgroup" {
            return Ok(dir.clone());
        }
        if self.cg.mode == Mode::Hybrid && self.hier.has_controller(controller) {
            return Err(err(format!(
                "the {controller} controller is on cgroup v1 on this hybrid host, not in the unified hierarchy"
            )));
        }
        if has_controller(dir, controller) {
            return Ok(dir.clone());
        }
        let mount = self.hier.mountpoint_of(UNIFIED).unwrap_or(Path::new("/"));
        enable_down(mount, dir, controller);
        if has_controller(dir, controller) {
            return Ok(dir.clone());
        }
        Err(err(format!(
            "the {controller} controller is not available in the cgroup v2 hierarchy (not in {}/cgroup.controllers)",
            dir.display()
        )))
    }
}

fn has_controller(dir: &Path, controller: &str) -> bool {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().any(|c| c == controller))
        .unwrap_or(false)
}

/// Write `+controller` into subtree_control from `mount` down to `dir`'s parent.
#[allow(
    clippy::disallowed_methods,
    reason = "cgroupfs, not a container rootfs"
)]
fn enable_down(mount: &Path, dir: &Path, controller: &str) {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return;
    };
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        // Failures show up as the controller missing from dir's cgroup.controllers.
        let _ = std::fs::write(cur.join("cgroup.subtree_control"), format!("+{controller}"));
        cur.push(comp);
    }
}

/// Read a cgroup file as a trimmed string (`None` if missing).
fn read_str(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Log a setting runc ignores too on this kind of host.
fn ignored(field: &str, why: &str) {
    tracing::warn!("linux.resources.{field} ignored: {why}");
}

#[cfg(test)]
mod tests;
