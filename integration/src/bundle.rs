//! OCI bundles for tests: a temp directory with a private copy of the busybox rootfs and a
//! config.json made by `<runtime> spec`, then edited as JSON.
//!
//! Every bundle gets a unique container id `runrs-it-<name>-<pid>-<n>` and the cgroup
//! `/runrs-it/<id>` (linux.cgroupsPath). Dropping a bundle force-deletes its container in
//! every state root it was used with, removes its leftover cgroup dirs and the directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::cmd::{host, read_lossy, run_capture, CMD_TIMEOUT};
use crate::rootfs::{busybox_rootfs, check_prerequisites, CgroupLease};
use crate::{proc, runtime_path, CGROUP_PARENT};

/// A unique container id for this process: `runrs-it-<name>-<pid>-<n>`.
pub fn unique_id(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "runrs-it-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A bundle directory owned by one test.
pub struct Bundle {
    // Field order matters for Drop: the lease is released after the directory is gone.
    dir: TempDir,
    id: String,
    cgroups_path: String,
    logs: Mutex<Vec<(PathBuf, PathBuf)>>,
    users: Mutex<Vec<(PathBuf, PathBuf)>>,
    _lease: CgroupLease,
}

impl Bundle {
    /// A bundle for container `runrs-it-<name>-…` with the runtime's default spec, changed to:
    /// terminal false, args `["true"]`, cgroupsPath `/runrs-it/<id>`.
    pub fn new(name: &str) -> Result<Self> {
        check_prerequisites()?;
        let rootfs = busybox_rootfs()?;
        let lease = CgroupLease::acquire()?;
        let id = unique_id(name);
        let dir = tempfile::Builder::new()
            .prefix("runrs-it-bundle-")
            .tempdir()?;
        let b = Bundle {
            cgroups_path: format!("{CGROUP_PARENT}/{id}"),
            id,
            dir,
            logs: Mutex::new(Vec::new()),
            users: Mutex::new(Vec::new()),
            _lease: lease,
        };
        let dst = b.rootfs();
        host(
            "cp",
            &["-a", &rootfs.to_string_lossy(), &dst.to_string_lossy()],
        )?;
        let mut spec = Command::new(runtime_path()?);
        spec.arg("spec").arg("--bundle").arg(b.path());
        run_capture(spec, None, CMD_TIMEOUT)?
            .ok()
            .context("generate config.json with `spec`")?;
        let cg = b.cgroups_path.clone();
        b.configure(|c| {
            c["process"]["terminal"] = json!(false);
            c["process"]["args"] = json!(["true"]);
            c["linux"]["cgroupsPath"] = json!(cg);
        })?;
        Ok(b)
    }

    /// [`Bundle::new`], then `f` applied to config.json.
    pub fn with_config(name: &str, f: impl FnOnce(&mut Value)) -> Result<Self> {
        let b = Self::new(name)?;
        b.configure(f)?;
        Ok(b)
    }

    /// Edits config.json in place.
    pub fn configure(&self, f: impl FnOnce(&mut Value)) -> Result<()> {
        let mut c = self.config()?;
        f(&mut c);
        self.write_config(&serde_json::to_string_pretty(&c)?)
    }

    /// The current config.json.
    pub fn config(&self) -> Result<Value> {
        let p = self.config_path();
        serde_json::from_str(
            &fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?,
        )
        .with_context(|| format!("parse {}", p.display()))
    }

    /// Replaces config.json with `text` verbatim (e.g. invalid JSON).
    pub fn write_config(&self, text: &str) -> Result<()> {
        let p = self.config_path();
        fs::write(&p, text).with_context(|| format!("write {}", p.display()))
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bundle directory (absolute).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<bundle>/rootfs`.
    pub fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    /// `<bundle>/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.json")
    }

    /// The container's cgroupsPath, `/runrs-it/<id>`.
    pub fn cgroups_path(&self) -> &str {
        &self.cgroups_path
    }

    /// A fresh directory `<bundle>/host/<name>` (outside the rootfs), e.g. a bind source.
    pub fn host_dir(&self, name: &str) -> Result<PathBuf> {
        let p = self.path().join("host").join(name);
        fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(p)
    }

    /// New files for the stdout/stderr of a detached runtime invocation (`create`,
    /// `run --detach`); the container inherits them.
    pub(crate) fn next_log_paths(&self) -> (PathBuf, PathBuf) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let n = logs.len();
        let pair = (
            self.path().join(format!("stdout.{n}")),
            self.path().join(format!("stderr.{n}")),
        );
        logs.push(pair.clone());
        pair
    }

    fn last_log(&self) -> Result<(PathBuf, PathBuf)> {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        match logs.last() {
            Some(p) => Ok(p.clone()),
            None => bail!(
                "container {} was not created detached, it has no output files",
                self.id
            ),
        }
    }

    /// What the container (and the runtime) wrote to stdout so far, for the last detached
    /// create of this bundle.
    pub fn stdout(&self) -> Result<String> {
        read_lossy(&self.last_log()?.0)
    }

    /// What the container (and the runtime) wrote to stderr so far, for the last detached
    /// create of this bundle.
    pub fn stderr(&self) -> Result<String> {
        read_lossy(&self.last_log()?.1)
    }

    /// Records that `bin --root root` may hold a container for this bundle (for cleanup).
    pub(crate) fn used_by(&self, bin: &Path, root: &Path) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let entry = (bin.to_path_buf(), root.to_path_buf());
        if !users.contains(&entry) {
            users.push(entry);
        }
    }

    /// Recursively chowns the rootfs copy (for user-namespace tests).
    pub fn chown_rootfs(&self, uid: u32, gid: u32) -> Result<()> {
        host(
            "chown",
            &[
                "-R",
                "-h",
                &format!("{uid}:{gid}"),
                &self.rootfs().to_string_lossy(),
            ],
        )?;
        Ok(())
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let users = std::mem::take(&mut *self.users.lock().unwrap_or_else(|e| e.into_inner()));
        for (bin, root) in users {
            if root.join(&self.id).exists() {
                let mut cmd = Command::new(bin);
                cmd.arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", &self.id]);
                let _ = run_capture(cmd, None, Duration::from_secs(10));
            }
        }
        // If the runtime under test failed to clean up, do it here so one broken test does
        // not break the next ones: kill what is left in the cgroup, remove the cgroup dirs,
        // detach mounts under the bundle.
        scrub_cgroup(&self.cgroups_path);
        if let Ok(mounts) = proc::self_mounts() {
            let bundle = self.path().to_string_lossy().into_owned();
            for m in mounts
                .iter()
                .rev()
                .filter(|m| m.mount_point.starts_with(&bundle))
            {
                let _ =
                    nix::mount::umount2(m.mount_point.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// Kills every process in cgroup `path` (all hierarchies) and removes its directories.
pub fn scrub_cgroup(path: &str) {
    let Ok(mounts) = proc::cgroup_mounts() else {
        return;
    };
    let dirs: Vec<PathBuf> = mounts
        .iter()
        .filter_map(|m| proc::cgroup_dir(m, path))
        .filter(|d| d.exists())
        .collect();
    if dirs.is_empty() {
        return;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for dir in &dirs {
        loop {
            let pids: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Child cgroups first (a runtime may have made sub-cgroups).
        let mut children: Vec<PathBuf> = Vec::new();
        collect_dirs(dir, &mut children);
        for d in children.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Small edits of a config.json value.
pub mod config {
    use serde_json::{json, Value};

    /// Removes `key` from the object `v` (nothing if `v` is not an object), e.g.
    /// `remove(c, "hostname")` or `remove(&mut c["process"], "args")`.
    pub fn remove(v: &mut Value, key: &str) {
        if let Some(o) = v.as_object_mut() {
            o.remove(key);
        }
    }

    /// Sets process.args.
    pub fn set_args(c: &mut Value, args: &[&str]) {
        c["process"]["args"] = json!(args);
    }

    /// Sets process.args to `["sh", "-c", script]`.
    pub fn sh(c: &mut Value, script: &str) {
        set_args(c, &["sh", "-c", script]);
    }

    /// The namespace types in linux.namespaces.
    pub fn namespaces(c: &Value) -> Vec<String> {
        c["linux"]["namespaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["type"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes namespace `ty` from linux.namespaces.
    pub fn remove_namespace(c: &mut Value, ty: &str) {
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            a.retain(|n| n["type"] != ty);
        }
    }

    /// Adds (or replaces) namespace `ty`, joining `path` if given.
    pub fn set_namespace(c: &mut Value, ty: &str, path: Option<&str>) {
        remove_namespace(c, ty);
        let mut ns = json!({ "type": ty });
        if let Some(p) = path {
            ns["path"] = json!(p);
        }
        match c["linux"]["namespaces"].as_array_mut() {
            Some(a) => a.push(ns),
            None => c["linux"]["namespaces"] = json!([ns]),
        }
    }

    /// Appends a mount.
    pub fn add_mount(c: &mut Value, destination: &str, ty: &str, source: &str, options: &[&str]) {
        let m =
            json!({ "destination": destination, "type": ty, "source": source, "options": options });
        match c["mounts"].as_array_mut() {
            Some(a) => a.push(m),
            None => c["mounts"] = json!([m]),
        }
    }
}
