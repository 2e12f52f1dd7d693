//! Mounts criu cannot dump by itself: whatever shows a host file or directory inside
//! the container. criu is told about them as external mounts (`ext_mnt`): at dump each
//! mount point gets a key stored in the image, at restore each key is mapped to the
//! host path to bind there, as runc does:
//!
//! - bind mounts of the spec: key = destination, restored from the (new) bundle's source;
//! - cgroup mounts without a cgroup namespace (runrs binds the container's cgroup dirs):
//!   key = mount point, restored from the new container's cgroup dirs;
//! - masked files (runrs binds the host's /dev/null over them): key `/dev/null`;
//! - device nodes (bind-mounted from the host in a user namespace): key = path.
//!
//! Before a restore the rootfs gets the mount points criu needs (runc's
//! prepareCriuRestoreMounts), see [`prepare_list`]. See criu.org "External bind mounts".

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};
use serde::{Deserialize, Serialize};

use super::CriuError;
use crate::cgroups::{CgroupPaths, Mode, UNIFIED};
use crate::namespaces::{self, Kind};
use crate::rootfs::{self, devices, safe};

/// The key masked files are dumped under (runc's choice).
pub const MASKED_KEY: &str = "/dev/null";

/// One external mount of a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum External {
    /// A bind mount of the spec.
    Bind {
        /// Its destination.
        dest: String,
    },
    /// A cgroup v1 hierarchy bound at `dest`.
    CgroupV1 {
        /// Mount point (`/sys/fs/cgroup/cpu,cpuacct`).
        dest: String,
        /// The hierarchy's controllers.
        controllers: Vec<String>,
    },
    /// The container's cgroup2 directory bound at `dest`.
    Cgroup2 {
        /// Mount point.
        dest: String,
    },
    /// A masked file (the host's /dev/null bound over it).
    Masked {
        /// The masked path.
        dest: String,
    },
    /// A device node.
    Device {
        /// The device path.
        dest: String,
    },
}

impl External {
    /// The mount point inside the container.
    pub fn dest(&self) -> &str {
        match self {
            External::Bind { dest }
            | External::CgroupV1 { dest, .. }
            | External::Cgroup2 { dest }
            | External::Masked { dest }
            | External::Device { dest } => dest,
        }
    }

    /// The key the image stores for it.
    pub fn key(&self) -> &str {
        match self {
            External::Masked { .. } => MASKED_KEY,
            other => other.dest(),
        }
    }
}

/// What shapes a container's mounts besides its spec.
pub struct Layout<'a> {
    /// The container's cgroups.
    pub cgroup: &'a CgroupPaths,
    /// The v1 hierarchies as (mount point name, controllers).
    pub cgroup_mounts: &'a [(String, Vec<String>)],
}

/// Container-absolute, normalised form of a destination.
pub fn clean(dest: &Path) -> String {
    Path::new("/")
        .join(safe::relative(dest))
        .to_string_lossy()
        .into_owned()
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// The external mounts of a container made from `spec`. `is_file` tells whether a
/// masked path is a file in the container (masked directories get a tmpfs, which criu
/// dumps itself).
pub fn externals(spec: &Spec, l: &Layout<'_>, is_file: &dyn Fn(&str) -> bool) -> Vec<External> {
    let nss = namespaces::from_spec(spec);
    let cgroupns = namespaces::has(&nss, Kind::Cgroup);
    let mut out: Vec<External> = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let dest = clean(m.destination());
        if is_bind(m) {
            out.push(External::Bind { dest });
            continue;
        }
        let typ = m.typ().as_deref().unwrap_or("");
        if (typ != "cgroup" && typ != "cgroup2") || cgroupns {
            continue;
        }
        if typ == "cgroup2" || l.cgroup.mode == Mode::Unified {
            out.push(External::Cgroup2 { dest });
            continue;
        }
        for (name, controllers) in l.cgroup_mounts {
            if controllers
                .first()
                .is_some_and(|c| l.cgroup.dirs.contains_key(c))
            {
                out.push(External::CgroupV1 {
                    dest: format!("{}/{name}", dest.trim_end_matches('/')),
                    controllers: controllers.clone(),
                });
            }
        }
    }
    if let Some(masked) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
    {
        for p in masked {
            let dest = clean(Path::new(p));
            if is_file(&dest) {
                out.push(External::Masked { dest });
            }
        }
    }
    if !rootfs::dev_is_bind(spec) {
        let spec_devs = spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default();
        for d in devices::from_spec(&spec_devs) {
            out.push(External::Device {
                dest: clean(&d.path),
            });
        }
    }
    out
}

/// The `ext_mnt` pairs (mount point, key) of a dump.
pub fn dump_map(ext: &[External]) -> Vec<(String, String)> {
    ext.iter()
        .map(|e| (e.dest().to_string(), e.key().to_string()))
        .collect()
}

/// The `ext_mnt` pairs (key, host path) of a restore: every key of the checkpoint
/// (`saved`) mapped to what the new container provides for it.
pub fn restore_map(
    saved: &[External],
    spec: &Spec,
    bundle: &Path,
    l: &Layout<'_>,
) -> Result<Vec<(String, String)>, CriuError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for e in saved {
        let val: PathBuf = match e {
            External::Bind { dest } => {
                let m = spec
                    .mounts()
                    .iter()
                    .flatten()
                    .find(|m| is_bind(m) && clean(m.destination()) == *dest)
                    .ok_or_else(|| {
                        CriuError::Invalid(format!(
                            "the checkpoint has a bind mount at {dest}, but the bundle's config.json has none there"
                        ))
                    })?;
                let src = m.source().clone().unwrap_or_default();
                if src.is_absolute() {
                    src
                } else {
                    bundle.join(src)
                }
            }
            External::CgroupV1 { dest, controllers } => controllers
                .iter()
                .find_map(|c| l.cgroup.dirs.get(c))
                .cloned()
                .ok_or_else(|| {
                    CriuError::Invalid(format!(
                        "the checkpoint has the cgroup hierarchy {} at {dest}, which this host does not mount",
                        controllers.join(",")
                    ))
                })?,
            External::Cgroup2 { dest } => {
                l.cgroup.dirs.get(UNIFIED).cloned().ok_or_else(|| {
                    CriuError::Invalid(format!(
                        "the checkpoint has a cgroup2 mount at {dest}, but this host has no cgroup2 hierarchy"
                    ))
                })?
            }
            External::Masked { .. } => PathBuf::from("/dev/null"),
            External::Device { dest } => PathBuf::from(dest),
        };
        let pair = (e.key().to_string(), val.to_string_lossy().into_owned());
        if !out.iter().any(|(k, _)| *k == pair.0) {
            out.push(pair);
        }
    }
    Ok(out)
}

/// A mount point the rootfs needs before criu restores into it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepare {
    /// Destination inside the container.
    pub dest: PathBuf,
    /// Bind this host path there (so mount points inside it can be made too).
    pub bind: Option<PathBuf>,
    /// Directory (else a file) mount point.
    pub dir: bool,
}

/// runc's prepareCriuRestoreMounts: every mount point of the spec that is not inside a
/// tmpfs (criu restores tmpfs contents, mount points included) and not a cgroup mount
/// (those live in a tmpfs, or appear with /sys); bind mounts are mounted in the
/// helper's private mount namespace so that nested mount points can be made.
pub fn prepare_list(spec: &Spec, bundle: &Path) -> Vec<Prepare> {
    let mounts: Vec<&Mount> = spec.mounts().iter().flatten().collect();
    let tmpfs: Vec<String> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs") && !is_bind(m))
        .map(|m| clean(m.destination()))
        .collect();
    // Strictly below a tmpfs (the tmpfs' own mount point is made).
    let under_tmpfs = |d: &str| {
        tmpfs
            .iter()
            .any(|t| d.starts_with(&format!("{}/", t.trim_end_matches('/'))))
    };
    let mut out = Vec::new();
    for m in mounts {
        let dest = clean(m.destination());
        let typ = m.typ().as_deref().unwrap_or("");
        if under_tmpfs(&dest) || typ == "cgroup" || typ == "cgroup2" {
            continue;
        }
        if is_bind(m) {
            let src = m.source().clone().unwrap_or_default();
            let src = if src.is_absolute() {
                src
            } else {
                bundle.join(src)
            };
            let dir = std::fs::metadata(&src)
                .map(|md| md.is_dir())
                .unwrap_or(true);
            out.push(Prepare {
                dest: dest.into(),
                bind: Some(src),
                dir,
            });
        } else {
            out.push(Prepare {
                dest: dest.into(),
                bind: None,
                dir: true,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).expect("spec")
    }

    fn hybrid_cgroup() -> CgroupPaths {
        let mut dirs = BTreeMap::new();
        dirs.insert(
            "cpu".to_string(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/x"),
        );
        dirs.insert(
            "cpuacct".to_string(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/x"),
        );
        dirs.insert(
            "memory".to_string(),
            PathBuf::from("/sys/fs/cgroup/memory/x"),
        );
        dirs.insert(
            UNIFIED.to_string(),
            PathBuf::from("/sys/fs/cgroup/unified/x"),
        );
        CgroupPaths {
            mode: Mode::Hybrid,
            path: "/x".into(),
            dirs,
            systemd: None,
            rootless: false,
            denied: Vec::new(),
            shared: false,
        }
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
                {"destination": "/data/", "type": "bind", "source": "/host/data", "options": ["rbind"]},
                {"destination": "/etc/hosts", "source": "hosts", "options": ["bind", "ro"]}
            ],
            "linux": {
                "namespaces": [{"type": "mount"}, {"type": "pid"}],
                "maskedPaths": ["/proc/kcore", "/proc/acpi"]
            }
        })
    }

    #[test]
    fn externals_of_a_hybrid_container() {
        let s = spec(base());
        let cg = hybrid_cgroup();
        let cm = vec![
            (
                "cpu,cpuacct".to_string(),
                vec!["cpu".into(), "cpuacct".into()],
            ),
            ("memory".to_string(), vec!["memory".into()]),
            ("blkio".to_string(), vec!["blkio".into()]),
        ];
        let l = Layout {
            cgroup: &cg,
            cgroup_mounts: &cm,
        };
        let ext = externals(&s, &l, &|p| p == "/proc/kcore");
        assert!(ext.contains(&External::Bind {
            dest: "/data".into()
        }));
        assert!(ext.contains(&External::Bind {
            dest: "/etc/hosts".into()
        }));
        assert!(ext.contains(&External::CgroupV1 {
            dest: "/sys/fs/cgroup/cpu,cpuacct".into(),
            controllers: vec!["cpu".into(), "cpuacct".into()]
        }));
        // blkio has no directory for this container: not mounted, not external.
        assert!(!ext.iter().any(|e| e.dest().ends_with("blkio")));
        assert!(ext.contains(&External::Masked {
            dest: "/proc/kcore".into()
        }));
        assert!(!ext.iter().any(|e| e.dest() == "/proc/acpi"));
        assert!(ext.contains(&External::Device {
            dest: "/dev/null".into()
        }));
        let dump = dump_map(&ext);
        assert!(dump.contains(&("/proc/kcore".into(), "/dev/null".into())));
        assert!(dump.contains(&("/data".into(), "/data".into())));

        // Restore into a new bundle: bind sources and cgroup dirs come from the new one.
        let mut v = base();
        v["mounts"][4]["source"] = serde_json::json!("/host/data2");
        let s2 = spec(v);
        let mut cg2 = hybrid_cgroup();
        for d in cg2.dirs.values_mut() {
            *d = d.with_file_name("y");
        }
        let l2 = Layout {
            cgroup: &cg2,
            cgroup_mounts: &cm,
        };
        let map = restore_map(&ext, &s2, Path::new("/b"), &l2).expect("map");
        assert!(map.contains(&("/data".into(), "/host/data2".into())));
        assert!(map.contains(&("/etc/hosts".into(), "/b/hosts".into())));
        assert!(map.contains(&(
            "/sys/fs/cgroup/cpu,cpuacct".into(),
            "/sys/fs/cgroup/cpu,cpuacct/y".into()
        )));
        assert_eq!(map.iter().filter(|(k, _)| k == "/dev/null").count(), 1);

        // A bind mount the new config lacks is named.
        let mut v = base();
        v["mounts"].as_array_mut().expect("mounts").remove(4);
        let e = restore_map(&ext, &spec(v), Path::new("/b"), &l2).expect_err("missing");
        assert!(e.to_string().contains("/data"), "{e}");
    }

    #[test]
    fn cgroupns_and_v2() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "cgroup"}]);
        let cg = hybrid_cgroup();
        let l = Layout {
            cgroup: &cg,
            cgroup_mounts: &[],
        };
        let ext = externals(&spec(v), &l, &|_| false);
        assert!(!ext.iter().any(|e| e.dest().starts_with("/sys/fs/cgroup")));
        let mut cg = hybrid_cgroup();
        cg.mode = Mode::Unified;
        let l = Layout {
            cgroup: &cg,
            cgroup_mounts: &[],
        };
        let ext = externals(&spec(base()), &l, &|_| false);
        assert!(ext.contains(&External::Cgroup2 {
            dest: "/sys/fs/cgroup".into()
        }));
    }

    #[test]
    fn prepare_skips_tmpfs_and_cgroup() {
        let p = prepare_list(&spec(base()), Path::new("/b"));
        let dests: Vec<&Path> = p.iter().map(|x| x.dest.as_path()).collect();
        assert!(dests.contains(&Path::new("/proc")));
        assert!(dests.contains(&Path::new("/dev")));
        assert!(
            !dests.contains(&Path::new("/dev/pts")),
            "inside the /dev tmpfs"
        );
        assert!(!dests.contains(&Path::new("/sys/fs/cgroup")));
        let data = p
            .iter()
            .find(|x| x.dest == Path::new("/data"))
            .expect("data");
        assert_eq!(data.bind.as_deref(), Some(Path::new("/host/data")));
        let hosts = p
            .iter()
            .find(|x| x.dest == Path::new("/etc/hosts"))
            .expect("hosts");
        assert_eq!(hosts.bind.as_deref(), Some(Path::new("/b/hosts")));
    }
}
