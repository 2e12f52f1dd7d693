//! The shared leak checker: a before/after snapshot of what a fault or a failed operation
//! may leave on the host, used by the CLI and the containerd suites alike.
//!
//! Two questions, one kit. [`assert_gone`] asks "is anything of container X left?" (its
//! state dir, mounts naming its bundle or id, its cgroup in every hierarchy, processes in
//! that cgroup or naming the id). A [`Scope`] snapshot asks "is anything new since before
//! the test?", which also catches what a test cannot name in advance (a fifo dir ctr made, a zombie a shim did not reap, a descriptor
//! containerd kept). A [`Scope`] says where to look, so tests running in parallel threads
//! (the CLI suite) or other instances do not see each other:
//!
//! - mounts: lines of /proc/self/mountinfo that mention one of `needles`;
//! - cgroup dirs: every directory below each of `cgroup_parents`, in every hierarchy;
//! - state dirs: the entries of each of `state_roots` (`--root`, the shims' state roots,
//!   the shim socket dir);
//! - fifo dirs: the entries of each of `fifo_roots` (/run/containerd/fifo);
//! - shim processes: live `containerd-shim-*` processes whose command line mentions one of
//!   `needles` (containerd's address);
//! - processes: live processes in a cgroup below `cgroup_parents` or whose command line
//!   mentions one of `process_needles` (container ids);
//! - zombies: zombie processes whose parent is this test process, the containerd of
//!   `containerd_pid_file` or a shim;
//! - containerd's descriptors: the number of entries in /proc/<containerd>/fd, but for
//!   files of its own (`containerd_own`: the metadata and snapshotter databases, which
//!   it opens as it pleases) — what a shim can make it leak is sockets, pipes and fifos.
//!
//! [`Snapshot::leaks_since`] lists what is new (the descriptor count may not grow);
//! [`assert_no_leaks`] polls until nothing is, since exits are reaped and connections
//! closed a moment after the operation that caused them returns.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::proc;

/// Where to look.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Directories whose entries are per-container state (a CLI `--root`, a shim's state
    /// root, the shim socket dir).
    pub state_roots: Vec<PathBuf>,
    /// Cgroup paths (e.g. `/runrs-e2e`) whose subtrees are listed in every hierarchy, and
    /// whose processes are listed.
    pub cgroup_parents: Vec<String>,
    /// Only what is below each of `cgroup_parents` counts, not the parent itself: for
    /// containerd's per-namespace cgroup, which the first container of a fresh instance
    /// makes and the instance's teardown removes.
    pub cgroup_parents_shared: bool,
    /// Directories whose entries are stdio fifo dirs (`/run/containerd/fifo`).
    pub fifo_roots: Vec<PathBuf>,
    /// A mount line or a shim command line that mentions one of these is in scope.
    pub needles: Vec<String>,
    /// A process whose command line mentions one of these is in scope.
    pub process_needles: Vec<String>,
    /// The pid file of the containerd whose descriptors and zombie children are counted
    /// (read at each snapshot: a restarted containerd is compared with its predecessor).
    pub containerd_pid_file: Option<PathBuf>,
    /// containerd descriptors on paths under these are not counted (its own databases,
    /// which it opens and closes as it pleases).
    pub containerd_own: Vec<PathBuf>,
}

/// One thing on the host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Mount(String),
    CgroupDir(PathBuf),
    StateDir(PathBuf),
    FifoDir(PathBuf),
    Shim(i32, String),
    Process(i32, String),
    Zombie(i32, i32, String),
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Mount(l) => write!(f, "mount: {l}"),
            Item::CgroupDir(p) => write!(f, "cgroup dir {}", p.display()),
            Item::StateDir(p) => write!(f, "state entry {}", p.display()),
            Item::FifoDir(p) => write!(f, "fifo dir {}", p.display()),
            Item::Shim(pid, c) => write!(f, "shim process {pid}: {c}"),
            Item::Process(pid, c) => write!(f, "process {pid}: {c}"),
            Item::Zombie(pid, ppid, c) => write!(f, "zombie {pid} ({c}), child of {ppid}"),
        }
    }
}

/// What was in scope at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    items: BTreeSet<Item>,
    /// What containerd's descriptors point to (`socket:[…]`, `pipe:[…]`, paths), sorted.
    containerd_fds: Option<Vec<String>>,
}

/// One process as /proc shows it.
struct ProcInfo {
    pid: i32,
    ppid: i32,
    state: char,
    comm: String,
    args: Vec<String>,
    cgroups: Vec<String>,
}

fn processes() -> Vec<ProcInfo> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            // Processes come and go while we look: unreadable ones are skipped.
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let (head, rest) = stat.rsplit_once(") ")?;
            let comm = head
                .split_once(" (")
                .map(|(_, c)| c)
                .unwrap_or("")
                .to_owned();
            let mut f = rest.split(' ');
            let state = f.next()?.chars().next()?;
            let ppid = f.next()?.parse().ok()?;
            let args = fs::read(e.path().join("cmdline"))
                .map(|b| {
                    b.split(|c| *c == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let cgroups = fs::read_to_string(e.path().join("cgroup"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.splitn(3, ':').nth(2).map(str::to_owned))
                .collect();
            Some(ProcInfo {
                pid,
                ppid,
                state,
                comm,
                args,
                cgroups,
            })
        })
        .collect()
}

fn under(path: &str, parent: &str) -> bool {
    path == parent
        || path
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn collect_dirs(dir: &Path, out: &mut BTreeSet<Item>) {
    out.insert(Item::CgroupDir(dir.to_path_buf()));
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// What the open descriptors of `pid` point to, sorted (None if it is gone).
pub fn fd_targets(pid: i32) -> Option<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .map(|e| {
            fs::read_link(e.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    v.sort();
    Some(v)
}

impl Snapshot {
    /// What is in `scope` now.
    pub fn take(scope: &Scope) -> Self {
        let mut items = BTreeSet::new();
        let mentions = |s: &str, needles: &[String]| needles.iter().any(|n| s.contains(n));

        if let Ok(text) = fs::read_to_string("/proc/self/mountinfo") {
            for l in text.lines().filter(|l| mentions(l, &scope.needles)) {
                // Mount and parent ids change when something is remounted; the rest names it.
                let key = l.splitn(3, ' ').nth(2).unwrap_or(l);
                items.insert(Item::Mount(key.to_owned()));
            }
        }
        if let Ok(mounts) = proc::cgroup_mounts() {
            for m in mounts {
                for parent in &scope.cgroup_parents {
                    let Some(dir) = proc::cgroup_dir(&m, parent).filter(|d| d.is_dir()) else {
                        continue;
                    };
                    if !scope.cgroup_parents_shared {
                        collect_dirs(&dir, &mut items);
                        continue;
                    }
                    for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            collect_dirs(&e.path(), &mut items);
                        }
                    }
                }
            }
        }
        for root in &scope.state_roots {
            items.extend(entries(root).into_iter().map(Item::StateDir));
        }
        for root in &scope.fifo_roots {
            items.extend(entries(root).into_iter().map(Item::FifoDir));
        }

        let me = std::process::id() as i32;
        let containerd_pid: Option<i32> = scope
            .containerd_pid_file
            .as_ref()
            .and_then(|f| fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse().ok());
        let procs = processes();
        let is_shim = |p: &ProcInfo| {
            p.args.first().is_some_and(|a| {
                Path::new(a)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("containerd-shim-"))
            })
        };
        let shims: BTreeSet<i32> = procs
            .iter()
            .filter(|p| is_shim(p) && mentions(&p.args.join(" "), &scope.needles))
            .map(|p| p.pid)
            .collect();
        for p in &procs {
            let line = p.args.join(" ");
            if p.state == 'Z' {
                let parent_of_interest =
                    p.ppid == me || Some(p.ppid) == containerd_pid || shims.contains(&p.ppid);
                if parent_of_interest {
                    items.insert(Item::Zombie(p.pid, p.ppid, p.comm.clone()));
                }
                continue;
            }
            if p.pid == me {
                continue;
            }
            if shims.contains(&p.pid) {
                items.insert(Item::Shim(p.pid, line));
            } else if mentions(&line, &scope.process_needles)
                || p.cgroups
                    .iter()
                    .any(|cg| scope.cgroup_parents.iter().any(|parent| under(cg, parent)))
            {
                items.insert(Item::Process(p.pid, line));
            }
        }
        Self {
            items,
            containerd_fds: containerd_pid.and_then(fd_targets).map(|fds| {
                fds.into_iter()
                    .filter(|t| {
                        !scope
                            .containerd_own
                            .iter()
                            .any(|own| Path::new(t).starts_with(own))
                    })
                    .collect()
            }),
        }
    }

    /// What `self` has that `before` had not, one line each (empty: no leak). The
    /// containerd descriptor count may not be higher than before.
    pub fn leaks_since(&self, before: &Snapshot) -> Vec<String> {
        let mut found: Vec<String> = self
            .items
            .difference(&before.items)
            .map(ToString::to_string)
            .collect();
        if let (Some(b), Some(a)) = (&before.containerd_fds, &self.containerd_fds) {
            if a.len() > b.len() {
                let mut new = a.clone();
                for t in b {
                    if let Some(i) = new.iter().position(|x| x == t) {
                        new.remove(i);
                    }
                }
                found.push(format!(
                    "containerd has {} open descriptors, {} before; new: {new:?}",
                    a.len(),
                    b.len()
                ));
            }
        }
        found
    }
}

/// Fails unless nothing in `scope` is new since `before` within `timeout` (polling: an
/// exit is reaped and a connection closed a moment after the operation returns).
pub fn assert_no_leaks(before: &Snapshot, scope: &Scope, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = Snapshot::take(scope).leaks_since(before);
        if found.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "left behind (new since the check began, after {timeout:?}):\n  {}",
                found.join("\n  ")
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_items_and_more_descriptors_are_leaks() -> Result<()> {
        use std::io::Write;
        let dir = tempfile::tempdir()?;
        // The "containerd" is a shell whose descriptors only this test moves (the test
        // process itself has other tests' threads opening and closing files meanwhile).
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "read a; exec 7</dev/null; read b; exec 7<&-; read c"])
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        let mut stdin = sh
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdin pipe"))?;
        let fd7 = PathBuf::from(format!("/proc/{}/fd/7", sh.id()));
        let step = |stdin: &mut std::process::ChildStdin, open: bool| -> Result<()> {
            stdin.write_all(b"\n")?;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while fd7.exists() != open {
                anyhow::ensure!(std::time::Instant::now() < deadline, "sh did not move fd 7");
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        };
        let pid_file = dir.path().join("pid");
        fs::write(&pid_file, sh.id().to_string())?;
        let state = dir.path().join("state");
        fs::create_dir(&state)?;
        let scope = Scope {
            state_roots: vec![state.clone()],
            containerd_pid_file: Some(pid_file),
            ..Scope::default()
        };
        let before = Snapshot::take(&scope);
        fs::create_dir(state.join("c1"))?;
        step(&mut stdin, true)?;
        let after = Snapshot::take(&scope);
        let leaks = after.leaks_since(&before);
        assert!(leaks.iter().any(|l| l.contains("c1")), "{leaks:?}");
        assert!(leaks.iter().any(|l| l.contains("descriptors")), "{leaks:?}");
        step(&mut stdin, false)?;
        fs::remove_dir(state.join("c1"))?;
        assert_no_leaks(&before, &scope, Duration::from_secs(1))?;
        drop(stdin);
        sh.wait()?;
        Ok(())
    }

    #[test]
    fn zombie_children_are_leaks() -> Result<()> {
        let scope = Scope::default();
        let before = Snapshot::take(&scope);
        let mut child = std::process::Command::new("true").spawn()?;
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        let leaks = loop {
            let leaks = Snapshot::take(&scope).leaks_since(&before);
            if !leaks.is_empty() || Instant::now() > deadline {
                break leaks;
            }
            thread::sleep(Duration::from_millis(10));
        };
        assert!(
            leaks
                .iter()
                .any(|l| l.starts_with(&format!("zombie {pid} "))),
            "{leaks:?}"
        );
        child.wait()?;
        assert_no_leaks(&before, &scope, Duration::from_secs(1))?;
        Ok(())
    }
}

/// One named container, for [`leftovers`] and [`assert_gone`].
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The runtime's `--root` (or the shim's state root).
    pub root: &'a Path,
    /// The container id.
    pub id: &'a str,
    /// The bundle directory.
    pub bundle: &'a Path,
    /// linux.cgroupsPath of the container.
    pub cgroups_path: &'a str,
}

/// Everything of `t` still present, one line per finding (empty: clean): the state
/// directory `<root>/<id>`; mounts whose line mentions the bundle or the id; the cgroup in
/// any cgroup or cgroup2 hierarchy (hybrid hosts have both); processes in that cgroup or
/// whose command line mentions the id.
pub fn leftovers(t: &Target<'_>) -> Vec<String> {
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
    let me = std::process::id() as i32;
    for p in processes() {
        let cmdline = p.args.join(" ");
        if p.pid != me
            && (cmdline.contains(t.id) || p.cgroups.iter().any(|c| under(c, t.cgroups_path)))
        {
            found.push(format!(
                "process {} ({}, state {}, parent {}): {cmdline:?}",
                p.pid, p.comm, p.state, p.ppid
            ));
        }
    }
    found
}

/// Fails unless [`leftovers`] comes back empty within 2 s (exited processes may take a
/// moment to be reaped by whoever is their parent).
pub fn assert_gone(t: &Target<'_>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found = leftovers(t);
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

#[cfg(test)]
mod target_tests {
    use super::*;

    /// What a named container leaves behind is found (its state dir, a process naming
    /// its id) and, once removed, no longer is.
    #[test]
    fn a_named_containers_leftovers_are_found() {
        let id = format!("runrs-leftover-{}", std::process::id());
        let root = std::env::temp_dir().join(format!("{id}-root"));
        fs::create_dir_all(root.join(&id)).expect("state dir");
        let mut child = std::process::Command::new("sh")
            .args(["-c", &format!("sleep 30; : {id}")])
            .spawn()
            .expect("sh");
        let t = Target {
            root: &root,
            id: &id,
            bundle: Path::new("/nonexistent-runrs-bundle"),
            cgroups_path: "/nonexistent-runrs-cgroup",
        };
        let found = leftovers(&t);
        assert!(
            found.iter().any(|f| f.starts_with("state dir")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with(&format!("process {}", child.id()))),
            "{found:?}"
        );
        assert!(assert_gone(&t).is_err());
        child.kill().expect("kill");
        child.wait().expect("reap");
        fs::remove_dir_all(&root).expect("rm");
        assert_gone(&t).expect("clean");
    }
}
