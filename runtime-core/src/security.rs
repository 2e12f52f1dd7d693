//! The security checks `create` makes before it creates anything: LSM labels the host
//! cannot apply, id mappings an unprivileged runtime cannot write, and the seccomp
//! profile, compiled here once so init only has to load it. A failure leaves nothing
//! behind because nothing exists yet.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Process, Spec};

use crate::error::Error;
use crate::seccomp::{self, Program};
use crate::spec::SpecError;

/// Check the spec's security settings; returns the compiled seccomp program, if any.
pub fn preflight(spec: &Spec) -> Result<Option<Program>, Error> {
    crate::lsm::check(spec, None)?;
    let (uid, gid) = crate::sys::effective_ids();
    check_id_maps(spec, uid, gid)?;
    compile_seccomp(spec)
}

/// The checks of `exec`: the exec'd process gets the container's seccomp profile (as
/// with runc) and its own labels, else the container's.
pub fn preflight_exec(spec: &Spec, process: &Process) -> Result<Option<Program>, Error> {
    crate::lsm::check(spec, Some(process))?;
    compile_seccomp(spec)
}

fn compile_seccomp(spec: &Spec) -> Result<Option<Program>, Error> {
    let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let c = seccomp::compile(profile)?;
    if !c.ignored.is_empty() {
        tracing::warn!(
            "seccomp: {} syscall name(s) unknown to libseccomp {} ignored: {}",
            c.ignored.len(),
            seccomp::library_version(),
            c.ignored.join(", ")
        );
    }
    Ok(Some(c.program))
}

fn render(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{}:{}:{}", m.container_id(), m.host_id(), m.size()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Without privileges a process may only map its own id, once (user_namespaces(7));
/// wider mappings go through the setuid newuidmap/newgidmap helpers (uidmap package),
/// which check them against /etc/subuid and /etc/subgid, as runc does. Refused here only
/// when a helper is missing.
pub fn check_id_maps(spec: &Spec, euid: u32, egid: u32) -> Result<(), SpecError> {
    check_id_maps_with(spec, euid, egid, &crate::idmap::tool)
}

fn check_id_maps_with(
    spec: &Spec,
    euid: u32,
    egid: u32,
    tool: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<(), SpecError> {
    if euid == 0 || !crate::spec::new_ns(spec, LinuxNamespaceType::User) {
        return Ok(());
    }
    let l = spec.linux().as_ref();
    for (field, maps, own, kind, helper) in [
        (
            "linux.uidMappings",
            l.and_then(|l| l.uid_mappings().as_deref()),
            euid,
            "uid",
            "newuidmap",
        ),
        (
            "linux.gidMappings",
            l.and_then(|l| l.gid_mappings().as_deref()),
            egid,
            "gid",
            "newgidmap",
        ),
    ] {
        let maps = maps.unwrap_or_default();
        let triples: Vec<[u32; 3]> = maps
            .iter()
            .map(|m| [m.container_id(), m.host_id(), m.size()])
            .collect();
        if maps.is_empty() || (!crate::idmap::own_id_only(&triples, own) && tool(helper).is_none())
        {
            return Err(SpecError::Invalid {
                field: field.into(),
                value: render(maps),
                reason: format!(
                    "runrs runs unprivileged (euid {euid}) and can only map its own {kind} {own} \
                     with size 1 by itself; other mappings need {helper} (the uidmap package), \
                     which is not installed"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uid_host: u32, size: u32) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [{"type": "user"}, {"type": "mount"}],
                "uidMappings": [{"containerID": 0, "hostID": uid_host, "size": size}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}
        }))
        .expect("spec")
    }

    #[test]
    fn unprivileged_maps_need_the_helpers_beyond_own_id() {
        let none = |_: &str| None;
        let found = |t: &str| Some(PathBuf::from("/usr/bin").join(t));
        check_id_maps_with(&spec(1000, 1), 1000, 1000, &none).expect("own ids");
        check_id_maps_with(&spec(100_000, 65536), 0, 0, &none).expect("root maps anything");
        check_id_maps_with(&spec(100_000, 65536), 1000, 1000, &found).expect("newuidmap");
        let e = check_id_maps_with(&spec(100_000, 65536), 1000, 1000, &none)
            .expect_err("needs newuidmap")
            .to_string();
        assert!(
            e.contains("linux.uidMappings")
                && e.contains("0:100000:65536")
                && e.contains("newuidmap"),
            "{e}"
        );
        let e = check_id_maps_with(&spec(1000, 1), 1000, 2000, &none)
            .expect_err("gid")
            .to_string();
        assert!(
            e.contains("linux.gidMappings") && e.contains("gid 2000"),
            "{e}"
        );
    }
}
