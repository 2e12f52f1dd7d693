//! The systemd cgroup driver: the container's cgroup is a transient unit of the host's
//! systemd (a `<prefix>-<name>.scope` in a slice, with `Delegate=yes`), created over
//! D-Bus with the container's first process in it, as runc's systemd driver does.
//!
//! `linux.cgroupsPath` is `slice:prefix:name` (runc's format; an empty slice is
//! `system.slice`, a name ending in `.slice` makes a slice instead of a scope). The
//! limits go twice: as unit properties, so systemd keeps them when it re-applies its
//! own view (daemon-reload, SetUnitProperties), and through cgroupfs in the delegated
//! directories for everything systemd has no property for, with the exact values.
//! Everything after placement (stats, OOM, freezer, exec) works on those directories
//! like the cgroupfs driver. See systemd.resource-control(5), systemd.scope(5),
//! org.freedesktop.systemd1(5) and systemd's CGROUP_DELEGATION.md.
//!
//! Run by an unprivileged user (rootless), the unit is the user's systemd's, in
//! `user.slice` below the user manager's own cgroup (`user.rs`); cgroup v2 only.

mod call;
mod dbus;
mod props;
mod user;

pub use call::link_dbus;
pub(crate) use call::{through_helper, Call, Request};
pub use props::{properties, Prop};
pub use user::{outer_uid, UserBus};

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CgroupError, CgroupPaths, Hierarchies};

/// The prefix of scopes made for containers without a `linux.cgroupsPath`
/// (runc uses `runc`).
pub const DEFAULT_PREFIX: &str = "runrs";

/// The slice of containers whose path names none.
pub const DEFAULT_SLICE: &str = "system.slice";

/// The same under a user's systemd (runc's rootless default).
pub const DEFAULT_USER_SLICE: &str = "user.slice";

/// The container's unit, kept in its state so that update and delete reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Unit name: `runrs-<id>.scope`, or a slice's own name.
    pub name: String,
    /// The slice the scope is in (empty for a slice unit, whose parent is in its name).
    pub slice: String,
    /// The user's systemd the unit belongs to (None: the system's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserBus>,
}

impl Unit {
    /// Whether the unit is a slice (no process is handed to systemd; init joins the
    /// slice's directories itself).
    pub fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }
}

/// Why the systemd driver cannot be used on this host, if it cannot. `run` is the
/// /run directory: systemd marks a host it booted with /run/systemd/system
/// (sd_booted(3)).
pub fn unavailable(run: &Path) -> Option<String> {
    if run.join("systemd/system").is_dir() {
        return None;
    }
    Some(
        "the systemd cgroup driver is not available: systemd is not running on this host (no /run/systemd/system); \
         use cgroupfs (drop the option and give linux.cgroupsPath as a path like /runrs/<id>)"
            .into(),
    )
}

/// Parse `slice:prefix:name` (or nothing: `<default slice>:runrs:<id>`) into the unit
/// and the cgroup path systemd will give it, relative to the manager's own cgroup.
pub fn parse(
    cgroups_path: Option<&str>,
    id: &str,
    default_slice: &str,
) -> Result<(Unit, String), CgroupError> {
    let raw = cgroups_path.unwrap_or_default();
    let (slice, prefix, name) = if raw.is_empty() {
        (default_slice, DEFAULT_PREFIX, id)
    } else {
        let parts: Vec<&str> = raw.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(CgroupError::BadPath(
                raw.into(),
                "expected the format \"slice:prefix:name\" for the systemd cgroup driver",
            ));
        };
        (slice, prefix, name)
    };
    if name.is_empty() {
        return Err(CgroupError::BadPath(
            raw.into(),
            "the unit name (the part after the last ':') is empty",
        ));
    }
    if name.contains('/') || prefix.contains('/') {
        return Err(CgroupError::BadPath(
            raw.into(),
            "a systemd unit name cannot contain '/'",
        ));
    }
    if name.ends_with(".slice") {
        let path = expand_slice(name).map_err(|r| CgroupError::BadPath(raw.into(), r))?;
        let unit = Unit {
            name: name.into(),
            slice: String::new(),
            user: None,
        };
        return Ok((unit, path));
    }
    let slice = if slice.is_empty() {
        default_slice
    } else {
        slice
    };
    let base = expand_slice(slice).map_err(|r| CgroupError::BadPath(raw.into(), r))?;
    let name = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    let path = format!("{}/{name}", base.trim_end_matches('/'));
    Ok((
        Unit {
            name,
            slice: slice.into(),
            user: None,
        },
        path,
    ))
}

/// The cgroup path of a slice: `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`,
/// `-.slice` is the root (systemd's `slice_build_subslice`/runc's `ExpandSlice`).
pub fn expand_slice(slice: &str) -> Result<String, &'static str> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err("a slice name must end in .slice");
    };
    if slice.contains('/') {
        return Err("a slice name cannot contain '/'");
    }
    if stem == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err("invalid slice name (an empty part between dashes)");
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(part);
        path.push_str(".slice");
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

/// The container's cgroups under the systemd driver: the unit's path in every
/// hierarchy, with the unit recorded. `rootless`: the caller's own systemd instance
/// (its bus found from the environment, see [`UserBus::detect`]) makes the unit, below
/// its own cgroup; the cgroups are marked rootless (no device filter: the user's
/// systemd cannot install one, nor can the caller).
pub fn resolve(
    hier: &Hierarchies,
    cgroups_path: Option<&str>,
    id: &str,
    rootless: bool,
) -> Result<CgroupPaths, CgroupError> {
    if !rootless {
        return resolve_in(hier, cgroups_path, id, None, "");
    }
    let refuse = CgroupError::SystemdUser;
    if hier.mode != super::Mode::Unified {
        return Err(refuse(
            "cannot use rootless systemd cgroups manager on cgroup v1 (a user's systemd \
             is delegated cgroups on the unified hierarchy only)"
                .into(),
        ));
    }
    let bus = UserBus::detect().map_err(refuse)?;
    let base = call::call(&Request {
        user: Some(bus.clone()),
        call: Call::ManagerCgroup,
    })
    .map_err(refuse)?;
    let mut cg = resolve_in(hier, cgroups_path, id, Some(bus), &base)?;
    cg.rootless = true;
    Ok(cg)
}

fn resolve_in(
    hier: &Hierarchies,
    cgroups_path: Option<&str>,
    id: &str,
    user: Option<UserBus>,
    base: &str,
) -> Result<CgroupPaths, CgroupError> {
    let default_slice = match user {
        Some(_) => DEFAULT_USER_SLICE,
        None => DEFAULT_SLICE,
    };
    if !base.is_empty() && (!base.starts_with('/') || base.split('/').any(|c| c == "..")) {
        return Err(CgroupError::SystemdUser(format!(
            "the user's systemd gave {base:?} as its cgroup (want an absolute path)"
        )));
    }
    let (mut unit, path) = parse(cgroups_path, id, default_slice)?;
    unit.user = user;
    let path = if base.is_empty() || base == "/" {
        path
    } else {
        format!("{}{path}", base.trim_end_matches('/'))
    };
    if path == "/" {
        return Err(CgroupError::BadPath(
            cgroups_path.unwrap_or_default().into(),
            "must not be the root cgroup",
        ));
    }
    let mut cg = hier.resolve(Some(&path), id, "")?;
    cg.systemd = Some(unit);
    Ok(cg)
}

/// Start the unit with `pid` in it (a scope; a slice takes no process) and the
/// properties, and wait until systemd has done it.
pub fn start(
    unit: &Unit,
    pid: Option<i32>,
    props: Vec<(&'static str, Prop)>,
) -> Result<(), CgroupError> {
    let mut all = vec![
        (
            "Description",
            Prop::Str(format!("runrs container {}", unit.name)),
        ),
        ("DefaultDependencies", Prop::Bool(false)),
    ];
    if unit.is_slice() {
        all.push(("Delegate", Prop::Bool(true)));
    } else {
        all.push(("Slice", Prop::Str(unit.slice.clone())));
        all.push(("Delegate", Prop::Bool(true)));
        if let Some(pid) = pid {
            all.push(("PIDs", Prop::U32s(vec![pid as u32])));
        }
    }
    all.extend(props);
    call::call(&Request {
        user: unit.user.clone(),
        call: Call::Start {
            name: unit.name.clone(),
            props: named(all),
            reuse: unit.is_slice(),
        },
    })
    .map(drop)
    .map_err(|e| systemd_error(unit, "start", e))
}

/// Set properties of a running unit (an update).
pub fn set_properties(unit: &Unit, props: Vec<(&'static str, Prop)>) -> Result<(), CgroupError> {
    if props.is_empty() {
        return Ok(());
    }
    call::call(&Request {
        user: unit.user.clone(),
        call: Call::Set {
            name: unit.name.clone(),
            props: named(props),
        },
    })
    .map(drop)
    .map_err(|e| systemd_error(unit, "update", e))
}

/// Stop the unit (no error when it is gone already: a scope whose processes all
/// exited is stopped and collected by systemd itself).
pub fn stop(unit: &Unit) -> Result<(), CgroupError> {
    call::call(&Request {
        user: unit.user.clone(),
        call: Call::Stop {
            name: unit.name.clone(),
        },
    })
    .map(drop)
    .map_err(|e| systemd_error(unit, "stop", e))
}

fn named(props: Vec<(&'static str, Prop)>) -> Vec<(String, Prop)> {
    props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn systemd_error(unit: &Unit, what: &'static str, reason: String) -> CgroupError {
    CgroupError::Systemd {
        unit: unit.name.clone(),
        what,
        reason,
    }
}

#[cfg(test)]
mod tests;
