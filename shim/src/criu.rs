//! Restoring a checkpoint through containerd: Create records what to restore, Start
//! restores it (as containerd-shim-runc-v2 does), with the shim's defaults for what
//! containerd leaves out: criu's work directory (`<bundle>/criu-work` unless the
//! CriuWorkPath option names one) and the criu binary (`criu` on PATH).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use runtime_core::container::RestoreOptions;
use runtime_core::process::spawn::InitStdio;

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
        let core = runtime_core::container::restore(o)?;
        let handle = runtime_core::container::process_handle(core.pid());
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
