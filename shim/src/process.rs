//! One process of a container as containerd sees it (the init, or an exec'd one), and
//! its lifecycle as a state machine: Created → Running → Stopped(exit) → Deleted.
//!
//! The `check_*` methods tell a request whether it may act (and with which ttrpc code
//! it is refused, as containerd-shim-runc-v2 answers: a finished process is NOT_FOUND,
//! an exec not started yet FAILED_PRECONDITION); the transitions themselves
//! (`started`, `exited`, `deleted`) are made by the monitor only (crate::monitor), which
//! publishes the matching event first, so what a waiter sees never runs ahead of the
//! events containerd received.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use containerd_shim_protos::api::Status;
use tokio::sync::watch;

use crate::error::{Result, ShimError};
use crate::stdio::{Io, StdioSpec};

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub status: u32,
    /// When the shim saw it.
    pub at: SystemTime,
}

/// Lifecycle of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, not started.
    Created,
    /// Started.
    Running,
    /// Exited, TaskExit published.
    Stopped(Exit),
    /// Deleted (its exit, if it ever ran).
    Deleted(Option<Exit>),
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
    /// A created init process.
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

    /// The container's init (not an exec'd process).
    pub fn is_init(&self) -> bool {
        self.spec.is_none()
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
    pub fn signal(&self, sig: i32) -> std::result::Result<(), runtime_core::host::SysError> {
        // One syscall under the lock: nothing waits on it for long.
        let handle = self.handle.lock().unwrap_or_else(|e| e.into_inner());
        match handle.as_ref() {
            Some(fd) => runtime_core::signal_pidfd(std::os::fd::AsFd::as_fd(fd), sig, self.pid()),
            None => Err(runtime_core::host::SysError::new(
                "pidfd_send_signal",
                format!("pid {} signal {sig}", self.pid()),
                std::io::Error::from_raw_os_error(crate::sys::ESRCH),
            )),
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn what(&self) -> &'static str {
        if self.is_init() {
            "container"
        } else {
            "process"
        }
    }

    /// Whether Start may start it.
    pub fn check_start(&self) -> Result<()> {
        match self.state() {
            State::Created => Ok(()),
            State::Running => Err(ShimError::FailedPrecondition(format!(
                "{} {} is already running",
                self.what(),
                self.id
            ))),
            State::Stopped(_) => Err(ShimError::FailedPrecondition(format!(
                "{} {} has stopped",
                self.what(),
                self.id
            ))),
            State::Deleted(_) => Err(self.deleted_err()),
        }
    }

    /// Whether Kill may signal it (`all`: every process of the container, which
    /// containerd asks for after the init exited too).
    pub fn check_signal(&self, all: bool) -> Result<()> {
        match self.state() {
            State::Created if !self.is_init() => Err(ShimError::FailedPrecondition(format!(
                "process {} not created",
                self.id
            ))),
            State::Created | State::Running => Ok(()),
            State::Stopped(_) if all && self.is_init() => Ok(()),
            State::Stopped(_) => Err(ShimError::NotFound("process already finished".into())),
            State::Deleted(_) => Err(self.deleted_err()),
        }
    }

    /// Whether Delete may delete it: not while it runs.
    pub fn check_delete(&self) -> Result<()> {
        match self.state() {
            State::Running => Err(ShimError::FailedPrecondition(format!(
                "cannot delete {} {}: it is running",
                self.what(),
                self.id
            ))),
            State::Created | State::Stopped(_) => Ok(()),
            State::Deleted(_) => Err(self.deleted_err()),
        }
    }

    fn deleted_err(&self) -> ShimError {
        ShimError::NotFound(format!("{} {} was deleted", self.what(), self.id))
    }

    /// Created → Running (the monitor, after queueing TaskStart/TaskExecStarted).
    pub(crate) fn started(&self) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *s != State::Created {
            drop(s);
            return self.check_start();
        }
        *s = State::Running;
        Ok(())
    }

    /// Created/Running → Stopped, waking every waiter (the monitor, after queueing
    /// TaskExit). A second exit is refused.
    pub(crate) fn exited(&self, exit: Exit) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match *s {
            State::Created | State::Running => {
                *s = State::Stopped(exit);
                drop(s);
                self.exit_tx.send_replace(Some(exit));
                Ok(())
            }
            State::Stopped(_) | State::Deleted(_) => Err(ShimError::FailedPrecondition(format!(
                "{} {} already exited",
                self.what(),
                self.id
            ))),
        }
    }

    /// Created/Stopped → Deleted, with the exit (None: it never ran) (the monitor,
    /// before queueing TaskDelete).
    pub(crate) fn deleted(&self) -> Result<Option<Exit>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let exit = match *s {
            State::Created => None,
            State::Stopped(e) => Some(e),
            State::Running | State::Deleted(_) => {
                drop(s);
                self.check_delete()?;
                return Err(self.deleted_err());
            }
        };
        *s = State::Deleted(exit);
        drop(s);
        if exit.is_none() {
            // Never ran: a Wait still pending returns (status 0, as the Go shim's).
            self.exit_tx.send_replace(Some(Exit {
                status: 0,
                at: SystemTime::now(),
            }));
        }
        Ok(exit)
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
            State::Stopped(_) | State::Deleted(_) => Status::STOPPED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::ttrpc::{self, Code};

    fn code(e: ShimError) -> Code {
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => s.code(),
            other => panic!("not a status: {other:?}"),
        }
    }

    fn exit(status: u32) -> Exit {
        Exit {
            status,
            at: SystemTime::now(),
        }
    }

    fn exec(id: &str) -> Process {
        Process::new_exec(
            id.into(),
            oci_spec::runtime::Process::default(),
            StdioSpec::default(),
        )
    }

    #[test]
    fn the_lifecycle_runs_forward_only() {
        let p = Process::new("c1".into(), 1, StdioSpec::default(), Io::default());
        assert_eq!(p.status(), Status::CREATED);
        p.started().expect("start");
        assert_eq!(
            code(p.started().expect_err("twice")),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(
            code(p.check_delete().expect_err("running")),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(
            code(p.deleted().expect_err("running")),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(p.exit(), None);
        let e = exit(3);
        p.exited(e).expect("exit");
        assert_eq!(p.exit(), Some(e));
        assert_eq!(p.status(), Status::STOPPED);
        assert_eq!(
            code(p.exited(exit(4)).expect_err("two exits")),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(p.exit(), Some(e), "a second exit replaced the first");
        assert_eq!(
            code(p.check_start().expect_err("stopped")),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(p.deleted().expect("delete"), Some(e));
        assert_eq!(code(p.deleted().expect_err("deleted")), Code::NOT_FOUND);
        assert_eq!(
            code(p.check_signal(true).expect_err("deleted")),
            Code::NOT_FOUND
        );
    }

    /// containerd-shim-runc-v2: Kill of a finished process is NOT_FOUND ("process
    /// already finished"), which containerd treats as success; an exec not started yet
    /// is FAILED_PRECONDITION; Kill --all of a stopped init still reaches the rest.
    #[test]
    fn kill_answers_as_containerd_expects() {
        let init = Process::new("c1".into(), 1, StdioSpec::default(), Io::default());
        init.check_signal(false)
            .expect("created init can be killed");
        init.started().expect("start");
        init.exited(exit(0)).expect("exit");
        assert_eq!(
            code(init.check_signal(false).expect_err("exited")),
            Code::NOT_FOUND
        );
        init.check_signal(true)
            .expect("kill --all after the init exited");

        let e = exec("e1");
        assert_eq!(
            code(e.check_signal(false).expect_err("not started")),
            Code::FAILED_PRECONDITION
        );
        e.started().expect("start");
        e.check_signal(false).expect("running");
        e.exited(exit(1)).expect("exit");
        assert_eq!(
            code(e.check_signal(true).expect_err("exited")),
            Code::NOT_FOUND
        );
    }

    #[test]
    fn an_exec_never_started_can_be_deleted() {
        let e = exec("e1");
        e.check_delete().expect("created");
        assert_eq!(e.deleted().expect("delete"), None);
        assert_eq!(code(e.check_start().expect_err("deleted")), Code::NOT_FOUND);
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
        let p = exec("e1");
        p.set_pid(pid, runtime_core::process_handle(pid));
        p.signal(0).expect("alive");
        p.signal(9).expect("killed");
        child.wait().expect("reaped");
        let e = p.signal(0).expect_err("the process is gone");
        assert_eq!(e.errno(), Some(crate::sys::ESRCH), "{e}");
        let never = exec("e2");
        never.set_pid(pid, None);
        assert_eq!(
            never.signal(0).expect_err("no handle").errno(),
            Some(crate::sys::ESRCH)
        );
    }
}
