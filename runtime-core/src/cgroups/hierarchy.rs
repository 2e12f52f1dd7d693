//! Discovery of the cgroup hierarchies mounted on this host, from the mount table, and
//! resolution of a container's cgroupsPath into one directory per hierarchy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CgroupError, CgroupPaths, UNIFIED};

/// How the host mounts cgroups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// cgroup v1 only.
    #[default]
    Legacy,
    /// v1 controllers plus a cgroup2 mount beside them.
    Hybrid,
    /// cgroup v2 only, mounted at the root.
    Unified,
}

/// One mounted hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Controllers (`cpu`, `name=systemd`; [`UNIFIED`] for cgroup2).
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Which cgroup of the hierarchy is the mount's root (`/` on a host).
    pub root: String,
}

/// The cgroup hierarchies of this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchies {
    /// v1, hybrid or v2.
    pub mode: Mode,
    /// Mounted hierarchies under the cgroup root.
    pub mounts: Vec<Mount>,
}

impl Hierarchies {
    /// Read the hierarchies of this host under [`super::DEFAULT_ROOT`].
    pub fn host() -> Result<Self, CgroupError> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| CgroupError::Read(PathBuf::from("/proc/self/mountinfo"), e))?;
        Self::from_mountinfo(Path::new(super::DEFAULT_ROOT), &mi)
    }

    /// Parse a mountinfo table, keeping the cgroup mounts at or below `root`.
    pub fn from_mountinfo(root: &Path, mountinfo: &str) -> Result<Self, CgroupError> {
        let mut mounts = Vec::new();
        let mut unified_at_root = false;
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let fstype = post[0];
            if fstype != "cgroup" && fstype != "cgroup2" {
                continue;
            }
            let mountpoint = crate::mountinfo::unescape(pre[4]);
            if !mountpoint.starts_with(root) {
                continue;
            }
            let mroot = crate::mountinfo::unescape(pre[3])
                .to_string_lossy()
                .into_owned();
            let controllers = if fstype == "cgroup2" {
                if mountpoint == root {
                    unified_at_root = true;
                }
                vec![UNIFIED.to_string()]
            } else {
                post[2]
                    .split(',')
                    .filter(|o| {
                        !matches!(
                            *o,
                            "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec"
                        ) && !o.starts_with("release_agent")
                            && *o != "clone_children"
                            && *o != "xattr"
                            && *o != "nsdelegate"
                    })
                    .map(String::from)
                    .collect()
            };
            // A later mount at the same place hides an earlier one.
            mounts.retain(|m: &Mount| m.mountpoint != mountpoint);
            mounts.push(Mount {
                controllers,
                mountpoint,
                root: mroot,
            });
        }
        if mounts.is_empty() {
            return Err(CgroupError::NoCgroupFs(root.to_path_buf()));
        }
        let has_v1 = mounts.iter().any(|m| m.controllers != [UNIFIED]);
        let mode = if unified_at_root && !has_v1 {
            Mode::Unified
        } else if mounts.iter().any(|m| m.controllers == [UNIFIED]) {
            Mode::Hybrid
        } else {
            Mode::Legacy
        };
        if mode == Mode::Unified {
            mounts.retain(|m| m.mountpoint == root);
        }
        Ok(Hierarchies { mode, mounts })
    }

    /// Mountpoint of the hierarchy that holds `controller`.
    pub fn mountpoint_of(&self, controller: &str) -> Option<&Path> {
        self.mounts
            .iter()
            .find(|m| m.controllers.iter().any(|c| c == controller))
            .map(|m| m.mountpoint.as_path())
    }

    /// Whether a v1 controller is mounted.
    pub fn has_controller(&self, controller: &str) -> bool {
        self.mounts
            .iter()
            .any(|m| m.controllers.iter().any(|c| c == controller))
    }

    /// Resolve a cgroupsPath. Absolute paths are taken from each hierarchy's root;
    /// relative ones (and the default, the container id) from the cgroup the runtime
    /// itself is in, as given by `own` (the contents of /proc/self/cgroup), on v1; on a
    /// v2-only host from its parent, as runc does.
    pub fn resolve(
        &self,
        cgroups_path: Option<&str>,
        id: &str,
        own: &str,
    ) -> Result<CgroupPaths, CgroupError> {
        let raw = cgroups_path.filter(|p| !p.is_empty()).unwrap_or(id);
        if raw.contains(':') && !raw.starts_with('/') {
            return Err(CgroupError::BadPath(
                raw.to_string(),
                "looks like a systemd path (slice:prefix:name), but runrs has only the cgroupfs driver (use a path like /runrs/<id>)",
            ));
        }
        let clean = clean_path(raw);
        if clean == "/" {
            return Err(CgroupError::BadPath(
                raw.to_string(),
                "must not be the root cgroup",
            ));
        }
        let own = parse_proc_cgroup(own);
        let mut dirs = BTreeMap::new();
        let mut shown = String::new();
        for m in &self.mounts {
            let key = m.controllers.first().cloned().unwrap_or_default();
            let base = if raw.starts_with('/') {
                String::new()
            } else {
                let mine = own.get(key.as_str()).cloned().unwrap_or_else(|| "/".into());
                if self.mode == Mode::Unified {
                    // runc (fs2): the parent of the runtime's own cgroup, which holds
                    // the runtime and so cannot enable controllers for a child (the
                    // "no internal processes" rule); a delegated subtree's parent can.
                    parent_of(&mine)
                } else {
                    mine
                }
            };
            let full = clean_path(&format!("{base}/{clean}"));
            // The mount may expose only a subtree (inside a container): strip its root.
            let inside = match full.strip_prefix(m.root.trim_end_matches('/')) {
                Some(rest) if m.root != "/" => rest.to_string(),
                _ => full.clone(),
            };
            let dir = m.mountpoint.join(inside.trim_start_matches('/'));
            if shown.is_empty() || key == "pids" {
                shown = full.clone();
            }
            for c in &m.controllers {
                dirs.insert(c.clone(), dir.clone());
            }
        }
        Ok(CgroupPaths {
            mode: self.mode,
            path: shown,
            dirs,
            systemd: None,
            rootless: false,
            denied: Vec::new(),
            shared: false,
        })
    }
}

/// The parent of an absolute cgroup path (`/` for `/` and its children).
fn parent_of(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some((p, _)) if !p.is_empty() => p.to_string(),
        _ => "/".into(),
    }
}

/// Parse /proc/PID/cgroup into controller -> path ("" for the unified hierarchy).
pub fn parse_proc_cgroup(s: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in s.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            m.insert(UNIFIED.to_string(), path.to_string());
        } else {
            for c in ctrls.split(',') {
                m.insert(c.to_string(), path.to_string());
            }
        }
    }
    m
}

/// Lexically clean an absolute path: collapse `//`, drop `.`, resolve `..` without
/// ever going above `/` (so a cgroupsPath cannot escape the hierarchy).
pub fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}
