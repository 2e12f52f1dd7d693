//! The harness of the security tests: a cached busybox rootfs, bundles built from the
//! runtime's own default spec, the `runrs` CLI (or another runc-compatible runtime named
//! by RUNRS_SEC_RUNTIME, to show that an attack test fails on a vulnerable runtime),
//! and a guard that deletes what a test made and then checks nothing is left: no state
//! dir, no mount, no cgroup, no process of the test's containers.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

/// Where the security suite's busybox rootfs is cached; tests use it read-only in place.
const CACHE: &str = "/var/tmp/runrs-sec-rootfs";

/// The runtime under test.
pub fn runtime() -> String {
    std::env::var("RUNRS_SEC_RUNTIME").unwrap_or_else(|_| env!("CARGO_BIN_EXE_runrs").to_string())
}

/// Whether the runtime under test is runrs (messages are only checked for runrs).
pub fn is_runrs() -> bool {
    std::env::var_os("RUNRS_SEC_RUNTIME").is_none()
}

/// Skip (with a printed reason, recorded in the test runner's skip log) unless root.
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let why = "the security tests create containers and need root";
        eprintln!("skipped: {why}");
        let t = std::thread::current();
        integration::record_skip(t.name().unwrap_or("security"), why);
        return false;
    }
    true
}

/// The busybox rootfs, built once by the shared test kit (concurrent test processes
/// share one build through its lock). A rootfs that cannot be built fails the test.
pub fn base_rootfs() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            integration::rootfs::busybox_rootfs_in(Path::new(CACHE))
                .unwrap_or_else(|e| panic!("the busybox rootfs fixture: {e:#}"))
        })
        .clone()
}

/// One test's world: a temp dir, a state root, and the containers it made.
pub struct World {
    /// Short test name (used in ids and paths).
    pub name: String,
    /// /tmp/runrs-sec-<name>-XXXX.
    pub dir: PathBuf,
    /// The runtime's --root.
    pub root: PathBuf,
    ids: Vec<String>,
}

impl World {
    /// A fresh world for test `name`.
    pub fn new(name: &str) -> World {
        let dir = PathBuf::from(format!("/tmp/runrs-sec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir test dir");
        World {
            name: name.to_string(),
            root: PathBuf::from(format!("/run/runrs-sec-{name}-{}", std::process::id())),
            dir,
            ids: Vec::new(),
        }
    }

    /// A container id of this test (`runrs-sec-<name>-<suffix>`), remembered for cleanup.
    pub fn id(&mut self, suffix: &str) -> String {
        let id = format!("runrs-sec-{}-{suffix}", self.name);
        if !self.ids.contains(&id) {
            self.ids.push(id.clone());
        }
        id
    }

    /// A bundle from the runtime's default spec: no terminal, the shared rootfs
    /// (read-only), our cgroup path. `own_rootfs` copies the rootfs into the bundle.
    pub fn bundle(&self, id: &str, own_rootfs: bool) -> Bundle {
        let dir = self.dir.join(id);
        std::fs::create_dir_all(&dir).expect("mkdir bundle");
        let base = base_rootfs();
        let rootfs = if own_rootfs {
            let r = dir.join("rootfs");
            let st = Command::new("cp")
                .arg("-a")
                .arg(&base)
                .arg(&r)
                .status()
                .expect("cp");
            assert!(st.success());
            r
        } else {
            base
        };
        let st = Command::new(env!("CARGO_BIN_EXE_runrs"))
            .args(["spec", "--bundle"])
            .arg(&dir)
            .status()
            .expect("runrs spec");
        assert!(st.success());
        let mut spec: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("read spec"))
                .expect("spec json");
        spec["process"]["terminal"] = json!(false);
        spec["root"]["path"] = json!(rootfs);
        spec["linux"]["cgroupsPath"] = json!(format!("/{id}"));
        Bundle { dir, rootfs, spec }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(runtime());
        c.arg("--root").arg(&self.root);
        c
    }

    /// `runtime run --bundle B id` in the foreground; stdin is /dev/null.
    pub fn run(&self, b: &Bundle, id: &str) -> Out {
        b.write();
        self.run_cmd(self.cmd().args(["run", "--bundle"]).arg(&b.dir).arg(id))
    }

    /// `runtime create --bundle B id`.
    pub fn create(&self, b: &Bundle, id: &str) -> Out {
        b.write();
        self.run_cmd(self.cmd().args(["create", "--bundle"]).arg(&b.dir).arg(id))
    }

    /// Any other verb (`start id`, `state id`, `delete -f id`).
    pub fn verb(&self, args: &[&str]) -> Out {
        self.run_cmd(self.cmd().args(args))
    }

    /// Run a prepared command (stdout/stderr captured).
    pub fn run_cmd(&self, c: &mut Command) -> Out {
        let o = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("spawn runtime");
        Out::from(o)
    }

    /// The runtime command, for callers that need to adjust it (extra fds, user).
    pub fn command(&self) -> Command {
        self.cmd()
    }

    /// The container's init pid from `state`.
    pub fn pid(&self, id: &str) -> i32 {
        let o = self.verb(&["state", id]);
        assert!(o.ok(), "state {id}: {}", o.stderr);
        let v: Value = serde_json::from_str(&o.stdout).expect("state json");
        v["pid"].as_i64().expect("pid") as i32
    }

    /// Everything of this world still on the host, one line per finding.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for id in &self.ids {
            if self.root.join(id).exists() {
                found.push(format!("state dir {}/{id}", self.root.display()));
            }
            let o = Command::new("find")
                .args(["/sys/fs/cgroup", "-name", id])
                .output()
                .expect("find");
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                found.push(format!("cgroup {l}"));
            }
            if let Ok(rd) = std::fs::read_dir("/proc") {
                for e in rd.flatten() {
                    let cg = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
                    if cg.lines().any(|l| l.ends_with(&format!("/{id}"))) {
                        found.push(format!(
                            "process {} in cgroup of {id}",
                            e.file_name().to_string_lossy()
                        ));
                    }
                }
            }
        }
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let me = self.dir.to_string_lossy().into_owned();
        for l in mi.lines() {
            if l.contains(&me) || l.contains(CACHE) || l.contains(&*self.root.to_string_lossy()) {
                found.push(format!("mount {l}"));
            }
        }
        found
    }

    /// Delete every container and assert nothing is left.
    pub fn assert_clean(&mut self) {
        self.cleanup();
        let left = self.leftovers();
        assert!(left.is_empty(), "leftovers:\n{}", left.join("\n"));
    }

    fn cleanup(&mut self) {
        for id in self.ids.clone() {
            let _ = self.verb(&["delete", "-f", &id]);
        }
        let _ = std::fs::remove_dir(&self.root);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.cleanup();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bundle being prepared.
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The rootfs directory.
    pub rootfs: PathBuf,
    /// config.json, written by [`World::run`]/[`World::create`].
    pub spec: Value,
}

impl Bundle {
    /// Run `script` with busybox sh.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.spec["process"]["args"] = json!(["sh", "-c", script]);
        self
    }

    /// Write config.json.
    pub fn write(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.spec).expect("json"),
        )
        .expect("write config.json");
    }

    /// Drop the namespace `t` from the spec.
    pub fn without_ns(&mut self, t: &str) -> &mut Self {
        let ns = self.spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces");
        ns.retain(|n| n["type"] != t);
        self
    }

    /// Add (or replace) namespace `t`, optionally joined from `path`.
    pub fn with_ns(&mut self, t: &str, path: Option<&Path>) -> &mut Self {
        self.without_ns(t);
        let mut n = json!({"type": t});
        if let Some(p) = path {
            n["path"] = json!(p);
        }
        self.spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(n);
        self
    }

    /// Remove the mount at `dest`.
    pub fn without_mount(&mut self, dest: &str) -> &mut Self {
        self.spec["mounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|m| m["destination"] != dest);
        self
    }

    /// Append a mount.
    pub fn mount(&mut self, m: Value) -> &mut Self {
        self.spec["mounts"].as_array_mut().expect("mounts").push(m);
        self
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Out {
    /// Exit code (-1 when killed).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Out {
    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// `CapXxx:` of a /proc/<pid>/status text as a number.
pub fn cap_field(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"))
        .unwrap_or_else(|| panic!("{field} missing in {status}"))
}

/// The mask of capability names (kernel numbering).
pub fn cap_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| {
            let i = runtime_core::testing::CAPABILITY_NAMES
                .iter()
                .position(|x| x == n)
                .unwrap_or_else(|| panic!("unknown capability {n}"));
            1u64 << i
        })
        .fold(0, |a, b| a | b)
}

/// Wait until `path` exists (a container signals progress through a shared dir). A
/// guard against hanging forever, not a timing assertion.
pub fn wait_for(path: &Path) {
    for _ in 0..6000 {
        if path.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

/// A directory the container can write to (mode 0777) under the test dir.
pub fn shared_dir(w: &World, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = w.dir.join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    d
}

/// Make `cmd` run with each `(fd, target)` dup'ed to `target` and inheritable (not
/// close-on-exec), whatever the numbers (sources are first moved out of the way).
pub fn pass_fds(cmd: &mut Command, fds: &[(i32, i32)]) {
    let fds = fds.to_vec();
    // SAFETY: the closure runs between fork and exec and only calls fcntl/dup2/close,
    // which are async-signal-safe; it allocates nothing (the Vec was made before).
    unsafe {
        cmd.pre_exec(move || {
            let mut moved = [0i32; 8];
            for (i, (fd, _)) in fds.iter().enumerate().take(8) {
                moved[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                if moved[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, (_, target)) in fds.iter().enumerate().take(8) {
                if libc::dup2(moved[i], *target) < 0 || libc::fcntl(*target, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(moved[i]);
            }
            Ok(())
        });
    }
}
