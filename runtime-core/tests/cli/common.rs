//! Shared fixture of the CLI tests: a busybox rootfs (built once by the integration test
//! kit, `integration::rootfs`, and cached), a bundle per test, a private
//! state root, and a guard that deletes the container and checks that nothing is left.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The runrs binary under test.
pub const RUNRS: &str = env!("CARGO_BIN_EXE_runrs");
/// Where this suite's busybox rootfs is cached (its containers use it in place, read-only).
const CACHE: &str = "/var/tmp/runrs-ops";

/// Print why a test does not run (recorded in the test runner's skip log) and return true.
pub fn skip(test: &str, reason: &str) -> bool {
    eprintln!("SKIP {test}: {reason}");
    integration::record_skip(test, reason);
    true
}

/// The cached busybox rootfs, built on first use by the shared test kit. A rootfs that
/// cannot be built fails the test: a fixture of ours is never a reason to skip.
fn rootfs() -> PathBuf {
    integration::rootfs::busybox_rootfs_in(Path::new(CACHE))
        .unwrap_or_else(|e| panic!("the busybox rootfs fixture: {e:#}"))
}

/// One container's bundle, state root and scratch directory.
pub struct Env {
    /// Container id.
    pub id: String,
    /// `--root`.
    pub root: PathBuf,
    /// Scratch directory (bundle inside).
    pub dir: tempfile::TempDir,
    /// The bundle.
    pub bundle: PathBuf,
    /// The rootfs.
    pub rootfs: PathBuf,
    seq: std::cell::Cell<u32>,
}

impl Env {
    /// A fresh environment; None (after printing why) when the test cannot run here.
    pub fn new(test: &str) -> Option<Env> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skip(test, "needs root");
            return None;
        }
        let rootfs = rootfs();
        let tag = test.replace('_', "-");
        let id = format!("runrs-ops-{tag}-{}", std::process::id());
        let root = PathBuf::from(format!("/run/runrs-ops-{tag}-{}", std::process::id()));
        let dir = tempfile::Builder::new()
            .prefix("runrs-ops-")
            .tempdir()
            .expect("tempdir");
        let bundle = dir.path().join("bundle");
        std::fs::create_dir(&bundle).expect("bundle");
        let env = Env {
            id,
            root,
            dir,
            bundle,
            rootfs,
            seq: Default::default(),
        };
        let out = env.runrs(&["spec", "-b", env.bundle.to_str().expect("utf8")]);
        assert!(out.status.success(), "runrs spec: {}", stderr(&out));
        let mut c = env.config();
        c["root"]["path"] = env.rootfs.display().to_string().into();
        c["root"]["readonly"] = true.into();
        c["process"]["terminal"] = false.into();
        env.write_config(&c);
        Some(env)
    }

    /// The scratch directory.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The bundle's config.json.
    pub fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.bundle.join("config.json")).expect("read"))
            .expect("json")
    }

    /// Replace config.json.
    pub fn write_config(&self, v: &Value) {
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(v).expect("json"),
        )
        .expect("write config");
    }

    /// A `runrs --root R ...` command with NOTIFY_SOCKET unset; run it with [`Env::output`].
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(RUNRS);
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .env_remove("NOTIFY_SOCKET");
        c
    }

    /// Run `c` with stdout and stderr going to files: a container's init inherits the
    /// runtime's stdio and keeps a pipe open long after the runtime exits.
    pub fn output(&self, mut c: Command) -> Output {
        let n = self.seq.get();
        self.seq.set(n + 1);
        let out = self.scratch().join(format!("cmd{n}.out"));
        let err = self.scratch().join(format!("cmd{n}.err"));
        let status = c
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .status()
            .expect("run runrs");
        Output {
            status,
            stdout: std::fs::read(&out).expect("stdout"),
            stderr: std::fs::read(&err).expect("stderr"),
        }
    }

    /// Run `runrs --root R args...`.
    pub fn runrs(&self, args: &[&str]) -> Output {
        self.output(self.cmd(args))
    }

    /// `runrs create` of this env's container.
    pub fn create(&self) -> Output {
        self.runrs(&[
            "create",
            "-b",
            self.bundle.to_str().expect("utf8"),
            &self.id,
        ])
    }

    /// `runrs state`, parsed.
    pub fn state(&self) -> Value {
        let out = self.runrs(&["state", &self.id]);
        assert!(out.status.success(), "runrs state: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("state json")
    }

    /// Assert nothing of the container is left: state dir, cgroups, mounts, `pid`.
    pub fn assert_no_leftovers(&self, pid: Option<i32>) {
        assert!(
            !self.root.join(&self.id).exists(),
            "state dir {} left behind",
            self.root.join(&self.id).display()
        );
        let cgroups = find_named(Path::new("/sys/fs/cgroup"), &self.id, 8);
        assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
        let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let mounts: Vec<&str> = mi.lines().filter(|l| l.contains(&self.id)).collect();
        assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
        if let Some(p) = pid {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let running = stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'));
            assert!(!running, "process {p} of the container is still running");
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.runrs(&["delete", "-f", &self.id]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Directories named `name` below `dir`, up to `depth` levels.
fn find_named(dir: &Path, name: &str, depth: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let p = e.path();
        if e.file_name() == name {
            out.push(p.clone());
        }
        if depth > 0 {
            out.extend(find_named(&p, name, depth - 1));
        }
    }
    out
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The namespace link of `pid` (`self` for this process), e.g. "mnt:[4026531841]".
pub fn ns(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .expect("ns link")
        .display()
        .to_string()
}
