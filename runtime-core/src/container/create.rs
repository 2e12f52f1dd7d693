//! `create`: validate the bundle, make the state dir, cgroup and exec fifo, spawn init
//! and wait until the container is created (init blocked on the fifo). On any failure
//! everything made so far is undone: no process, cgroup, mount or state dir remains.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::Spec;

use super::{drain_cgroup, Container};
use crate::cgroups::{CgroupPaths, Hierarchies, Mode};
use crate::error::Error;
use crate::hooks;
use crate::namespaces;
use crate::process::init::InitConfig;
use crate::process::spawn::{self, InitFds, InitStdio, Reap};
use crate::rdt;
use crate::state::{self, ContainerState, OciState, Status, OCI_VERSION};
use crate::sys::c;
use crate::sys::{self};

/// Where the pty master of a terminal container goes.
#[derive(Debug)]
pub enum ConsoleSocket {
    /// A unix socket path to connect to (`--console-socket`).
    Path(PathBuf),
    /// An already connected socket (e.g. one end of a socketpair held by a shim).
    Fd(OwnedFd),
}

/// Options of [`create`].
#[derive(Debug)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// State root (`--root`).
    pub root: PathBuf,
    /// Console socket for terminal containers.
    pub console_socket: Option<ConsoleSocket>,
    /// Write the init pid here.
    pub pid_file: Option<PathBuf>,
    /// MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Pass descriptors 3..3+N to the container.
    pub preserve_fds: u32,
    /// The container's stdio.
    pub stdio: InitStdio,
    /// Who reaps init's short-lived first stage.
    pub reap: Reap,
    /// Variables appended to `process.env` (e.g. LISTEN_FDS for socket activation).
    pub extra_env: Vec<String>,
}

/// Opt-ins of [`create_with`] beyond [`CreateOptions`] (a separate struct so that
/// callers building `CreateOptions` literally keep compiling; fold in when convenient).
#[derive(Debug, Clone, Default)]
pub struct CreateExtras {
    /// Give the container an sd_notify socket so that start waits for its READY=1
    /// (see [`crate::notify`]). The CLI sets this when `NOTIFY_SOCKET` is in its
    /// environment, as runc does. A container also opts in by itself with the
    /// annotation [`crate::notify::ANNOTATION`]` = "true"`.
    pub notify: bool,
    /// The resctrl mount for `linux.intelRdt` (None: the host's, from mountinfo). A
    /// parameter so a container can be tested against a fake resctrl tree.
    pub resctrl_root: Option<PathBuf>,
    /// Use the systemd cgroup driver (`--systemd-cgroup`, the shim's SystemdCgroup):
    /// `linux.cgroupsPath` is `slice:prefix:name` and the cgroup a transient unit.
    pub systemd_cgroup: bool,
    /// runc's rootless cgroup handling (`--rootless`, or a caller that is not the real
    /// root): without a cgroupsPath, hierarchies the caller may not write are left out
    /// instead of failing the create (see `CgroupPaths::create_rootless`).
    pub rootless: bool,
}

/// Create a container. Returns it in the `created` state.
pub fn create(opts: CreateOptions) -> Result<Container, Error> {
    create_with(opts, &CreateExtras::default())
}

/// [`create`] with opt-ins.
pub fn create_with(opts: CreateOptions, extras: &CreateExtras) -> Result<Container, Error> {
    state::check_id(&opts.id)?;
    let bundle =
        std::fs::canonicalize(&opts.bundle).map_err(|e| Error::Bundle(opts.bundle.clone(), e))?;
    let mut spec = crate::spec::load(&bundle)?;
    if !opts.extra_env.is_empty() {
        if let Some(p) = spec.process_mut().as_mut() {
            let mut env = p.env().clone().unwrap_or_default();
            env.extend(opts.extra_env.iter().cloned());
            p.set_env(Some(env));
        }
    }
    crate::spec::validate(&spec)?;
    crate::sysctl::validate(&spec)?;
    let seccomp = crate::security::preflight(&spec)?;
    hooks::validate(&spec)?;
    rdt::validate(&spec, &opts.id)?;
    let want_notify = extras.notify || crate::notify::requested(&spec)?;
    crate::notify::ready_timeout(&spec)?;
    let rootfs = crate::spec::rootfs_path(&spec, &bundle)?;
    let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| Error::Bundle(rootfs.clone(), e))?;
    let process = spec.process().as_ref().expect("validated: process present");
    let terminal = process.terminal() == Some(true);
    match (&opts.console_socket, terminal) {
        (None, true) => {
            return Err(Error::Usage(
                "process.terminal is true but no console socket was given (use --console-socket)"
                    .into(),
            ))
        }
        (Some(_), false) => {
            return Err(Error::Usage(
                "a console socket was given but process.terminal is false".into(),
            ))
        }
        _ => {}
    }
    let nss = namespaces::from_spec(&spec);
    let hier = Hierarchies::host()?;
    let cgroups_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_str().unwrap_or_default());
    let mut cgroup = resolve_cgroup(
        &hier,
        cgroups_path,
        &opts.id,
        extras.systemd_cgroup,
        extras.rootless,
    )?;
    // runc: only without a cgroupsPath (none, or empty).
    let rootless_cgroups = extras.rootless && cgroups_path.is_none_or(str::is_empty);
    // Init would freeze on joining it and create never return; runc refuses too.
    if crate::cgroups::is_frozen(&cgroup) {
        return Err(Error::CgroupFrozen(cgroup.path.clone()));
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
    // Without its own mount namespace the container mounts in ours: count what is
    // stacked at the rootfs now, so cleanup detaches only the container's.
    let host_mounts = (!namespaces::has(&nss, namespaces::Kind::Mount))
        .then(|| crate::rootfs::hostns::mounts_at(&rootfs));
    let mut undo = Undo {
        dir: dir.clone(),
        cgroup: None,
        rdt: None,
        poststop: None,
        host_mounts: host_mounts.map(|n| (rootfs.clone(), n)),
    };
    if want_notify {
        crate::notify::prepare(&mut spec, &dir)?;
    }

    let foreign = if cgroup.exists() {
        cgroup.pids()?.len()
    } else {
        0
    };
    if foreign > 0 {
        // runc 1.1 warns and goes on (1.2 refuses); cleanup leaves these processes alone.
        tracing::warn!(
            "the container's cgroup {} is not empty: {foreign} process(es) found",
            cgroup.path
        );
        cgroup.shared = true;
    }
    // From here on, removing the cgroup (and stopping a systemd unit) is undo's.
    undo.cgroup = Some(cgroup.clone());
    if cgroup.systemd.is_none() {
        if rootless_cgroups {
            cgroup.create_rootless(&hier)?;
            undo.cgroup = Some(cgroup.clone());
        } else {
            cgroup.create(&hier)?;
        }
        crate::cgroups::limits::apply_spec(&hier, &cgroup, &spec)?;
    }
    let rdt_state = match spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref()) {
        Some(_) => {
            let rc = match &extras.resctrl_root {
                Some(r) => rdt::Resctrl::at(r, false),
                None => rdt::Resctrl::host()?,
            };
            rdt::setup(&rc, &spec, &opts.id)?
        }
        None => None,
    };
    undo.rdt = rdt_state.clone();

    let fifo_path = dir.join(state::EXEC_FIFO);
    mkfifo(&fifo_path, root_ids(&spec))?;
    let fifo = sys::open(&fifo_path, c::O_PATH, 0)?;
    let console = match opts.console_socket {
        Some(ConsoleSocket::Path(p)) => Some(OwnedFd::from(
            std::os::unix::net::UnixStream::connect(&p)
                .map_err(|e| Error::ConsoleSocket(p.clone(), e))?,
        )),
        Some(ConsoleSocket::Fd(fd)) => Some(fd),
        None => None,
    };

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
        rdt: rdt_state.clone(),
        host_mounts,
    };
    state::save(&opts.root, &st)?;

    let cfg = InitConfig {
        id: opts.id.clone(),
        spec: spec.clone(),
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        namespaces: nss.clone(),
        cgroup: cgroup.clone(),
        cgroup_mounts: cgroup_mounts(&hier),
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds,
        console_socket: console.is_some(),
        // Init stops at the hook point whenever the create phase has hooks, so we know
        // when a failure must run the poststop hooks (runtime.md steps 3-5, 12, 13).
        parent_hooks: hooks::has_create_hooks(&spec),
        created: created.clone(),
        exec: None,
        seccomp,
        rdt: rdt_state.clone(),
        debug: tracing::enabled!(tracing::Level::DEBUG),
    };
    let hook_state = |pid: i32| OciState {
        oci_version: OCI_VERSION.into(),
        id: opts.id.clone(),
        pid,
        status: Status::Creating,
        bundle: bundle.display().to_string(),
        rootfs: rootfs.display().to_string(),
        created: created.clone(),
        owner: String::new(),
        annotations: spec
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    };
    // systemd driver: the unit is started with init's first stage in it (a scope
    // cannot exist without a process), then init joins the directories itself.
    let mut place = |pid: i32| systemd_place(&hier, &cgroup, &spec, pid);
    let hooks_reached = std::cell::Cell::new(false);
    let spawned = spawn::spawn(
        cfg,
        InitFds {
            exec_fifo: Some(fifo.as_fd()),
            console_socket: console.as_ref().map(|c| c.as_fd()),
            on_stage1: match cgroup.systemd {
                Some(_) => Some(&mut place),
                None => None,
            },
        },
        opts.stdio,
        opts.reap,
        |pid| {
            hooks_reached.set(true);
            let s = hook_state(pid);
            hooks::run("prestart", hooks::of_kind(&spec, "prestart"), &s)?;
            hooks::run("createRuntime", hooks::of_kind(&spec, "createRuntime"), &s)
        },
    );
    if hooks_reached.get() {
        undo.poststop = Some((
            hooks::of_kind(&spec, "poststop").to_vec(),
            st.oci(Status::Stopped),
        ));
    }
    let spawned = spawned.map_err(|e| explain_death(e, &cgroup, &spec))?;
    drop(console);
    drop(fifo);
    // Init joined the RDT groups itself before forking; naming it here too is a no-op
    // for the kernel and what a reader of `tasks` expects (runc writes this pid).
    if let Some(r) = &rdt_state {
        if let Err(e) = rdt::add_task(r, spawned.pid) {
            kill_init(spawned.pid);
            return Err(e.into());
        }
    }

    st.init_pid = spawned.pid;
    st.init_start_time = state::proc_stat(spawned.pid)
        .map(|s| s.start_time)
        .unwrap_or(0);
    st.recorded_status = Status::Created;
    if let Err(e) = state::save(&opts.root, &st) {
        kill_init(spawned.pid);
        return Err(e.into());
    }
    if let Some(pf) = &opts.pid_file {
        if let Err(e) = write_pid_file(pf, spawned.pid) {
            kill_init(spawned.pid);
            return Err(e);
        }
    }
    undo.disarm();
    Ok(Container {
        root: opts.root,
        state: st,
    })
}

/// The container's cgroups: cgroupfs (a path, relative to the runtime's own cgroup
/// unless absolute) or systemd (`slice:prefix:name`; `rootless`: a unit of the
/// caller's own systemd instance).
pub(crate) fn resolve_cgroup(
    hier: &Hierarchies,
    cgroups_path: Option<&str>,
    id: &str,
    systemd: bool,
    rootless: bool,
) -> Result<CgroupPaths, Error> {
    if systemd {
        if let Some(why) = crate::cgroups::systemd::unavailable(Path::new("/run")) {
            return Err(Error::Usage(why));
        }
        return Ok(crate::cgroups::systemd::resolve(
            hier,
            cgroups_path,
            id,
            rootless,
        )?);
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    Ok(hier.resolve(cgroups_path, id, &own)?)
}

/// Start the container's systemd unit with `pid` (init's first stage) and its
/// resources as properties, then make the directories systemd does not manage and
/// write every limit through cgroupfs, as for the cgroupfs driver.
pub(crate) fn systemd_place(
    hier: &Hierarchies,
    cgroup: &CgroupPaths,
    spec: &Spec,
    pid: i32,
) -> Result<(), crate::cgroups::CgroupError> {
    use crate::cgroups::{devices, systemd};
    let Some(unit) = &cgroup.systemd else {
        return Ok(());
    };
    let res = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let policy = devices::Policy::from_rules(&devices::rules_for(spec)?);
    // A user's systemd cannot install a device filter (see limits::apply_spec).
    let policy = (!cgroup.rootless).then_some(&policy);
    let proc_devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let props = systemd::properties(hier.mode, &res, policy, &proc_devices);
    systemd::start(unit, (!unit.is_slice()).then_some(pid), props)?;
    cgroup.create(hier)?;
    crate::cgroups::limits::apply_spec(hier, cgroup, spec)
}

/// A silent death of init explained when the kernel knows why: an OOM kill in the
/// container's memory cgroup. A limit below what init needs is accepted by the kernel
/// while the cgroup is empty (init joins it after the limits are written), so no write
/// fails; runc's init is already in the cgroup when it writes the limit and gets EBUSY
/// ("unable to set memory limit to 1").
fn explain_death(e: spawn::SpawnError, cg: &CgroupPaths, spec: &Spec) -> Error {
    let limit = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit());
    let (Some(limit), spawn::SpawnError::Died(_)) = (limit, &e) else {
        return e.into();
    };
    let Some(dir) = crate::cgroups::oom::memory_dir(cg) else {
        return e.into();
    };
    if crate::cgroups::oom::oom_kill_count(cg) == 0 {
        return e.into();
    }
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .map(|s| format!("{f}: {}", s.trim()))
            .ok()
    };
    let seen: Vec<String> = if cg.mode == Mode::Unified {
        [read("memory.max"), read("memory.peak")]
    } else {
        [
            read("memory.limit_in_bytes"),
            read("memory.max_usage_in_bytes"),
        ]
    }
    .into_iter()
    .flatten()
    .collect();
    Error::InitOom(limit, seen.join(", "))
}

fn kill_init(pid: i32) {
    // The container init we just made.
    let _ = crate::sys::kill(pid, crate::sys::c::SIGKILL);
    super::wait_gone(pid, Duration::from_secs(5));
}

/// The v1 hierarchies as (mountpoint directory name, controllers).
pub(crate) fn cgroup_mounts(h: &Hierarchies) -> Vec<(String, Vec<String>)> {
    if h.mode == Mode::Unified {
        return Vec::new();
    }
    h.mounts
        .iter()
        .filter(|m| m.controllers != [crate::cgroups::UNIFIED])
        .filter_map(|m| {
            let name = m.mountpoint.file_name()?.to_string_lossy().into_owned();
            Some((name, m.controllers.clone()))
        })
        .collect()
}

/// Host uid/gid of the container's root (for the fifo's owner).
fn root_ids(spec: &Spec) -> (u32, u32) {
    let l = spec.linux().as_ref();
    let find = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.into_iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
            .unwrap_or(0)
    };
    (
        find(l.and_then(|l| l.uid_mappings().as_ref())),
        find(l.and_then(|l| l.gid_mappings().as_ref())),
    )
}

fn mkfifo(path: &Path, (uid, gid): (u32, u32)) -> Result<(), Error> {
    // The umask filters mkfifo's mode: chmod fixes it.
    crate::sys::mkfifo(path, 0o622)?;
    crate::sys::chmod(path, 0o622)?;
    if (uid, gid) != (0, 0) {
        crate::sys::chown(path, uid, gid)?;
    }
    Ok(())
}

/// Write the pid file atomically, as runc does.
#[allow(
    clippy::disallowed_methods,
    reason = "the pid file is a host path the caller chose, not under a rootfs"
)]
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).map_err(|e| Error::PidFile(path.to_path_buf(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::PidFile(path.to_path_buf(), e))
}

/// Removes what create made when it fails; once the create-phase hooks have started,
/// the poststop hooks run after the cleanup (runtime.md steps 12 and 13).
struct Undo {
    dir: PathBuf,
    cgroup: Option<CgroupPaths>,
    rdt: Option<rdt::RdtState>,
    poststop: Option<(Vec<oci_spec::runtime::Hook>, OciState)>,
    /// The rootfs and the mounts stacked there before (no mount namespace of its own).
    host_mounts: Option<(PathBuf, usize)>,
}

impl Undo {
    fn disarm(&mut self) {
        self.dir = PathBuf::new();
        self.cgroup = None;
        self.rdt = None;
        self.poststop = None;
        self.host_mounts = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            // Spawn killed init; what a shared cgroup holds besides is not ours.
            if !cg.shared {
                drain_cgroup(&cg, Duration::from_secs(5));
            }
            if let Err(e) = cg.remove() {
                tracing::warn!("cleanup after failed create: {e}");
            }
        }
        if let Some(r) = self.rdt.take() {
            if let Err(e) = rdt::remove(&r) {
                tracing::warn!("cleanup after failed create: {}", crate::error::chain(&e));
            }
        }
        if let Some((rootfs, keep)) = self.host_mounts.take() {
            crate::rootfs::hostns::detach_above(&rootfs, keep);
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if let Some((h, st)) = self.poststop.take() {
            hooks::run_all("poststop", &h, &st);
        }
    }
}
