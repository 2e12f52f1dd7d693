//! What the Podman and Docker checks share: the work directory, the image archives, the
//! runtimes, command helpers and cgroup cleanup.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use integration::cmd::{run_capture, CmdOutput};

/// How long one client command may take.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// The reference runtime.
pub const RUNC: &str = "/usr/sbin/runc";

/// The suite's work directory (short: it holds sockets) and the image archives in it.
pub struct Work {
    dir: tempfile::TempDir,
    /// The busybox image as an OCI archive (`podman load`).
    pub oci_archive: PathBuf,
    /// The same image with a docker `manifest.json` added (`docker load`).
    pub docker_archive: PathBuf,
    /// The runrs CLI under test.
    pub runrs: PathBuf,
    /// The directory holding `containerd-shim-runrs-v2` (for Docker 26's PATH).
    pub shim: integration::containerd::ShimDir,
}

impl Work {
    /// Checks the prerequisites, makes the directory and builds the image archives.
    pub fn new() -> Result<Self> {
        integration::rootfs::check_prerequisites()?;
        let runrs = integration::runtime_path()?;
        let shim = integration::containerd::ShimDir::new()?;
        ensure!(
            Path::new(RUNC).is_file(),
            "{RUNC} missing (integration/scripts/install-test-deps.sh)"
        );
        let dir = tempfile::Builder::new()
            .prefix("runrs-clients-")
            .tempdir_in("/tmp")?;
        let oci_archive = dir.path().join("busybox-oci.tar");
        let docker_archive = dir.path().join("busybox-docker.tar");
        let script = integration::rootfs::image_script()?;
        integration::cmd::host(
            "bash",
            &[
                &script.to_string_lossy(),
                &oci_archive.to_string_lossy(),
                "docker.io/library/busybox:latest",
            ],
        )?;
        // `docker load` (20.10 and 26) reads manifest.json; the OCI layout's blobs serve
        // as its config and layer files.
        let unpack = dir.path().join("image");
        let sh = r#"set -euo pipefail
            mkdir -p "$2"; tar -C "$2" -xf "$1"
            man=$(jq -r '.manifests[0].digest' "$2/index.json" | cut -d: -f2)
            cfg=$(jq -r .config.digest "$2/blobs/sha256/$man" | cut -d: -f2)
            layer=$(jq -r '.layers[0].digest' "$2/blobs/sha256/$man" | cut -d: -f2)
            jq -n --arg c "blobs/sha256/$cfg" --arg l "blobs/sha256/$layer" \
              '[{Config: $c, RepoTags: ["busybox:latest"], Layers: [$l]}]' > "$2/manifest.json"
            tar -C "$2" -cf "$3" manifest.json oci-layout index.json blobs
            rm -rf "$2""#;
        integration::cmd::host(
            "bash",
            &[
                "-c",
                sh,
                "docker-archive",
                &oci_archive.to_string_lossy(),
                &unpack.to_string_lossy(),
                &docker_archive.to_string_lossy(),
            ],
        )?;
        Ok(Self {
            dir,
            oci_archive,
            docker_archive,
            runrs,
            shim,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if std::env::var_os("RUNRS_CLIENTS_KEEP").is_some() {
            let kept = std::mem::replace(
                &mut self.dir,
                match tempfile::tempdir() {
                    Ok(d) => d,
                    Err(_) => return,
                },
            );
            println!("kept {}", kept.keep().display());
        }
    }
}

/// Podman's global flags for private storage (vfs under `root`, `runroot`, `tmpdir`
/// when given), the cgroupfs manager, file events and `runtime`.
pub fn podman_flags(
    c: &mut Command,
    root: &Path,
    runroot: &Path,
    tmpdir: Option<&Path>,
    runtime: &Path,
) {
    c.arg("--root").arg(root).arg("--runroot").arg(runroot);
    if let Some(t) = tmpdir {
        c.arg("--tmpdir").arg(t);
    }
    c.args([
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        "--runtime",
    ])
    .arg(runtime);
}

/// Runs a client command, capturing its output (not requiring success).
pub fn run(cmd: Command) -> Result<CmdOutput> {
    run_capture(cmd, None, CLIENT_TIMEOUT)
}

/// Fails unless `out` exited with `code`, quoting the command and its output.
pub fn expect_code(out: &CmdOutput, code: i32) -> Result<()> {
    ensure!(
        out.code() == code,
        "`{}` exited {} (want {code})\nstdout: {}\nstderr: {}",
        out.argv.join(" "),
        out.code(),
        out.stdout.trim(),
        out.stderr.trim()
    );
    Ok(())
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number a counter container last wrote to /tmp/n, read through `exec`.
pub fn parse_counter(out: &CmdOutput) -> Result<u64> {
    out.stdout
        .trim()
        .parse()
        .map_err(|e| anyhow!("counter {:?}: {e} (stderr: {})", out.stdout, out.stderr))
}

/// The shell loop of the counter containers (checkpoint/restore, pause): writes an
/// increasing number to /tmp/n ten times a second (by rename: a reader never sees the
/// file empty); exits 0 on SIGTERM.
pub const COUNTER: &str = "trap 'exit 0' TERM; i=0; \
    while :; do i=$((i+1)); echo $i > /tmp/n.new; mv /tmp/n.new /tmp/n; sleep 0.1; done";

/// A cgroup file of host process `pid` in the v1 hierarchy mounted with `controller`.
pub fn v1_cgroup_file(pid: i32, controller: &str, file: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("read /proc/{pid}/cgroup"))?;
    let path = text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':').skip(1);
            f.next().zip(f.next())
        })
        .find(|(cs, _)| cs.split(',').any(|c| c == controller))
        .map(|(_, p)| p.to_owned())
        .ok_or_else(|| anyhow!("pid {pid} is in no {controller} cgroup:\n{text}"))?;
    let mounts = integration::proc::cgroup_mounts()?;
    for m in mounts {
        if let Some(d) = integration::proc::cgroup_dir(&m, &path) {
            let f = d.join(file);
            if f.exists() {
                return Ok(f);
            }
        }
    }
    bail!("no {file} for cgroup {path} ({controller})")
}

/// Removes the cgroup `parent` and everything below it in every hierarchy, deepest
/// first (what podman's conmon cgroups and docker's parent leave once all is stopped).
pub fn remove_cgroup_tree(parent: &str) {
    let Ok(mounts) = integration::proc::cgroup_mounts() else {
        return;
    };
    for m in mounts {
        if let Some(d) = integration::proc::cgroup_dir(&m, parent) {
            remove_dirs(&d);
        }
    }
}

/// [`remove_cgroup_tree`] only in the hierarchies mounted at `/sys/fs/cgroup/<name>`
/// for one of `names`.
pub fn remove_cgroup_tree_in(parent: &str, names: &[&str]) {
    let Ok(mounts) = integration::proc::cgroup_mounts() else {
        return;
    };
    for m in mounts {
        let named = Path::new(&m.mount_point)
            .file_name()
            .is_some_and(|f| names.iter().any(|n| f == *n));
        if !named {
            continue;
        }
        if let Some(d) = integration::proc::cgroup_dir(&m, parent) {
            remove_dirs(&d);
        }
    }
}

fn remove_dirs(d: &Path) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(d);
}
