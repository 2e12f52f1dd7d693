//! `restore`: recreate a container from a CRIU checkpoint, under a (possibly new) id
//! and from a bundle's config, as runc does: the state dir and cgroups are made as for
//! create, criu (started from the restore helper, see [`crate::criu::helper`]) is placed
//! in the container's cgroup and restores the process tree into it with the rootfs
//! prepared in a private mount namespace; pipes of the old stdio are replaced by the
//! new stdio (`inherit_fd`), a terminal's master goes to the console socket
//! (orphan-pts-master). The restored init is a child of the caller and the container is
//! `running`. On failure nothing is left: criu kills what it restored, the cgroup and
//! state dir are removed, and the helper's mount namespace dies with it.
//! See criu.org "Restore", "Inheriting FDs on restore", and runc's restore.go.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::Duration;

use runrs_proto::criu::{CgroupRoot, CriuFeatures, CriuOpts, CriuReqType, ExtMountMap, InheritFd};

use super::checkpoint::{cg_mode, empty_ns_flags, network_lock};
use super::create::{cgroup_mounts, resolve_cgroup, systemd_place, write_pid_file};
use super::{drain_cgroup, ConsoleSocket, Container};
use crate::cgroups::{CgroupPaths, Hierarchies};
use crate::criu::helper::{self, HelperConfig};
use crate::criu::image::{self, ImageDir};
use crate::criu::mounts::{self, Layout};
use crate::criu::rpc::request;
use crate::criu::{CgroupsMode, Criu, CriuError};
use crate::error::Error;
use crate::hooks;
use crate::namespaces::Kind;
use crate::process::spawn::InitStdio;
use crate::state::{self, ContainerState, Status};
use crate::sys;
use crate::sys::c;

/// Options of [`restore`]: runc's `restore` flags (the shim fills them from
/// CreateTaskRequest.checkpoint and its stdio, like CreateOptions).
#[derive(Debug)]
pub struct RestoreOptions {
    /// New container id (may differ from the checkpointed one).
    pub id: String,
    /// Bundle whose config.json describes the container.
    pub bundle: PathBuf,
    /// State root (`--root`).
    pub root: PathBuf,
    /// The checkpoint image directory.
    pub image_path: PathBuf,
    /// Where criu's log and temporary files go (default: the image dir, which must
    /// then be writable).
    pub work_path: Option<PathBuf>,
    /// The criu binary (name in PATH, or path).
    pub criu: PathBuf,
    /// Console socket for a terminal container (receives the restored pty master).
    pub console_socket: Option<ConsoleSocket>,
    /// Write the restored init's pid here.
    pub pid_file: Option<PathBuf>,
    /// Recorded like create's `--no-pivot` (criu restores the root itself).
    pub no_pivot: bool,
    /// The restored init's new stdio: recorded pipes are replaced by these descriptors
    /// (0, 1, 2). `Inherit` uses the caller's own.
    pub stdio: InitStdio,
    /// Restore established TCP connections.
    pub tcp_established: bool,
    /// Allow unix sockets connected outside.
    pub ext_unix_sk: bool,
    /// Allow a terminal shared with the outside.
    pub shell_job: bool,
    /// Restore file locks.
    pub file_locks: bool,
    /// How criu treats cgroups.
    pub manage_cgroups_mode: Option<CgroupsMode>,
    /// Namespaces created empty.
    pub empty_ns: Vec<Kind>,
    /// Deduplicate while restoring.
    pub auto_dedup: bool,
    /// Fetch memory lazily from `criu lazy-pages`.
    pub lazy_pages: bool,
    /// The systemd cgroup driver (`--systemd-cgroup`, SystemdCgroup): the unit is
    /// started with criu in it, so what criu restores lands in the unit's cgroup.
    pub systemd_cgroup: bool,
}

impl RestoreOptions {
    /// Defaults for restoring `image_path` as `id` from `bundle` under `root`.
    pub fn new(id: &str, bundle: PathBuf, root: PathBuf, image_path: PathBuf) -> Self {
        RestoreOptions {
            id: id.to_string(),
            bundle,
            root,
            image_path,
            work_path: None,
            criu: PathBuf::from("criu"),
            console_socket: None,
            pid_file: None,
            no_pivot: false,
            stdio: InitStdio::Inherit,
            tcp_established: false,
            ext_unix_sk: false,
            shell_job: false,
            file_locks: false,
            manage_cgroups_mode: None,
            empty_ns: Vec::new(),
            auto_dedup: false,
            lazy_pages: false,
            systemd_cgroup: false,
        }
    }
}

/// Restore a container; returns it `running`.
pub fn restore(opts: RestoreOptions) -> Result<Container, Error> {
    state::check_id(&opts.id)?;
    let bundle =
        std::fs::canonicalize(&opts.bundle).map_err(|e| Error::Bundle(opts.bundle.clone(), e))?;
    let spec = crate::spec::load(&bundle)?;
    crate::spec::validate(&spec)?;
    hooks::validate(&spec)?;
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.intel_rdt().as_ref())
        .is_some()
    {
        return Err(CriuError::Unsupported(
            "restoring a container with linux.intelRdt is not supported yet".into(),
        )
        .into());
    }
    let rootfs = crate::spec::rootfs_path(&spec, &bundle)?;
    let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| Error::Bundle(rootfs.clone(), e))?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && opts.console_socket.is_none() {
        return Err(Error::Usage(
            "process.terminal is true but no console socket was given (use --console-socket)"
                .into(),
        ));
    }
    let images = ImageDir::open_checkpoint(&opts.image_path)?;
    let descriptors = images.descriptors()?;
    let meta = images.meta()?;
    let work = match &opts.work_path {
        Some(p) => Some(ImageDir::create("work directory", p)?),
        None => None,
    };
    let criu = Criu::locate(&opts.criu)?;
    if opts.lazy_pages {
        let f = criu.features(CriuFeatures {
            lazy_pages: Some(true),
            ..Default::default()
        })?;
        if f.lazy_pages != Some(true) {
            return Err(CriuError::Unsupported(
                "--lazy-pages needs userfaultfd with non-cooperative events, which this kernel does not provide".into(),
            )
            .into());
        }
    }

    let hier = Hierarchies::host()?;
    let cgroups_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_str().unwrap_or_default());
    let cgroup = resolve_cgroup(&hier, cgroups_path, &opts.id, opts.systemd_cgroup, false)?;
    let cmounts = cgroup_mounts(&hier);
    let layout = Layout {
        cgroup: &cgroup,
        cgroup_mounts: &cmounts,
    };
    // The keys the image holds: runrs recorded them; for a runc image, derive them from
    // the config like runc (masked paths are files there).
    let saved = match &meta {
        Some(m) => m.externals.clone(),
        None => mounts::externals(&spec, &layout, &|_| true),
    };
    let ext_mnt = mounts::restore_map(&saved, &spec, &bundle, &layout)?;
    // The namespaces joined by path: criu restores into them (inherit_fd).
    let external_ns = image::external_namespaces(&spec);
    if let Some(m) = &meta {
        for (kind, dumped, what) in [
            (Kind::Network, m.external_netns, "network"),
            (Kind::Pid, m.external_pidns, "pid"),
        ] {
            if dumped && !external_ns.iter().any(|e| e.0 == kind) {
                return Err(CriuError::Invalid(format!(
                    "the checkpoint was taken in a {what} namespace joined by path; the bundle's config.json must name one to restore into"
                ))
                .into());
            }
        }
    }

    // From here on, undo on failure.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.root)
        .map_err(|e| Error::StateDir(opts.root.clone(), e))?;
    let dir = state::dir(&opts.root, &opts.id);
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(state::StateError::Exists(opts.id.clone()).into())
        }
        Err(e) => return Err(Error::StateDir(dir, e)),
    }
    let mut undo = Undo {
        dir: Some(dir),
        cgroup: None,
        init: None,
    };
    if cgroup.exists() && !cgroup.pids()?.is_empty() {
        return Err(Error::CgroupBusy(cgroup.path.clone()));
    }
    undo.cgroup = Some(cgroup.clone());
    if cgroup.systemd.is_none() {
        cgroup.create(&hier)?;
        // The config's limits, as create sets them (runc's criuApplyCgroups does Set too).
        crate::cgroups::limits::apply_spec(&hier, &cgroup, &spec)?;
    }

    let created = state::now_rfc3339();
    let mut st = ContainerState {
        id: opts.id.clone(),
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        init_pid: 0,
        init_start_time: 0,
        recorded_status: Status::Creating,
        created: created.clone(),
        owner: String::new(),
        cgroup: cgroup.clone(),
        config: spec.clone(),
        no_pivot: opts.no_pivot,
        exit_status: None,
        rdt: None,
        host_mounts: None,
    };
    state::save(&opts.root, &st)?;

    let console: Option<OwnedFd> = match opts.console_socket {
        Some(ConsoleSocket::Path(p)) => Some(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(&p)
                .map_err(|e| Error::ConsoleSocket(p.clone(), e))?,
        )),
        Some(ConsoleSocket::Fd(fd)) => Some(fd),
        None => None,
    };
    let ns_fds = external_ns
        .iter()
        .map(|(_, _, key, p)| Ok((*key, sys::open(p, c::O_RDONLY, 0)?)))
        .collect::<Result<Vec<(&str, OwnedFd)>, Error>>()?;
    let pass: Vec<BorrowedFd<'_>> = ns_fds.iter().map(|(_, f)| f.as_fd()).collect();

    let helper_cfg = HelperConfig {
        rootfs: rootfs.clone(),
        prepare: mounts::prepare_list(&spec, &bundle),
        criu: criu.path.clone(),
        image_dir: images.path.clone(),
        work_dir: work.as_ref().map(|w| w.path.clone()),
    };
    let (mut w, nums) = helper::spawn(&helper_cfg, opts.stdio, &pass)?;
    // criu works inside the container's cgroups, so what it restores lands there, and
    // cg_root maps the dumped cgroup paths onto this container's.
    // systemd driver: the unit starts with criu in it (runc does the same), then the
    // limits go as for create.
    systemd_place(&hier, &cgroup, &spec, w.pid())?;
    cgroup.add_pid(w.pid())?;
    let cg_root = cgroup_roots(w.pid());

    let mut o = CriuOpts {
        images_dir_fd: nums.images,
        work_dir_fd: nums.work,
        evasive_devices: Some(true),
        log_level: Some(4),
        log_file: Some("restore.log".into()),
        rst_sibling: Some(true),
        root: Some(rootfs.to_string_lossy().into_owned()),
        manage_cgroups: Some(true),
        notify_scripts: Some(true),
        shell_job: Some(opts.shell_job),
        ext_unix_sk: Some(opts.ext_unix_sk),
        tcp_established: Some(opts.tcp_established),
        file_locks: Some(opts.file_locks),
        empty_ns: Some(empty_ns_flags(&opts.empty_ns)),
        orphan_pts_master: Some(true),
        auto_dedup: Some(opts.auto_dedup),
        lazy_pages: Some(opts.lazy_pages),
        network_lock: Some(network_lock() as i32),
        config_file: crate::criu::config_file(spec.annotations().as_ref()),
        ext_mnt: ext_mnt
            .into_iter()
            .map(|(key, val)| ExtMountMap { key, val })
            .collect(),
        cg_root,
        ..Default::default()
    };
    if let Some(m) = opts.manage_cgroups_mode {
        o.manage_cgroups_mode = Some(cg_mode(m) as i32);
    }
    if !terminal {
        for (key, fd) in image::inherit_pipes(&descriptors) {
            o.inherit_fd.push(InheritFd { key, fd });
        }
    }
    for ((key, _), n) in ns_fds.iter().zip(&nums.passed) {
        o.inherit_fd.push(InheritFd {
            key: (*key).into(),
            fd: *n,
        });
    }
    let mut req = request(CriuReqType::Restore);
    req.opts = Some(o);
    let log = work.as_ref().unwrap_or(&images).path.join("restore.log");

    let hooks = spec.hooks().clone();
    let hook_state = |pid: i32| {
        let mut s = st.oci(Status::Creating);
        s.pid = pid;
        s
    };
    let mut restored_pid = None;
    tracing::info!(id = %opts.id, "restore from {}", images.path.display());
    let resp = w.call(&req, Some(&log), &mut |n| {
        match n.script.as_str() {
            "setup-namespaces" => {
                // The restored tree exists in its namespaces: runc runs prestart and
                // createRuntime here.
                if let (Some(h), Some(pid)) = (&hooks, n.pid) {
                    let s = hook_state(pid);
                    let run = |kind, v: &Option<Vec<oci_spec::runtime::Hook>>| {
                        hooks::run(kind, v.as_deref().unwrap_or_default(), &s)
                            .map_err(|e| CriuError::Notify(crate::error::chain(&e)))
                    };
                    run("prestart", h.prestart())?;
                    run("createRuntime", h.create_runtime())?;
                }
            }
            "post-restore" => restored_pid = n.pid,
            "orphan-pts-master" => {
                let (Some(master), Some(sock)) = (n.fds.first(), console.as_ref()) else {
                    return Err(CriuError::Notify(
                        "criu restored a terminal but there is no console socket to send it to"
                            .into(),
                    ));
                };
                crate::process::console::send_master(sock.as_fd(), master.as_fd())
                    .map_err(|e| CriuError::Notify(crate::error::chain(&e)))?;
            }
            _ => {}
        }
        Ok(())
    });
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            drop(w);
            return Err(e.into());
        }
    };
    let pid = resp
        .restore
        .map(|r| r.pid)
        .or(restored_pid)
        .filter(|p| *p > 0)
        .ok_or_else(|| CriuError::Protocol("restore answer without the restored pid".into()))?;
    undo.init = Some(pid);
    w.finish()?;
    drop(console);

    st.init_pid = pid;
    st.init_start_time = state::proc_stat(pid).map(|s| s.start_time).unwrap_or(0);
    st.recorded_status = Status::Running;
    state::save(&opts.root, &st)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    undo.disarm();
    Ok(Container {
        root: opts.root,
        state: st,
    })
}

/// cg_root entries from /proc/PID/cgroup: each controller (and the unified hierarchy,
/// named "") mapped to the path PID is in.
fn cgroup_roots(pid: i32) -> Vec<CgroupRoot> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        for c in ctrls.split(',') {
            out.push(CgroupRoot {
                ctrl: Some(c.to_string()),
                path: path.to_string(),
            });
        }
    }
    out
}

/// Removes what a failed restore made.
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<CgroupPaths>,
    init: Option<i32>,
}

impl Undo {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.init = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(pid) = self.init.take() {
            let _ = super::kill::signal_pid(pid, c::SIGKILL);
            super::wait_gone(pid, Duration::from_secs(5));
        }
        if let Some(cg) = self.cgroup.take() {
            if crate::cgroups::freeze(&cg, false).is_err() {
                tracing::warn!("thaw {} after failed restore", cg.path);
            }
            drain_cgroup(&cg, Duration::from_secs(5));
            if let Err(e) = cg.remove() {
                tracing::warn!("cleanup after failed restore: {e}");
            }
        }
        if let Some(d) = self.dir.take() {
            let _ = std::fs::remove_dir_all(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cgroup_roots_of_self() {
        let roots = super::cgroup_roots(std::process::id() as i32);
        assert!(!roots.is_empty());
        assert!(roots.iter().all(|r| r.path.starts_with('/')));
    }
}
