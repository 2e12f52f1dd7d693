//! Helpers for privileged CLI tests: a busybox rootfs (built once, cached under
//! /var/tmp/runrs-res-rootfs), per-test state root and temp dir, bundles made from
//! `runrs spec`, and cleanup that deletes every container the test made and checks
//! nothing is left (cgroups, state, mounts).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const RUNRS: &str = env!("CARGO_BIN_EXE_runrs");
/// Where this suite's busybox rootfs is cached (its containers use it in place).
const CACHE: &str = "/var/tmp/runrs-res-rootfs";

/// One test's world.
pub struct Env {
    pub name: String,
    pub root: PathBuf,
    pub tmp: tempfile::TempDir,
    pub rootfs: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

fn skip(test: &str, why: &str) -> Option<Env> {
    eprintln!("SKIP {test}: {why}");
    integration::record_skip(test, why);
    None
}

/// The host's cgroup mode ("legacy", "hybrid", "unified").
pub fn cgroup_mode() -> &'static str {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let v2_root = mi
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "));
    let v1 = mi.lines().any(|l| l.contains(" - cgroup "));
    match (v2_root, v1) {
        (true, false) => "unified",
        (_, true) if mi.contains(" - cgroup2 ") => "hybrid",
        _ => "legacy",
    }
}

impl Env {
    /// Set up, or print why the test is skipped.
    pub fn new(test: &str) -> Option<Env> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip(test, "needs root");
        }
        if cgroup_mode() == "unified" {
            return skip(
                test,
                "these tests read v1 cgroup files; cgroup v2 is covered by integration/v2/run-v2.sh",
            );
        }
        // Built by the shared test kit; a fixture that cannot be built fails the test.
        let rootfs = integration::rootfs::busybox_rootfs_in(Path::new(CACHE))
            .unwrap_or_else(|e| panic!("the busybox rootfs fixture: {e:#}"));
        let name = format!("runrs-res-{test}");
        let root = PathBuf::from(format!("/run/{name}"));
        let _ = std::fs::remove_dir_all(&root);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir()
            .expect("temp dir");
        Some(Env {
            name,
            root,
            tmp,
            rootfs,
            ids: Default::default(),
        })
    }

    /// A container id (also its cgroupsPath leaf) owned by this test.
    pub fn id(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// Host directory bind-mounted at /out in containers made by [`Env::spec`].
    pub fn out(&self) -> PathBuf {
        let p = self.tmp.path().join("out");
        std::fs::create_dir_all(&p).expect("out dir");
        p
    }

    /// `runrs spec`'s default, non-terminal, running `args`, with a writable /tmp
    /// (tmpfs, device nodes allowed) and /out.
    pub fn spec(&self, id: &str, args: &[&str]) -> Value {
        let d = self.tmp.path().join(format!("spec-{id}"));
        std::fs::create_dir_all(&d).expect("spec dir");
        let _ = std::fs::remove_file(d.join("config.json"));
        let out = Command::new(RUNRS)
            .args(["spec", "--bundle"])
            .arg(&d)
            .output()
            .expect("runrs spec");
        assert!(
            out.status.success(),
            "runrs spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(d.join("config.json")).expect("config.json");
        let mut s: Value = serde_json::from_str(&text).expect("spec json");
        s["process"]["terminal"] = json!(false);
        s["process"]["args"] = json!(args);
        s["root"]["path"] = json!(self.rootfs);
        s["linux"]["cgroupsPath"] = json!(format!("/{id}"));
        let mounts = s["mounts"].as_array_mut().expect("mounts");
        mounts.push(
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "mode=1777"]}),
        );
        mounts.push(
            json!({"destination": "/out", "type": "bind", "source": self.out(),
                           "options": ["rbind", "rw"]}),
        );
        s
    }

    /// Write a bundle for `spec`.
    pub fn bundle(&self, id: &str, spec: &Value) -> PathBuf {
        let b = self.tmp.path().join(format!("bundle-{id}"));
        std::fs::create_dir_all(&b).expect("bundle dir");
        std::fs::write(
            b.join("config.json"),
            serde_json::to_vec_pretty(spec).expect("json"),
        )
        .expect("write config");
        b
    }

    /// A runrs command with this test's state root.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(RUNRS);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Run runrs to completion.
    pub fn runrs(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run runrs")
    }

    /// Run runrs; panic with its stderr unless it succeeds; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.runrs(args);
        assert!(
            o.status.success(),
            "runrs {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Run runrs expecting failure; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.runrs(args);
        assert!(!o.status.success(), "runrs {args:?} succeeded unexpectedly");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// `runrs create` (stdout/stderr of the container go to `<tmp>/<id>.log`).
    pub fn create(&self, id: &str, spec: &Value) -> Output {
        let b = self.bundle(id, spec);
        self.ids.borrow_mut().push(id.to_string());
        let log = std::fs::File::create(self.log_path(id)).expect("log file");
        let err = log.try_clone().expect("dup log");
        let bundle = b.to_str().expect("utf-8 path").to_string();
        let mut c = self.cmd(&["create", "--bundle", &bundle, id]);
        c.stdin(Stdio::null()).stdout(log).stderr(err);
        let status = c.status().expect("runrs create");
        Output {
            status,
            stdout: Vec::new(),
            stderr: std::fs::read(self.log_path(id)).unwrap_or_default(),
        }
    }

    /// create + start, panicking on failure.
    pub fn start(&self, id: &str, spec: &Value) {
        let o = self.create(id, spec);
        assert!(
            o.status.success(),
            "create {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        self.ok(&["start", id]);
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.tmp.path().join(format!("{id}.log"))
    }

    /// The container's status per `runrs state`.
    pub fn status(&self, id: &str) -> String {
        let o = self.runrs(&["state", id]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        v["status"].as_str().unwrap_or("gone").to_string()
    }

    /// The persisted state.json of a container.
    pub fn state_json(&self, id: &str) -> Value {
        let text =
            std::fs::read_to_string(self.root.join(id).join("state.json")).expect("state.json");
        serde_json::from_str(&text).expect("state json")
    }

    /// Delete every container, then check nothing of this test is left.
    pub fn finish(&self) {
        self.cleanup();
        assert_clean(&self.name, self.tmp.path());
    }

    fn cleanup(&self) {
        for id in self.ids.borrow().iter() {
            let _ = self.runrs(&["delete", "--force", id]);
        }
        let _ = std::fs::remove_dir(&self.root);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// No cgroup, state dir or mount carrying `name` / under `tmp` remains.
pub fn assert_clean(name: &str, tmp: &Path) {
    let left = Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "3",
            "-name",
            &format!("{name}*"),
        ])
        .output()
        .expect("find");
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(left.trim().is_empty(), "cgroups left behind:\n{left}");
    assert!(
        !Path::new(&format!("/run/{name}")).exists(),
        "state root left behind"
    );
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let t = tmp.display().to_string();
    assert!(!mi.contains(&t), "mounts left under {t}");
}

/// Poll `f` until it returns Some (every 20 ms, at most `secs`); panic naming `what`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Contents of a cgroup file of a container's cgroup (`/<id>`) in a v1 hierarchy.
pub fn v1_file(controller: &str, id: &str, file: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/{id}/{file}"))
        .unwrap_or_else(|e| panic!("read {controller}/{id}/{file}: {e}"))
        .trim()
        .to_string()
}

/// `key=value` lines of a file the container writes.
pub fn kv(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The first block device of the host (major, minor), for blkio throttles.
pub fn a_block_device() -> Option<(u32, u32)> {
    let p = std::fs::read_to_string("/proc/partitions").ok()?;
    p.lines().skip(2).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?))
    })
}
