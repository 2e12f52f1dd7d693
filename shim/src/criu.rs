//! Restoring a checkpoint through containerd: Create records what to restore, Start
//! restores it (as containerd-shim-runc-v2 does), with the shim's defaults for what
//! containerd leaves out: criu's work directory (`<bundle>/criu-work` unless the
//! CriuWorkPath option names one) and the criu binary (`criu` on PATH).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use runtime_core::InitStdio;
use runtime_core::RestoreOptions;

use crate::console;
use crate::error::Result;

/// What Create prepared for restoring a checkpoint at Start.
pub struct PendingRestore {
    /// The checkpoint image directory.
    pub image: PathBuf,
    /// criu's work directory.
    pub work: PathBuf,
    /// The state root.
    pub root: PathBuf,
    /// The new stdio of the restored process.
    pub stdio: InitStdio,
    /// Console socket pair for a terminal.
    pub console: Option<console::Pair>,
    /// criu binary.
    pub criu: PathBuf,
    /// The systemd cgroup driver (SystemdCgroup).
    pub systemd_cgroup: bool,
}

/// A restored container: runtime-core's, the init's pidfd, the pty master if any.
pub struct Restored {
    /// The runtime-core container.
    pub core: runtime_core::Container,
    /// A pidfd of the restored init (None: already gone).
    pub handle: Option<OwnedFd>,
    /// The pty master of a terminal container.
    pub master: Option<OwnedFd>,
}

/// CRI's annotation of a container's kind ("sandbox" or "container").
const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// CRI's annotation of a container's pod sandbox id.
const CRI_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// criu's work directory for a checkpoint through containerd's CRI plugin
/// (CheckpointContainer). CRI builds the archive's top level (`dump.log`, `stats-dump`)
/// from its own directory for the container, and names it as the work path only to
/// runtimes called `io.containerd.runc.v2`; to any other it sends no options, so
/// criu's files would land among the images. The shim finds that directory as CRI
/// does: CRI mounts the pod's files (hosts, hostname, resolv.conf) from
/// `<cri root>/sandboxes/<sandbox id>/`, and the container's directory is
/// `<cri root>/containers/<id>`; containerd 2.1 makes `ctrd-checkpoint` in it just
/// before the checkpoint and archives that (2.0 copies the two files from the
/// container's directory). None for a container that is not CRI's or when the
/// directory does not exist.
pub fn cri_work_dir(spec: &oci_spec::runtime::Spec, id: &str) -> Option<PathBuf> {
    let ann = spec.annotations().as_ref()?;
    if ann.get(CRI_CONTAINER_TYPE).map(String::as_str) != Some("container") {
        return None;
    }
    let sandbox = ann.get(CRI_SANDBOX_ID)?;
    if Path::new(id).file_name()? != id {
        return None;
    }
    spec.mounts()
        .iter()
        .flatten()
        .filter_map(|m| m.source().as_deref()?.parent())
        .filter(|d| {
            d.file_name().is_some_and(|n| n == sandbox.as_str())
                && d.parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "sandboxes")
        })
        .find_map(|d| {
            let w = d.parent()?.parent()?.join("containers").join(id);
            let staged = w.join("ctrd-checkpoint");
            if staged.is_dir() {
                Some(staged)
            } else {
                w.is_dir().then_some(w)
            }
        })
}

/// `o` with [`cri_work_dir`] as its work path when the request named none.
pub fn with_cri_work_dir(
    mut o: runtime_core::CheckpointOptions,
    spec: &oci_spec::runtime::Spec,
    id: &str,
) -> runtime_core::CheckpointOptions {
    if o.work_path.is_none() {
        o.work_path = cri_work_dir(spec, id);
        if let Some(w) = &o.work_path {
            tracing::info!("criu work directory: CRI's {}", w.display());
        }
    }
    o
}

impl PendingRestore {
    /// A restore of `image` into a container of `bundle`, with the shim's defaults.
    pub fn new(
        bundle: &Path,
        root: PathBuf,
        image: PathBuf,
        work: Option<PathBuf>,
        stdio: InitStdio,
        console: Option<console::Pair>,
    ) -> Self {
        PendingRestore {
            image,
            work: work.unwrap_or_else(|| bundle.join("criu-work")),
            root,
            stdio,
            console,
            criu: PathBuf::from("criu"),
            systemd_cgroup: false,
        }
    }

    /// Restore container `id` of `bundle` (blocking).
    pub fn restore(self, id: &str, bundle: PathBuf) -> Result<Restored> {
        let (receiver, console_socket) = console::split(self.console);
        if let Err(e) = std::fs::create_dir_all(&self.work) {
            tracing::warn!("create criu work dir {}: {e}", self.work.display());
        }
        let mut o = RestoreOptions::new(id, bundle, self.root, self.image);
        o.work_path = Some(self.work);
        o.criu = self.criu;
        o.stdio = self.stdio;
        o.console_socket = console_socket;
        o.systemd_cgroup = self.systemd_cgroup;
        let core = runtime_core::restore(o)?;
        let handle = runtime_core::process_handle(core.pid());
        let master = receiver.map(console::Receiver::master).transpose()?;
        Ok(Restored {
            core,
            handle,
            master,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "test scratch directory")]
    fn cri_work_dir_is_cris_container_dir() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("io.containerd.grpc.v1.cri");
        std::fs::create_dir_all(root.join("containers/c1")).expect("mkdir");
        let spec = |ty: &str, sandbox: &str| -> oci_spec::runtime::Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2",
                "annotations": {
                    "io.kubernetes.cri.container-type": ty,
                    "io.kubernetes.cri.sandbox-id": sandbox,
                },
                "mounts": [
                    {"destination": "/proc", "type": "proc", "source": "proc"},
                    {"destination": "/etc/hosts", "type": "bind",
                     "source": root.join("sandboxes/s1/hosts")},
                ],
            }))
            .expect("spec")
        };
        assert_eq!(
            cri_work_dir(&spec("container", "s1"), "c1"),
            Some(root.join("containers/c1"))
        );
        // containerd 2.1 stages the archive in ctrd-checkpoint.
        std::fs::create_dir(root.join("containers/c1/ctrd-checkpoint")).expect("mkdir");
        assert_eq!(
            cri_work_dir(&spec("container", "s1"), "c1"),
            Some(root.join("containers/c1/ctrd-checkpoint"))
        );
        // Not CRI's container, another pod's files, no such directory, a bad id.
        assert_eq!(cri_work_dir(&spec("sandbox", "s1"), "c1"), None);
        assert_eq!(cri_work_dir(&spec("container", "s2"), "c1"), None);
        assert_eq!(cri_work_dir(&spec("container", "s1"), "c2"), None);
        assert_eq!(cri_work_dir(&spec("container", "s1"), "../c1"), None);
        let plain: oci_spec::runtime::Spec =
            serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2"})).expect("spec");
        assert_eq!(cri_work_dir(&plain, "c1"), None);
    }

    #[test]
    fn defaults_fill_what_containerd_leaves_out() {
        let b = Path::new("/b");
        let p = PendingRestore::new(
            b,
            "/r".into(),
            "/img".into(),
            None,
            InitStdio::default(),
            None,
        );
        assert_eq!(p.work, Path::new("/b/criu-work"));
        assert_eq!(p.criu, Path::new("criu"));
        let p = PendingRestore::new(
            b,
            "/r".into(),
            "/img".into(),
            Some("/w".into()),
            InitStdio::default(),
            None,
        );
        assert_eq!(p.work, Path::new("/w"));
    }
}
