//! Bundle loading and validation: `config.json` of an OCI bundle becomes a checked
//! [`Spec`] before anything on the system is touched.
//!
//! Errors name the JSON field and the offending value (e.g. `linux.namespaces[2].type:
//! unknown variant "foo"`), so a user fixing a config knows where to look.
//! See the OCI runtime spec, config.md and config-linux.md.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Why a bundle's configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// config.json could not be read.
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// config.json is not valid JSON or does not match the OCI schema.
    #[error("{path}: {field}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// JSON path of the offending field.
        field: String,
        /// What serde said, including the value.
        message: String,
    },
    /// A field is well-formed JSON but not acceptable.
    #[error("{field} {value:?}: {reason}")]
    Invalid {
        /// JSON path of the field.
        field: String,
        /// The offending value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
}

fn invalid(
    field: impl Into<String>,
    value: impl Into<String>,
    reason: impl Into<String>,
) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Parse a spec from JSON bytes, reporting the path of the bad field.
pub fn parse(bytes: &[u8], origin: &Path) -> Result<Spec, SpecError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        SpecError::Parse {
            path: origin.to_path_buf(),
            field: if field == "." {
                "(document)".into()
            } else {
                field
            },
            message: e.into_inner().to_string(),
        }
    })
}

/// Load `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    let mut spec = parse(&bytes, &path)?;
    resolve_relative_mounts(&mut spec, bundle);
    Ok(spec)
}

/// runc's reading of relative mount paths: a bind mount's relative `source` is relative
/// to the bundle (runtime spec, config.md "source"), a relative `destination`
/// (deprecated by the spec, still accepted by runc 1.1) is relative to the container's `/`.
fn resolve_relative_mounts(spec: &mut Spec, bundle: &Path) {
    let Some(mounts) = spec.mounts().clone() else {
        return;
    };
    let mounts = mounts
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            if !m.destination().is_absolute() {
                // runc warns with the same words, which callers match on.
                tracing::warn!(
                    "invalid configuration: mounts[{i}].destination {:?} is not absolute; \
                     taken relative to / (deprecated)",
                    m.destination()
                );
                let d = Path::new("/").join(m.destination());
                m.set_destination(d);
            }
            let bind = m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|o| o == "bind" || o == "rbind");
            if bind {
                if let Some(src) = m.source().as_ref().filter(|s| !s.is_absolute()) {
                    let s = bundle.join(src);
                    m.set_source(Some(s));
                }
            }
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
}

/// Resolve `root.path` against the bundle: absolute paths are taken as they are,
/// relative ones must stay inside the bundle.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "", "is required"))?;
    let p = root.path();
    if p.as_os_str().is_empty() {
        return Err(invalid("root.path", "", "must not be empty"));
    }
    let full = if p.is_absolute() {
        p.clone()
    } else {
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(invalid(
                "root.path",
                p.display().to_string(),
                "a relative rootfs must stay inside the bundle",
            ));
        }
        bundle.join(p)
    };
    match std::fs::metadata(&full) {
        Ok(m) if m.is_dir() => Ok(full),
        Ok(_) => Err(invalid(
            "root.path",
            full.display().to_string(),
            "is not a directory",
        )),
        Err(e) => Err(invalid(
            "root.path",
            full.display().to_string(),
            format!("cannot be used: {e}"),
        )),
    }
}

/// Whether the spec asks for a namespace of type `t` (new or joined).
pub fn has_namespace(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

/// Check everything that can be checked without touching the system.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            spec.version().clone(),
            "unsupported version (runrs implements 1.x)",
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "", "is required to create a container"))?;
    validate_process(process, "process")?;

    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "", "is required on Linux"))?;

    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                ns.typ().to_string(),
                "is listed twice",
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    p.display().to_string(),
                    "must be an absolute path",
                ));
            }
            if let Err(e) = std::fs::metadata(p) {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    p.display().to_string(),
                    format!("cannot be joined: {e}"),
                ));
            }
        }
        if ns.typ() == LinuxNamespaceType::Time
            && ns.path().is_none()
            && !Path::new("/proc/self/ns/time").exists()
        {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                "time",
                "this kernel has no time namespaces",
            ));
        }
    }

    let userns = seen.contains(&LinuxNamespaceType::User);
    let uid_maps = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid_maps = linux.gid_mappings().as_deref().unwrap_or_default();
    let joins_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
    if userns && !joins_userns && (uid_maps.is_empty() || gid_maps.is_empty()) {
        return Err(invalid(
            if uid_maps.is_empty() {
                "linux.uidMappings"
            } else {
                "linux.gidMappings"
            },
            "[]",
            "a new user namespace needs uid and gid mappings",
        ));
    }
    if !userns && (!uid_maps.is_empty() || !gid_maps.is_empty()) {
        return Err(invalid(
            "linux.uidMappings",
            format!("{} entries", uid_maps.len() + gid_maps.len()),
            "mappings given but no user namespace requested",
        ));
    }
    for (name, maps) in [("uidMappings", uid_maps), ("gidMappings", gid_maps)] {
        let mut ranges: Vec<(u64, u64, usize)> = Vec::new();
        for (i, m) in maps.iter().enumerate() {
            if m.size() == 0 {
                return Err(invalid(
                    format!("linux.{name}[{i}].size"),
                    "0",
                    "must be greater than zero",
                ));
            }
            let start = u64::from(m.container_id());
            let end = start + u64::from(m.size());
            if end > u64::from(u32::MAX) + 1
                || u64::from(m.host_id()) + u64::from(m.size()) > u64::from(u32::MAX) + 1
            {
                return Err(invalid(
                    format!("linux.{name}[{i}]"),
                    format!("{}:{}:{}", m.container_id(), m.host_id(), m.size()),
                    "range exceeds the 32-bit id space",
                ));
            }
            if let Some((_, _, j)) = ranges.iter().find(|(s, e, _)| start < *e && *s < end) {
                return Err(invalid(
                    format!("linux.{name}[{i}]"),
                    format!("{}:{}:{}", m.container_id(), m.host_id(), m.size()),
                    format!("overlaps linux.{name}[{j}]"),
                ));
            }
            ranges.push((start, end, i));
        }
    }

    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !private_ns(spec, LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "hostname",
            spec.hostname().clone().unwrap_or_default(),
            "setting a hostname needs a private UTS namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty())
        && !private_ns(spec, LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "domainname",
            spec.domainname().clone().unwrap_or_default(),
            "setting a domainname needs a private UTS namespace",
        ));
    }

    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let d = m.destination();
        if !d.is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                d.display().to_string(),
                "must be an absolute path",
            ));
        }
        let typ = m.typ().as_deref().unwrap_or("");
        let opts = m.options().as_deref().unwrap_or_default();
        let is_bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
        if is_bind {
            let src = m.source().as_ref().ok_or_else(|| {
                invalid(
                    format!("mounts[{i}].source"),
                    "",
                    "a bind mount needs a source",
                )
            })?;
            if !src.is_absolute() {
                return Err(invalid(
                    format!("mounts[{i}].source"),
                    src.display().to_string(),
                    "a bind mount source must be an absolute path",
                ));
            }
            if let Err(e) = std::fs::metadata(src) {
                return Err(invalid(
                    format!("mounts[{i}].source"),
                    src.display().to_string(),
                    format!("bind source cannot be used: {e}"),
                ));
            }
        } else if typ.is_empty() {
            return Err(invalid(
                format!("mounts[{i}].type"),
                "",
                "a non-bind mount needs a type",
            ));
        }
        for o in opts {
            crate::rootfs::flags::check_option(o)
                .map_err(|reason| invalid(format!("mounts[{i}].options"), o.clone(), reason))?;
        }
    }

    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        if let Some(p) = paths.iter().flatten().next() {
            if !private_ns(spec, LinuxNamespaceType::Mount) {
                return Err(invalid(
                    field,
                    p.clone(),
                    "restricting paths needs a private mount namespace",
                ));
            }
        }
        for (i, p) in paths.iter().flatten().enumerate() {
            if !p.starts_with('/') {
                return Err(invalid(
                    format!("{field}[{i}]"),
                    p.clone(),
                    "must be an absolute path",
                ));
            }
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() || !d.path().starts_with("/dev") {
            return Err(invalid(
                format!("linux.devices[{i}].path"),
                d.path().display().to_string(),
                "must be an absolute path under /dev",
            ));
        }
    }
    if let Some(p) = spec.root().as_ref().map(|r| r.path()) {
        if p.as_os_str().is_empty() {
            return Err(invalid("root.path", "", "must not be empty"));
        }
    }
    if let Some(prop) = linux.rootfs_propagation() {
        if crate::rootfs::flags::propagation(prop).is_none() {
            return Err(invalid(
                "linux.rootfsPropagation",
                prop.clone(),
                "must be one of shared, slave, private, unbindable (optionally r-prefixed)",
            ));
        }
    }
    Ok(())
}

/// Validate a process spec (init or exec): args, cwd, env.
pub fn validate_process(
    process: &oci_spec::runtime::Process,
    field: &str,
) -> Result<(), SpecError> {
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => {
            return Err(invalid(
                format!("{field}.args"),
                "[]",
                "must name the program to run",
            ))
        }
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            format!("{field}.cwd"),
            process.cwd().display().to_string(),
            "must be an absolute path",
        ));
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') || e.starts_with('=') {
            return Err(invalid(
                format!("{field}.env[{i}]"),
                e.clone(),
                "must be of the form KEY=value",
            ));
        }
    }
    if process.terminal() == Some(true) {
        // the console is set up by init; nothing to check here
    }
    Ok(())
}

/// Whether the container gets its own (new, not joined) namespace of type `t`, or
/// joins one: either way not the runtime's.
pub fn private_ns(spec: &Spec, t: LinuxNamespaceType) -> bool {
    has_namespace(spec, t)
}

/// Whether the container creates a *new* namespace of type `t`.
pub fn new_ns(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t && n.path().is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<(), SpecError> {
        let spec = parse(
            &serde_json::to_vec(&v).expect("json"),
            Path::new("config.json"),
        )?;
        validate(&spec)
    }

    #[test]
    fn accepts_minimal() {
        check(base()).expect("valid");
    }

    #[test]
    fn unknown_namespace_names_field_and_value() {
        let mut v = base();
        v["linux"]["namespaces"][1]["type"] = "foo".into();
        let e = check(v).expect_err("invalid").to_string();
        assert!(e.contains("linux.namespaces[1].type"), "{e}");
        assert!(e.contains("foo"), "{e}");
    }

    #[test]
    fn missing_args() {
        let mut v = base();
        v["process"]["args"] = serde_json::json!([]);
        let e = check(v).expect_err("invalid").to_string();
        assert!(e.contains("process.args"), "{e}");
    }

    #[test]
    fn relative_cwd() {
        let mut v = base();
        v["process"]["cwd"] = "tmp".into();
        let e = check(v).expect_err("invalid").to_string();
        assert!(e.contains("process.cwd") && e.contains("tmp"), "{e}");
    }

    #[test]
    fn userns_without_maps() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "user"}]);
        let e = check(v).expect_err("invalid").to_string();
        assert!(e.contains("uidMappings"), "{e}");
    }

    #[test]
    fn overlapping_maps() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "user"}]);
        v["linux"]["uidMappings"] = serde_json::json!([
            {"containerID": 0, "hostID": 1000, "size": 10},
            {"containerID": 5, "hostID": 2000, "size": 10}
        ]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        let e = check(v).expect_err("invalid").to_string();
        assert!(
            e.contains("uidMappings[1]") && e.contains("overlaps"),
            "{e}"
        );
    }

    #[test]
    fn hostname_needs_uts() {
        let mut v = base();
        v["hostname"] = "x".into();
        let e = check(v).expect_err("invalid").to_string();
        assert!(e.contains("UTS"), "{e}");
    }

    #[test]
    fn masked_paths_need_a_mount_namespace() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([]);
        v["linux"]["maskedPaths"] = serde_json::json!(["/proc/kcore"]);
        let e = check(v).expect_err("invalid").to_string();
        assert!(
            e.contains("linux.maskedPaths") && e.contains("mount namespace"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_namespace() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "pid"}]);
        let e = check(v).expect_err("invalid").to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn bad_json_names_position() {
        let e = parse(b"{\"ociVersion\": 1}", Path::new("config.json"))
            .expect_err("invalid")
            .to_string();
        assert!(e.contains("ociVersion"), "{e}");
    }

    #[test]
    fn relative_rootfs_outside_bundle() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut v = base();
        v["root"]["path"] = "../elsewhere".into();
        let spec = parse(&serde_json::to_vec(&v).expect("json"), Path::new("c")).expect("parse");
        let e = rootfs_path(&spec, dir.path())
            .expect_err("outside")
            .to_string();
        assert!(e.contains("root.path") && e.contains("../elsewhere"), "{e}");
    }
}
