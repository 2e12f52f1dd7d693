//! End-to-end tests through real containerd (tests/containerd_e2e): a private containerd
//! per installed version, driven with that version's `ctr`, running busybox with
//! `io.containerd.runrs.v2` and, to validate the tests, `io.containerd.runc.v2`.
//!
//! - Versions ([`matrix`]): the system containerd (1.6 on Debian bookworm) always; 1.7
//!   and 2.1 when `shared/e2e/install-containerd.sh LINE` put them in /opt/containerd-LINE.
//!   `RUNRS_E2E_CONTAINERD=1.6,2.1` picks lines.
//! - Helper scripts: `RUNRS_E2E_DIR` (default `<workspace>/../shared/e2e`), see
//!   [`scripts_dir`]. Each instance lives in `/tmp/runrs-e2e-<line>-XXXXXX` (its E2E_DIR),
//!   namespace [`NAMESPACE`]; [`Containerd`] stops it and removes everything on drop.
//! - The shim under test: `RUNRS_TEST_SHIM` (default `<target>/debug/containerd-shim-runrs-v2`),
//!   linked into a temp dir that containerd gets as E2E_SHIM_DIR ([`ShimDir`]).

pub mod ctr;
pub mod events;
pub mod host;
pub mod pty;
pub mod runner;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::cmd::{run_capture, CmdOutput};
pub use ctr::{Ctr, TaskRow};

/// The containerd namespace of every e2e container.
pub const NAMESPACE: &str = "runrs-e2e";
/// The image containerd-up.sh imports (a busybox-static OCI archive).
pub const IMAGE: &str = "docker.io/library/busybox:latest";
/// The runtime under test.
pub const RUNRS: &str = "io.containerd.runrs.v2";
/// The reference runtime (containerd's default).
pub const RUNC: &str = "io.containerd.runc.v2";
/// The shim binary's name, as containerd derives it from [`RUNRS`].
pub const SHIM_NAME: &str = "containerd-shim-runrs-v2";
/// Where a Go or Rust shim v2 binds its ttrpc socket.
pub const SOCKET_DIR: &str = "/run/containerd/s";
/// Where ctr makes a directory of stdio fifos for each task it starts.
pub const FIFO_DIR: &str = "/run/containerd/fifo";

/// The state root of a shim's containers for `runtime` in `ns`: runrs keeps them in
/// /run/containerd/runrs/<ns>, the runc shim has runc keep them in /run/containerd/runc/<ns>.
pub fn shim_state_root(runtime: &str, ns: &str) -> PathBuf {
    let short = if runtime == RUNC { "runc" } else { "runrs" };
    Path::new("/run/containerd").join(short).join(ns)
}

/// The directory of the shared e2e helper scripts (`RUNRS_E2E_DIR`, default
/// `<workspace>/../shared/e2e`); an error says how to point at it.
pub fn scripts_dir() -> Result<PathBuf> {
    let dir = crate::rootfs::e2e_dir();
    if !dir.join("containerd-up.sh").is_file() {
        bail!(
            "the e2e helper scripts are missing: {} has no containerd-up.sh \
             (set RUNRS_E2E_DIR to the shared/e2e directory; default <workspace>/../shared/e2e)",
            dir.display()
        );
    }
    Ok(dir.canonicalize().unwrap_or(dir))
}

/// The shim binary under test: `RUNRS_TEST_SHIM`, else `<target>/debug/containerd-shim-runrs-v2`.
pub fn shim_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("RUNRS_TEST_SHIM") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("RUNRS_TEST_SHIM={} is not a file", p.display());
        }
        return Ok(p.canonicalize().unwrap_or(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_dir().join("target"));
    let p = target.join("debug").join(SHIM_NAME);
    if !p.is_file() {
        bail!(
            "no shim to test: {} does not exist (build it with \
             `cargo build -p containerd-shim-runrs-v2 -p runtime-core`) and RUNRS_TEST_SHIM is not set",
            p.display()
        );
    }
    Ok(p)
}

/// A temp dir holding `containerd-shim-runrs-v2` (a symlink to the binary under test),
/// prepended to containerd's PATH.
pub struct ShimDir {
    dir: tempfile::TempDir,
    /// The binary the link points to.
    pub binary: PathBuf,
}

impl ShimDir {
    /// Links the shim under test into a new `/tmp/runrs-e2e-shim-XXXXXX`.
    pub fn new() -> Result<Self> {
        let binary = shim_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("runrs-e2e-shim-")
            .tempdir()?;
        std::os::unix::fs::symlink(&binary, dir.path().join(SHIM_NAME))
            .with_context(|| format!("link {} into {}", binary.display(), dir.path().display()))?;
        Ok(Self { dir, binary })
    }

    /// The directory (E2E_SHIM_DIR).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// One containerd of the version matrix.
#[derive(Debug, Clone)]
pub struct Version {
    /// Release line, e.g. "1.6".
    pub line: String,
    /// Full version, e.g. "1.6.20~ds1".
    pub full: String,
    /// Directory holding `containerd` and `ctr`.
    pub bin_dir: PathBuf,
    /// True for the system containerd (no E2E_CONTAINERD_DIR).
    pub system: bool,
}

impl Version {
    /// "containerd 1.6.20~ds1".
    pub fn label(&self) -> String {
        format!("containerd {}", self.full)
    }

    /// This version's `ctr`.
    pub fn ctr(&self) -> PathBuf {
        self.bin_dir.join("ctr")
    }
}

/// `containerd --version` of the binary in `bin_dir`: (line, full version).
fn probe(bin_dir: &Path) -> Result<(String, String)> {
    let bin = bin_dir.join("containerd");
    let mut cmd = Command::new(&bin);
    cmd.arg("--version");
    let out = run_capture(cmd, None, Duration::from_secs(10))?.ok()?;
    // "containerd github.com/containerd/containerd[/v2] 1.6.20~ds1 <revision>"
    let full = out
        .stdout
        .split_whitespace()
        .nth(2)
        .map(|v| v.trim_start_matches('v').to_owned())
        .ok_or_else(|| anyhow!("cannot parse the version of {}: {out}", bin.display()))?;
    let line = full.split('.').take(2).collect::<Vec<_>>().join(".");
    Ok((line, full))
}

/// The containerd versions to test, and the lines skipped.
#[derive(Debug, Clone, Default)]
pub struct Matrix {
    /// Versions to run, system first.
    pub versions: Vec<Version>,
    /// (line, why it is skipped).
    pub skipped: Vec<(String, String)>,
}

/// The containerd versions to test, and the ones skipped with the reason.
///
/// The system containerd is required (an error says how to install it); the private
/// 1.7 and 2.1 are used when installed, and required with `RUNRS_E2E_REQUIRE_ALL=1`.
/// `RUNRS_E2E_CONTAINERD` (comma-separated lines) restricts the set.
pub fn matrix() -> Result<Matrix> {
    let wanted: Option<Vec<String>> = std::env::var("RUNRS_E2E_CONTAINERD")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').map(|l| l.trim().to_owned()).collect());
    let picked = |line: &str| wanted.as_ref().is_none_or(|w| w.iter().any(|l| l == line));
    // The test runner sets this: there, a containerd line that is not installed is a
    // failed install step, not a reason to run less.
    let require_all = std::env::var_os("RUNRS_E2E_REQUIRE_ALL").is_some_and(|v| v == "1");
    let mut found = Vec::new();
    let mut skipped = Vec::new();

    let system = Path::new("/usr/bin");
    if !system.join("containerd").is_file() {
        bail!(
            "containerd is not installed (/usr/bin/containerd missing): run integration/scripts/e2e-deps.sh"
        );
    }
    let (line, full) = probe(system)?;
    if picked(&line) {
        found.push(Version {
            line,
            full,
            bin_dir: system.to_path_buf(),
            system: true,
        });
    } else {
        skipped.push((line, "not selected by RUNRS_E2E_CONTAINERD".to_owned()));
    }

    for line in ["1.7", "2.1"] {
        if found.iter().any(|v| v.line == line) {
            continue;
        }
        if !picked(line) {
            skipped.push((
                line.to_owned(),
                "not selected by RUNRS_E2E_CONTAINERD".into(),
            ));
            continue;
        }
        let dir = PathBuf::from(format!("/opt/containerd-{line}/usr/bin"));
        if !dir.join("containerd").is_file() || !dir.join("ctr").is_file() {
            if require_all {
                bail!(
                    "containerd {line} is not installed in {} and RUNRS_E2E_REQUIRE_ALL is set \
                     (the test runner's deps stage installs it: integration/scripts/e2e-deps.sh)",
                    dir.display()
                );
            }
            skipped.push((
                line.to_owned(),
                format!(
                    "not installed in {} (install it with shared/e2e/install-containerd.sh {line}, \
                     or integration/scripts/e2e-deps.sh)",
                    dir.display()
                ),
            ));
            continue;
        }
        match probe(&dir) {
            Ok((l, full)) if l == line => found.push(Version {
                line: l,
                full,
                bin_dir: dir,
                system: false,
            }),
            Ok((l, _)) => skipped.push((
                line.to_owned(),
                format!("{} holds containerd {l}, not {line}", dir.display()),
            )),
            Err(e) => skipped.push((line.to_owned(), format!("{e:#}"))),
        }
    }
    Ok(Matrix {
        versions: found,
        skipped,
    })
}

/// A private containerd started by `containerd-up.sh`; dropping it runs
/// `containerd-down.sh` (tasks, shims, mounts, namespace cgroups, its directory).
pub struct Containerd {
    /// Which containerd.
    pub version: Version,
    /// Its E2E_DIR (config, sockets, root, state, log).
    pub dir: PathBuf,
    /// `ctr` of this version, pointed at this instance and [`NAMESPACE`].
    pub ctr: Ctr,
    scripts: PathBuf,
    shim_dir: PathBuf,
}

impl Containerd {
    /// Starts `version` in a new `/tmp/runrs-e2e-<line>-XXXXXX` with the shim dir on its
    /// PATH and [`RUNRS`] registered. On failure everything started is torn down.
    pub fn up(version: &Version, scripts: &Path, shim_dir: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("runrs-e2e-{}-", version.line))
            .tempdir()?
            .keep();
        let cd = Containerd {
            version: version.clone(),
            ctr: Ctr::new(version.ctr(), dir.join("containerd.sock"), NAMESPACE),
            dir,
            scripts: scripts.to_path_buf(),
            shim_dir: shim_dir.to_path_buf(),
        };
        cd.start_daemon()?;
        Ok(cd)
    }

    /// Runs containerd-up.sh for this instance: starts containerd unless it runs (and
    /// imports the image unless it is there).
    fn start_daemon(&self) -> Result<()> {
        let mut cmd = Command::new("bash");
        cmd.arg(self.scripts.join("containerd-up.sh"));
        self.script_env(&mut cmd);
        cmd.env("E2E_SHIM_DIR", &self.shim_dir)
            .env("E2E_RUNTIMES", RUNRS);
        // containerd unpacks a checkpoint it restores from into a "ctrd-checkpoint*" temp dir
        // it never removes (all versions, any runtime): keep those inside our dir, which
        // containerd-down.sh deletes.
        let tmp = self.dir.join("tmp");
        fs::create_dir_all(&tmp)?;
        cmd.env("TMPDIR", &tmp);
        if !self.version.system {
            cmd.env("E2E_CONTAINERD_DIR", &self.version.bin_dir);
        }
        let out = run_capture(cmd, None, Duration::from_secs(120))?;
        if !out.success() {
            bail!(
                "containerd-up.sh failed: {out}\n--- containerd.log ---\n{}",
                self.log_tail(0, 30)
            );
        }
        Ok(())
    }

    /// The pid file containerd-up.sh writes.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("containerd.pid")
    }

    /// containerd's pid (from its pid file).
    pub fn pid(&self) -> Result<i32> {
        read_pid(&self.pid_file())
    }

    /// SIGKILLs containerd (its shims and tasks live on) and waits until it is gone.
    pub fn kill9(&self) -> Result<()> {
        let pid = self.pid()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
            .with_context(|| format!("kill -9 containerd {pid}"))?;
        host::wait_gone(pid, Duration::from_secs(10))
    }

    /// Starts containerd again after [`Containerd::kill9`], same config and state: it
    /// reconnects to the shims that outlived it.
    pub fn restart(&self) -> Result<()> {
        self.start_daemon()
    }

    /// The leak checker's scope for this instance: mounts and shims naming its directory,
    /// the namespace's cgroups, the shims' state roots and socket dir, ctr's fifo dirs,
    /// containerd's descriptors and zombie children.
    pub fn leak_scope(&self) -> crate::leaks::Scope {
        crate::leaks::Scope {
            state_roots: vec![
                shim_state_root(RUNRS, NAMESPACE),
                shim_state_root(RUNC, NAMESPACE),
                PathBuf::from(SOCKET_DIR),
            ],
            cgroup_parents: vec![format!("/{NAMESPACE}")],
            cgroup_parents_shared: true,
            fifo_roots: vec![PathBuf::from(FIFO_DIR)],
            needles: vec![self.dir.to_string_lossy().into_owned()],
            process_needles: Vec::new(),
            containerd_pid_file: Some(self.pid_file()),
            containerd_own: vec![self.dir.join("root")],
        }
    }

    fn script_env(&self, cmd: &mut Command) {
        cmd.env("E2E_DIR", &self.dir)
            .env("E2E_NS", NAMESPACE)
            .env("E2E_IMAGE", IMAGE);
    }

    /// The bundle containerd makes for task `id`.
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(NAMESPACE)
            .join(id)
    }

    /// containerd's gRPC socket (the `-address` its shims get).
    pub fn address(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// The current length of containerd's log (shim logs end up there too).
    pub fn log_len(&self) -> u64 {
        fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0)
    }

    /// The last `lines` lines written to containerd's log after byte `from`.
    pub fn log_tail(&self, from: u64, lines: usize) -> String {
        log_tail(&self.log_path(), from, lines)
    }

    /// Stops containerd, removes its directory and kills what is left of its shims;
    /// returns the script's output. Called by drop; callable once.
    fn down(&mut self) -> Result<CmdOutput> {
        let mut cmd = Command::new("bash");
        cmd.arg(self.scripts.join("containerd-down.sh"));
        self.script_env(&mut cmd);
        if std::env::var_os("RUNRS_E2E_KEEP").is_some() {
            cmd.env("E2E_KEEP", "1");
        }
        let out = run_capture(cmd, None, Duration::from_secs(120));
        // containerd-down.sh finds shims by "-address <sock> " with a trailing space, which
        // misses a shim whose -address is its last argument: kill any process still
        // naming this instance's socket (they all belong to this instance).
        host::kill_processes_mentioning(&self.address().to_string_lossy());
        out
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        match self.down() {
            Ok(out) if out.success() => {}
            Ok(out) => eprintln!(
                "containerd-down.sh failed for {}: {out}",
                self.dir.display()
            ),
            Err(e) => eprintln!("containerd-down.sh for {}: {e:#}", self.dir.display()),
        }
    }
}

/// The last `lines` lines written to the log file `path` after byte `from`.
pub fn log_tail(path: &Path, from: u64, lines: usize) -> String {
    let text = fs::read(path).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(0).min(text.len());
    let text = String::from_utf8_lossy(&text[start..]).into_owned();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The pid in a daemon's pid file.
pub fn read_pid(p: &Path) -> Result<i32> {
    fs::read_to_string(p)
        .with_context(|| format!("read {}", p.display()))?
        .trim()
        .parse()
        .with_context(|| format!("parse {}", p.display()))
}
