//! `checkpoint`: dump a running (or paused) container with CRIU into an image
//! directory, as runc does: the container's cgroup is frozen by criu, its external
//! mounts and namespaces declared, its init's stdio and its config and state saved
//! beside the images. Without `leave_running` criu kills the container's processes
//! after the dump: the container is then stopped (the CLI deletes it, like runc; a shim
//! reports the init's exit and deletes it when containerd asks).
//! See criu.org "Dump" and runc's checkpoint.go.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Duration;

use runrs_proto::criu::{
    CriuCgMode, CriuFeatures, CriuNetworkLockMethod, CriuOpts, CriuPageServerInfo, CriuReqType,
    ExtMountMap,
};

use super::Container;
use crate::cgroups::{Hierarchies, Mode, UNIFIED};
use crate::criu::image::{self, ImageDir, Meta};
use crate::criu::mounts::{self, Layout};
use crate::criu::rpc::{request, Swrk, SwrkStdio};
use crate::criu::{CgroupsMode, CheckpointOptions, Criu, CriuError};
use crate::error::Error;
use crate::namespaces::Kind;
use crate::state::{self, Status};
use crate::sys;
use crate::sys::c;

impl Container {
    /// Checkpoint the container into `opts.image_path`. See [`CheckpointOptions`].
    /// Unless it keeps running, the container's recorded status becomes stopped in
    /// `self`; saving that is the caller's (the one writer of its state).
    pub fn checkpoint(&mut self, opts: &CheckpointOptions) -> Result<(), Error> {
        let status = self.status();
        if !matches!(status, Status::Running | Status::Paused) {
            return Err(Error::WrongState {
                id: self.id().to_string(),
                status,
                action: "checkpoint",
                want: "running or paused",
            });
        }
        if opts.lazy_pages && opts.page_server.is_none() {
            return Err(CriuError::Unsupported(
                "--lazy-pages needs --page-server ADDRESS:PORT: the restoring side's `criu lazy-pages` fetches the memory from it".into(),
            )
            .into());
        }
        let criu = Criu::locate(&opts.criu)?;
        check_features(&criu, opts)?;

        let images = ImageDir::create("image directory", &opts.image_path)?;
        let work = match &opts.work_path {
            Some(p) => Some(ImageDir::create("work directory", p)?),
            None => None,
        };
        let pid = self.pid();
        let spec = &self.state.config;
        let hier = Hierarchies::host()?;
        let cgroup_mounts = super::create::cgroup_mounts(&hier);
        let layout = Layout {
            cgroup: &self.state.cgroup,
            cgroup_mounts: &cgroup_mounts,
        };
        let externals = mounts::externals(spec, &layout, &|p| {
            std::fs::metadata(format!("/proc/{pid}/root{p}")).is_ok_and(|m| !m.is_dir())
        });
        let external_ns = image::external_namespaces(spec);

        let log_name = if opts.pre_dump {
            "pre-dump.log"
        } else {
            "dump.log"
        };
        let mut o = CriuOpts {
            images_dir_fd: images.fd.as_raw_fd(),
            work_dir_fd: work.as_ref().map(|w| w.fd.as_raw_fd()),
            log_level: Some(4),
            log_file: Some(log_name.into()),
            root: Some(self.state.rootfs.to_string_lossy().into_owned()),
            manage_cgroups: Some(true),
            notify_scripts: Some(true),
            pid: Some(pid),
            shell_job: Some(opts.shell_job),
            leave_running: Some(opts.leave_running || opts.pre_dump),
            tcp_established: Some(opts.tcp_established),
            ext_unix_sk: Some(opts.ext_unix_sk),
            file_locks: Some(opts.file_locks),
            empty_ns: Some(empty_ns_flags(&opts.empty_ns)),
            orphan_pts_master: Some(true),
            auto_dedup: Some(opts.auto_dedup),
            lazy_pages: Some(opts.lazy_pages),
            network_lock: Some(network_lock() as i32),
            config_file: crate::criu::config_file(spec.annotations().as_ref()),
            ext_mnt: mounts::dump_map(&externals)
                .into_iter()
                .map(|(key, val)| ExtMountMap { key, val })
                .collect(),
            ..Default::default()
        };
        if let Some(fcg) = freeze_cgroup(&self.state.cgroup) {
            o.freeze_cgroup = Some(fcg);
        }
        if let Some(m) = opts.manage_cgroups_mode {
            o.manage_cgroups_mode = Some(cg_mode(m) as i32);
        }
        if let Some(p) = &opts.parent_path {
            o.parent_img = Some(p.to_string_lossy().into_owned());
            o.track_mem = Some(true);
        }
        if opts.pre_dump {
            o.track_mem = Some(true);
        }
        if let Some((address, port)) = &opts.page_server {
            o.ps = Some(CriuPageServerInfo {
                address: Some(address.clone()),
                port: Some(i32::from(*port)),
                ..Default::default()
            });
        }
        if let Some(fd) = &opts.status_fd {
            o.status_fd = Some(fd.as_raw_fd());
        }
        for (_, name, key, p) in &external_ns {
            // A network or pid namespace joined by path (a pod's) is not the
            // container's to dump: criu records it as external (runc does the same).
            // Without it criu refuses a process tree whose pid namespace's init is
            // not in the tree (a pod with a shared process namespace).
            let fd = sys::open(p, c::O_RDONLY, 0)?;
            let ino = image::ns_inode(fd.as_fd())?;
            o.external.push(format!("{name}[{ino}]:{key}"));
        }

        let descriptors = image::stdio_of(pid);
        let log = work.as_ref().unwrap_or(&images).path.join(log_name);
        let t = if opts.pre_dump {
            CriuReqType::PreDump
        } else {
            CriuReqType::Dump
        };
        let mut req = request(t);
        req.opts = Some(o);
        let mut w = Swrk::start(&criu.path, SwrkStdio::Capture)?;
        tracing::info!(id = self.id(), "checkpoint into {}", images.path.display());
        let mut status_fd = opts.status_fd.as_ref();
        w.call(&req, Some(&log), &mut |n| {
            if n.script == "status-ready" {
                // The lazy page server listens: tell whoever waits on --status-fd.
                if let Some(fd) = status_fd.take() {
                    let _ = sys::write_all(fd.as_fd(), b"\0", "status fd");
                }
            }
            Ok(())
        })?;
        w.finish()?;

        let meta = Meta {
            version: 1,
            id: self.id().to_string(),
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            cgroup_path: self.state.cgroup.path.clone(),
            created: self.state.created.clone(),
            checkpointed: state::now_rfc3339(),
            criu_version: criu.version.to_string(),
            terminal: spec
                .process()
                .as_ref()
                .and_then(|p| p.terminal())
                .unwrap_or(false),
            externals,
            external_netns: external_ns.iter().any(|e| e.0 == Kind::Network),
            external_pidns: external_ns.iter().any(|e| e.0 == Kind::Pid),
            config: spec.clone(),
        };
        images.write(&descriptors, &meta)?;

        if !(opts.leave_running || opts.pre_dump) {
            // criu has killed the container's processes; make sure init is gone so the
            // status reads stopped from now on.
            // The caller persists it: in the shim the exit watcher writes state.json
            // (the exit status) at the same time, and there is one writer.
            super::wait_gone(pid, Duration::from_secs(10));
            self.state.recorded_status = Status::Stopped;
        }
        Ok(())
    }
}

/// Pre-dump and parent images need soft-dirty memory tracking; lazy pages need
/// userfaultfd. Ask criu (it asks the kernel) before starting, for a clear error.
fn check_features(criu: &Criu, opts: &CheckpointOptions) -> Result<(), CriuError> {
    let track = opts.pre_dump || opts.parent_path.is_some();
    if !track && !opts.lazy_pages {
        return Ok(());
    }
    let got = criu.features(CriuFeatures {
        mem_track: Some(track),
        lazy_pages: Some(opts.lazy_pages),
        ..Default::default()
    })?;
    if track && got.mem_track != Some(true) {
        let what = if opts.pre_dump {
            "--pre-dump"
        } else {
            "--parent-path"
        };
        return Err(CriuError::Unsupported(format!(
            "{what} needs memory change tracking (soft-dirty bits, CONFIG_MEM_SOFT_DIRTY), which this kernel does not provide"
        )));
    }
    if opts.lazy_pages && got.lazy_pages != Some(true) {
        return Err(CriuError::Unsupported(
            "--lazy-pages needs userfaultfd with non-cooperative events, which this kernel does not provide".into(),
        ));
    }
    Ok(())
}

/// The cgroup criu freezes: the v1 freezer, else the unified one.
pub(crate) fn freeze_cgroup(cg: &crate::cgroups::CgroupPaths) -> Option<String> {
    cg.dirs
        .get("freezer")
        .or_else(|| {
            if cg.mode == Mode::Unified {
                cg.dirs.get(UNIFIED)
            } else {
                None
            }
        })
        .map(|d| d.to_string_lossy().into_owned())
}

/// CLONE_NEW* flags of `kinds`.
pub(crate) fn empty_ns_flags(kinds: &[Kind]) -> u32 {
    kinds.iter().fold(0u32, |acc, k| acc | k.flag() as u32)
}

pub(crate) fn cg_mode(m: CgroupsMode) -> CriuCgMode {
    match m {
        CgroupsMode::Soft => CriuCgMode::Soft,
        CgroupsMode::Full => CriuCgMode::Full,
        CgroupsMode::Strict => CriuCgMode::Strict,
        CgroupsMode::Ignore => CriuCgMode::Ignore,
    }
}

/// How criu locks the network while it works: criu's default (iptables) needs the
/// iptables-restore tool; without it, nftables (criu uses libnftables itself).
pub(crate) fn network_lock() -> CriuNetworkLockMethod {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let has_iptables = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| Path::new(&d).join("iptables-restore").exists());
    if has_iptables {
        CriuNetworkLockMethod::Iptables
    } else {
        CriuNetworkLockMethod::Nftables
    }
}
