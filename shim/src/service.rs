//! The shim's verbs over runtime-core: what each Task request does to a container and
//! its processes, in plain types (crate::translate decodes the requests and encodes the
//! results, crate::task is the ttrpc face). runtime-core runs on blocking threads. Every
//! lifecycle event goes through the monitor (crate::monitor), which owns their order;
//! each process' state changes follow crate::process' state machine.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::topics;
use runtime_core::{CreateOptions, ExecOptions};
use runtime_core::{InitStdio, Reap};
use tokio::sync::Notify;

use crate::bundle::{self, Rootfs};
use crate::console;
use crate::container::Container;
use crate::criu::PendingRestore;
use crate::error::{Result, ShimError};
use crate::monitor::{Monitor, Runtime};
use crate::options::RuntimeOptions;
use crate::process::{Exit, Process, State};
use crate::reaper::Reaper;
use crate::stdio::{self, Io, StdioSpec};
use crate::translate::{self, Create, Exec};

/// The shim's Task service.
pub struct Service {
    namespace: String,
    monitor: Monitor,
    reaper: Reaper,
    containers: tokio::sync::Mutex<HashMap<String, Arc<Container>>>,
    reserved: Mutex<HashSet<String>>,
    shutdown: Arc<Notify>,
}

/// A runtime-core call on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ShimError::Internal(format!("runtime task failed: {e}")))?
}

/// The stdio of a process about to be started: the runtime's ends, the shim's relay
/// (None for a terminal: relayed once the pty master arrives) and the console socket.
type Prepared = (InitStdio, Option<Io>, Option<console::Pair>);

/// The shim's relay of a started process' stdio.
fn relay(spec: &StdioSpec, io: Option<Io>, master: Option<std::os::fd::OwnedFd>) -> Result<Io> {
    Ok(match (io, master) {
        (Some(io), _) => io,
        (None, Some(m)) => stdio::relay_terminal(spec, m)?,
        (None, None) => Io::default(),
    })
}

impl Service {
    /// A service for containerd namespace `namespace`.
    pub fn new(namespace: String, monitor: Monitor, reaper: Reaper, shutdown: Arc<Notify>) -> Self {
        Service {
            namespace,
            monitor,
            reaper,
            containers: tokio::sync::Mutex::new(HashMap::new()),
            reserved: Mutex::new(HashSet::new()),
            shutdown,
        }
    }

    /// Container `id`.
    pub async fn get(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| ShimError::NotFound(format!("container {id} not created")))
    }

    /// Container `id` and its process `exec_id` ("" for the init).
    pub async fn process(&self, id: &str, exec_id: &str) -> Result<(Arc<Container>, Arc<Process>)> {
        let c = self.get(id).await?;
        let p = c.process(exec_id)?;
        Ok((c, p))
    }

    async fn stdio(&self, id: &str, spec: &StdioSpec, uid: u32, gid: u32) -> Result<Prepared> {
        if spec.terminal {
            return Ok((InitStdio::default(), None, Some(console::Pair::new()?)));
        }
        let owner = stdio::Owner {
            id,
            namespace: &self.namespace,
            reaper: &self.reaper,
        };
        let (fds, io) = stdio::prepare(spec, uid, gid, &owner).await?;
        Ok((fds, Some(io), None))
    }

    /// Create: the container's init, stopped before the user's process (or, for a
    /// checkpoint, a restore prepared for Start). Its pid.
    pub async fn create(&self, req: Create) -> Result<i32> {
        {
            let mut r = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
            let known = self
                .containers
                .try_lock()
                .map(|m| m.contains_key(&req.id))
                .unwrap_or(false);
            if known || !r.insert(req.id.clone()) {
                return Err(ShimError::AlreadyExists(format!(
                    "container {} already exists",
                    req.id
                )));
            }
        }
        let id = req.id.clone();
        let r = self.create_reserved(req).await;
        self.reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        r
    }

    async fn create_reserved(&self, req: Create) -> Result<i32> {
        if self.containers.lock().await.contains_key(&req.id) {
            return Err(ShimError::AlreadyExists(format!(
                "container {} already exists",
                req.id
            )));
        }
        let opts = &req.options;
        if opts.systemd_cgroup {
            let run = std::path::Path::new("/run");
            if let Some(why) = runtime_core::systemd_driver_unavailable(run) {
                return Err(ShimError::InvalidArgument(format!("SystemdCgroup: {why}")));
            }
        }
        let systemd_cgroup = opts.systemd_cgroup;
        let root = PathBuf::from(
            opts.root
                .clone()
                .unwrap_or_else(|| bundle::DEFAULT_ROOT.into()),
        )
        .join(&self.namespace);
        let (init_stdio, io, console) = self
            .stdio(&req.id, &req.stdio, opts.io_uid, opts.io_gid)
            .await?;
        let (id, b, r, no_pivot) = (
            req.id.clone(),
            req.bundle.clone(),
            root.clone(),
            opts.no_pivot_root,
        );
        let mounts = req.rootfs.clone();
        let restore_image = req.checkpoint.clone();
        let criu_work = opts.criu_work_path.clone().map(PathBuf::from);
        // Opened before init exists: its exit is kept even if it comes before the claim.
        let window = self.reaper.window();
        let (core, rootfs, master, pending) = blocking(move || {
            let rootfs = Rootfs::mount(&b, &mounts)?;
            bundle::record_root(&b, &r);
            if let Some(image) = restore_image {
                let mut p = PendingRestore::new(&b, r, image, criu_work, init_stdio, console);
                p.systemd_cgroup = systemd_cgroup;
                return Ok((None, rootfs, None, Some(p)));
            }
            let undo = |e: ShimError| {
                if let Some(m) = &rootfs {
                    if let Err(u) = m.unmount() {
                        tracing::warn!("undo the rootfs mounts: {u}");
                    }
                }
                bundle::forget_root(&b);
                e
            };
            let (receiver, console_socket) = console::split(console);
            let extras = runtime_core::CreateExtras {
                systemd_cgroup,
                ..Default::default()
            };
            let core = runtime_core::create_with(
                CreateOptions {
                    id,
                    bundle: b.clone(),
                    root: r,
                    console_socket,
                    pid_file: None,
                    no_pivot,
                    preserve_fds: 0,
                    stdio: init_stdio,
                    reap: Reap::External,
                    extra_env: Vec::new(),
                },
                &extras,
            )
            .map_err(|e| undo(e.into()))?;
            let master = match receiver.map(console::Receiver::master).transpose() {
                Ok(m) => m,
                Err(e) => {
                    let _ = core.clone().delete(true);
                    return Err(undo(e));
                }
            };
            Ok((Some(core), rootfs, master, None))
        })
        .await?;

        let pid = core.as_ref().map(|c| c.pid()).unwrap_or(0);
        // Subscribe before anything else can observe the exit.
        let exited = core.as_ref().map(|_| window.claim(pid));
        let io = relay(&req.stdio, io, master)?;
        let container = Arc::new(Container {
            id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs,
            kill_all_on_exit: crate::pidns::kill_all_on_exit(core.as_ref(), &req.bundle),
            core: tokio::sync::Mutex::new(core),
            restore: Mutex::new(pending),
            init: Arc::new(Process::new(req.id.clone(), pid, req.stdio, io)),
            execs: Mutex::new(HashMap::new()),
            gate: tokio::sync::Mutex::new(()),
            oom_task: Mutex::new(None),
        });
        let gate = container.gate.lock().await;
        self.containers
            .lock()
            .await
            .insert(req.id.clone(), container.clone());
        let mut event = req.event;
        event.pid = pid as u32;
        self.monitor.publish(topics::TASK_CREATE_EVENT_TOPIC, event);
        if let Some(exited) = exited {
            self.monitor
                .watch(container.clone(), container.init.clone(), exited);
            container.watch_oom(&self.monitor).await;
        }
        drop(gate);
        tracing::info!(pid, "created");
        Ok(pid)
    }

    /// Start the init or an exec'd process; its pid.
    pub async fn start(&self, id: &str, exec_id: &str) -> Result<i32> {
        let (c, p) = self.process(id, exec_id).await?;
        if !exec_id.is_empty() {
            return self.start_exec(c, p).await;
        }
        let pending = c.restore.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(pending) = pending {
            return self.start_restore(c, p, pending).await;
        }
        let gate = c.gate.lock().await;
        p.check_start()?;
        let mut core = c.core().await?;
        let core = blocking(move || Ok(core.start().map(|()| core)?)).await?;
        *c.core.lock().await = Some(core);
        let pid = p.pid();
        let event = translate::task_start(&c.id, pid);
        self.monitor
            .started(p, topics::TASK_START_EVENT_TOPIC, event)
            .await?;
        drop(gate);
        tracing::info!(pid, "started");
        Ok(pid)
    }

    /// Start of a task created from a checkpoint: criu restores it now.
    async fn start_restore(
        &self,
        c: Arc<Container>,
        p: Arc<Process>,
        pending: PendingRestore,
    ) -> Result<i32> {
        let gate = c.gate.lock().await;
        let (id, bundle) = (c.id.clone(), c.bundle.clone());
        let window = self.reaper.window();
        let restored = blocking(move || pending.restore(&id, bundle)).await?;
        let pid = restored.core.pid();
        let exited = window.claim(pid);
        if let Some(m) = restored.master {
            *p.io.lock().await = stdio::relay_terminal(&p.stdio, m)?;
        }
        p.set_pid(pid, restored.handle);
        *c.core.lock().await = Some(restored.core);
        let event = translate::task_start(&c.id, pid);
        self.monitor
            .started(p.clone(), topics::TASK_START_EVENT_TOPIC, event)
            .await?;
        self.monitor.watch(c.clone(), p, exited);
        c.watch_oom(&self.monitor).await;
        drop(gate);
        tracing::info!(pid, "restored");
        Ok(pid)
    }

    /// Exec: add a process to run in the container, not started yet.
    pub async fn exec(&self, id: &str, req: Exec) -> Result<()> {
        let c = self.get(id).await?;
        {
            let mut execs = c.execs.lock().unwrap_or_else(|e| e.into_inner());
            if execs.contains_key(&req.exec_id) {
                return Err(ShimError::AlreadyExists(format!(
                    "id {} already in use",
                    req.exec_id
                )));
            }
            let p = Process::new_exec(req.exec_id.clone(), req.spec, req.stdio);
            execs.insert(req.exec_id.clone(), Arc::new(p));
        }
        tracing::info!("exec added");
        let event = translate::task_exec_added(&c.id, &req.exec_id);
        self.monitor
            .publish(topics::TASK_EXEC_ADDED_EVENT_TOPIC, event);
        Ok(())
    }

    async fn start_exec(&self, c: Arc<Container>, p: Arc<Process>) -> Result<i32> {
        let gate = c.gate.lock().await;
        p.check_start()?;
        let spec = p
            .spec
            .as_deref()
            .cloned()
            .ok_or_else(|| ShimError::Internal("exec process without spec".into()))?;
        // IoUid/IoGid apply to the init's stdio only (as the Go shim).
        let opts = RuntimeOptions::default();
        let (stdio, io, console) = self
            .stdio(&c.id, &p.stdio, opts.io_uid, opts.io_gid)
            .await?;
        let core = c.core().await?;
        let window = self.reaper.window();
        let (pid, handle, master) = blocking(move || {
            let (receiver, console_socket) = console::split(console);
            let pid = core.exec(ExecOptions {
                process: spec,
                console_socket,
                pid_file: None,
                preserve_fds: 0,
                stdio,
                reap: Reap::External,
            })?;
            // Opened at once: the process is ours until the reaper collects it.
            let handle = runtime_core::process_handle(pid);
            let master = receiver.map(console::Receiver::master).transpose()?;
            Ok((pid, handle, master))
        })
        .await?;
        let exited = window.claim(pid);
        *p.io.lock().await = relay(&p.stdio, io, master)?;
        p.set_pid(pid, handle);
        let event = translate::task_exec_started(&c.id, &p.id, pid);
        self.monitor
            .started(p.clone(), topics::TASK_EXEC_STARTED_EVENT_TOPIC, event)
            .await?;
        self.monitor.watch(c.clone(), p, exited);
        drop(gate);
        tracing::info!(pid, "exec started");
        Ok(pid)
    }

    /// Delete a process: an exec'd one that is not running, or the init (killed first
    /// if it was never started) with everything the container owns. Its pid and exit.
    pub async fn delete(&self, id: &str, exec_id: &str) -> Result<(i32, Option<Exit>)> {
        let (c, p) = self.process(id, exec_id).await?;
        if !exec_id.is_empty() {
            p.check_delete()?;
            let exit = self.monitor.deleted(c.clone(), p.clone()).await?;
            c.execs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&p.id);
            return Ok((p.pid(), exit));
        }
        let core = c.core.lock().await.clone();
        if let Some(core) = core {
            match p.state() {
                State::Running if core.status() != runtime_core::Status::Stopped => {
                    return Err(ShimError::FailedPrecondition(format!(
                        "cannot delete container {}: it is running",
                        c.id
                    )));
                }
                State::Created => {
                    let r = blocking(move || Ok(core.kill(crate::sys::SIGKILL, false)?)).await;
                    if let Err(e) = r {
                        tracing::debug!("kill the created init: {e}");
                    }
                }
                _ => {}
            }
            // The exit becomes visible once TaskExit is queued (the monitor).
            if tokio::time::timeout(Duration::from_secs(10), p.wait())
                .await
                .is_err()
            {
                return Err(ShimError::Internal(format!(
                    "container {}: init did not exit after SIGKILL",
                    c.id
                )));
            }
        }
        let core = c.core.lock().await.clone();
        let rootfs = c.rootfs.clone();
        blocking(move || {
            if let Some(core) = core {
                match core.delete(true) {
                    Ok(()) => {}
                    Err(e) if e.kind() == runtime_core::Kind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            rootfs.as_ref().map(Rootfs::unmount).transpose()?;
            Ok(())
        })
        .await?;
        bundle::forget_root(&c.bundle);
        c.stop_oom_watch();
        self.containers.lock().await.remove(&c.id);
        // Dropping the container's Io closes the fifos' keep-alive readers.
        let exit = self.monitor.deleted(c.clone(), p.clone()).await?;
        Ok((p.pid(), exit))
    }

    /// Kill: signal a process, or (`all`) every process of the container.
    pub async fn kill(&self, id: &str, exec_id: &str, sig: i32, all: bool) -> Result<()> {
        let (c, p) = self.process(id, exec_id).await?;
        p.check_signal(all)?;
        if !exec_id.is_empty() {
            return p.signal(sig).map_err(|e| {
                if e.errno() == Some(crate::sys::ESRCH) {
                    ShimError::NotFound("process already finished".into())
                } else {
                    ShimError::Internal(runtime_core::chain(&e))
                }
            });
        }
        let core = c.core().await?;
        blocking(move || {
            core.kill(sig, all).map_err(|e| match e {
                runtime_core::Error::NotRunning(_) => {
                    ShimError::NotFound("process already finished".into())
                }
                e => e.into(),
            })
        })
        .await
    }

    /// Whether the container is frozen.
    pub async fn paused(&self, c: &Container) -> bool {
        c.core.lock().await.as_ref().is_some_and(|k| k.frozen())
    }

    /// Pause (`frozen`) or resume the container.
    pub async fn freeze(&self, id: &str, frozen: bool) -> Result<()> {
        let c = self.get(id).await?;
        let core = c.core().await?;
        blocking(move || Ok(if frozen { core.pause() } else { core.resume() }?)).await?;
        if frozen {
            let event = translate::task_paused(&c.id);
            self.monitor.publish(topics::TASK_PAUSED_EVENT_TOPIC, event);
        } else {
            let event = translate::task_resumed(&c.id);
            self.monitor
                .publish(topics::TASK_RESUMED_EVENT_TOPIC, event);
        }
        Ok(())
    }

    /// Update the container's resources.
    pub async fn update(&self, id: &str, res: oci_spec::runtime::LinuxResources) -> Result<()> {
        let c = self.get(id).await?;
        let mut core = c.core.lock().await;
        let mut updated = core.clone().ok_or_else(|| {
            ShimError::FailedPrecondition(format!("container {} has not been restored yet", c.id))
        })?;
        let updated = blocking(move || Ok(updated.update(&res).map(|()| updated)?)).await?;
        *core = Some(updated);
        Ok(())
    }

    /// The container's resource usage.
    pub async fn stats(&self, id: &str) -> Result<runtime_core::Stats> {
        let core = self.get(id).await?.core().await?;
        blocking(move || Ok(core.stats()?)).await
    }

    /// The container's pids, with the exec id of each exec'd process.
    pub async fn pids(&self, id: &str) -> Result<(Vec<i32>, HashMap<i32, String>)> {
        let c = self.get(id).await?;
        let core = c.core().await?;
        let pids = blocking(move || {
            core.state
                .cgroup
                .pids()
                .map_err(|e| runtime_core::Error::from(e).into())
        })
        .await?;
        let execs = c
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|p| p.pid() > 0)
            .map(|p| (p.pid(), p.id.clone()))
            .collect();
        Ok((pids, execs))
    }

    /// Checkpoint the container into `o.image_path`.
    pub async fn checkpoint(&self, id: &str, o: runtime_core::CheckpointOptions) -> Result<()> {
        let c = self.get(id).await?;
        let mut core = c.core().await?;
        let o = crate::criu::with_cri_work_dir(o, &core.state.config, id);
        let image = o.image_path.clone();
        let stopped = !(o.leave_running || o.pre_dump);
        blocking(move || Ok(core.checkpoint(&o)?)).await?;
        if stopped {
            // Into the shim's own copy, not `core` (a clone from before the checkpoint,
            // without the exit status the monitor saves: issue 15).
            c.write_state(|s| s.recorded_status = runtime_core::Status::Stopped)
                .await?;
        }
        // containerd (1.6 to 2.1) does not publish TaskCheckpointed for a task checkpoint,
        // so the shim does; the exit (without leave-running) comes through the reaper.
        let event = translate::task_checkpointed(&c.id, &image);
        self.monitor
            .publish(topics::TASK_CHECKPOINTED_EVENT_TOPIC, event);
        tracing::info!("checkpointed");
        Ok(())
    }

    /// The init's pid, 0 if there is no such container.
    pub async fn task_pid(&self, id: &str) -> i32 {
        match self.get(id).await {
            Ok(c) => c.init.pid(),
            Err(_) => 0,
        }
    }

    /// Shutdown: the shim exits once it serves no container (a shim serving several
    /// containers of a pod stays while any remains).
    pub async fn shutdown(&self) {
        if self.containers.lock().await.is_empty()
            && self.reserved.lock().map(|r| r.is_empty()).unwrap_or(true)
        {
            self.shutdown.notify_one();
        }
    }
}

impl Container {
    /// Watch the container's memory cgroup and tell the monitor about new OOM kills.
    pub async fn watch_oom(self: &Arc<Self>, monitor: &Monitor) {
        let Ok(core) = self.core().await else { return };
        let watcher = match tokio::task::spawn_blocking(move || core.oom_watcher()).await {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                tracing::debug!("no OOM watch: {}", runtime_core::chain(&e));
                return;
            }
            Err(_) => return,
        };
        let monitor = monitor.clone();
        let rt: Arc<dyn Runtime> = self.clone();
        let task = tokio::spawn(async move {
            let Ok(mut afd) = crate::sys::async_fd(watcher) else {
                return;
            };
            loop {
                let Ok(mut g) = afd.readable_mut().await else {
                    return;
                };
                match g.get_inner_mut().read() {
                    Ok(Some(runtime_core::OomEvent::Oom { kills })) => {
                        monitor.oom(rt.clone(), kills)
                    }
                    Ok(Some(runtime_core::OomEvent::Gone)) | Err(_) => return,
                    Ok(None) => g.clear_ready(),
                }
            }
        });
        *self.oom_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }
}
