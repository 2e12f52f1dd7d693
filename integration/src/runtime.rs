//! Driving a runc-compatible runtime CLI (runrs, or runc to validate the tests).
//!
//! Each [`Runtime`] has a private state root (`--root /run/runrs-it-XXXXXX`), so `list`
//! shows only the test's own containers and nothing touches /run/runc or /run/runrs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;

use crate::bundle::Bundle;
use crate::cmd::{run_capture, run_to_files, CmdOutput, CMD_TIMEOUT};
use crate::{leaks, runtime_path};

/// The OCI state of a container as printed by `state` (and each element of `list --format json`).
#[derive(Debug, Clone, Deserialize)]
pub struct State {
    /// ociVersion.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Host pid of the container's init (0 once stopped).
    pub pid: i64,
    /// created | running | stopped | paused.
    pub status: String,
    /// Absolute bundle path.
    pub bundle: String,
    /// Absolute rootfs path (runc extension).
    #[serde(default)]
    pub rootfs: Option<String>,
    /// Creation time, RFC 3339 (runc extension).
    #[serde(default)]
    pub created: Option<String>,
    /// Owner (runc extension; empty in `state`, the user name in `list`).
    #[serde(default)]
    pub owner: Option<String>,
    /// Annotations from config.json.
    #[serde(default)]
    pub annotations: Option<serde_json::Map<String, Value>>,
    /// The JSON object as printed.
    #[serde(skip)]
    pub raw: Value,
}

impl State {
    /// Parses one state object, keeping the raw JSON.
    pub fn from_value(v: Value) -> Result<Self> {
        let mut s: State =
            serde_json::from_value(v.clone()).with_context(|| format!("not an OCI state: {v}"))?;
        s.raw = v;
        Ok(s)
    }
}

/// A runtime CLI with a private state root.
pub struct Runtime {
    bin: PathBuf,
    root: TempDir,
}

impl Runtime {
    /// The runtime from `RUNRS_TEST_RUNTIME` (default target/debug/runrs) with a new
    /// state root under /run.
    pub fn new() -> Result<Self> {
        crate::rootfs::check_prerequisites()?;
        let bin = runtime_path()?;
        let root = tempfile::Builder::new()
            .prefix("runrs-it-")
            .tempdir_in("/run")
            .context("create a state root in /run")?;
        Ok(Self { bin, root })
    }

    /// The runtime binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The state root passed as `--root`.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `<bin> --root <root> <args…>`.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path()).args(args);
        c
    }

    /// Runs `<bin> --root <root> <args…>` with stdin from /dev/null, capturing its output.
    /// Only for verbs that do not hand their stdio to a container.
    pub fn cli<I, S>(&self, args: I) -> Result<CmdOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        run_capture(self.command(args), None, CMD_TIMEOUT)
    }

    /// Runs a verb that leaves a container behind (`create`, `run --detach`): its stdio (and
    /// so the container's) go to fresh files in the bundle, read with [`Bundle::stdout`].
    /// `args` come between the verb and `--bundle <dir> <id>`.
    pub fn detached(&self, verb: &str, b: &Bundle, args: &[&str]) -> Result<CmdOutput> {
        self.detached_with_globals(&[], verb, b, args)
    }

    /// [`Runtime::detached`] with global options (e.g. `--log`) before the verb.
    pub fn detached_with_globals(
        &self,
        globals: &[&str],
        verb: &str,
        b: &Bundle,
        args: &[&str],
    ) -> Result<CmdOutput> {
        b.used_by(&self.bin, self.root());
        let mut c = self.command(globals);
        c.arg(verb)
            .args(args)
            .arg("--bundle")
            .arg(b.path())
            .arg(b.id());
        let (out, err) = b.next_log_paths();
        run_to_files(c, &out, &err, CMD_TIMEOUT)
    }

    /// `create --bundle <b> <id>`; the output is returned whether or not it succeeded.
    pub fn create(&self, b: &Bundle) -> Result<CmdOutput> {
        self.detached("create", b, &[])
    }

    /// `create <args…> --bundle <b> <id>`.
    pub fn create_with(&self, b: &Bundle, args: &[&str]) -> Result<CmdOutput> {
        self.detached("create", b, args)
    }

    /// `start <id>`.
    pub fn start(&self, id: &str) -> Result<CmdOutput> {
        self.cli(["start", id])
    }

    /// `create` then `start`, both required to succeed; returns the state after start.
    pub fn create_and_start(&self, b: &Bundle) -> Result<State> {
        self.create(b)?.ok()?;
        self.start(b.id())?.ok()?;
        self.state(b.id())
    }

    /// `state <id>`, required to succeed, parsed.
    pub fn state(&self, id: &str) -> Result<State> {
        let out = self.cli(["state", id])?.ok()?;
        let v: Value = serde_json::from_str(&out.stdout)
            .with_context(|| format!("state output is not JSON: {out}"))?;
        State::from_value(v)
    }

    /// `list --format json`, parsed (runc prints `null` when there are no containers).
    pub fn list(&self) -> Result<Vec<State>> {
        let out = self.cli(["list", "--format", "json"])?.ok()?;
        let v: Value = serde_json::from_str(&out.stdout)
            .with_context(|| format!("list output is not JSON: {out}"))?;
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a.into_iter().map(State::from_value).collect(),
            other => bail!("list --format json printed neither an array nor null: {other}"),
        }
    }

    /// `kill <id> <signal>`; output returned as is.
    pub fn kill(&self, id: &str, signal: &str) -> Result<CmdOutput> {
        self.cli(["kill", id, signal])
    }

    /// `delete <id>`; output returned as is.
    pub fn delete(&self, id: &str) -> Result<CmdOutput> {
        self.cli(["delete", id])
    }

    /// `delete --force <id>`; output returned as is.
    pub fn delete_force(&self, id: &str) -> Result<CmdOutput> {
        self.cli(["delete", "--force", id])
    }

    /// `run --bundle <b> <id>` in the foreground with `stdin` piped in; returns when the
    /// container has exited (the exit code is the container's).
    pub fn run(&self, b: &Bundle, stdin: &[u8], timeout: Duration) -> Result<CmdOutput> {
        b.used_by(&self.bin, self.root());
        let mut c = self.command(["run", "--bundle"]);
        c.arg(b.path()).arg(b.id());
        run_capture(c, Some(stdin.to_vec()), timeout)
    }

    /// Runs the bundle's process to completion (`run`, empty stdin, 30 s deadline) and
    /// requires exit code 0; returns its stdout.
    pub fn output(&self, b: &Bundle) -> Result<String> {
        let out = self.run(b, b"", CMD_TIMEOUT)?;
        if !out.success() {
            bail!("container {} did not exit 0: {out}", b.id());
        }
        Ok(out.stdout)
    }

    /// Polls `state` until the status is `want`, or fails after `timeout`. A container that
    /// does not exist yet (e.g. `run` still creating it) is waited for too.
    pub fn wait_for_status(&self, id: &str, want: &str, timeout: Duration) -> Result<State> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.state(id) {
                Ok(st) if st.status == want => return Ok(st),
                Ok(st) => format!("status {:?}: {}", st.status, st.raw),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > deadline {
                bail!("container {id} is not {want:?} after {timeout:?}; last state: {last}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts that nothing of `b`'s container is left: state dir, mounts, cgroups,
    /// processes (polls for up to 2 s while the kernel reaps).
    pub fn assert_no_leftovers(&self, b: &Bundle) -> Result<()> {
        leaks::assert_gone(&leaks::Target {
            root: self.root(),
            id: b.id(),
            bundle: b.path(),
            cgroups_path: b.cgroups_path(),
        })
    }

    /// The leak checker's scope for `b`'s container under this runtime: the state root,
    /// the container's cgroup, mounts mentioning the bundle or the id, processes
    /// mentioning the id (see [`leaks`]).
    pub fn leak_scope(&self, b: &Bundle) -> leaks::Scope {
        leaks::Scope {
            state_roots: vec![self.root().to_path_buf()],
            cgroup_parents: vec![b.cgroups_path().to_owned()],
            needles: vec![b.path().to_string_lossy().into_owned(), b.id().to_owned()],
            process_needles: vec![b.id().to_owned()],
            ..leaks::Scope::default()
        }
    }

    /// The runtime's `features` JSON (None if the runtime has no `features` verb). Cached:
    /// every [`Runtime`] of a test process uses the same binary.
    pub fn features(&self) -> Option<Value> {
        static FEATURES: OnceLock<Option<Value>> = OnceLock::new();
        FEATURES
            .get_or_init(|| {
                self.cli(["features"])
                    .ok()
                    .filter(|o| o.success())
                    .and_then(|o| serde_json::from_str::<Value>(&o.stdout).ok())
            })
            .clone()
    }

    /// True if `features` lists namespace `ns` (e.g. "time").
    pub fn supports_namespace(&self, ns: &str) -> bool {
        self.features()
            .and_then(|f| {
                f["linux"]["namespaces"]
                    .as_array()
                    .map(|a| a.iter().any(|n| n == ns))
            })
            .unwrap_or(false)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Safety net for a failed test: force-delete whatever is still in the state root.
        if let Ok(entries) = fs::read_dir(self.root()) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    let id = e.file_name().to_string_lossy().into_owned();
                    let _ = run_capture(
                        self.command(["delete", "--force", &id]),
                        None,
                        Duration::from_secs(10),
                    );
                }
            }
        }
    }
}

/// Resolves the runtime binary: `RUNRS_TEST_RUNTIME`, else `<target>/debug/runrs`.
pub(crate) fn resolve_runtime() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("RUNRS_TEST_RUNTIME") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("RUNRS_TEST_RUNTIME={} is not a file", p.display());
        }
        return Ok(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_dir().join("target"));
    let p = target.join("debug/runrs");
    if p.is_file() {
        return Ok(p);
    }
    Err(anyhow!(
        "no runtime to test: {} does not exist (build it with `cargo build -p runtime-core --bin runrs`) \
         and RUNRS_TEST_RUNTIME is not set (e.g. RUNRS_TEST_RUNTIME=/usr/sbin/runc to validate the tests)",
        p.display()
    ))
}
