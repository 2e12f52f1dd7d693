//! `runrs exec`: run a process in a container, with runc's flags. Without `--process`,
//! the process starts from the container's own process spec (env, cwd, user,
//! capabilities, rlimits, no_new_privs, labels) with the flags applied on top.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::{Capability, Process};
use runtime_core::{ConsoleSocket, Container, ExecExtras, ExecOptions};
use runtime_core::{InitStdio, Reap};

use crate::run::Foreground;

/// `exec` flags.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Container id.
    id: String,
    /// Command and its arguments (ignored with --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Working directory.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Environment variables (KEY=value), added to the container's.
    #[arg(short, long)]
    env: Vec<String>,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    tty: bool,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    user: Option<String>,
    /// Additional groups.
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Process spec JSON file (replaces the command line).
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short, long)]
    detach: bool,
    /// Write the process' pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// SELinux process label.
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// AppArmor profile.
    #[arg(long)]
    apparmor: Option<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Add a capability (to every set).
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    /// Pass N extra descriptors (3..3+N) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Allow exec in a paused container (the process stays frozen until resume).
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Run the process in an existing sub-cgroup: [<controller>[,<controller>...]:]<path>
    /// (repeatable, one per controller; without a controller: every hierarchy).
    #[arg(long = "cgroup")]
    cgroup: Vec<String>,
}

/// `--cgroup` values as controller → sub-cgroup path ("" for every hierarchy), with
/// runc 1.1's rules and wording (`getSubCgroupPaths`).
fn sub_cgroups(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut paths = BTreeMap::new();
    for a in args {
        let parts: Vec<&str> = a.splitn(3, ':').collect();
        match parts[..] {
            [path] => {
                if args.len() != 1 {
                    anyhow::bail!("invalid --cgroup argument: {a} (missing <controller>: prefix)");
                }
                paths.insert(String::new(), path.to_string());
            }
            [ctrls, path] => {
                for ctrl in ctrls.split(',') {
                    if ctrl.is_empty() {
                        anyhow::bail!("invalid --cgroup argument: {a} (empty <controller> prefix)");
                    }
                    if paths.insert(ctrl.to_string(), path.to_string()).is_some() {
                        anyhow::bail!(
                            "invalid --cgroup argument(s): controller {ctrl} specified multiple times"
                        );
                    }
                }
            }
            _ => anyhow::bail!("invalid --cgroup argument: {a}"),
        }
    }
    Ok(paths)
}

fn process_from(a: &ExecArgs, c: &Container) -> anyhow::Result<Process> {
    if let Some(p) = &a.process {
        let bytes = std::fs::read(p)
            .map_err(|e| anyhow::anyhow!("read process file {}: {e}", p.display()))?;
        let mut v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("process file {}: {e}", p.display()))?;
        // runc (Go's zero value) runs a process without "user" as uid 0, gid 0.
        if let Some(o) = v.as_object_mut() {
            o.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        return serde_path_to_error::deserialize(v).map_err(|e| {
            anyhow::anyhow!("process file {}: {}: {}", p.display(), e.path(), e.inner())
        });
    }
    if a.command.is_empty() {
        anyhow::bail!("exec needs a command to run (or --process FILE)");
    }
    let mut p = c.state.config.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        user.set_uid(
            uid.parse()
                .map_err(|_| anyhow::anyhow!("--user {u}: expected uid[:gid]"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| anyhow::anyhow!("--user {u}: expected uid[:gid]"))?,
            );
        }
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(l) = &a.apparmor {
        p.set_apparmor_profile(Some(l.clone()));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let cap: Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| anyhow::anyhow!("--cap {name}: unknown capability"))?;
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
                caps.inheritable().clone(),
                caps.ambient().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => caps.set_bounding(Some(s)),
                    1 => caps.set_effective(Some(s)),
                    2 => caps.set_permitted(Some(s)),
                    3 => caps.set_inheritable(Some(s)),
                    _ => caps.set_ambient(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// Run `exec`; returns the exit code.
/// Marks a failure of `exec` itself (not of the exec'd process): runc exits 255 then
/// ("exec failed: ..."); the exec'd process' own exit code is passed through unchanged.
#[derive(Debug, thiserror::Error)]
#[error("exec failed")]
pub struct ExecFailed;

/// runc's exit code for [`ExecFailed`].
pub const EXEC_FAILED_EXIT: i32 = 255;

/// `exec`: the exec'd process' exit code, or an error marked [`ExecFailed`].
pub fn exec(a: ExecArgs, root: PathBuf) -> anyhow::Result<i32> {
    exec_process(a, root).map_err(|e| e.context(ExecFailed))
}

fn exec_process(a: ExecArgs, root: PathBuf) -> anyhow::Result<i32> {
    let c = Container::load(&root, &a.id)?;
    let process = process_from(&a, &c)?;
    let extras = ExecExtras {
        ignore_paused: a.ignore_paused,
        sub_cgroups: sub_cgroups(&a.cgroup)?,
    };
    let terminal = process.terminal() == Some(true);
    let mut console_socket = a.console_socket.clone().map(ConsoleSocket::Path);
    let pid_file = a.pid_file.clone().map(crate::absolute);
    let fg = if a.detach {
        None
    } else {
        Some(Foreground::prepare(terminal, &mut console_socket)?)
    };
    let pid = c.exec_with(
        ExecOptions {
            process,
            console_socket,
            pid_file,
            preserve_fds: a.preserve_fds,
            stdio: InitStdio::Inherit,
            reap: Reap::Here,
        },
        &extras,
    )?;
    match fg {
        None => Ok(0),
        Some(fg) => fg.wait(pid, || Ok(())),
    }
}
