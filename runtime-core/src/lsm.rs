//! Linux security module labels: `process.apparmorProfile`, `process.selinuxLabel` and
//! `linux.mountLabel`.
//!
//! The runtime refuses, before creating anything, a label the host cannot apply (no
//! AppArmor, or no SELinux): silently running a container unconfined is worse than not
//! running it. Init applies the exec labels by writing its own
//! `/proc/<pid>/task/<pid>/attr/...` through the host procfs descriptor it opened before
//! entering the container, refusing symlinks, mount crossings and anything that is not
//! procfs, so a container mount cannot redirect the write (CVE-2025-52881). The label
//! takes effect at the next execve. The mount label is passed as a `context=` mount
//! option (see [`crate::rootfs::mounts`]).
//!
//! Neither LSM is enabled on the development machine, so the apply path is exercised
//! only by review; see apparmor(7), proc(5) "/proc/pid/attr", selinux(8).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};

use crate::sys::c;
use crate::sys::{self, resolve, SysError};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SELINUX_MAGIC: i64 = 0xf97c_ff8c;

/// Label failures.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    /// The spec asks for a label of a security module the host does not run.
    #[error("{field} {value:?}: this host does not support {lsm} ({why}); remove the field or run on a host with {lsm} enabled")]
    Unsupported {
        /// JSON path of the field.
        field: &'static str,
        /// The requested label.
        value: String,
        /// AppArmor or SELinux.
        lsm: &'static str,
        /// What was checked.
        why: &'static str,
    },
    /// Writing the exec label failed.
    #[error("set {lsm} exec label {label:?}")]
    Apply {
        /// AppArmor or SELinux.
        lsm: &'static str,
        /// The label.
        label: String,
        /// The failed step.
        #[source]
        source: SysError,
    },
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// The labels a process gets at its execve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecLabels {
    /// AppArmor profile.
    pub apparmor: Option<String>,
    /// SELinux process label.
    pub selinux: Option<String>,
}

impl ExecLabels {
    /// The labels of the container's process, or of `exec`'s: its own where it sets
    /// one, else the container's (as runc does for `runc exec`).
    pub fn of(spec: &Spec, exec: Option<&Process>) -> ExecLabels {
        let container = spec.process().as_ref();
        let pick = |f: fn(&Process) -> &Option<String>| {
            exec.and_then(|p| nonempty(f(p)))
                .or_else(|| container.and_then(|p| nonempty(f(p))))
                .map(str::to_string)
        };
        ExecLabels {
            apparmor: pick(Process::apparmor_profile),
            selinux: pick(Process::selinux_label),
        }
    }

    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.apparmor.is_none() && self.selinux.is_none()
    }
}

/// Whether AppArmor is enabled (runc's check: securityfs shows apparmor and the module
/// parameter says Y).
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").is_dir()
        && std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'))
}

/// Whether SELinux is enabled: selinuxfs is mounted and processes carry labels.
pub fn selinux_enabled() -> bool {
    let fs = ["/sys/fs/selinux", "/selinux"].into_iter().any(|p| {
        sys::open(Path::new(p), c::O_PATH | c::O_DIRECTORY, 0)
            .and_then(|fd| sys::fstatfs_type(fd.as_fd()))
            .is_ok_and(|m| m == SELINUX_MAGIC)
    });
    fs && std::fs::read_to_string("/proc/self/attr/current").is_ok_and(|c| {
        !c.trim_end_matches(['\0', '\n']).is_empty() && c.trim_end_matches(['\0', '\n']) != "kernel"
    })
}

/// Refuse labels this host cannot apply. Runs before anything is created; `exec` is
/// the process of `runrs exec` (then the container's mount label does not matter).
pub fn check(spec: &Spec, exec: Option<&Process>) -> Result<(), LsmError> {
    let labels = ExecLabels::of(spec, exec);
    if let Some(p) = labels.apparmor.as_deref() {
        if !apparmor_enabled() {
            return Err(LsmError::Unsupported {
                field: "process.apparmorProfile",
                value: p.into(),
                lsm: "AppArmor",
                why: "no /sys/kernel/security/apparmor, or /sys/module/apparmor/parameters/enabled is not Y",
            });
        }
    }
    let selinux_why = "selinuxfs is not mounted or processes carry no SELinux context";
    if let Some(l) = labels.selinux.as_deref() {
        if !selinux_enabled() {
            return Err(LsmError::Unsupported {
                field: "process.selinuxLabel",
                value: l.into(),
                lsm: "SELinux",
                why: selinux_why,
            });
        }
    }
    let mount_label = spec
        .linux()
        .as_ref()
        .and_then(|l| nonempty(l.mount_label()));
    if let Some(l) = mount_label.filter(|_| exec.is_none()) {
        if !selinux_enabled() {
            return Err(LsmError::Unsupported {
                field: "linux.mountLabel",
                value: l.into(),
                lsm: "SELinux",
                why: selinux_why,
            });
        }
    }
    Ok(())
}

/// Write `value` to the attribute file `rel` (below the host procfs root `proc`).
fn write_attr(proc: BorrowedFd<'_>, rel: &Path, value: &str) -> Result<(), SysError> {
    let fd = sys::openat2(
        proc,
        rel,
        c::O_WRONLY,
        0,
        resolve::BENEATH | resolve::NO_SYMLINKS | resolve::NO_MAGICLINKS | resolve::NO_XDEV,
    )?;
    if sys::fstatfs_type(fd.as_fd())? != PROC_SUPER_MAGIC {
        return Err(SysError::new(
            "verify procfs",
            rel.display().to_string(),
            std::io::Error::from_raw_os_error(c::EXDEV),
        ));
    }
    sys::write_all(fd.as_fd(), value.as_bytes(), &rel.display().to_string())
}

/// Set the exec labels of the calling (single-threaded) process, whose pid in the
/// procfs `proc` is `pid`. Call after the rootfs is switched and before no_new_privs.
pub fn apply_exec_labels(
    labels: &ExecLabels,
    proc: BorrowedFd<'_>,
    pid: i32,
) -> Result<(), LsmError> {
    let attr = PathBuf::from(format!("{pid}/task/{pid}/attr"));
    if let Some(profile) = labels.apparmor.as_deref() {
        // The LSM-specific file (Linux 5.8+) first, the shared one on older kernels.
        let cmd = format!("exec {profile}");
        let r = match write_attr(proc, &attr.join("apparmor/exec"), &cmd) {
            Err(e) if e.errno() == Some(c::ENOENT) => write_attr(proc, &attr.join("exec"), &cmd),
            r => r,
        };
        r.map_err(|source| LsmError::Apply {
            lsm: "AppArmor",
            label: profile.into(),
            source,
        })?;
    }
    if let Some(label) = labels.selinux.as_deref() {
        write_attr(proc, &attr.join("exec"), label).map_err(|source| LsmError::Apply {
            lsm: "SELinux",
            label: label.into(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn refuses_labels_the_host_lacks() {
        let s = spec(serde_json::json!({"ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "apparmorProfile": "docker-default"}}));
        match check(&s, None) {
            Ok(()) => assert!(apparmor_enabled(), "accepted without AppArmor"),
            Err(e) => {
                assert!(!apparmor_enabled());
                let m = e.to_string();
                assert!(
                    m.contains("process.apparmorProfile")
                        && m.contains("docker-default")
                        && m.contains("AppArmor"),
                    "{m}"
                );
            }
        }
        let s = spec(serde_json::json!({"ociVersion": "1.0.2",
            "linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}));
        match check(&s, None) {
            Ok(()) => assert!(selinux_enabled(), "accepted without SELinux"),
            Err(e) => assert!(e.to_string().contains("linux.mountLabel"), "{e}"),
        }
        // Empty labels ask for nothing.
        let s = spec(serde_json::json!({"ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "apparmorProfile": "", "selinuxLabel": ""}}));
        check(&s, None).expect("empty labels");
    }

    #[test]
    fn exec_inherits_the_container_labels_unless_it_sets_its_own() {
        let s = spec(serde_json::json!({"ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "apparmorProfile": "c-profile", "selinuxLabel": "c-label"}}));
        let own: Process = serde_json::from_value(serde_json::json!({
            "user": {"uid": 0, "gid": 0}, "cwd": "/", "apparmorProfile": "e-profile"}))
        .expect("process");
        let l = ExecLabels::of(&s, Some(&own));
        assert_eq!(l.apparmor.as_deref(), Some("e-profile"));
        assert_eq!(l.selinux.as_deref(), Some("c-label"));
        assert_eq!(
            ExecLabels::of(&s, None).apparmor.as_deref(),
            Some("c-profile")
        );
        let bare = spec(serde_json::json!({"ociVersion": "1.0.2"}));
        assert!(ExecLabels::of(&bare, None).is_empty());
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "test scratch directory")]
    fn attr_writes_stay_in_procfs() {
        // A fake "procfs" (a temp dir) is refused even where the file exists.
        let tmp = tempfile::tempdir().expect("tmp");
        let attr = tmp.path().join("1/task/1/attr");
        std::fs::create_dir_all(&attr).expect("mkdir");
        std::fs::write(attr.join("exec"), "").expect("write");
        let dir = sys::open(tmp.path(), c::O_PATH | c::O_DIRECTORY, 0).expect("open");
        let e =
            write_attr(dir.as_fd(), Path::new("1/task/1/attr/exec"), "x").expect_err("not procfs");
        assert_eq!(e.errno(), Some(c::EXDEV));
        assert_eq!(
            std::fs::read_to_string(attr.join("exec")).expect("read"),
            "",
            "nothing written"
        );
        // A symlink on the way is refused.
        std::os::unix::fs::symlink("1", tmp.path().join("2")).expect("symlink");
        let e = write_attr(dir.as_fd(), Path::new("2/task/1/attr/exec"), "x").expect_err("symlink");
        assert_eq!(e.errno(), Some(c::ELOOP));
    }
}
