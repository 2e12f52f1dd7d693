//! What the shim tracks per container and per process: the runtime-core container, the
//! init's status and exit (a watch channel that Wait RPCs await), and its stdio.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use containerd_shim_protos::api::Status;
use tokio::sync::watch;

use crate::stdio::{Io, StdioSpec};

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub status: u32,
    /// When the shim saw it.
    pub at: SystemTime,
}

/// Lifecycle of a process as containerd sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, not started.
    Created,
    /// Started.
    Running,
    /// Exited.
    Stopped,
}

/// A process of a container (the init, later exec'd ones).
pub struct Process {
    /// The process id containerd uses (container id for the init).
    pub id: String,
    /// Host pid (0 until an exec'd process is started).
    pid: AtomicI32,
    /// A pidfd of the started process, opened right after it started: signals go
    /// through it, never through the bare pid (which the kernel recycles once the
    /// reaper collected the exit, possibly while the output still drains).
    handle: Mutex<Option<std::os::fd::OwnedFd>>,
    /// An exec'd process' spec (None for the init).
    pub spec: Option<Box<oci_spec::runtime::Process>>,
    /// What containerd asked for.
    pub stdio: StdioSpec,
    /// Shim side of the stdio.
    pub io: tokio::sync::Mutex<Io>,
    state: Mutex<State>,
    exit_tx: watch::Sender<Option<Exit>>,
}

impl Process {
    /// A created process.
    pub fn new(id: String, pid: i32, stdio: StdioSpec, io: Io) -> Self {
        Process {
            id,
            pid: AtomicI32::new(pid),
            handle: Mutex::new(None),
            spec: None,
            stdio,
            io: tokio::sync::Mutex::new(io),
            state: Mutex::new(State::Created),
            exit_tx: watch::channel(None).0,
        }
    }

    /// An exec'd process, not started yet.
    pub fn new_exec(id: String, spec: oci_spec::runtime::Process, stdio: StdioSpec) -> Self {
        let mut p = Process::new(id, 0, stdio, Io::default());
        p.spec = Some(Box::new(spec));
        p
    }

    /// Host pid (0 before start).
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::Acquire)
    }

    /// Record the pid of a started process and its handle (None: already gone).
    pub fn set_pid(&self, pid: i32, handle: Option<std::os::fd::OwnedFd>) {
        self.pid.store(pid, Ordering::Release);
        *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = handle;
    }

    /// Send `sig` through the process' handle; an error with ESRCH once it is gone.
    pub fn signal(&self, sig: i32) -> Result<(), runtime_core::sys::SysError> {
        // One syscall under the lock: nothing waits on it for long.
        let handle = self.handle.lock().unwrap_or_else(|e| e.into_inner());
        match handle.as_ref() {
            Some(fd) => {
                runtime_core::container::signal_pidfd(std::os::fd::AsFd::as_fd(fd), sig, self.pid())
            }
            None => Err(runtime_core::sys::SysError::new(
                "pidfd_send_signal",
                format!("pid {} signal {sig}", self.pid()),
                std::io::Error::from_raw_os_error(libc::ESRCH),
            )),
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mark started.
    pub fn set_running(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *s == State::Created {
            *s = State::Running;
        }
    }

    /// Record the exit and wake every waiter.
    pub fn set_exited(&self, exit: Exit) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = State::Stopped;
        self.exit_tx.send_replace(Some(exit));
    }

    /// Make the exit visible right after `announce` (which queues TaskExit) ran.
    /// Whatever acts on the exit — Wait returning, Delete queueing TaskDelete — can
    /// only do so afterwards, so TaskExit precedes TaskDelete in the event queue by
    /// construction, whatever awaits are added around it.
    pub fn finish(&self, exit: Exit, announce: impl FnOnce(&Exit)) {
        announce(&exit);
        self.set_exited(exit);
    }

    /// The exit, if it happened.
    pub fn exit(&self) -> Option<Exit> {
        *self.exit_tx.borrow()
    }

    /// Wait for the exit.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit_tx.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as `self`; unreachable in practice.
                return Exit {
                    status: 255,
                    at: SystemTime::now(),
                };
            }
        }
    }

    /// The containerd status of this process (paused is decided by the container).
    pub fn status(&self) -> Status {
        match self.state() {
            State::Created => Status::CREATED,
            State::Running => Status::RUNNING,
            State::Stopped => Status::STOPPED,
        }
    }
}

/// A container served by this shim.
pub struct Container {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Where the shim mounted containerd's rootfs mounts (to unmount on delete).
    pub mounted_rootfs: Option<PathBuf>,
    /// The runtime-core container (None while a checkpoint waits to be restored by Start).
    pub core: tokio::sync::Mutex<Option<runtime_core::Container>>,
    /// A restore prepared at Create and performed at Start (as containerd-shim-runc-v2).
    pub restore: Mutex<Option<PendingRestore>>,
    /// The init process.
    pub init: Arc<Process>,
    /// Exec'd processes by exec id.
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// Kill everything in the cgroup when the init exits (no own pid namespace).
    pub kill_all_on_exit: bool,
    /// Held while a Create or Start is being reported, so TaskExit follows them.
    pub gate: tokio::sync::Mutex<()>,
    /// OOM kills already reported as TaskOOM.
    pub oom_reported: Mutex<u64>,
    /// The OOM watcher task (aborted on delete).
    pub oom_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What Create prepared for restoring a checkpoint at Start.
pub struct PendingRestore {
    /// The checkpoint image directory.
    pub image: PathBuf,
    /// containerd's parent checkpoint, if any (not supported by criu restore here).
    pub work: PathBuf,
    /// The state root.
    pub root: PathBuf,
    /// The new stdio of the restored process.
    pub stdio: runtime_core::process::spawn::InitStdio,
    /// Console socket pair (ours, the runtime's) for a terminal.
    pub console: Option<(
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    )>,
    /// criu binary.
    pub criu: PathBuf,
}

impl Container {
    /// The one writer of the container's state.json: `change` is made to the shim's own
    /// copy and the result saved, both under the core lock, so two writers (the exit
    /// watcher, a checkpoint) never save over each other with a stale copy. Nothing to
    /// do while the container is still to be restored.
    pub async fn write_state(
        &self,
        change: impl FnOnce(&mut runtime_core::state::ContainerState),
    ) -> crate::error::Result<()> {
        let mut core = self.core.lock().await;
        let Some(k) = core.as_mut() else {
            return Ok(());
        };
        change(&mut k.state);
        let snapshot = k.clone();
        tokio::task::spawn_blocking(move || snapshot.save())
            .await
            .map_err(|e| crate::error::ShimError::Internal(format!("save state: {e}")))??;
        Ok(())
    }

    /// A copy of the runtime-core container; an error while it is still to be restored.
    pub async fn core(&self) -> crate::error::Result<runtime_core::Container> {
        self.core.lock().await.clone().ok_or_else(|| {
            crate::error::ShimError::FailedPrecondition(format!(
                "container {} has not been restored yet (Start restores it)",
                self.id
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15: TaskExit preceded TaskDelete only because no await stood between
    /// making the exit visible and publishing it. Now the exit is visible only after
    /// the announcement ran: a waiter cannot see it earlier.
    #[test]
    fn the_exit_is_announced_before_anyone_can_see_it() {
        let p = Process::new("c1".into(), 1, StdioSpec::default(), Io::default());
        let exit = Exit {
            status: 3,
            at: SystemTime::now(),
        };
        let mut seen_by_announce = Some(exit);
        p.finish(exit, |_| seen_by_announce = p.exit());
        assert_eq!(
            seen_by_announce, None,
            "the exit was visible before TaskExit"
        );
        assert_eq!(p.exit(), Some(exit));
        assert_eq!(p.state(), State::Stopped);
    }

    /// Issue 15: an exec'd process was signalled by its bare pid, which the kernel
    /// recycles once the reaper collected the exit (the output may still drain then).
    /// The handle opened at start refers to that process only: once it is gone the
    /// signal fails with ESRCH instead of reaching whoever has the pid now.
    #[test]
    fn signals_go_to_the_started_process_only() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("sleep");
        let pid = child.id() as i32;
        let p = Process::new_exec(
            "e1".into(),
            oci_spec::runtime::Process::default(),
            StdioSpec::default(),
        );
        p.set_pid(pid, runtime_core::container::process_handle(pid));
        p.signal(0).expect("alive");
        p.signal(libc::SIGKILL).expect("killed");
        child.wait().expect("reaped");
        let e = p.signal(0).expect_err("the process is gone");
        assert_eq!(e.errno(), Some(libc::ESRCH), "{e}");
        let never = Process::new_exec(
            "e2".into(),
            oci_spec::runtime::Process::default(),
            StdioSpec::default(),
        );
        never.set_pid(pid, None);
        assert_eq!(
            never.signal(0).expect_err("no handle").errno(),
            Some(libc::ESRCH)
        );
    }
}
