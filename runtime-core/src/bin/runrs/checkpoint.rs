//! `runrs checkpoint`: dump a running container with CRIU, with runc's flags. Unless
//! `--leave-running` (or `--pre-dump`), the container is deleted afterwards, as runc does.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use runtime_core::CheckpointOptions;
use runtime_core::Container;

/// `checkpoint` flags.
#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    /// Container id.
    id: String,
    /// Path for saving criu image files (default: ./checkpoint).
    #[arg(long = "image-path")]
    image_path: Option<PathBuf>,
    /// Path for saving work files and logs (default: the image path).
    #[arg(long = "work-path")]
    work_path: Option<PathBuf>,
    /// Path for previous criu image files in pre-dump (relative to the image path).
    #[arg(long = "parent-path")]
    parent_path: Option<PathBuf>,
    /// Leave the process running after checkpointing.
    #[arg(long = "leave-running")]
    leave_running: bool,
    /// Allow open tcp connections.
    #[arg(long = "tcp-established")]
    tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    shell_job: bool,
    /// Use userfaultfd to lazily restore memory pages.
    #[arg(long = "lazy-pages")]
    lazy_pages: bool,
    /// criu writes \0 to this fd once the lazy-pages server is ready.
    #[arg(long = "status-fd")]
    status_fd: Option<i32>,
    /// ADDRESS:PORT of the page server.
    #[arg(long = "page-server")]
    page_server: Option<String>,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    file_locks: bool,
    /// Dump the container's memory only, leave it running.
    #[arg(long = "pre-dump")]
    pre_dump: bool,
    /// cgroups mode: soft, full, strict or ignore.
    #[arg(long = "manage-cgroups-mode")]
    manage_cgroups_mode: Option<String>,
    /// Create a namespace, but do not restore its properties.
    #[arg(long = "empty-ns")]
    empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images.
    #[arg(long = "auto-dedup")]
    auto_dedup: bool,
}

/// runc's default image path: `checkpoint` in the current directory.
pub fn default_image_path() -> PathBuf {
    crate::absolute(PathBuf::from("checkpoint"))
}

/// Take ownership of a descriptor number given on the command line.
pub fn inherited_fd(flag: &str, fd: i32) -> anyhow::Result<OwnedFd> {
    if !runtime_core::host::fd_is_open(fd) {
        anyhow::bail!("{flag} {fd}: not an open descriptor");
    }
    Ok(runtime_core::host::adopt_inherited_fd(fd, flag, false)?)
}

/// Run `checkpoint`.
pub fn checkpoint(a: CheckpointArgs, root: &Path, criu_bin: &str) -> anyhow::Result<i32> {
    let mut c = Container::load(root, &a.id)?;
    let mut o = CheckpointOptions::new(
        a.image_path
            .map(crate::absolute)
            .unwrap_or_else(default_image_path),
    );
    o.criu = PathBuf::from(criu_bin);
    o.work_path = a.work_path.map(crate::absolute);
    o.parent_path = a.parent_path;
    o.leave_running = a.leave_running;
    o.tcp_established = a.tcp_established;
    o.ext_unix_sk = a.ext_unix_sk;
    o.shell_job = a.shell_job;
    o.lazy_pages = a.lazy_pages;
    o.status_fd = a
        .status_fd
        .map(|fd| inherited_fd("--status-fd", fd))
        .transpose()?;
    o.page_server = a
        .page_server
        .as_deref()
        .map(runtime_core::parse_page_server)
        .transpose()?;
    o.file_locks = a.file_locks;
    o.pre_dump = a.pre_dump;
    o.manage_cgroups_mode = a
        .manage_cgroups_mode
        .as_deref()
        .map(str::parse)
        .transpose()?;
    o.empty_ns = runtime_core::parse_namespaces(&a.empty_ns)?;
    o.auto_dedup = a.auto_dedup;
    c.checkpoint(&o)?;
    if !(o.leave_running || o.pre_dump) {
        // runc destroys the container unless told to keep it running.
        c.delete(true)?;
    }
    Ok(0)
}
