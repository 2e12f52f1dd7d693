//! `exec`: run another process in a running (or created) container: it joins every
//! namespace of the container's init (by /proc/<pid>/ns paths), its cgroup, and gets the
//! capabilities, rlimits, user and no_new_privs of its own process spec. Like `create`,
//! the runtime re-execs itself into init; success is reported once execve happened.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Process;

use super::{create::write_pid_file, ConsoleSocket, Container};
use crate::cgroups::{CgroupPaths, Mode, UNIFIED};
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

/// Opt-ins of [`Container::exec_with`] beyond [`ExecOptions`]: runc's exec flags that
/// only the CLI uses.
#[derive(Debug, Clone, Default)]
pub struct ExecExtras {
    /// Exec into a paused container too (`--ignore-paused`): the process joins the
    /// frozen cgroup and is frozen with the container until it is resumed (runc).
    pub ignore_paused: bool,
    /// `--cgroup`: join these existing sub-cgroups of the container's cgroup, controller
    /// name to a path relative to the container's cgroup; the key "" means every
    /// hierarchy (runc 1.1's `[<controller>:]<path>`).
    pub sub_cgroups: BTreeMap<String, String>,
}

impl Container {
    /// Start `opts.process` inside the container; returns its host pid once it runs.
    pub fn exec(&self, opts: ExecOptions) -> Result<i32, Error> {
        self.exec_with(opts, &ExecExtras::default())
    }

    /// [`Container::exec`] with opt-ins.
    pub fn exec_with(&self, opts: ExecOptions, extras: &ExecExtras) -> Result<i32, Error> {
        let status = self.status();
        match status {
            Status::Running | Status::Created => {}
            Status::Paused if extras.ignore_paused => {}
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
            cgroup: in_sub_cgroups(&self.state.cgroup, &extras.sub_cgroups)?,
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

/// The container's cgroups with the `--cgroup` sub-cgroups in place of the directories
/// they name (runc 1.1 `addIntoCgroupV1`/`V2`). Each must exist already. On cgroup v2
/// there is one hierarchy, so every named path must be the same; on a hybrid host the
/// cgroup2 directory goes down only where the sub-cgroup exists there too (runc 1.1
/// leaves cgroup2 alone on such hosts).
pub(crate) fn in_sub_cgroups(
    cg: &CgroupPaths,
    subs: &BTreeMap<String, String>,
) -> Result<CgroupPaths, Error> {
    let mut out = cg.clone();
    if subs.is_empty() {
        return Ok(out);
    }
    let bad = |why: String| Error::Usage(format!("--cgroup: {why}"));
    let mut clean = BTreeMap::new();
    for (ctrl, path) in subs {
        let rel = Path::new(path.trim_start_matches('/'));
        if rel.as_os_str().is_empty()
            || rel.components().any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(bad(format!(
                "{path:?} is not a path below the container's cgroup"
            )));
        }
        if !ctrl.is_empty() && cg.mode != Mode::Unified && !cg.dirs.contains_key(ctrl) {
            return Err(bad(format!("the container has no {ctrl} cgroup")));
        }
        clean.insert(ctrl.as_str(), rel);
    }
    if clean.contains_key("") && clean.len() > 1 {
        return Err(bad(
            "a path without a controller cannot be mixed with <controller>:<path>".into(),
        ));
    }
    if cg.mode == Mode::Unified {
        let mut paths = clean.values();
        let first = paths.next().copied();
        if paths.any(|p| Some(*p) != first) {
            return Err(bad(
                "cgroup v2 has one hierarchy: every controller needs the same sub-cgroup".into(),
            ));
        }
        clean = first.map(|p| ("", p)).into_iter().collect();
    }
    for (ctrl, dir) in out.dirs.iter_mut() {
        let Some(rel) = clean.get(ctrl.as_str()).or_else(|| clean.get("")) else {
            continue;
        };
        let sub = dir.join(rel);
        if sub.is_dir() {
            *dir = sub;
        } else if !(cg.mode == Mode::Hybrid && ctrl == UNIFIED) {
            return Err(bad(format!(
                "the sub-cgroup {} does not exist",
                sub.display()
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid(root: &Path) -> CgroupPaths {
        let mut cg = CgroupPaths {
            mode: Mode::Hybrid,
            path: "/c".into(),
            ..CgroupPaths::default()
        };
        for k in ["memory", "pids", UNIFIED] {
            let d = root.join(k).join("c");
            std::fs::create_dir_all(d.join("sub")).expect("mkdir");
            cg.dirs.insert(k.into(), d);
        }
        cg
    }

    fn subs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sub_cgroups_replace_the_named_directories() {
        let t = tempfile::tempdir().expect("tempdir");
        let cg = hybrid(t.path());
        let all = in_sub_cgroups(&cg, &subs(&[("", "/sub")])).expect("every hierarchy");
        assert!(all.dirs.values().all(|d| d.ends_with("c/sub")), "{all:?}");
        let one = in_sub_cgroups(&cg, &subs(&[("memory", "sub")])).expect("memory only");
        assert!(one.dirs["memory"].ends_with("c/sub"));
        assert!(one.dirs["pids"].ends_with("pids/c"));
    }

    #[test]
    fn bad_sub_cgroups_are_refused_by_name() {
        let t = tempfile::tempdir().expect("tempdir");
        let cg = hybrid(t.path());
        for (kv, want) in [
            (subs(&[("", "../x")]), "not a path below"),
            (subs(&[("", "nosuch")]), "does not exist"),
            (subs(&[("cpu", "sub")]), "no cpu cgroup"),
            (subs(&[("", "sub"), ("memory", "sub")]), "cannot be mixed"),
        ] {
            let e = in_sub_cgroups(&cg, &kv).expect_err("refused").to_string();
            assert!(e.contains(want), "{kv:?}: {e}");
        }
    }
}
