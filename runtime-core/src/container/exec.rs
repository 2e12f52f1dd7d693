//! `exec`: run another process in a running (or created) container: it joins every
//! namespace of the container's init (by /proc/<pid>/ns paths), its cgroup, and gets the
//! capabilities, rlimits, user and no_new_privs of its own process spec. Like `create`,
//! the runtime re-execs itself into init; success is reported once execve happened.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::Process;

use super::{create::write_pid_file, ConsoleSocket, Container};
use crate::error::Error;
use crate::namespaces::{self, Namespace};
use crate::process::init::InitConfig;
use crate::process::spawn::{self, InitFds, InitStdio, Reap};
use crate::state::Status;

/// Options of [`Container::exec`].
#[derive(Debug)]
pub struct ExecOptions {
    /// The process to run.
    pub process: Process,
    /// Console socket when `process.terminal` is true.
    pub console_socket: Option<ConsoleSocket>,
    /// Write the process' pid here.
    pub pid_file: Option<PathBuf>,
    /// Pass descriptors 3..3+N to the process.
    pub preserve_fds: u32,
    /// The process' stdio.
    pub stdio: InitStdio,
    /// Who reaps the short-lived first stage of init.
    pub reap: Reap,
}

impl Container {
    /// Start `opts.process` inside the container; returns its host pid once it runs.
    pub fn exec(&self, opts: ExecOptions) -> Result<i32, Error> {
        let status = self.status();
        match status {
            Status::Running | Status::Created => {}
            Status::Paused => {
                return Err(Error::WrongState {
                    id: self.id().to_string(),
                    status,
                    action: "exec in",
                    want: "running (resume it first)",
                })
            }
            _ => {
                return Err(Error::WrongState {
                    id: self.id().to_string(),
                    status,
                    action: "exec in",
                    want: "running",
                })
            }
        }
        crate::spec::validate_process(&opts.process, "process")?;
        let seccomp = crate::security::preflight_exec(&self.state.config, &opts.process)?;
        let terminal = opts.process.terminal() == Some(true);
        match (&opts.console_socket, terminal) {
            (None, true) => return Err(Error::Usage(
                "process.terminal is true but no console socket was given (use --console-socket)"
                    .into(),
            )),
            (Some(_), false) => {
                return Err(Error::Usage(
                    "a console socket was given but process.terminal is false".into(),
                ))
            }
            _ => {}
        }
        let pid = self.pid();
        let joins: Vec<Namespace> = namespaces::from_spec(&self.state.config)
            .into_iter()
            .map(|n| Namespace {
                kind: n.kind,
                path: Some(namespaces::proc_path(pid, n.kind)),
            })
            .collect();
        let console: Option<OwnedFd> = match opts.console_socket {
            Some(ConsoleSocket::Path(p)) => Some(OwnedFd::from(
                std::os::unix::net::UnixStream::connect(&p)
                    .map_err(|e| Error::ConsoleSocket(p.clone(), e))?,
            )),
            Some(ConsoleSocket::Fd(fd)) => Some(fd),
            None => None,
        };
        let cfg = InitConfig {
            id: self.id().to_string(),
            spec: self.state.config.clone(),
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            namespaces: joins,
            cgroup: self.state.cgroup.clone(),
            cgroup_mounts: Vec::new(),
            no_pivot: self.state.no_pivot,
            preserve_fds: opts.preserve_fds,
            console_socket: console.is_some(),
            parent_hooks: false,
            created: self.state.created.clone(),
            exec: Some(Box::new(opts.process)),
            seccomp,
            rdt: self.state.rdt.clone(),
            debug: tracing::enabled!(tracing::Level::DEBUG),
        };
        let spawned = spawn::spawn(
            cfg,
            InitFds {
                exec_fifo: None,
                console_socket: console.as_ref().map(|c| c.as_fd()),
                on_stage1: None,
            },
            opts.stdio,
            opts.reap,
            |_| Ok(()),
        )?;
        if let Some(r) = &self.state.rdt {
            // Already in through init's stage 1 (inherited); named for `tasks` readers.
            crate::rdt::add_task(r, spawned.pid)?;
        }
        if let Some(pf) = &opts.pid_file {
            write_pid_file(pf, spawned.pid)?;
        }
        Ok(spawned.pid)
    }
}
