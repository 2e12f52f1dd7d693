//! The OCI features document (`runrs features`, and the shim's `-info`): what this
//! build of runrs implements. Per the spec it describes the runtime, not the host
//! ("irrelevant to the actual availability of the features in the host operating
//! system"), so intelRdt, AppArmor and SELinux are enabled on a machine without RDT
//! hardware or those security modules (a config asking for them there is refused with a
//! clear error), and a feature runrs does not implement says `enabled: false`.
//! Every list is taken from the module that implements it, so they cannot drift.
//! See the OCI runtime-spec features.md and features-linux.md.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::namespaces::Kind;
use crate::state::OCI_VERSION;

/// The lowest config.json `ociVersion` runrs accepts.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// The features document, fields in the order runc prints them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Lowest accepted `ociVersion`.
    pub oci_version_min: &'static str,
    /// Highest accepted `ociVersion`.
    pub oci_version_max: &'static str,
    /// Recognised hook kinds.
    pub hooks: Vec<&'static str>,
    /// Mount options runrs interprets.
    pub mount_options: Vec<&'static str>,
    /// Linux features.
    pub linux: Linux,
    /// Implementation annotations.
    pub annotations: BTreeMap<&'static str, String>,
}

/// `linux` of the features document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    /// Namespace types.
    pub namespaces: Vec<String>,
    /// Capability names.
    pub capabilities: Vec<&'static str>,
    /// Cgroup managers.
    pub cgroup: Cgroup,
    /// Seccomp.
    pub seccomp: Seccomp,
    /// AppArmor.
    pub apparmor: Enabled,
    /// SELinux.
    pub selinux: Enabled,
    /// Intel RDT.
    pub intel_rdt: Enabled,
    /// Mount extensions.
    pub mount_extensions: MountExtensions,
}

/// `linux.cgroup`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cgroup {
    /// cgroup v1 (and hybrid) hierarchies.
    pub v1: bool,
    /// The unified hierarchy.
    pub v2: bool,
    /// The system systemd driver.
    pub systemd: bool,
    /// The user systemd driver.
    pub systemd_user: bool,
    /// The rdma controller.
    pub rdma: bool,
}

/// `linux.seccomp`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    /// Implemented by this build.
    pub enabled: bool,
    /// Recognised actions.
    pub actions: Vec<String>,
    /// Recognised argument operators.
    pub operators: Vec<String>,
    /// Recognised architectures.
    pub archs: Vec<String>,
    /// Recognised filter flags.
    pub known_flags: Vec<String>,
    /// Filter flags this kernel and libseccomp support.
    pub supported_flags: Vec<String>,
}

/// A section that only says whether it is implemented.
#[derive(Debug, Clone, Serialize)]
pub struct Enabled {
    /// Implemented by this build.
    pub enabled: bool,
}

/// `linux.mountExtensions`.
#[derive(Debug, Clone, Serialize)]
pub struct MountExtensions {
    /// Idmapped mounts.
    pub idmap: Enabled,
}

/// The features of this build.
pub fn features() -> Features {
    let mut namespaces: Vec<String> = Kind::ORDER
        .iter()
        .map(|k| {
            serde_json::to_value(k)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .expect("namespace kinds serialise as strings")
        })
        .collect();
    namespaces.sort();
    let mut annotations = BTreeMap::new();
    annotations.insert("io.github.runrs.version", env!("CARGO_PKG_VERSION").into());
    annotations.insert("io.github.runrs.checkpoint.enabled", "false".into());
    annotations.insert(
        "io.github.seccomp.libseccomp.version",
        crate::seccomp::library_version(),
    );
    Features {
        oci_version_min: OCI_VERSION_MIN,
        oci_version_max: OCI_VERSION,
        hooks: crate::hooks::KINDS.to_vec(),
        mount_options: crate::rootfs::flags::known_options(),
        linux: Linux {
            namespaces,
            capabilities: crate::capabilities::NAMES.to_vec(),
            // cgroupfs on v1, v2 and hybrid hosts; no systemd driver in this build (the
            // CLI refuses --systemd-cgroup); no rdma limits.
            cgroup: Cgroup {
                v1: true,
                v2: true,
                systemd: false,
                systemd_user: false,
                rdma: false,
            },
            seccomp: seccomp(),
            // Labels are applied where the host runs the LSM, refused where it does not
            // (crate::lsm).
            apparmor: Enabled { enabled: true },
            selinux: Enabled { enabled: true },
            intel_rdt: Enabled { enabled: true },
            // Mounts with idmap/ridmap are refused (rootfs::flags::check_option).
            mount_extensions: MountExtensions {
                idmap: Enabled { enabled: false },
            },
        },
        annotations,
    }
}

/// Names of enum variants as the spec spells them (their serde form).
fn names<T: Serialize>(values: &[T]) -> Vec<String> {
    let mut v: Vec<String> = values
        .iter()
        .map(|x| {
            serde_json::to_value(x)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .expect("spec enums serialise as strings")
        })
        .collect();
    v.sort();
    v
}

/// Every action, operator, architecture and flag of the spec's seccomp schema: the
/// compiler (crate::seccomp) matches all of them exhaustively. Flags the kernel lacks are
/// left out of supportedFlags (TSYNC is always accepted: init is single-threaded).
fn seccomp() -> Seccomp {
    use crate::seccomp::kernel;
    use oci_spec::runtime::{
        Arch as A, LinuxSeccompAction as Act, LinuxSeccompFilterFlag as F,
        LinuxSeccompOperator as Op,
    };
    let supported = |f: &F| match f {
        F::SeccompFilterFlagTsync => true,
        F::SeccompFilterFlagLog => kernel::flag_supported(kernel::FLAG_LOG).is_ok(),
        F::SeccompFilterFlagSpecAllow => kernel::flag_supported(kernel::FLAG_SPEC_ALLOW).is_ok(),
        F::SeccompFilterFlagWaitKillableRecv => {
            kernel::flag_supported(kernel::FLAG_WAIT_KILLABLE_RECV | kernel::FLAG_NEW_LISTENER)
                .is_ok()
        }
    };
    let flags = [
        F::SeccompFilterFlagLog,
        F::SeccompFilterFlagSpecAllow,
        F::SeccompFilterFlagTsync,
        F::SeccompFilterFlagWaitKillableRecv,
    ];
    let supported_flags: Vec<F> = flags.iter().filter(|f| supported(f)).cloned().collect();
    Seccomp {
        enabled: true,
        actions: names(&[
            Act::ScmpActKill,
            Act::ScmpActKillProcess,
            Act::ScmpActKillThread,
            Act::ScmpActTrap,
            Act::ScmpActErrno,
            Act::ScmpActTrace,
            Act::ScmpActAllow,
            Act::ScmpActLog,
            Act::ScmpActNotify,
        ]),
        operators: names(&[
            Op::ScmpCmpNe,
            Op::ScmpCmpLt,
            Op::ScmpCmpLe,
            Op::ScmpCmpEq,
            Op::ScmpCmpGe,
            Op::ScmpCmpGt,
            Op::ScmpCmpMaskedEq,
        ]),
        archs: names(&[
            A::ScmpArchX86,
            A::ScmpArchX86_64,
            A::ScmpArchX32,
            A::ScmpArchArm,
            A::ScmpArchAarch64,
            A::ScmpArchMips,
            A::ScmpArchMips64,
            A::ScmpArchMips64n32,
            A::ScmpArchMipsel,
            A::ScmpArchMipsel64,
            A::ScmpArchMipsel64n32,
            A::ScmpArchPpc,
            A::ScmpArchPpc64,
            A::ScmpArchPpc64le,
            A::ScmpArchS390,
            A::ScmpArchS390x,
            A::ScmpArchParisc,
            A::ScmpArchParisc64,
            A::ScmpArchRiscv64,
            A::ScmpArchLoongarch64,
            A::ScmpArchM68k,
            A::ScmpArchSh,
            A::ScmpArchSheb,
        ]),
        known_flags: names(&flags),
        supported_flags: names(&supported_flags),
    }
}

/// The document as compact JSON bytes (for the shim's `-info` RuntimeInfo.features,
/// type URL `types.containerd.io/opencontainers/runtime-spec/1/features/Features`).
pub fn json() -> Vec<u8> {
    serde_json::to_vec(&features()).expect("the features document always serialises")
}

/// The document as runc prints it: JSON indented by four spaces.
pub fn pretty() -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    features()
        .serialize(&mut ser)
        .expect("the features document always serialises");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_oci_schema_model() {
        // oci-spec's Features type mirrors the spec's schema; unknown or mistyped
        // fields would fail here.
        let f: oci_spec::runtime::Features = serde_json::from_slice(&json()).expect("schema");
        assert_eq!(f.oci_version_min(), "1.0.0");
        assert_eq!(f.oci_version_max(), OCI_VERSION);
        let hooks = f.hooks().clone().expect("hooks");
        assert_eq!(hooks.len(), 6);
        let linux = f.linux().clone().expect("linux");
        assert_eq!(linux.namespaces().as_ref().map(Vec::len), Some(8));
        assert_eq!(linux.capabilities().as_ref().map(Vec::len), Some(41));
        assert_eq!(
            linux.intel_rdt().as_ref().and_then(|r| *r.enabled()),
            Some(true)
        );
        let sc = linux.seccomp().clone().expect("seccomp");
        assert_eq!(*sc.enabled(), Some(true));
        assert_eq!(sc.actions().as_ref().map(Vec::len), Some(9));
        assert_eq!(sc.operators().as_ref().map(Vec::len), Some(7));
        let known = sc.known_flags().clone().expect("known");
        let supported = sc.supported_flags().clone().expect("supported");
        assert!(supported.iter().all(|f| known.contains(f)), "{supported:?}");
        assert!(supported.contains(&"SECCOMP_FILTER_FLAG_TSYNC".to_string()));
    }

    #[test]
    fn every_listed_mount_option_is_interpreted() {
        for o in crate::rootfs::flags::known_options() {
            let m = crate::rootfs::flags::parse(&[o.to_string()]);
            assert!(
                m.data.is_empty(),
                "{o} would be passed to the filesystem as data"
            );
        }
    }

    #[test]
    fn pretty_uses_four_spaces() {
        let p = pretty();
        assert!(p.starts_with("{\n    \"ociVersionMin\""), "{p}");
    }
}
