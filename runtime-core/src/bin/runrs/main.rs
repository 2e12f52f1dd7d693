//! `runrs`: a runc-compatible command line over runtime-core.

mod argv;
mod checkpoint;
mod events;
mod exec;
mod features_cmd;
mod help;
mod logging;
mod ps;
mod ready;
mod restore;
mod rootless;
mod run;
mod spec_cmd;
mod update;

use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use runtime_core::{ConsoleSocket, Container, CreateExtras, CreateOptions};
use runtime_core::{InitStdio, Reap};

/// runrs: an OCI container runtime, command-line compatible with runc.
#[derive(Parser, Debug)]
#[command(
    name = "runrs",
    about,
    disable_help_subcommand = true,
    disable_version_flag = true
)]
struct Cli {
    /// Root directory for container state (default: /run/runrs; $XDG_RUNTIME_DIR/runrs
    /// for a non-root user, as runc does).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    log_format: logging::Format,
    /// Enable debug logging.
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Ignore cgroup permission errors ('true', 'false', or 'auto': for a caller that
    /// is not the real root).
    #[arg(long)]
    rootless: Option<String>,
    /// Path to the criu binary.
    #[arg(long, global = true, default_value = "criu")]
    criu: String,
    /// resctrl mount point for linux.intelRdt (default: the host's, from mountinfo);
    /// lets tests use a fake resctrl tree.
    #[arg(long = "resctrl-root", global = true, hide = true)]
    resctrl_root: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a new specification file (config.json).
    Spec {
        /// Bundle directory to write config.json into.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Generate a spec for a rootless container.
        #[arg(long = "rootless", id = "spec_rootless")]
        rootless: bool,
    },
    /// Create a container.
    Create(CreateArgs),
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
        #[command(flatten)]
        ready: ready::ReadyArgs,
    },
    /// Create and start a container, and wait for it unless detached.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        #[command(flatten)]
        ready: ready::ReadyArgs,
    },
    /// Show the OCI features this runtime implements.
    Features,
    /// Output the state of a container.
    State {
        /// Container id.
        id: String,
    },
    /// List containers.
    #[command(alias = "ps-containers")]
    List {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Send a signal to a container's init (default SIGTERM).
    Kill {
        /// Container id.
        id: String,
        /// Signal name or number. A negative number is the signal argument (runc fails
        /// it as an invalid signal, exit 1), not an unknown flag (usage error, exit 2).
        #[arg(allow_negative_numbers = true)]
        signal: Option<String>,
        /// Send to all processes of the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Run a process in a container.
    Exec(exec::ExecArgs),
    /// Update a container's resource limits.
    Update(Box<update::Args>),
    /// Suspend every process of a container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Resume a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// List the processes of a container.
    Ps(ps::Args),
    /// Print container stats and OOM events (JSON lines).
    Events(events::Args),
    /// Checkpoint a running container with CRIU.
    Checkpoint(checkpoint::CheckpointArgs),
    /// Restore a container from a CRIU checkpoint.
    Restore(restore::RestoreArgs),
    /// Delete a container.
    Delete {
        /// Container id.
        id: String,
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// Container id.
    id: String,
    /// Bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Write the init pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Do not use pivot_root (MS_MOVE + chroot instead).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a session keyring (accepted for compatibility).
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N extra descriptors (3..3+N) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
}

impl CreateArgs {
    fn into_options(self, root: PathBuf) -> CreateOptions {
        // systemd socket activation (as runc): descriptors 3..3+LISTEN_FDS meant for us
        // go to the container first, announced by LISTEN_FDS and LISTEN_PID=1.
        let listen_fds = socket_activation();
        let extra_env = if listen_fds > 0 {
            vec![
                format!("LISTEN_FDS={listen_fds}"),
                "LISTEN_PID=1".to_string(),
            ]
        } else {
            Vec::new()
        };
        CreateOptions {
            id: self.id,
            bundle: self.bundle,
            root,
            console_socket: self.console_socket.map(ConsoleSocket::Path),
            pid_file: self.pid_file.map(absolute),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds + listen_fds,
            stdio: InitStdio::Inherit,
            reap: Reap::Here,
            extra_env,
        }
    }

    /// The CLI's opt-ins: NOTIFY_SOCKET in the environment gives the container a
    /// notify socket, as with runc.
    fn extras(cli: &Cli) -> anyhow::Result<CreateExtras> {
        Ok(CreateExtras {
            notify: ready::wanted()?,
            resctrl_root: cli.resctrl_root.clone().map(absolute),
            systemd_cgroup: cli.systemd_cgroup,
            rootless: rootless::cgroups(cli.rootless.as_deref(), cli.systemd_cgroup)?,
        })
    }
}

/// The number of descriptors systemd passed to this process (LISTEN_FDS, when
/// LISTEN_PID is our pid), 0 otherwise.
fn socket_activation() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// runc's default state root: `$XDG_RUNTIME_DIR/runrs` when XDG_RUNTIME_DIR is set and
/// the caller is not the real root (a non-zero euid, or uid 0 inside a user namespace
/// with USER unset or not "root"), made 0700 and sticky as the XDG spec asks; else
/// /run/runrs. See runc's `shouldHonorXDGRuntimeDir`.
fn default_root() -> anyhow::Result<PathBuf> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty());
    let in_userns = rootless::in_userns();
    let user = std::env::var("USER").ok();
    let euid = nix::unistd::geteuid().as_raw();
    let Some(dir) = xdg_root(xdg.as_deref(), euid, in_userns, user.as_deref()) else {
        return Ok(PathBuf::from("/run/runrs"));
    };
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| anyhow::anyhow!("create {}: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1700))
        .map_err(|e| anyhow::anyhow!("chmod {}: {e}", dir.display()))?;
    Ok(dir)
}

/// `<xdg>/runrs` when runc would honour XDG_RUNTIME_DIR (see [`default_root`]).
fn xdg_root(
    xdg: Option<&std::ffi::OsStr>,
    euid: u32,
    in_userns: bool,
    user: Option<&str>,
) -> Option<PathBuf> {
    let xdg = xdg?;
    let honour = euid != 0 || (in_userns && user != Some("root"));
    honour.then(|| absolute(PathBuf::from(xdg)).join("runrs"))
}

/// An absolute form of `p` (relative to the current directory).
pub fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}

/// A command line clap refused. Like runc, the error also goes to `--log` in the chosen
/// format (the runc shim reads it from there to report the failure); help and version
/// requests print as usual.
fn usage_error(raw: &[std::ffi::OsString], e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    if e.kind() == ErrorKind::InvalidSubcommand {
        if let Some(clap::error::ContextValue::String(name)) =
            e.get(clap::error::ContextKind::InvalidSubcommand)
        {
            help::no_topic(name)
        }
    }
    if let Some(log) = argv::global_value(raw, "log") {
        let format = argv::global_value(raw, "log-format")
            .and_then(|f| {
                <logging::Format as clap::ValueEnum>::from_str(&f.to_string_lossy(), true).ok()
            })
            .unwrap_or(logging::Format::Text);
        if logging::init(Some(std::path::Path::new(&log)), format, false).is_ok() {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            tracing::error!("{}", first.strip_prefix("error: ").unwrap_or(first));
            logging::flush();
        }
    }
    e.exit()
}

fn main() {
    runtime_core::maybe_run();
    // The CLI talks to systemd in process, and is the shim's D-Bus helper.
    runtime_core::link_systemd_dbus();
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cmd = argv::overriding(Cli::command());
    cmd.build();
    help::early(&mut cmd, &raw);
    let args = argv::normalize(&cmd, raw.clone());
    let cli = match cmd
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => usage_error(&raw, e),
    };
    let to_file = cli.log.is_some();
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("runrs: {e}");
        std::process::exit(1);
    }
    match dispatch(cli) {
        Ok(code) => {
            logging::flush();
            std::process::exit(code)
        }
        Err(e) => {
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            // Like runc: the log line goes to --log (or stderr when there is none); with a
            // log file, stderr also gets the bare message.
            tracing::error!("{msg}");
            if to_file {
                let _ = writeln!(std::io::stderr(), "{msg}");
            }
            if e.downcast_ref::<exec::ExecFailed>().is_some() {
                std::process::exit(exec::EXEC_FAILED_EXIT)
            }
            std::process::exit(1)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    if cli.systemd_cgroup {
        if let Some(why) = runtime_core::systemd_driver_unavailable(std::path::Path::new("/run")) {
            anyhow::bail!("--systemd-cgroup: {why}");
        }
    }
    let root = match &cli.root {
        Some(r) => absolute(r.clone()),
        None => default_root()?,
    };
    let extras = CreateArgs::extras(&cli);
    match cli.cmd {
        Cmd::Spec { bundle, rootless } => {
            spec_cmd::write(&bundle, rootless)?;
            Ok(0)
        }
        Cmd::Create(a) => {
            runtime_core::create_with(a.into_options(root), &extras?)?;
            Ok(0)
        }
        Cmd::Start { id, ready } => {
            Container::load(&root, &id)?.start_with(&ready.start_options()?)?;
            Ok(0)
        }
        Cmd::Run {
            create,
            detach,
            keep,
            ready,
        } => run::run(
            create.into_options(root),
            &extras?,
            detach,
            keep,
            &ready.start_options()?,
        ),
        Cmd::Features => features_cmd::print(),
        Cmd::State { id } => {
            let c = Container::load(&root, &id)?;
            // runc prints the state without a trailing newline.
            print!("{}", serde_json::to_string_pretty(&c.oci_state())?);
            Ok(0)
        }
        Cmd::List { format, quiet } => list(&root, &format, quiet),
        Cmd::Kill { id, signal, all } => {
            let sig = runtime_core::parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            Container::load(&root, &id)?.kill(sig, all)?;
            Ok(0)
        }
        Cmd::Exec(a) => exec::exec(a, root),
        Cmd::Update(a) => update::run(&root, *a),
        Cmd::Pause { id } => {
            Container::load(&root, &id)?.pause()?;
            Ok(0)
        }
        Cmd::Resume { id } => {
            Container::load(&root, &id)?.resume()?;
            Ok(0)
        }
        Cmd::Ps(a) => ps::run(&root, a),
        Cmd::Events(a) => events::run(&root, a),
        Cmd::Checkpoint(a) => checkpoint::checkpoint(a, &root, &cli.criu),
        Cmd::Restore(a) => restore::restore(a, root, &cli.criu, cli.systemd_cgroup),
        Cmd::Delete { id, force } => {
            match Container::load(&root, &id) {
                Ok(c) => c.delete(force)?,
                Err(e) => {
                    // runc: a forced delete of a missing container is not an error.
                    if !(force && e.kind() == runtime_core::Kind::NotFound) {
                        return Err(e.into());
                    }
                }
            }
            Ok(0)
        }
    }
}

fn owner_name(root: &std::path::Path, id: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(root.join(id))
        .map(|m| m.uid())
        .unwrap_or(0);
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

fn list(root: &std::path::Path, format: &str, quiet: bool) -> anyhow::Result<i32> {
    // Like runc, a missing state root is created (0700), not an error.
    if !root.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| anyhow::anyhow!("create state root {}: {e}", root.display()))?;
    }
    let cs = runtime_core::list(root)?;
    if quiet {
        for c in &cs {
            println!("{}", c.id());
        }
        return Ok(0);
    }
    match format {
        "json" => {
            let v: Vec<_> = cs
                .iter()
                .map(|c| {
                    let mut s = c.oci_state();
                    s.owner = owner_name(root, c.id());
                    s
                })
                .collect();
            // runc prints null, not [], when there are no containers.
            if v.is_empty() {
                println!("null");
            } else {
                println!("{}", serde_json::to_string(&v)?);
            }
        }
        "table" => {
            let rows: Vec<[String; 6]> = cs
                .iter()
                .map(|c| {
                    let s = c.oci_state();
                    [
                        s.id,
                        s.pid.to_string(),
                        s.status.to_string(),
                        s.bundle,
                        s.created,
                        owner_name(root, c.id()),
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
            let mut w = [0usize; 6];
            for (i, h) in head.iter().enumerate() {
                // Go's tabwriter as runc configures it: min width 12, padding 3.
                let longest = rows
                    .iter()
                    .map(|r| r[i].len())
                    .max()
                    .unwrap_or(0)
                    .max(h.len());
                w[i] = (longest + 3).max(12);
            }
            let line = |cols: [&str; 6]| {
                let mut s = String::new();
                for (i, c) in cols.iter().enumerate() {
                    if i < 5 {
                        s.push_str(&format!("{c:<width$}", width = w[i]));
                    } else {
                        s.push_str(c);
                    }
                }
                s
            };
            println!("{}", line(head));
            for r in &rows {
                println!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
            }
        }
        f => anyhow::bail!("invalid format option {f:?} (table or json)"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn xdg_root_follows_runc() {
        let x = Some(OsStr::new("/run/user/1000"));
        let want = Some(PathBuf::from("/run/user/1000/runrs"));
        // A normal user.
        assert_eq!(xdg_root(x, 1000, false, Some("me")), want);
        // The real root ignores XDG_RUNTIME_DIR.
        assert_eq!(xdg_root(x, 0, false, Some("root")), None);
        assert_eq!(xdg_root(x, 0, false, None), None);
        // uid 0 in a user namespace: unless USER says root.
        assert_eq!(xdg_root(x, 0, true, None), want);
        assert_eq!(xdg_root(x, 0, true, Some("me")), want);
        assert_eq!(xdg_root(x, 0, true, Some("root")), None);
        // No XDG_RUNTIME_DIR: /run/runrs.
        assert_eq!(xdg_root(None, 1000, false, Some("me")), None);
    }
}
