//! What the shim keeps in and mounts on a container's bundle directory: containerd's
//! rootfs mounts (mounted at Create, undone on a failed Create, at Delete and by
//! `containerd-shim-runrs-v2 delete`) and the state root recorded for `delete`.
//!
//! This stays in the shim rather than in runtime-core's create/delete: only containerd
//! hands over rootfs mounts, a Create that restores a checkpoint mounts them before any
//! runtime-core container exists (criu restores at Start), and `shim delete` must undo
//! them when no state is left to load.

use std::path::{Path, PathBuf};

use runtime_core::RootfsMount;

use crate::error::{Result, ShimError};

/// Default state root of the shim (runc's Root option overrides it).
pub const DEFAULT_ROOT: &str = "/run/containerd/runrs";

/// File in the bundle recording the state root used at Create (for `delete`).
const ROOT_FILE: &str = ".runrs-root";

/// The state root a bundle's container was created under (written at Create).
pub fn recorded_root(bundle: &Path) -> Option<PathBuf> {
    std::fs::read_to_string(bundle.join(ROOT_FILE))
        .ok()
        .map(|s| PathBuf::from(s.trim()))
}

/// Record the state root for `delete` (best effort: `delete` falls back to the default).
pub fn record_root(bundle: &Path, root: &Path) {
    if let Err(e) = std::fs::write(bundle.join(ROOT_FILE), root.display().to_string()) {
        tracing::warn!("record the state root in {}: {e}", bundle.display());
    }
}

/// Forget the recorded state root (the container is gone).
pub fn forget_root(bundle: &Path) {
    let _ = std::fs::remove_file(bundle.join(ROOT_FILE));
}

/// containerd's rootfs, mounted on `<bundle>/rootfs` by the shim.
#[derive(Clone, Debug)]
pub struct Rootfs(PathBuf);

impl Rootfs {
    /// Mount `mounts` on `<bundle>/rootfs` (None: nothing to mount, the bundle's rootfs
    /// is ready). A failure leaves nothing mounted.
    pub fn mount(bundle: &Path, mounts: &[RootfsMount]) -> Result<Option<Rootfs>> {
        if mounts.is_empty() {
            return Ok(None);
        }
        let target = bundle.join("rootfs");
        match std::fs::create_dir(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(ShimError::Internal(format!(
                    "create {}: {e}",
                    target.display()
                )))
            }
        }
        runtime_core::mount_all(mounts, &target)
            .map_err(|e| ShimError::Internal(runtime_core::chain(&e)))?;
        Ok(Some(Rootfs(target)))
    }

    /// Unmount it (every layer stacked on the target).
    pub fn unmount(&self) -> Result<()> {
        unmount(&self.0)
    }
}

/// Unmount whatever is mounted on `<bundle>/rootfs` (`shim delete`, no state needed).
pub fn unmount_rootfs(bundle: &Path) -> Result<()> {
    unmount(&bundle.join("rootfs"))
}

fn unmount(target: &Path) -> Result<()> {
    runtime_core::unmount_all(target).map_err(|e| ShimError::Internal(runtime_core::chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_root_round_trips_and_is_forgotten() {
        let dir = std::env::temp_dir().join(format!("runrs-shim-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert_eq!(recorded_root(&dir), None);
        record_root(&dir, Path::new("/run/x/ns"));
        assert_eq!(recorded_root(&dir), Some(PathBuf::from("/run/x/ns")));
        forget_root(&dir);
        assert_eq!(recorded_root(&dir), None);
        assert!(Rootfs::mount(&dir, &[])
            .expect("nothing to mount")
            .is_none());
        std::fs::remove_dir_all(&dir).expect("rm");
    }
}
