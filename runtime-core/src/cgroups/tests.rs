use std::path::Path;

use super::hierarchy::clean_path;
use super::*;

const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

const UNIFIED_MI: &str = "\
25 23 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
";

const OWN: &str = "\
9:name=systemd:/user.slice
4:memory:/process_api/abc
3:cpuset:/
1:cpu,cpuacct:/
0::/init.scope
";

#[test]
fn detects_hybrid() {
    let h = Hierarchies::from_mountinfo(Path::new(DEFAULT_ROOT), HYBRID).expect("parse");
    assert_eq!(h.mode, Mode::Hybrid);
    assert_eq!(h.mounts.len(), 5);
    assert_eq!(
        h.mountpoint_of("cpuacct"),
        Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
    );
    assert_eq!(
        h.mountpoint_of(UNIFIED),
        Some(Path::new("/sys/fs/cgroup/unified"))
    );
    assert!(h.has_controller("name=systemd"));
}

#[test]
fn detects_unified() {
    let h = Hierarchies::from_mountinfo(Path::new(DEFAULT_ROOT), UNIFIED_MI).expect("parse");
    assert_eq!(h.mode, Mode::Unified);
    let p = h.resolve(Some("/e2e/t1"), "t1", OWN).expect("resolve");
    assert_eq!(p.dirs.len(), 1);
    assert_eq!(
        p.dir("memory"),
        Some(&PathBuf::from("/sys/fs/cgroup/e2e/t1"))
    );
    // Relative paths: below the parent of the runtime's own cgroup (runc's fs2).
    let own = "0::/user.slice/deleg/shell\n";
    let r = h.resolve(None, "c9", own).expect("default");
    assert_eq!(
        r.dir("pids"),
        Some(&PathBuf::from("/sys/fs/cgroup/user.slice/deleg/c9"))
    );
    let r = h
        .resolve(Some("sub/c9"), "c9", "0::/init.scope\n")
        .expect("relative");
    assert_eq!(r.dir("pids"), Some(&PathBuf::from("/sys/fs/cgroup/sub/c9")));
}

#[test]
fn resolves_absolute_and_relative() {
    let h = Hierarchies::from_mountinfo(Path::new(DEFAULT_ROOT), HYBRID).expect("parse");
    let p = h.resolve(Some("/e2e/t1"), "t1", OWN).expect("abs");
    assert_eq!(p.path, "/e2e/t1");
    assert_eq!(
        p.dir("memory"),
        Some(&PathBuf::from("/sys/fs/cgroup/memory/e2e/t1"))
    );
    assert_eq!(
        p.dir("cpuacct"),
        Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/e2e/t1"))
    );
    assert_eq!(
        p.dirs.get(UNIFIED),
        Some(&PathBuf::from("/sys/fs/cgroup/unified/e2e/t1"))
    );
    assert_eq!(p.unique_dirs().len(), 5);

    // Relative (and default) paths hang below the runtime's own cgroup.
    let r = h.resolve(None, "c9", OWN).expect("default");
    assert_eq!(
        r.dir("memory"),
        Some(&PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/c9"))
    );
    assert_eq!(
        r.dirs.get(UNIFIED),
        Some(&PathBuf::from("/sys/fs/cgroup/unified/init.scope/c9"))
    );
}

#[test]
fn path_cannot_escape() {
    assert_eq!(clean_path("/../../etc"), "/etc");
    assert_eq!(clean_path("a//b/./../c"), "/a/c");
    let h = Hierarchies::from_mountinfo(Path::new(DEFAULT_ROOT), HYBRID).expect("parse");
    let p = h.resolve(Some("/../../x"), "t", OWN).expect("resolve");
    assert_eq!(
        p.dir("memory"),
        Some(&PathBuf::from("/sys/fs/cgroup/memory/x"))
    );
    assert!(h.resolve(Some("/"), "t", OWN).is_err());
    assert!(h.resolve(Some("system.slice:runrs:t"), "t", OWN).is_err());
}

#[test]
#[allow(clippy::disallowed_methods, reason = "test scratch directory")]
fn create_add_remove_on_fake_tree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    for d in ["cpuset", "memory", "unified"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").expect("cpus");
    std::fs::write(root.join("cpuset/cpuset.mems"), "0\n").expect("mems");
    let mi = format!(
        "34 31 0:31 / {r}/cpuset rw - cgroup cgroup rw,cpuset\n\
         35 31 0:32 / {r}/memory rw - cgroup cgroup rw,memory\n\
         41 31 0:38 / {r}/unified rw - cgroup2 cgroup2 rw\n",
        r = root.display()
    );
    let h = Hierarchies::from_mountinfo(root, &mi).expect("parse");
    assert_eq!(h.mode, Mode::Hybrid);
    let p = h.resolve(Some("/runrs/a"), "a", OWN).expect("resolve");
    p.create(&h).expect("create");
    // cpuset values were copied down both levels
    assert_eq!(
        std::fs::read_to_string(root.join("cpuset/runrs/a/cpuset.cpus")).expect("read"),
        "0-1"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("cpuset/runrs/cpuset.mems")).expect("read"),
        "0"
    );
    p.add_pid(4242).expect("add");
    assert_eq!(
        std::fs::read_to_string(root.join("memory/runrs/a/cgroup.procs")).expect("read"),
        "4242"
    );
    assert_eq!(p.pids().expect("pids"), vec![4242]);
    // a real cgroupfs lets rmdir succeed with control files inside; emulate that
    for d in p.unique_dirs() {
        for e in std::fs::read_dir(d).expect("ls").flatten() {
            std::fs::remove_file(e.path()).expect("rm");
        }
    }
    p.remove().expect("remove");
    assert!(!p.exists());
    assert!(
        root.join("memory/runrs").exists(),
        "only the leaf is removed"
    );
}
