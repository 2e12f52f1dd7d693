//! Stats and OOM watching against fake cgroup trees.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::oom::{OomEvent, OomWatcher};
use super::stats::{self, parse_blkio, parse_list};
use super::*;

#[allow(clippy::disallowed_methods, reason = "test scratch directory")]
fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).expect("write fake file");
}

fn paths(mode: Mode, dirs: &[(&str, &Path)]) -> CgroupPaths {
    CgroupPaths {
        mode,
        path: "/t/c".into(),
        dirs: dirs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_path_buf()))
            .collect::<BTreeMap<_, _>>(),
        systemd: None,
        rootless: false,
        denied: Vec::new(),
        shared: false,
    }
}

#[test]
fn v1_stats() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    write(d, "cgroup.procs", "12\n");
    write(d, "cpuacct.usage", "5000000\n");
    write(d, "cpuacct.usage_percpu", "3000000 2000000 \n");
    write(d, "cpuacct.stat", "user 3\nsystem 1\n");
    write(
        d,
        "cpu.stat",
        "nr_periods 10\nnr_throttled 4\nthrottled_time 123456\n",
    );
    write(d, "cpuset.effective_cpus", "0-1\n");
    write(d, "cpuset.effective_mems", "0\n");
    write(d, "memory.usage_in_bytes", "1048576\n");
    write(d, "memory.max_usage_in_bytes", "2097152\n");
    write(d, "memory.limit_in_bytes", "33554432\n");
    write(d, "memory.failcnt", "7\n");
    write(d, "memory.memsw.limit_in_bytes", "33554432\n");
    write(d, "memory.stat", "cache 4096\nrss 8192\n");
    write(d, "memory.use_hierarchy", "1\n");
    write(
        d,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(d, "pids.current", "3\n");
    write(d, "pids.max", "max\n");
    write(
        d,
        "blkio.throttle.io_service_bytes_recursive",
        "254:0 Read 4096\n254:0 Write 0\nTotal 4096\n",
    );
    write(d, "blkio.throttle.io_serviced_recursive", "254:0 Read 1\n");
    write(d, "blkio.io_service_bytes_recursive", "Total 0\n");
    write(d, "hugetlb.2MB.usage_in_bytes", "2097152\n");
    write(d, "hugetlb.2MB.limit_in_bytes", "4194304\n");
    write(d, "hugetlb.2MB.failcnt", "1\n");
    write(d, "hugetlb.2MB.rsvd.usage_in_bytes", "0\n");
    let all = [
        "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "hugetlb",
    ];
    let cg = paths(Mode::Hybrid, &all.map(|c| (c, d)));
    let s = stats::read(&cg).expect("stats");
    assert_eq!(s.cpu.usage_ns, 5_000_000);
    assert_eq!(s.cpu.per_cpu_ns, vec![3_000_000, 2_000_000]);
    let tick = 1_000_000_000 / 100;
    assert_eq!((s.cpu.user_ns, s.cpu.kernel_ns), (3 * tick, tick));
    assert_eq!(s.cpu.throttling.throttled_periods, 4);
    assert_eq!(s.cpu.throttling.throttled_ns, 123_456);
    assert_eq!(
        (s.cpuset.cpus.clone(), s.cpuset.mems.clone()),
        (vec![0, 1], vec![0])
    );
    assert_eq!(s.memory.usage.usage, 1_048_576);
    assert_eq!(s.memory.usage.max_usage, 2_097_152);
    assert_eq!(s.memory.usage.limit, 33_554_432);
    assert_eq!(s.memory.usage.failcnt, 7);
    assert_eq!(s.memory.swap.limit, 33_554_432);
    assert_eq!(s.memory.cache, 4096);
    assert_eq!(s.memory.stat.get("rss"), Some(&8192));
    assert!(s.memory.use_hierarchy && !s.memory.under_oom);
    assert_eq!(s.memory.oom_kills, 2);
    assert_eq!((s.pids.current, s.pids.limit), (3, 0));
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2, "Total skipped");
    assert_eq!(s.blkio.io_service_bytes_recursive[0].op, "Read");
    assert_eq!(s.blkio.io_service_bytes_recursive[0].value, 4096);
    assert_eq!(s.hugetlb.len(), 1, "rsvd files are not a page size");
    assert_eq!(s.hugetlb["2MB"].usage, 2_097_152);
    assert_eq!(s.hugetlb["2MB"].failcnt, 1);
    assert_eq!(oom::oom_kill_count(&cg), 2);
}

#[test]
fn v2_stats() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    write(d, "cgroup.procs", "12\n");
    write(d, "cpu.stat", "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 5\nnr_throttled 2\nthrottled_usec 7\n");
    write(d, "memory.current", "4096\n");
    write(d, "memory.max", "max\n");
    write(d, "memory.peak", "8192\n");
    write(d, "memory.swap.current", "0\n");
    write(d, "memory.swap.max", "1048576\n");
    write(d, "memory.stat", "anon 1024\nfile 2048\n");
    write(
        d,
        "memory.events",
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    );
    write(d, "pids.current", "2\n");
    write(d, "pids.max", "32\n");
    write(
        d,
        "io.stat",
        "8:0 rbytes=4096 wbytes=512 rios=1 wios=2 dbytes=0 dios=0\n",
    );
    write(d, "hugetlb.2MB.current", "0\n");
    write(d, "hugetlb.2MB.max", "2097152\n");
    write(d, "hugetlb.2MB.events", "max 4\n");
    let cg = paths(Mode::Unified, &[(UNIFIED, d)]);
    let s = stats::read(&cg).expect("stats");
    assert_eq!(
        (s.cpu.usage_ns, s.cpu.user_ns, s.cpu.kernel_ns),
        (100_000, 60_000, 40_000)
    );
    assert_eq!(s.cpu.throttling.throttled_ns, 7000);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(
        (
            s.memory.usage.usage,
            s.memory.usage.max_usage,
            s.memory.usage.failcnt
        ),
        (4096, 8192, 3)
    );
    assert_eq!(s.memory.swap.limit, 1_048_576);
    assert_eq!(s.memory.cache, 2048);
    assert_eq!(s.memory.oom_kills, 1);
    assert_eq!((s.pids.current, s.pids.limit), (2, 32));
    let b = &s.blkio;
    assert_eq!(b.io_service_bytes_recursive.len(), 3);
    assert_eq!(b.io_service_bytes_recursive[1].op, "Write");
    assert_eq!(b.io_service_bytes_recursive[1].value, 512);
    assert_eq!(b.io_serviced_recursive[1].value, 2);
    assert_eq!(s.hugetlb["2MB"].limit, 2_097_152);
    assert_eq!(s.hugetlb["2MB"].failcnt, 4);
    // The cgroup is gone: an error, not zeros.
    drop(tmp);
    assert!(stats::read(&cg).is_err());
}

#[test]
fn parsers() {
    assert_eq!(parse_list("0-2,5,7-8\n"), vec![0, 1, 2, 5, 7, 8]);
    assert!(parse_list("").is_empty());
    let b = parse_blkio("8:0 Read 10\n8:16 20\nTotal 30\ngarbage\n");
    assert_eq!(b.len(), 2);
    assert_eq!((b[1].minor, b[1].op.as_str(), b[1].value), (16, "", 20));
}

#[test]
fn v2_oom_watcher_reports_kills_then_gone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path().to_path_buf();
    write(&d, "memory.events", "oom 0\noom_kill 0\n");
    write(&d, "cgroup.events", "populated 1\nfrozen 0\n");
    let cg = paths(Mode::Unified, &[(UNIFIED, &d)]);
    let mut w = OomWatcher::new(&cg).expect("watcher");
    assert_eq!(w.read().expect("read"), None, "nothing yet");
    let writer = {
        let d = d.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            write(&d, "memory.events", "oom 2\noom_kill 2\n");
        })
    };
    assert_eq!(w.wait().expect("wait"), OomEvent::Oom { kills: 2 });
    writer.join().expect("writer");
    assert_eq!(w.kills(), 2);
    write(&d, "cgroup.events", "populated 0\nfrozen 0\n");
    assert_eq!(w.wait().expect("wait"), OomEvent::Gone);
    assert_eq!(oom::oom_kill_count(&cg), 2);
}

/// Issue 15: the cgroup paths come from state.json; a damaged one (unified mode
/// without the unified directory) aborted the shim through an `expect`.
#[test]
fn stats_of_damaged_paths_are_an_error_not_an_abort() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    write(d, "cgroup.procs", "12\n");
    let cg = paths(Mode::Unified, &[("memory", d)]);
    assert!(matches!(stats::read(&cg), Err(CgroupError::NoCgroupFs(_))));
}
