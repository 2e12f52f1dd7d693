//! The leftover checker: after a container is deleted (or failed to be created), nothing of
//! it may remain on the host.
//!
//! Looked for: the state directory `<root>/<id>`; any mount in /proc/self/mountinfo whose
//! line mentions the bundle path or the id; the cgroup `<cgroupsPath>` in any cgroup or
//! cgroup2 hierarchy (hybrid hosts have both); any process whose /proc/<pid>/cgroup is in
//! that cgroup or whose cmdline mentions the id.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::proc;

/// What to look for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The runtime's `--root`.
    pub root: &'a Path,
    /// The container id.
    pub id: &'a str,
    /// The bundle directory.
    pub bundle: &'a Path,
    /// linux.cgroupsPath of the container.
    pub cgroups_path: &'a str,
}

/// Everything of `t` still present, one line per finding (empty: clean).
pub fn find(t: &Target<'_>) -> Vec<String> {
    let mut found = Vec::new();

    let state_dir = t.root.join(t.id);
    if state_dir.exists() {
        found.push(format!("state dir {} exists", state_dir.display()));
    }

    let bundle = t.bundle.to_string_lossy();
    match fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => found.extend(
            text.lines()
                .filter(|l| l.contains(bundle.as_ref()) || l.contains(t.id))
                .map(|l| format!("mount: {l}")),
        ),
        Err(e) => found.push(format!("cannot read /proc/self/mountinfo: {e}")),
    }

    match proc::cgroup_mounts() {
        Ok(mounts) => {
            for m in mounts {
                if let Some(dir) = proc::cgroup_dir(&m, t.cgroups_path) {
                    if dir.exists() {
                        found.push(format!("cgroup dir {} exists", dir.display()));
                    }
                }
            }
        }
        Err(e) => found.push(format!("cannot list cgroup mounts: {e:#}")),
    }

    let me = std::process::id().to_string();
    let in_cgroup = |line: &str| {
        line.splitn(3, ':').nth(2).is_some_and(|p| {
            p == t.cgroups_path
                || p.strip_prefix(t.cgroups_path)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    };
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|c| c.is_ascii_digit()) || pid == me {
                continue;
            }
            // Processes come and go while we look: unreadable files are skipped.
            let cmdline = fs::read(e.path().join("cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .replace('\0', " ")
                        .trim()
                        .to_owned()
                })
                .unwrap_or_default();
            let cgroup = fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if cmdline.contains(t.id) || cgroup.lines().any(in_cgroup) {
                found.push(format!("process {pid} ({}): {cmdline:?}", stat.trim()));
            }
        }
    }
    found
}

/// Fails unless [`find`] comes back empty within 2 s (exited processes may take a moment
/// to be reaped by whoever is their parent).
pub fn assert_clean(t: &Target<'_>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found = find(t);
        if found.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "container {} left things behind:\n  {}",
                t.id,
                found.join("\n  ")
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}
