//! Intel RDT (and AMD PQoS) through the resctrl filesystem: `linux.intelRdt`.
//!
//! A container joins a resctrl control group (CLOS): the one named by `closID`, or
//! one named after the container. The group's `schemata` get the spec's
//! `l3CacheSchema`, `memBwSchema` and `schemata` lines (merged in that order, later
//! lines overriding earlier ones domain by domain, so one write carries them), and the
//! container's tasks go to its `tasks` file. With `enableMonitoring` the container also
//! gets its own monitoring group `<group>/mon_groups/<id>`, whose `mon_data` gives
//! llc_occupancy and mbm_{total,local}_bytes per L3 domain. Delete removes only what
//! the container created: its monitoring group, and the control group unless it
//! existed before (a shared, pre-configured CLOS).
//!
//! The resctrl root is a parameter ([`Resctrl::at`]) so the logic is tested against a
//! directory tree laid out like the kernel's. See the OCI config-linux.md "IntelRdt"
//! and the kernel's Documentation/arch/x86/resctrl.rst.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::sys::c;
use oci_spec::runtime::{LinuxIntelRdt, Spec};
use serde::{Deserialize, Serialize};

/// Names at the resctrl root that are not groups.
const RESERVED: [&str; 9] = [
    "info",
    "mon_groups",
    "mon_data",
    "tasks",
    "cpus",
    "cpus_list",
    "schemata",
    "mode",
    "size",
];

/// resctrl failures.
#[derive(Debug, thiserror::Error)]
pub enum RdtError {
    /// No resctrl mount on this host.
    #[error(
        "linux.intelRdt is set, but no resctrl filesystem is mounted (this host has no \
         Intel RDT / AMD PQoS support, or it needs `mount -t resctrl resctrl /sys/fs/resctrl`)"
    )]
    NotMounted,
    /// A malformed or unusable value in the spec.
    #[error("{field} {value:?}: {reason}")]
    Invalid {
        /// JSON path of the field.
        field: String,
        /// The offending value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A closID without schemata names a group that does not exist.
    #[error(
        "linux.intelRdt.closID {0:?}: resctrl group {1} does not exist (without \
         l3CacheSchema, memBwSchema or schemata it must be configured beforehand)"
    )]
    MissingClos(String, PathBuf),
    /// An existing closID group has other schemata than the spec asks for.
    #[error(
        "resctrl group {path} exists with {have}, which does not match {want:?} of linux.intelRdt"
    )]
    Mismatch {
        /// The group.
        path: PathBuf,
        /// What it has for that resource.
        have: String,
        /// The line the spec asks for.
        want: String,
    },
    /// A group this container would create exists already.
    #[error(
        "resctrl group {0} already exists and was not created by this container (set \
         linux.intelRdt.closID to share a pre-configured group)"
    )]
    Exists(PathBuf),
    /// A resctrl file operation failed.
    #[error("{op} {path}{status}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The kernel's info/last_cmd_status, when it explains.
        status: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn invalid(field: &str, value: &str, reason: impl Into<String>) -> RdtError {
    RdtError::Invalid {
        field: field.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// A mounted resctrl filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resctrl {
    root: PathBuf,
    mba_mbps: bool,
}

impl Resctrl {
    /// A resctrl tree at `root`; `mba_mbps` when mounted with `-o mba_MBps` (memory
    /// bandwidth in MBps instead of percent).
    pub fn at(root: impl Into<PathBuf>, mba_mbps: bool) -> Self {
        Resctrl {
            root: root.into(),
            mba_mbps,
        }
    }

    /// The host's resctrl mount, from /proc/self/mountinfo.
    pub fn host() -> Result<Self, RdtError> {
        let mi =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| RdtError::Io {
                op: "read",
                path: "/proc/self/mountinfo".into(),
                status: String::new(),
                source,
            })?;
        Self::from_mountinfo(&mi).ok_or(RdtError::NotMounted)
    }

    /// The first resctrl mount in a mountinfo text.
    pub fn from_mountinfo(mountinfo: &str) -> Option<Self> {
        mountinfo.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut post = post.split(' ');
            if post.next()? != "resctrl" {
                return None;
            }
            let super_opts = post.nth(1).unwrap_or("");
            let mountpoint = pre.split(' ').nth(4)?;
            Some(Resctrl::at(
                mountpoint,
                super_opts.split(',').any(|o| o == "mba_MBps"),
            ))
        })
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn io(&self, op: &'static str, path: &Path, source: std::io::Error) -> RdtError {
        let status = self
            .read("info/last_cmd_status")
            .filter(|s| !s.is_empty() && s != "ok")
            .map(|s| format!(" (resctrl: {s})"))
            .unwrap_or_default();
        RdtError::Io {
            op,
            path: path.to_path_buf(),
            status,
            source,
        }
    }
}

/// What a container holds in resctrl; persisted with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdtState {
    /// The resctrl root.
    pub root: PathBuf,
    /// The control group (CLOS) directory.
    pub group: PathBuf,
    /// Whether this container created the control group (then delete removes it).
    pub created_group: bool,
    /// The container's monitoring group, always created by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mon_group: Option<PathBuf>,
}

#[allow(deprecated)]
fn legacy_monitoring(rdt: &LinuxIntelRdt) -> (bool, bool) {
    (
        rdt.enable_cmt().unwrap_or(false),
        rdt.enable_mbm().unwrap_or(false),
    )
}

/// The group name a container uses: its closID, or its id.
fn group_name<'a>(rdt: &'a LinuxIntelRdt, id: &'a str) -> Result<&'a str, RdtError> {
    let (name, field) = match rdt.clos_id().as_deref() {
        Some(c) => (c, "linux.intelRdt.closID"),
        None => (id, "container id (the resctrl group name without closID)"),
    };
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(invalid(field, name, "must be a plain directory name"));
    }
    if RESERVED.contains(&name) {
        return Err(invalid(
            field,
            name,
            "is a reserved name at the resctrl root",
        ));
    }
    Ok(name)
}

/// Check `linux.intelRdt` without touching the system: schema syntax, closID.
pub fn validate(spec: &Spec, id: &str) -> Result<(), RdtError> {
    let Some(rdt) = spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref()) else {
        return Ok(());
    };
    group_name(rdt, id)?;
    wanted(rdt)?;
    Ok(())
}

/// Check `lines` against what the host's resctrl offers: the resources, the cache ids,
/// capacity bitmasks within `cbm_mask` (contiguous unless sparse masks are allowed,
/// at least `min_cbm_bits` set), bandwidth between `min_bandwidth` and 100 %.
fn check_host(rc: &Resctrl, lines: &[(Line, &'static str)]) -> Result<(), RdtError> {
    let root_schemata = rc.read("schemata").unwrap_or_default();
    for (l, field) in lines {
        let text = l.render();
        let info = format!("info/{}", l.resource);
        if !rc.root.join(&info).is_dir() {
            return Err(invalid(
                field,
                &text,
                format!(
                    "this host's resctrl has no {} resource (no {info})",
                    l.resource
                ),
            ));
        }
        let ids: Option<Vec<u32>> = root_schemata
            .lines()
            .filter_map(|r| Line::parse("", r).ok())
            .find(|r| r.resource == l.resource)
            .map(|r| r.domains.iter().map(|(i, _)| *i).collect());
        for (id, v) in &l.domains {
            if let Some(ids) = &ids {
                if !ids.contains(id) {
                    return Err(invalid(
                        field,
                        &text,
                        format!(
                            "{} has no domain {id} on this host (domains: {ids:?})",
                            l.resource
                        ),
                    ));
                }
            }
            let val = l.value(&l.resource, v).ok_or_else(|| {
                invalid(field, &text, format!("domain {id}: {v:?} is out of range"))
            })?;
            if Line::is_cache(&l.resource) {
                check_cbm(rc, &info, val)
                    .map_err(|r| invalid(field, &text, format!("domain {id}: {r}")))?;
            } else if l.resource == "MB" && !rc.mba_mbps {
                let min: u64 = rc
                    .read(&format!("{info}/min_bandwidth"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if val < min || val > 100 {
                    return Err(invalid(
                        field,
                        &text,
                        format!("domain {id}: bandwidth {val} % is outside {min}..=100 %"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_cbm(rc: &Resctrl, info: &str, val: u64) -> Result<(), String> {
    if val == 0 {
        return Err("an empty capacity bitmask".into());
    }
    if let Some(mask) = rc
        .read(&format!("{info}/cbm_mask"))
        .and_then(|m| u64::from_str_radix(&m, 16).ok())
    {
        if val & !mask != 0 {
            return Err(format!("bitmask {val:x} exceeds cbm_mask {mask:x}"));
        }
    }
    let sparse = rc.read(&format!("{info}/sparse_masks")).as_deref() == Some("1");
    let shifted = val >> val.trailing_zeros();
    if !sparse && shifted & (shifted + 1) != 0 {
        return Err(format!("bitmask {val:x} is not contiguous"));
    }
    if let Some(min) = rc
        .read(&format!("{info}/min_cbm_bits"))
        .and_then(|s| s.parse::<u32>().ok())
    {
        if val.count_ones() < min {
            return Err(format!(
                "bitmask {val:x} sets fewer than min_cbm_bits={min} bits"
            ));
        }
    }
    Ok(())
}

/// Create or join the container's control group and write its schemata (no tasks
/// yet: see [`add_task`]). Leaves nothing behind on error.
pub fn setup(rc: &Resctrl, spec: &Spec, id: &str) -> Result<Option<RdtState>, RdtError> {
    let Some(rdt) = spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref()) else {
        return Ok(None);
    };
    if !rc.root.join("info").is_dir() {
        return Err(RdtError::NotMounted);
    }
    let name = group_name(rdt, id)?;
    let lines = wanted(rdt)?;
    check_host(rc, &lines)?;
    let (cmt, mbm) = legacy_monitoring(rdt);
    let monitoring = rdt.enable_monitoring().unwrap_or(false);
    if monitoring || cmt || mbm {
        check_monitoring(rc, monitoring, cmt, mbm)?;
    }
    let group = rc.root.join(name);
    let mut st = RdtState {
        root: rc.root.clone(),
        group: group.clone(),
        created_group: false,
        mon_group: None,
    };
    if group.is_dir() {
        if rdt.clos_id().is_none() {
            return Err(RdtError::Exists(group));
        }
        compare(rc, &group, &lines)?;
    } else {
        if rdt.clos_id().is_some() && lines.is_empty() {
            return Err(RdtError::MissingClos(name.into(), group));
        }
        std::fs::create_dir(&group).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => RdtError::Exists(group.clone()),
            _ => rc.io("create resctrl group", &group, e),
        })?;
        st.created_group = true;
        if !lines.is_empty() {
            let text: String = lines.iter().map(|(l, _)| l.render() + "\n").collect();
            if let Err(e) = write_file(rc, &group.join("schemata"), &text, false) {
                let _ = remove(&st);
                return Err(e);
            }
        }
    }
    if monitoring {
        let mon_parent = group.join("mon_groups");
        let mon = mon_parent.join(id);
        let made = std::fs::create_dir_all(&mon_parent)
            .and_then(|()| std::fs::create_dir(&mon))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => RdtError::Exists(mon.clone()),
                _ => rc.io("create resctrl monitoring group", &mon, e),
            });
        if let Err(e) = made {
            let _ = remove(&st);
            return Err(e);
        }
        st.mon_group = Some(mon);
    }
    Ok(Some(st))
}

fn check_monitoring(rc: &Resctrl, monitoring: bool, cmt: bool, mbm: bool) -> Result<(), RdtError> {
    let features = rc.read("info/L3_MON/mon_features");
    let Some(features) = features else {
        let field = if monitoring {
            "linux.intelRdt.enableMonitoring"
        } else if cmt {
            "linux.intelRdt.enableCMT"
        } else {
            "linux.intelRdt.enableMBM"
        };
        return Err(invalid(
            field,
            "true",
            "this host's resctrl has no monitoring support (no info/L3_MON)",
        ));
    };
    let has = |f: &str| features.lines().any(|l| l.trim() == f);
    if cmt && !has("llc_occupancy") {
        return Err(invalid(
            "linux.intelRdt.enableCMT",
            "true",
            "this host does not monitor llc_occupancy (info/L3_MON/mon_features)",
        ));
    }
    if mbm && !has("mbm_total_bytes") && !has("mbm_local_bytes") {
        return Err(invalid(
            "linux.intelRdt.enableMBM",
            "true",
            "this host does not monitor memory bandwidth (info/L3_MON/mon_features)",
        ));
    }
    Ok(())
}

/// An existing closID group must already have the requested values.
fn compare(rc: &Resctrl, group: &Path, lines: &[(Line, &'static str)]) -> Result<(), RdtError> {
    if lines.is_empty() {
        return Ok(());
    }
    let path = group.join("schemata");
    let have = std::fs::read_to_string(&path).map_err(|e| rc.io("read", &path, e))?;
    let have: Vec<Line> = have
        .lines()
        .filter_map(|l| Line::parse("", l).ok())
        .collect();
    for (want, _) in lines {
        let line = have.iter().find(|h| h.resource == want.resource);
        let ok = line.is_some_and(|h| {
            want.domains.iter().all(|(id, v)| {
                h.domains
                    .iter()
                    .find(|(i, _)| i == id)
                    .is_some_and(|(_, hv)| {
                        h.value(&h.resource, hv) == want.value(&want.resource, v)
                    })
            })
        });
        if !ok {
            return Err(RdtError::Mismatch {
                path: group.to_path_buf(),
                have: line
                    .map(|h| format!("schemata {:?}", h.render()))
                    .unwrap_or_else(|| format!("no {} schemata line", want.resource)),
                want: want.render(),
            });
        }
    }
    Ok(())
}

fn write_file(rc: &Resctrl, path: &Path, text: &str, append: bool) -> Result<(), RdtError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|e| rc.io("open", path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| rc.io("write", path, e))
}

/// Put process `pid` in the container's group, and its monitoring group. Init's first
/// stage does this for itself (create and exec pass [`RdtState`] in its config), so the
/// container's processes inherit the groups before they run anything.
pub fn add_task(st: &RdtState, pid: i32) -> Result<(), RdtError> {
    let rc = Resctrl::at(&st.root, false);
    write_file(&rc, &st.group.join("tasks"), &format!("{pid}\n"), true)?;
    if let Some(mon) = &st.mon_group {
        write_file(&rc, &mon.join("tasks"), &format!("{pid}\n"), true)?;
    }
    Ok(())
}

/// Remove what the container created: its monitoring group, and its control group if
/// it made it. Tasks still in a removed group fall back to the parent (kernel rule).
pub fn remove(st: &RdtState) -> Result<(), RdtError> {
    let rc = Resctrl::at(&st.root, false);
    let mut first = None;
    let mut dirs = Vec::new();
    dirs.extend(st.mon_group.clone());
    if st.created_group {
        dirs.push(st.group.clone());
    }
    for d in dirs {
        if let Err(e) = rmdir(&d) {
            first.get_or_insert(rc.io("remove resctrl group", &d, e));
        }
    }
    first.map_or(Ok(()), Err)
}

/// rmdir, which is how resctrl removes a group with its files; a plain directory tree
/// (the test fixture) needs its files removed first.
fn rmdir(d: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir(d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(c::ENOTEMPTY) => std::fs::remove_dir_all(d),
        Err(e) => Err(e),
    }
}

mod schemata;
mod stats;

use schemata::*;
pub use stats::{stats, Stats};

#[cfg(test)]
mod tests;
