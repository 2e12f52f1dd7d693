//! The Task service: containerd's requests, each mapped onto runtime-core (called on
//! blocking threads) and answered with the events containerd expects, in order:
//! TaskCreate, TaskStart, TaskExit (after the output is relayed), TaskDelete.

use std::collections::{HashMap, HashSet};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_shim_protos::api::{self, Status};
use containerd_shim_protos::events::task::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO,
    TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::topics;
use containerd_shim_protos::ttrpc::{self, r#async::TtrpcContext};
use runtime_core::bundle::RootfsMount;
use runtime_core::cgroups::oom::OomEvent;
use runtime_core::container::{ConsoleSocket, CreateOptions, ExecOptions, RestoreOptions};
use runtime_core::criu::CheckpointOptions;
use runtime_core::process::spawn::Reap;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::container::{Container, Exit, PendingRestore, Process, State};
use crate::error::{Result, ShimError};
use crate::events::{timestamp, Events};
use crate::reaper::Reaper;
use crate::stdio::{self, StdioSpec};
use crate::{options, STATE_FILE_IN_BUNDLE};

/// Default state root of the shim (runc's Root option overrides it).
pub const DEFAULT_ROOT: &str = "/run/containerd/runrs";

/// How long TaskExit waits for a terminal's output to be relayed.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The shim's Task service.
pub struct Service {
    namespace: String,
    events: Events,
    reaper: Reaper,
    containers: tokio::sync::Mutex<HashMap<String, Arc<Container>>>,
    reserved: Mutex<HashSet<String>>,
    shutdown: Arc<Notify>,
}

fn blocking_err(e: tokio::task::JoinError) -> ShimError {
    ShimError::Internal(format!("runtime task failed: {e}"))
}

impl Service {
    /// A service for containerd namespace `namespace`.
    pub fn new(namespace: String, events: Events, reaper: Reaper, shutdown: Arc<Notify>) -> Self {
        Service {
            namespace,
            events,
            reaper,
            containers: tokio::sync::Mutex::new(HashMap::new()),
            reserved: Mutex::new(HashSet::new()),
            shutdown,
        }
    }

    async fn get(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| ShimError::NotFound(format!("container {id} not created")))
    }

    async fn process(&self, id: &str, exec_id: &str) -> Result<(Arc<Container>, Arc<Process>)> {
        let c = self.get(id).await?;
        if exec_id.is_empty() {
            let p = c.init.clone();
            return Ok((c, p));
        }
        let p = c
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(exec_id)
            .cloned()
            .ok_or_else(|| ShimError::NotFound(format!("process does not exist {exec_id}")))?;
        Ok((c, p))
    }

    async fn do_create(&self, req: api::CreateTaskRequest) -> Result<api::CreateTaskResponse> {
        if !req.parent_checkpoint.is_empty() {
            return Err(ShimError::Unimplemented(
                "restoring from a parent checkpoint (incremental images) is not supported".into(),
            ));
        }
        {
            let mut r = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
            if self
                .containers
                .try_lock()
                .map(|m| m.contains_key(&req.id))
                .unwrap_or(false)
                || !r.insert(req.id.clone())
            {
                return Err(ShimError::AlreadyExists(format!(
                    "container {} already exists",
                    req.id
                )));
            }
        }
        let r = self.create_inner(&req).await;
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&req.id);
        r
    }

    async fn create_inner(&self, req: &api::CreateTaskRequest) -> Result<api::CreateTaskResponse> {
        if self.containers.lock().await.contains_key(&req.id) {
            return Err(ShimError::AlreadyExists(format!(
                "container {} already exists",
                req.id
            )));
        }
        let opts = options::decode(req.options.as_ref())?;
        if opts.systemd_cgroup {
            return Err(ShimError::InvalidArgument(format!(
                "SystemdCgroup: {}",
                runtime_core::cgroups::systemd_driver_unavailable(Path::new("/run"))
            )));
        }
        let root = PathBuf::from(opts.root.clone().unwrap_or_else(|| DEFAULT_ROOT.into()))
            .join(&self.namespace);
        let bundle = PathBuf::from(&req.bundle);
        let spec = StdioSpec {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let mounts: Vec<RootfsMount> = req
            .rootfs
            .iter()
            .map(|m| RootfsMount {
                typ: m.type_.clone(),
                source: m.source.clone(),
                options: m.options.clone(),
            })
            .collect();

        let (init_stdio, io, console) = if req.terminal {
            let (ours, theirs) =
                UnixStream::pair().map_err(|e| ShimError::Internal(format!("socketpair: {e}")))?;
            (Default::default(), None, Some((ours, theirs)))
        } else {
            let owner = stdio::Owner {
                id: &req.id,
                namespace: &self.namespace,
                reaper: &self.reaper,
            };
            let (fds, io) = stdio::prepare(&spec, opts.io_uid, opts.io_gid, &owner).await?;
            (fds, Some(io), None)
        };
        let id = req.id.clone();
        let no_pivot = opts.no_pivot_root;
        let b = bundle.clone();
        let r = root.clone();
        // A checkpoint is restored at Start, like containerd-shim-runc-v2 does; also one
        // named by the create options' CriuImagePath (containerd's WithRestoreImagePath).
        let restore_image = opts.restore_image(&req.checkpoint);
        let criu_work = opts.criu_work_path.clone().map(PathBuf::from);
        // Opened before init exists: its exit is kept even if it comes before the claim.
        let window = self.reaper.window();
        let (core, mounted, master, pending) = tokio::task::spawn_blocking(move || -> Result<_> {
            let rootfs = b.join("rootfs");
            let mounted = if mounts.is_empty() {
                None
            } else {
                match std::fs::create_dir(&rootfs) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(ShimError::Internal(format!(
                            "create {}: {e}",
                            rootfs.display()
                        )))
                    }
                }
                runtime_core::bundle::mount_all(&mounts, &rootfs)
                    .map_err(|e| ShimError::Internal(runtime_core::error::chain(&e)))?;
                Some(rootfs.clone())
            };
            let _ = std::fs::write(b.join(STATE_FILE_IN_BUNDLE), r.display().to_string());
            if let Some(image) = restore_image {
                let work = criu_work.unwrap_or_else(|| b.join("criu-work"));
                let pending = PendingRestore {
                    image,
                    work,
                    root: r,
                    stdio: init_stdio,
                    console,
                    criu: PathBuf::from("criu"),
                };
                return Ok((None, mounted, None, Some(pending)));
            }
            let (ours, console_socket) = match console {
                Some((o, t)) => (Some(o), Some(ConsoleSocket::Fd(t.into()))),
                None => (None, None),
            };
            let created = runtime_core::container::create(CreateOptions {
                id,
                bundle: b,
                root: r,
                console_socket,
                pid_file: None,
                no_pivot,
                preserve_fds: 0,
                stdio: init_stdio,
                reap: Reap::External,
                extra_env: Vec::new(),
            });
            let core = match created {
                Ok(c) => c,
                Err(e) => {
                    if let Some(m) = &mounted {
                        let _ = runtime_core::bundle::unmount_all(m);
                    }
                    return Err(e.into());
                }
            };
            let master = match ours {
                Some(sock) => match runtime_core::process::console::recv_master(
                    std::os::fd::AsFd::as_fd(&sock),
                ) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        let _ = core.clone().delete(true);
                        if let Some(m) = &mounted {
                            let _ = runtime_core::bundle::unmount_all(m);
                        }
                        return Err(ShimError::Internal(runtime_core::error::chain(&e)));
                    }
                },
                None => None,
            };
            Ok((Some(core), mounted, master, None))
        })
        .await
        .map_err(blocking_err)??;

        let pid = core.as_ref().map(|c| c.pid()).unwrap_or(0);
        // Subscribe before anything else can observe the exit.
        let exited = core.as_ref().map(|_| window.claim(pid));
        let io = match (io, master) {
            (Some(io), _) => io,
            (None, Some(m)) => stdio::relay_terminal(&spec, m)?,
            (None, None) => Default::default(),
        };
        let kill_all_on_exit = match &core {
            Some(c) => !c.own_pid_ns(),
            None => !runtime_core::spec::load(&bundle)
                .map(|s| runtime_core::spec::new_ns(&s, oci_spec::runtime::LinuxNamespaceType::Pid))
                .unwrap_or(false),
        };
        let restore = pending;
        let container = Arc::new(Container {
            id: req.id.clone(),
            bundle: bundle.clone(),
            mounted_rootfs: mounted,
            core: tokio::sync::Mutex::new(core),
            restore: std::sync::Mutex::new(restore),
            init: Arc::new(Process::new(req.id.clone(), pid, spec.clone(), io)),
            execs: std::sync::Mutex::new(HashMap::new()),
            kill_all_on_exit,
            gate: tokio::sync::Mutex::new(()),
            oom_reported: std::sync::Mutex::new(0),
            oom_task: std::sync::Mutex::new(None),
        });
        let gate = container.gate.lock().await;
        self.containers
            .lock()
            .await
            .insert(req.id.clone(), container.clone());
        if let Some(exited) = exited {
            self.spawn_exit_watcher(container.clone(), container.init.clone(), exited);
            self.spawn_oom_watcher(container.clone()).await;
        }
        self.events.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            &TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: Some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                })
                .into(),
                checkpoint: req.checkpoint.clone(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        drop(gate);
        tracing::info!(id = %req.id, pid, "created");
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn spawn_exit_watcher(
        &self,
        c: Arc<Container>,
        p: Arc<Process>,
        exited: tokio::sync::oneshot::Receiver<i32>,
    ) {
        let events = self.events.clone();
        tokio::spawn(async move {
            let Ok(raw) = exited.await else { return };
            let status = runtime_core::process::reap::exit_code(raw) as u32;
            let is_init = Arc::ptr_eq(&p, &c.init);
            let _gate = c.gate.lock().await;
            if is_init && c.kill_all_on_exit {
                if let Ok(core) = c.core().await {
                    let _ =
                        tokio::task::spawn_blocking(move || core.signal_all(libc::SIGKILL)).await;
                }
            }
            p.io.lock().await.drained(DRAIN_LIMIT).await;
            if is_init {
                // An OOM kill that ended the container is reported before its exit.
                if let Ok(core) = c.core().await {
                    if let Ok(kills) =
                        tokio::task::spawn_blocking(move || core.oom_kill_count()).await
                    {
                        report_oom(&events, &c, kills);
                    }
                }
            }
            let exit = Exit {
                status,
                at: SystemTime::now(),
            };
            if is_init {
                // Persist it, so `shim delete` after a crash reports the real status. Before
                // the exit is visible: a Wait that returns lets the client Delete, which
                // removes the state dir, and a save still writing there made that fail
                // ("Directory not empty").
                let _ = c.write_state(|s| s.exit_status = Some(status as i32)).await;
            }
            tracing::info!(id = %c.id, process = %p.id, status, "exited");
            p.finish(exit, |exit| {
                events.publish(
                    topics::TASK_EXIT_EVENT_TOPIC,
                    &TaskExit {
                        container_id: c.id.clone(),
                        id: p.id.clone(),
                        pid: p.pid() as u32,
                        exit_status: status,
                        exited_at: Some(timestamp(exit.at)).into(),
                        ..Default::default()
                    },
                )
            });
        });
    }

    async fn freeze(&self, id: &str, frozen: bool) -> Result<api::Empty> {
        let c = self.get(id).await?;
        let core = c.core().await?;
        tokio::task::spawn_blocking(move || if frozen { core.pause() } else { core.resume() })
            .await
            .map_err(blocking_err)??;
        if frozen {
            self.events.publish(
                topics::TASK_PAUSED_EVENT_TOPIC,
                &TaskPaused {
                    container_id: c.id.clone(),
                    ..Default::default()
                },
            );
        } else {
            self.events.publish(
                topics::TASK_RESUMED_EVENT_TOPIC,
                &TaskResumed {
                    container_id: c.id.clone(),
                    ..Default::default()
                },
            );
        }
        Ok(api::Empty::default())
    }

    async fn do_update(&self, req: api::UpdateTaskRequest) -> Result<api::Empty> {
        let c = self.get(&req.id).await?;
        let any = req
            .resources
            .as_ref()
            .ok_or_else(|| ShimError::InvalidArgument("update without resources".into()))?;
        let de = &mut serde_json::Deserializer::from_slice(&any.value);
        let res: oci_spec::runtime::LinuxResources =
            serde_path_to_error::deserialize(de).map_err(|e| {
                ShimError::InvalidArgument(format!("resources: {}: {}", e.path(), e.inner()))
            })?;
        let mut core = c.core.lock().await;
        let mut updated = core.clone().ok_or_else(|| {
            ShimError::FailedPrecondition(format!("container {} has not been restored yet", c.id))
        })?;
        let updated = tokio::task::spawn_blocking(move || updated.update(&res).map(|()| updated))
            .await
            .map_err(blocking_err)??;
        *core = Some(updated);
        Ok(api::Empty::default())
    }

    async fn do_stats(&self, req: api::StatsRequest) -> Result<api::StatsResponse> {
        let c = self.get(&req.id).await?;
        let core = c.core().await?;
        let stats = tokio::task::spawn_blocking(move || core.stats())
            .await
            .map_err(blocking_err)??;
        Ok(api::StatsResponse {
            stats: Some(crate::stats::to_metrics(&stats)).into(),
            ..Default::default()
        })
    }

    /// Watch the container's memory cgroup and publish TaskOOM for new OOM kills.
    async fn spawn_oom_watcher(&self, c: Arc<Container>) {
        let Ok(core) = c.core().await else { return };
        let watcher = match tokio::task::spawn_blocking(move || core.oom_watcher()).await {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                tracing::debug!(id = %c.id, "no OOM watch: {}", runtime_core::error::chain(&e));
                return;
            }
            Err(_) => return,
        };
        let events = self.events.clone();
        let c2 = c.clone();
        let task = tokio::spawn(async move {
            // SAFETY: the watcher owns its descriptor for as long as it lives, and the
            // AsyncFd owns the watcher.
            let Ok(afd) = (unsafe { AsyncFd::register(OomFd(watcher)) }) else {
                return;
            };
            let mut afd = afd;
            loop {
                let Ok(mut g) = afd.readable_mut().await else {
                    return;
                };
                match g.get_inner_mut().0.read() {
                    Ok(Some(OomEvent::Oom { kills })) => report_oom(&events, &c2, kills),
                    Ok(Some(OomEvent::Gone)) | Err(_) => return,
                    Ok(None) => g.clear_ready(),
                }
            }
        });
        *c.oom_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Start of a task created from a checkpoint: criu restores it now.
    async fn start_restore(
        &self,
        c: Arc<Container>,
        p: Arc<Process>,
        pending: PendingRestore,
    ) -> Result<api::StartResponse> {
        let gate = c.gate.lock().await;
        let id = c.id.clone();
        let bundle = c.bundle.clone();
        let window = self.reaper.window();
        let (core, handle, master) = tokio::task::spawn_blocking(move || -> Result<_> {
            let (ours, console_socket) = match pending.console {
                Some((o, t)) => (Some(o), Some(ConsoleSocket::Fd(t.into()))),
                None => (None, None),
            };
            let _ = std::fs::create_dir_all(&pending.work);
            let mut o = RestoreOptions::new(&id, bundle, pending.root, pending.image);
            o.work_path = Some(pending.work);
            o.criu = pending.criu;
            o.stdio = pending.stdio;
            o.console_socket = console_socket;
            let core = runtime_core::container::restore(o)?;
            let handle = runtime_core::container::process_handle(core.pid());
            let master = match ours {
                Some(sock) => Some(
                    runtime_core::process::console::recv_master(std::os::fd::AsFd::as_fd(&sock))
                        .map_err(|e| ShimError::Internal(runtime_core::error::chain(&e)))?,
                ),
                None => None,
            };
            Ok((core, handle, master))
        })
        .await
        .map_err(blocking_err)??;
        let pid = core.pid();
        let exited = window.claim(pid);
        if let Some(m) = master {
            *p.io.lock().await = stdio::relay_terminal(&p.stdio, m)?;
        }
        p.set_pid(pid, handle);
        *c.core.lock().await = Some(core);
        p.set_running();
        self.spawn_exit_watcher(c.clone(), p.clone(), exited);
        self.spawn_oom_watcher(c.clone()).await;
        tracing::info!(id = %c.id, pid, "restored");
        self.events.publish(
            topics::TASK_START_EVENT_TOPIC,
            &TaskStart {
                container_id: c.id.clone(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        drop(gate);
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    async fn do_checkpoint(&self, req: api::CheckpointTaskRequest) -> Result<api::Empty> {
        let c = self.get(&req.id).await?;
        let core = c.core().await?;
        let co = options::decode_checkpoint(req.options.as_ref())?;
        let image = co
            .image_path
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(&req.path));
        if image.as_os_str().is_empty() {
            return Err(ShimError::InvalidArgument(
                "checkpoint without an image path".into(),
            ));
        }
        let mut o = CheckpointOptions::new(image);
        o.work_path = co.work_path.clone().map(PathBuf::from);
        o.leave_running = !co.exit;
        o.tcp_established = co.open_tcp;
        o.ext_unix_sk = co.external_unix_sockets;
        o.shell_job = co.terminal;
        o.file_locks = co.file_locks;
        o.empty_ns = runtime_core::criu::parse_namespaces(&co.empty_namespaces)
            .map_err(|e| ShimError::InvalidArgument(runtime_core::error::chain(&e)))?;
        if !co.cgroups_mode.is_empty() {
            o.manage_cgroups_mode = Some(co.cgroups_mode.parse().map_err(
                |e: runtime_core::criu::CriuError| {
                    ShimError::InvalidArgument(runtime_core::error::chain(&e))
                },
            )?);
        }
        let mut core = core;
        let path = o.image_path.display().to_string();
        let stopped = !(o.leave_running || o.pre_dump);
        tokio::task::spawn_blocking(move || core.checkpoint(&o))
            .await
            .map_err(blocking_err)??;
        if stopped {
            // Into the shim's own copy, not `core` (a clone from before the checkpoint,
            // without the exit status the exit watcher saves: issue 15).
            c.write_state(|s| s.recorded_status = runtime_core::state::Status::Stopped)
                .await?;
        }
        // containerd (1.6 to 2.1) does not publish TaskCheckpointed for a task checkpoint,
        // so the shim does; the exit (without leave-running) comes through the reaper.
        self.events.publish(
            topics::TASK_CHECKPOINTED_EVENT_TOPIC,
            &TaskCheckpointed {
                container_id: c.id.clone(),
                checkpoint: path,
                ..Default::default()
            },
        );
        tracing::info!(id = %c.id, "checkpointed");
        Ok(api::Empty::default())
    }

    async fn do_exec(&self, req: api::ExecProcessRequest) -> Result<()> {
        let c = self.get(&req.id).await?;
        if req.exec_id.is_empty() {
            return Err(ShimError::InvalidArgument(
                "exec id must not be empty".into(),
            ));
        }
        let any = req
            .spec
            .as_ref()
            .ok_or_else(|| ShimError::InvalidArgument("exec without a process spec".into()))?;
        let de = &mut serde_json::Deserializer::from_slice(&any.value);
        let mut spec: oci_spec::runtime::Process =
            serde_path_to_error::deserialize(de).map_err(|e| {
                ShimError::InvalidArgument(format!(
                    "exec process spec: {}: {}",
                    e.path(),
                    e.inner()
                ))
            })?;
        spec.set_terminal(Some(req.terminal));
        let stdio = StdioSpec {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        {
            let mut execs = c.execs.lock().unwrap_or_else(|e| e.into_inner());
            if execs.contains_key(&req.exec_id) {
                return Err(ShimError::AlreadyExists(format!(
                    "id {} already in use",
                    req.exec_id
                )));
            }
            execs.insert(
                req.exec_id.clone(),
                Arc::new(Process::new_exec(req.exec_id.clone(), spec, stdio)),
            );
        }
        tracing::info!(id = %c.id, exec_id = %req.exec_id, "exec added");
        self.events.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            &TaskExecAdded {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            },
        );
        Ok(())
    }

    async fn start_exec(&self, c: Arc<Container>, p: Arc<Process>) -> Result<api::StartResponse> {
        let gate = c.gate.lock().await;
        if p.state() != State::Created {
            return Err(ShimError::FailedPrecondition(format!(
                "process {} was already started",
                p.id
            )));
        }
        let spec = p
            .spec
            .as_deref()
            .cloned()
            .ok_or_else(|| ShimError::Internal("exec process without spec".into()))?;
        let opts = options::RuntimeOptions::default();
        let (stdio, io, console) = if p.stdio.terminal {
            let (ours, theirs) =
                UnixStream::pair().map_err(|e| ShimError::Internal(format!("socketpair: {e}")))?;
            (Default::default(), None, Some((ours, theirs)))
        } else {
            let owner = stdio::Owner {
                id: &c.id,
                namespace: &self.namespace,
                reaper: &self.reaper,
            };
            let (fds, io) = stdio::prepare(&p.stdio, opts.io_uid, opts.io_gid, &owner).await?;
            (fds, Some(io), None)
        };
        let core = c.core().await?;
        let window = self.reaper.window();
        let (pid, handle, master) = tokio::task::spawn_blocking(move || -> Result<_> {
            let (ours, console_socket) = match console {
                Some((o, t)) => (Some(o), Some(ConsoleSocket::Fd(t.into()))),
                None => (None, None),
            };
            let pid = core.exec(ExecOptions {
                process: spec,
                console_socket,
                pid_file: None,
                preserve_fds: 0,
                stdio,
                reap: Reap::External,
            })?;
            // Opened at once: the process is ours until the reaper collects it.
            let handle = runtime_core::container::process_handle(pid);
            let master = match ours {
                Some(sock) => Some(
                    runtime_core::process::console::recv_master(std::os::fd::AsFd::as_fd(&sock))
                        .map_err(|e| ShimError::Internal(runtime_core::error::chain(&e)))?,
                ),
                None => None,
            };
            Ok((pid, handle, master))
        })
        .await
        .map_err(blocking_err)??;
        let exited = window.claim(pid);
        let io = match (io, master) {
            (Some(io), _) => io,
            (None, Some(m)) => stdio::relay_terminal(&p.stdio, m)?,
            (None, None) => Default::default(),
        };
        *p.io.lock().await = io;
        p.set_pid(pid, handle);
        p.set_running();
        self.spawn_exit_watcher(c.clone(), p.clone(), exited);
        self.events.publish(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            &TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: p.id.clone(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        drop(gate);
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    async fn do_start(&self, req: api::StartRequest) -> Result<api::StartResponse> {
        let (c, p) = self.process(&req.id, &req.exec_id).await?;
        if !req.exec_id.is_empty() {
            return self.start_exec(c, p).await;
        }
        let pending = c.restore.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(pending) = pending {
            return self.start_restore(c, p, pending).await;
        }
        let gate = c.gate.lock().await;
        match p.state() {
            State::Created => {}
            State::Running => {
                return Err(ShimError::FailedPrecondition(format!(
                    "container {} is already running",
                    c.id
                )))
            }
            State::Stopped => {
                return Err(ShimError::FailedPrecondition(format!(
                    "container {} has stopped",
                    c.id
                )))
            }
        }
        let mut core = c.core().await?;
        let core = tokio::task::spawn_blocking(move || core.start().map(|()| core))
            .await
            .map_err(blocking_err)??;
        *c.core.lock().await = Some(core);
        p.set_running();
        self.events.publish(
            topics::TASK_START_EVENT_TOPIC,
            &TaskStart {
                container_id: c.id.clone(),
                pid: p.pid() as u32,
                ..Default::default()
            },
        );
        drop(gate);
        Ok(api::StartResponse {
            pid: p.pid() as u32,
            ..Default::default()
        })
    }

    async fn do_delete(&self, req: api::DeleteRequest) -> Result<api::DeleteResponse> {
        let (c, p) = self.process(&req.id, &req.exec_id).await?;
        if !req.exec_id.is_empty() {
            if p.state() == State::Running {
                return Err(ShimError::FailedPrecondition(format!(
                    "cannot delete process {}: it is running",
                    p.id
                )));
            }
            c.execs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&p.id);
            let exit = p.exit();
            return Ok(api::DeleteResponse {
                pid: p.pid() as u32,
                exit_status: exit.map(|e| e.status).unwrap_or(0),
                exited_at: exit.map(|e| timestamp(e.at)).into(),
                ..Default::default()
            });
        }
        if c.core.lock().await.is_none() {
            // Created from a checkpoint and never started: nothing runs.
            p.set_exited(Exit {
                status: 0,
                at: SystemTime::now(),
            });
        }
        match p.state() {
            State::Running => {
                let core = c.core().await?;
                if core.status() != runtime_core::Status::Stopped {
                    return Err(ShimError::FailedPrecondition(format!(
                        "cannot delete container {}: it is running",
                        c.id
                    )));
                }
            }
            State::Created => {
                if let Ok(core) = c.core().await {
                    let _ =
                        tokio::task::spawn_blocking(move || core.kill(libc::SIGKILL, false)).await;
                }
            }
            State::Stopped => {}
        }
        let exit = match tokio::time::timeout(Duration::from_secs(10), p.wait()).await {
            Ok(e) => e,
            Err(_) => {
                return Err(ShimError::Internal(format!(
                    "container {}: init did not exit after SIGKILL",
                    c.id
                )))
            }
        };
        let core = c.core.lock().await.clone();
        let mounted = c.mounted_rootfs.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            if let Some(core) = core {
                match core.delete(true) {
                    Ok(()) => {}
                    Err(e) if e.kind() == runtime_core::Kind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(m) = mounted {
                runtime_core::bundle::unmount_all(&m)
                    .map_err(|e| ShimError::Internal(runtime_core::error::chain(&e)))?;
            }
            Ok(())
        })
        .await
        .map_err(blocking_err)??;
        let _ = std::fs::remove_file(c.bundle.join(STATE_FILE_IN_BUNDLE));
        if let Some(t) = c.oom_task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
        self.containers.lock().await.remove(&c.id);
        // Dropping the container's Io closes the fifos' keep-alive readers.
        self.events.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            &TaskDelete {
                container_id: c.id.clone(),
                pid: p.pid() as u32,
                exit_status: exit.status,
                exited_at: Some(timestamp(exit.at)).into(),
                id: c.id.clone(),
                ..Default::default()
            },
        );
        tracing::info!(id = %c.id, "deleted");
        Ok(api::DeleteResponse {
            pid: p.pid() as u32,
            exit_status: exit.status,
            exited_at: Some(timestamp(exit.at)).into(),
            ..Default::default()
        })
    }

    async fn do_kill(&self, req: api::KillRequest) -> Result<()> {
        let (c, p) = self.process(&req.id, &req.exec_id).await?;
        if !req.exec_id.is_empty() {
            return match p.state() {
                State::Created => Err(ShimError::FailedPrecondition(format!(
                    "process {} not started",
                    p.id
                ))),
                State::Stopped => Err(ShimError::NotFound("process already finished".into())),
                State::Running => p.signal(req.signal as i32).map_err(|e| {
                    if e.errno() == Some(libc::ESRCH) {
                        ShimError::NotFound("process already finished".into())
                    } else {
                        ShimError::Internal(runtime_core::error::chain(&e))
                    }
                }),
            };
        }
        if p.exit().is_some() && !req.all {
            return Err(ShimError::NotFound("process already finished".into()));
        }
        let core = c.core().await?;
        let sig = req.signal as i32;
        let all = req.all;
        tokio::task::spawn_blocking(move || core.kill(sig, all))
            .await
            .map_err(blocking_err)?
            .map_err(|e| match e {
                runtime_core::Error::NotRunning(_) => {
                    ShimError::NotFound("process already finished".into())
                }
                e => e.into(),
            })
    }

    async fn do_state(&self, req: api::StateRequest) -> Result<api::StateResponse> {
        let (c, p) = self.process(&req.id, &req.exec_id).await?;
        let mut status = p.status();
        if status == Status::RUNNING && c.core.lock().await.as_ref().is_some_and(|k| k.frozen()) {
            status = Status::PAUSED;
        }
        let exit = p.exit();
        Ok(api::StateResponse {
            id: p.id.clone(),
            bundle: c.bundle.display().to_string(),
            pid: p.pid() as u32,
            status: status.into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: exit.map(|e| e.status).unwrap_or(0),
            exited_at: exit.map(|e| timestamp(e.at)).into(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }
}

fn rpc<T>(r: Result<T>) -> ttrpc::Result<T> {
    r.map_err(|e| {
        tracing::info!("request failed: {}", runtime_core::error::chain(&e));
        ttrpc::Error::from(e)
    })
}

#[async_trait]
impl Task for Service {
    async fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> ttrpc::Result<api::StateResponse> {
        rpc(self.do_state(req).await)
    }

    async fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> ttrpc::Result<api::CreateTaskResponse> {
        rpc(self.do_create(req).await)
    }

    async fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> ttrpc::Result<api::StartResponse> {
        rpc(self.do_start(req).await)
    }

    async fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> ttrpc::Result<api::DeleteResponse> {
        rpc(self.do_delete(req).await)
    }

    async fn pids(
        &self,
        _ctx: &TtrpcContext,
        req: api::PidsRequest,
    ) -> ttrpc::Result<api::PidsResponse> {
        rpc(async {
            let c = self.get(&req.id).await?;
            let core = c.core().await?;
            let pids = tokio::task::spawn_blocking(move || core.state.cgroup.pids())
                .await
                .map_err(blocking_err)?
                .map_err(runtime_core::Error::from)?;
            let execs: HashMap<i32, String> = c
                .execs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .filter(|p| p.pid() > 0)
                .map(|p| (p.pid(), p.id.clone()))
                .collect();
            Ok(api::PidsResponse {
                processes: pids
                    .into_iter()
                    .map(|pid| api::ProcessInfo {
                        pid: pid as u32,
                        info: execs
                            .get(&pid)
                            .map(|id| {
                                crate::events::to_any(
                                    &containerd_shim_protos::shim::oci::ProcessDetails {
                                        exec_id: id.clone(),
                                        ..Default::default()
                                    },
                                )
                            })
                            .into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
        }
        .await)
    }

    async fn pause(
        &self,
        _ctx: &TtrpcContext,
        req: api::PauseRequest,
    ) -> ttrpc::Result<api::Empty> {
        rpc(self.freeze(&req.id, true).await)
    }

    async fn resume(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResumeRequest,
    ) -> ttrpc::Result<api::Empty> {
        rpc(self.freeze(&req.id, false).await)
    }

    async fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        req: api::CheckpointTaskRequest,
    ) -> ttrpc::Result<api::Empty> {
        rpc(self.do_checkpoint(req).await)
    }

    async fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> ttrpc::Result<api::Empty> {
        rpc(self.do_kill(req).await.map(|()| api::Empty::default()))
    }

    async fn exec(
        &self,
        _ctx: &TtrpcContext,
        req: api::ExecProcessRequest,
    ) -> ttrpc::Result<api::Empty> {
        rpc(self.do_exec(req).await.map(|()| api::Empty::default()))
    }

    async fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> ttrpc::Result<api::Empty> {
        rpc(async {
            let (_, p) = self.process(&req.id, &req.exec_id).await?;
            p.io.lock().await.resize(req.width, req.height)?;
            Ok(api::Empty::default())
        }
        .await)
    }

    async fn close_io(
        &self,
        _ctx: &TtrpcContext,
        req: api::CloseIORequest,
    ) -> ttrpc::Result<api::Empty> {
        rpc(async {
            let (_, p) = self.process(&req.id, &req.exec_id).await?;
            p.io.lock().await.close_stdin();
            Ok(api::Empty::default())
        }
        .await)
    }

    async fn update(
        &self,
        _ctx: &TtrpcContext,
        req: api::UpdateTaskRequest,
    ) -> ttrpc::Result<api::Empty> {
        rpc(self.do_update(req).await)
    }

    async fn wait(
        &self,
        _ctx: &TtrpcContext,
        req: api::WaitRequest,
    ) -> ttrpc::Result<api::WaitResponse> {
        rpc(async {
            let (_, p) = self.process(&req.id, &req.exec_id).await?;
            let e = p.wait().await;
            Ok(api::WaitResponse {
                exit_status: e.status,
                exited_at: Some(timestamp(e.at)).into(),
                ..Default::default()
            })
        }
        .await)
    }

    async fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> ttrpc::Result<api::StatsResponse> {
        rpc(self.do_stats(req).await)
    }

    async fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> ttrpc::Result<api::ConnectResponse> {
        let task_pid = match self.get(&req.id).await {
            Ok(c) => c.init.pid() as u32,
            Err(_) => 0,
        };
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: "2".into(),
            ..Default::default()
        })
    }

    async fn shutdown(
        &self,
        _ctx: &TtrpcContext,
        _req: api::ShutdownRequest,
    ) -> ttrpc::Result<api::Empty> {
        // A shim serving several containers of a pod stays while any remains.
        if self.containers.lock().await.is_empty()
            && self.reserved.lock().map(|r| r.is_empty()).unwrap_or(true)
        {
            self.shutdown.notify_one();
        }
        Ok(api::Empty::default())
    }
}

/// The state root a bundle's container was created under (written at Create).
pub fn recorded_root(bundle: &Path) -> Option<PathBuf> {
    std::fs::read_to_string(bundle.join(STATE_FILE_IN_BUNDLE))
        .ok()
        .map(|s| PathBuf::from(s.trim()))
}

/// An OOM watcher as something tokio can poll.
struct OomFd(runtime_core::cgroups::oom::OomWatcher);

impl std::os::fd::AsRawFd for OomFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsFd::as_fd(&self.0).as_raw_fd()
    }
}

/// Publish TaskOOM if the container's OOM kill count grew since the last report.
fn report_oom(events: &Events, c: &Container, kills: u64) {
    let mut reported = c.oom_reported.lock().unwrap_or_else(|e| e.into_inner());
    if kills > *reported {
        *reported = kills;
        tracing::info!(id = %c.id, kills, "oom");
        events.publish(
            topics::TASK_OOM_EVENT_TOPIC,
            &TaskOOM {
                container_id: c.id.clone(),
                ..Default::default()
            },
        );
    }
}
