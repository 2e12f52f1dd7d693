//! Reading the kernel's view: /proc/*/mountinfo, namespace links, cgroup hierarchies.
//!
//! See proc(5) for the mountinfo format and namespaces(7) for /proc/<pid>/ns.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One line of /proc/<pid>/mountinfo (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount ID.
    pub id: u32,
    /// Parent mount ID.
    pub parent: u32,
    /// `major:minor` of the filesystem.
    pub dev: String,
    /// Root of the mount within its filesystem.
    pub root: String,
    /// Mount point relative to the process's root.
    pub mount_point: String,
    /// Per-mount options (ro, nosuid, ...).
    pub options: Vec<String>,
    /// Filesystem type.
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options (size=, mode=, ...).
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// True if the per-mount options include `opt`.
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }

    /// True if the per-superblock options include `opt`.
    pub fn has_super_option(&self, opt: &str) -> bool {
        self.super_options.iter().any(|o| o == opt)
    }

    /// True if the mount is read-only (per-mount flag).
    pub fn is_ro(&self) -> bool {
        self.has_option("ro")
    }
}

/// Undoes mountinfo's octal escapes (`\040` for space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the text of a mountinfo file; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    if l.len() < 6 || r.len() < 3 {
        return None;
    }
    let split = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
    Some(MountInfo {
        id: l[0].parse().ok()?,
        parent: l[1].parse().ok()?,
        dev: l[2].to_owned(),
        root: unescape(l[3]),
        mount_point: unescape(l[4]),
        options: split(l[5]),
        fstype: r[0].to_owned(),
        source: unescape(r[1]),
        super_options: split(r[2]),
    })
}

/// The mount table of the calling process.
pub fn self_mounts() -> Result<Vec<MountInfo>> {
    let text = fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text))
}

/// Every cgroup (v1) and cgroup2 mount of the calling process, e.g.
/// /sys/fs/cgroup/memory and /sys/fs/cgroup/unified on a hybrid host.
pub fn cgroup_mounts() -> Result<Vec<MountInfo>> {
    Ok(self_mounts()?
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .collect())
}

/// Where cgroup `path` (e.g. "/runrs-it/id") lives in hierarchy `m`, if `m` can see it.
pub fn cgroup_dir(m: &MountInfo, path: &str) -> Option<PathBuf> {
    let root = m.root.trim_end_matches('/');
    let rel = path.strip_prefix(root)?;
    if !(rel.is_empty() || rel.starts_with('/')) {
        return None;
    }
    Some(Path::new(&m.mount_point).join(rel.trim_start_matches('/')))
}

/// The pids listed in cgroup.procs of cgroup `path`, from the first hierarchy that has it
/// (None if no hierarchy has it).
pub fn cgroup_procs(path: &str) -> Result<Option<Vec<i32>>> {
    for m in cgroup_mounts()? {
        let Some(dir) = cgroup_dir(&m, path) else {
            continue;
        };
        let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) else {
            continue;
        };
        return Ok(Some(
            text.lines().filter_map(|l| l.trim().parse().ok()).collect(),
        ));
    }
    Ok(None)
}

/// The target of /proc/<pid>/ns/<ns>, e.g. "net:[4026531840]"; `pid` may be "self".
pub fn ns_link(pid: &str, ns: &str) -> Result<String> {
    let p = format!("/proc/{pid}/ns/{ns}");
    Ok(fs::read_link(&p)
        .with_context(|| format!("readlink {p}"))?
        .to_string_lossy()
        .into_owned())
}

/// True if a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: i64) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised comm.
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "68 67 0:42 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666\n\
                    73 72 0:29 /runrs-it/x /sys/fs/cgroup/cpu ro,nosuid - cgroup cgroup rw,cpu\n\
                    80 65 254:0 /a\\040b /mnt/with\\040space rw shared:1 - ext4 /dev/vda rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].mount_point, "/dev/pts");
        assert!(m[0].has_super_option("ptmxmode=666"));
        assert_eq!(m[1].root, "/runrs-it/x");
        assert!(m[1].is_ro());
        assert_eq!(m[2].mount_point, "/mnt/with space");
        assert_eq!(m[2].root, "/a b");
        assert_eq!(m[2].fstype, "ext4");
    }

    #[test]
    fn cgroup_dir_strips_the_mount_root() {
        let m = parse_mountinfo("1 0 0:1 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
        assert_eq!(
            cgroup_dir(&m[0], "/a/b"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/a/b"))
        );
        let m = parse_mountinfo("1 0 0:1 /a /x rw - cgroup2 cgroup2 rw\n");
        assert_eq!(cgroup_dir(&m[0], "/a/b"), Some(PathBuf::from("/x/b")));
        assert_eq!(cgroup_dir(&m[0], "/c"), None);
    }
}
