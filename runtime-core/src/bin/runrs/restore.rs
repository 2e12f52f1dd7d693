//! `runrs restore`: recreate a container from a CRIU checkpoint, with runc's flags.
//! Without `--detach` the restored container runs in the foreground like `run`:
//! signals are forwarded, its exit status becomes ours, and it is deleted afterwards.

use std::path::{Path, PathBuf};

use runtime_core::{ConsoleSocket, RestoreOptions};

use crate::run::Foreground;

/// `restore` flags.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Container id (may differ from the checkpointed one).
    id: String,
    /// Path to criu image files for restoring (default: ./checkpoint).
    #[arg(long = "image-path")]
    image_path: Option<PathBuf>,
    /// Path for saving work files and logs (default: the image path).
    #[arg(long = "work-path")]
    work_path: Option<PathBuf>,
    /// Allow open tcp connections.
    #[arg(long = "tcp-established")]
    tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    file_locks: bool,
    /// cgroups mode: soft, full, strict or ignore.
    #[arg(long = "manage-cgroups-mode")]
    manage_cgroups_mode: Option<String>,
    /// Bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Detach from the container's process.
    #[arg(short, long)]
    detach: bool,
    /// Write the restored init's pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Do not become a subreaper (the restored init is runrs' child either way; its
    /// orphaned descendants then go to the host's reaper).
    #[arg(long = "no-subreaper")]
    no_subreaper: bool,
    /// Do not use pivot_root (recorded; criu restores the root itself).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Create a namespace, but do not restore its properties.
    #[arg(long = "empty-ns")]
    empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images.
    #[arg(long = "auto-dedup")]
    auto_dedup: bool,
    /// Use userfaultfd to lazily restore memory pages.
    #[arg(long = "lazy-pages")]
    lazy_pages: bool,
}

/// Run `restore`.
pub fn restore(
    a: RestoreArgs,
    root: PathBuf,
    criu_bin: &str,
    systemd_cgroup: bool,
) -> anyhow::Result<i32> {
    let image = a
        .image_path
        .map(crate::absolute)
        .unwrap_or_else(crate::checkpoint::default_image_path);
    let mut o = RestoreOptions::new(&a.id, crate::absolute(a.bundle), root, image);
    o.criu = PathBuf::from(criu_bin);
    o.work_path = a.work_path.map(crate::absolute);
    o.console_socket = a.console_socket.map(ConsoleSocket::Path);
    o.pid_file = a.pid_file.map(crate::absolute);
    o.no_pivot = a.no_pivot;
    o.tcp_established = a.tcp_established;
    o.ext_unix_sk = a.ext_unix_sk;
    o.shell_job = a.shell_job;
    o.file_locks = a.file_locks;
    o.manage_cgroups_mode = a
        .manage_cgroups_mode
        .as_deref()
        .map(str::parse)
        .transpose()?;
    o.empty_ns = runtime_core::parse_namespaces(&a.empty_ns)?;
    o.auto_dedup = a.auto_dedup;
    o.lazy_pages = a.lazy_pages;
    o.systemd_cgroup = systemd_cgroup;
    if a.detach {
        runtime_core::restore(o)?;
        return Ok(0);
    }
    let terminal = terminal_of(&o.bundle);
    let fg = Foreground::prepare(terminal, &mut o.console_socket)?;
    if a.no_subreaper {
        runtime_core::host::set_child_subreaper(false);
    }
    let mut c = runtime_core::restore(o)?;
    let code = match fg.wait(c.pid(), || Ok(())) {
        Ok(code) => code,
        Err(e) => {
            let _ = c.clone().delete(true);
            return Err(e);
        }
    };
    c.state.exit_status = Some(code);
    c.delete(true)?;
    Ok(code)
}

fn terminal_of(bundle: &Path) -> bool {
    runtime_core::load_spec(bundle)
        .ok()
        .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false)
}
