//! The writers against fake cgroup trees: a temp dir with one directory per hierarchy
//! and the control files a kernel would offer (a missing file is an error, as on
//! cgroupfs).

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::*;
use crate::cgroups::devices::Policy;

const V1_FILES: &[(&str, &[&str])] = &[
    (
        "memory",
        &[
            "memory.limit_in_bytes=9223372036854771712",
            "memory.memsw.limit_in_bytes=9223372036854771712",
            "memory.soft_limit_in_bytes",
            "memory.swappiness",
            "memory.oom_control",
            "memory.use_hierarchy",
            "memory.usage_in_bytes=4096",
        ],
    ),
    (
        "cpu",
        &[
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpu.cfs_burst_us",
            "cpu.rt_period_us",
            "cpu.rt_runtime_us",
            "cpu.idle",
        ],
    ),
    ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
    ("pids", &["pids.max"]),
    (
        "blkio",
        &[
            "blkio.bfq.weight",
            "blkio.bfq.weight_device",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
            "blkio.throttle.read_iops_device",
            "blkio.throttle.write_iops_device",
        ],
    ),
    (
        "hugetlb",
        &[
            "hugetlb.2MB.limit_in_bytes",
            "hugetlb.2MB.rsvd.limit_in_bytes",
        ],
    ),
    ("net_cls", &["net_cls.classid"]),
    ("net_prio", &["net_prio.ifpriomap"]),
    ("rdma", &["rdma.max"]),
    (
        "devices",
        &["devices.allow", "devices.deny", "devices.list=a *:* rwm"],
    ),
];

const V2_FILES: &[&str] = &[
    "cgroup.controllers=cpuset cpu io memory hugetlb pids rdma",
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "memory.high",
    "memory.current=8192",
    "cpu.weight",
    "cpu.max",
    "cpu.max.burst",
    "cpu.idle",
    "cpuset.cpus",
    "cpuset.mems",
    "pids.max",
    "io.weight",
    "io.max",
    "hugetlb.2MB.max",
    "rdma.max",
];

struct Fake {
    _tmp: tempfile::TempDir,
    hier: Hierarchies,
    cg: CgroupPaths,
}

impl Fake {
    fn file(&self, controller: &str, name: &str) -> String {
        let d = self.cg.dirs.get(controller).expect("controller dir");
        std::fs::read_to_string(d.join(name)).expect("read fake file")
    }
}

#[allow(clippy::disallowed_methods, reason = "test scratch directory")]
fn touch(dir: &Path, spec: &str) {
    let (name, content) = spec.split_once('=').unwrap_or((spec, ""));
    std::fs::write(dir.join(name), content).expect("write fake file");
}

/// v1 controllers under `tmp/<controller>`, plus a cgroup2 mount at `tmp/unified`
/// offering `unified_controllers` when given (a hybrid host).
fn fake_v1(controllers: &[&str], unified_controllers: Option<&str>) -> Fake {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let mut mi = String::new();
    for (i, c) in controllers.iter().enumerate() {
        mi.push_str(&format!(
            "{} 1 0:{i} / {}/{c} rw - cgroup cgroup rw,{c}\n",
            30 + i,
            root.display()
        ));
        let leaf = root.join(c).join("t/c");
        std::fs::create_dir_all(&leaf).expect("mkdir");
        for (_, files) in V1_FILES.iter().filter(|(n, _)| n == c) {
            for f in *files {
                touch(&leaf, f);
            }
        }
    }
    if let Some(ctl) = unified_controllers {
        mi.push_str(&format!(
            "99 1 0:99 / {}/unified rw - cgroup2 cgroup2 rw\n",
            root.display()
        ));
        let leaf = root.join("unified/t/c");
        std::fs::create_dir_all(&leaf).expect("mkdir");
        touch(&leaf, &format!("cgroup.controllers={ctl}"));
        touch(&leaf, "hugetlb.2MB.max");
        touch(&leaf, "memory.high");
    }
    let hier = Hierarchies::from_mountinfo(root, &mi).expect("mountinfo");
    let cg = hier.resolve(Some("/t/c"), "c", "").expect("resolve");
    Fake {
        _tmp: tmp,
        hier,
        cg,
    }
}

fn fake_v2(extra: &[&str]) -> Fake {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let mi = format!("25 1 0:22 / {} rw - cgroup2 cgroup2 rw\n", root.display());
    let leaf = root.join("t/c");
    std::fs::create_dir_all(&leaf).expect("mkdir");
    for f in V2_FILES.iter().chain(extra) {
        touch(&leaf, f);
    }
    let hier = Hierarchies::from_mountinfo(root, &mi).expect("mountinfo");
    let cg = hier.resolve(Some("/t/c"), "c", "").expect("resolve");
    Fake {
        _tmp: tmp,
        hier,
        cg,
    }
}

fn res(j: &str) -> LinuxResources {
    serde_json::from_str(j).expect("resources json")
}

const ALL_V1: [&str; 10] = [
    "memory", "cpu", "cpuset", "pids", "blkio", "hugetlb", "net_cls", "net_prio", "rdma", "devices",
];

#[test]
fn v1_every_field_lands_in_its_file() {
    let f = fake_v1(&ALL_V1, None);
    let r = res(r#"{
        "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432,
                   "swappiness": 10, "disableOOMKiller": true, "useHierarchy": true},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000,
                "realtimeRuntime": 10000, "realtimePeriod": 1000000, "idle": 0,
                "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 32},
        "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 1000}}
    }"#);
    let policy = Policy::from_rules(&[]);
    apply(&f.hier, &f.cg, &r, Some(&policy), false).expect("apply");
    for (c, file, want) in [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("memory", "memory.memsw.limit_in_bytes", "134217728"),
        ("memory", "memory.soft_limit_in_bytes", "33554432"),
        ("memory", "memory.swappiness", "10"),
        ("memory", "memory.oom_control", "1"),
        ("memory", "memory.use_hierarchy", "1"),
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_burst_us", "1000"),
        ("cpu", "cpu.rt_runtime_us", "10000"),
        ("cpu", "cpu.rt_period_us", "1000000"),
        ("cpu", "cpu.idle", "0"),
        ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "32"),
        ("blkio", "blkio.bfq.weight", "300"),
        ("blkio", "blkio.bfq.weight_device", "8:0 200"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio", "blkio.throttle.write_bps_device", "8:0 2097152"),
        ("blkio", "blkio.throttle.read_iops_device", "8:0 100"),
        ("blkio", "blkio.throttle.write_iops_device", "8:0 200"),
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
        ("hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes", "4194304"),
        ("net_cls", "net_cls.classid", "1048577"),
        ("net_prio", "net_prio.ifpriomap", "eth0 5"),
        ("rdma", "rdma.max", "mlx5_0 hca_handle=3 hca_object=1000"),
        // A fake file keeps only the last write: the reset came first.
        ("devices", "devices.deny", "a"),
    ] {
        assert_eq!(f.file(c, file), want, "{c}/{file}");
    }
}

#[test]
fn v1_unlimited_and_unset_values() {
    let f = fake_v1(&["memory", "pids", "cpu"], None);
    let r = res(r#"{"memory": {"limit": -1}, "pids": {"limit": -1},
                    "cpu": {"shares": 0, "quota": -1}}"#);
    apply(&f.hier, &f.cg, &r, None, false).expect("apply");
    assert_eq!(f.file("memory", "memory.limit_in_bytes"), "-1");
    assert_eq!(
        f.file("memory", "memory.memsw.limit_in_bytes"),
        "-1",
        "swap follows"
    );
    assert_eq!(f.file("pids", "pids.max"), "max");
    assert_eq!(f.file("cpu", "cpu.shares"), "", "0 means not set");
    assert_eq!(f.file("cpu", "cpu.cfs_quota_us"), "-1");
}

#[test]
fn rootless_names_the_cgroup_it_could_not_make() {
    let mut f = fake_v1(&["memory", "devices"], None);
    f.cg.rootless = true;
    f.cg.dirs.remove("pids");
    f.cg.denied.push("pids".into());
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"pids": {"limit": 5}}"#),
        None,
        false,
    )
    .expect_err("no pids cgroup");
    assert_eq!(
        e.to_string(),
        "linux.resources.pids.limit: cannot set pids limit: container could not join or create cgroup"
    );
    // The device policy is not a rootless container's to set (runc ignores it).
    let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}}
    }))
    .expect("spec");
    super::apply_spec(&f.hier, &f.cg, &spec).expect("rootless apply_spec");
    assert_eq!(f.file("devices", "devices.deny"), "");
    let e = super::super::CgroupError::Create(
        "/x".into(),
        std::io::Error::from_raw_os_error(crate::sys::c::EACCES),
    );
    assert!(e.is_permission());
}

#[test]
fn missing_controllers_and_files_are_named() {
    let f = fake_v1(&["memory"], None);
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"pids": {"limit": 5}}"#),
        None,
        false,
    )
    .expect_err("no pids");
    assert_eq!(
        e.to_string(),
        "linux.resources.pids.limit: the pids cgroup controller is not mounted on this host"
    );
    assert!(e.is_invalid_config());
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}"#),
        None,
        false,
    )
    .expect_err("no hugetlb");
    assert!(e.to_string().contains("no cgroup2 hierarchy"), "{e}");
    let f = fake_v1(&["hugetlb"], None);
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"hugepageLimits": [{"pageSize": "64KB", "limit": 0}]}"#),
        None,
        false,
    )
    .expect_err("page size");
    assert!(
        e.to_string().contains("page size 64KB is not supported"),
        "{e}"
    );
    let f = fake_v1(&["cpu"], None);
    std::fs::remove_file(f.cg.dirs["cpu"].join("cpu.cfs_burst_us")).expect("rm");
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"cpu": {"burst": 10}}"#),
        None,
        false,
    )
    .expect_err("burst");
    assert!(
        e.to_string()
            .starts_with("linux.resources.cpu.burst: write \"10\" to "),
        "{e}"
    );
    assert!(e.to_string().contains("does not offer the setting"), "{e}");
    let f = fake_v1(&["blkio"], None);
    std::fs::remove_file(f.cg.dirs["blkio"].join("blkio.bfq.weight")).expect("rm");
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"blockIO": {"weight": 100}}"#),
        None,
        false,
    )
    .expect_err("weight");
    assert!(e.to_string().contains("no proportional weight"), "{e}");
}

#[test]
fn hybrid_uses_the_unified_side_only_for_its_controllers() {
    let f = fake_v1(&["memory"], Some("hugetlb"));
    assert_eq!(f.hier.mode, Mode::Hybrid);
    let r = res(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}"#);
    apply(&f.hier, &f.cg, &r, None, false).expect("hugetlb on unified");
    assert_eq!(f.file(UNIFIED, "hugetlb.2MB.max"), "2097152");
    let r = res(r#"{"unified": {"hugetlb.2MB.max": "4194304"}}"#);
    apply(&f.hier, &f.cg, &r, None, false).expect("unified key");
    assert_eq!(f.file(UNIFIED, "hugetlb.2MB.max"), "4194304");
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"unified": {"memory.high": "1"}}"#),
        None,
        false,
    )
    .expect_err("memory is v1");
    assert_eq!(
        e.to_string(),
        "linux.resources.unified.memory.high: the memory controller is on cgroup v1 on this hybrid host, not in the unified hierarchy"
    );
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"unified": {"pids.max": "1"}}"#),
        None,
        false,
    )
    .expect_err("pids nowhere");
    assert!(
        e.to_string().contains("pids controller is not available"),
        "{e}"
    );
    // v1 only host: unified keys have nowhere to go.
    let f = fake_v1(&["memory"], None);
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"unified": {"memory.high": "1"}}"#),
        None,
        false,
    )
    .expect_err("legacy");
    assert!(e.to_string().contains("no cgroup2 hierarchy"), "{e}");
}

#[test]
fn v2_conversions_and_files() {
    let f = fake_v2(&[]);
    let r = res(r#"{
        "memory": {"limit": 134217728, "swap": 268435456, "reservation": 67108864, "swappiness": 5},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 500, "idle": 1,
                "cpus": "1", "mems": "0"},
        "pids": {"limit": 64},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 300}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
        "network": {"classID": 7},
        "rdma": {"mlx5_0": {"hcaHandles": 2}}
    }"#);
    apply(&f.hier, &f.cg, &r, None, false).expect("apply");
    for (file, want) in [
        ("memory.max", "134217728"),
        ("memory.swap.max", "134217728"),
        ("memory.low", "67108864"),
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
        ("cpu.max.burst", "500"),
        ("cpu.idle", "1"),
        ("cpuset.cpus", "1"),
        ("cpuset.mems", "0"),
        ("pids.max", "64"),
        ("io.weight", "default 4950"),
        ("io.max", "8:0 wiops=300"),
        ("hugetlb.2MB.max", "2097152"),
        ("rdma.max", "mlx5_0 hca_handle=2"),
    ] {
        assert_eq!(f.file(UNIFIED, file), want, "{file}");
    }
    // unified overrides the converted value and is written last.
    let r =
        res(r#"{"cpu": {"shares": 1024}, "unified": {"cpu.weight": "77", "memory.high": "1000"}}"#);
    apply(&f.hier, &f.cg, &r, None, false).expect("apply");
    assert_eq!(f.file(UNIFIED, "cpu.weight"), "77");
    assert_eq!(f.file(UNIFIED, "memory.high"), "1000");
    // BFQ takes blkio weights as they are.
    let f = fake_v2(&["io.bfq.weight"]);
    apply(
        &f.hier,
        &f.cg,
        &res(r#"{"blockIO": {"weight": 500}}"#),
        None,
        false,
    )
    .expect("bfq");
    assert_eq!(f.file(UNIFIED, "io.bfq.weight"), "500");
}

#[test]
fn v2_refuses_what_it_cannot_do() {
    let f = fake_v2(&[]);
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"cpu": {"realtimeRuntime": 1000}}"#),
        None,
        false,
    )
    .expect_err("rt");
    assert!(e.to_string().contains("no realtime"), "{e}");
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"unified": {"misc.max": "x 1"}}"#),
        None,
        false,
    )
    .expect_err("misc");
    assert!(
        e.to_string().contains("misc controller is not available"),
        "{e}"
    );
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"unified": {"cpu.nonexistent": "1"}}"#),
        None,
        false,
    )
    .expect_err("no file");
    assert!(e.to_string().contains("no such cgroup file"), "{e}");
    let e = apply(
        &f.hier,
        &f.cg,
        &res(r#"{"memory": {"swap": 100}}"#),
        None,
        false,
    )
    .expect_err("swap without limit");
    assert!(e.to_string().contains("needs a memory limit"), "{e}");
    // checkBeforeUpdate on a live update.
    let r = res(r#"{"memory": {"limit": 4096, "checkBeforeUpdate": true}}"#);
    let e = apply(&f.hier, &f.cg, &r, None, true).expect_err("usage");
    assert!(e.to_string().contains("current usage 8192"), "{e}");
}

#[test]
fn validation_names_the_field() {
    for (j, want) in [
        (
            r#"{"memory": {"swappiness": 101}}"#,
            "linux.resources.memory.swappiness: 101 is out of range 0-100",
        ),
        (
            r#"{"memory": {"limit": 200, "swap": 100}}"#,
            "linux.resources.memory.swap: 100 is memory+swap",
        ),
        (
            r#"{"blockIO": {"weight": 5}}"#,
            "linux.resources.blockIO.weight: 5 is out of range 10-1000",
        ),
        (
            r#"{"cpu": {"idle": 2}}"#,
            "linux.resources.cpu.idle: 2 is not 0 or 1",
        ),
        (
            r#"{"unified": {"../x": "1"}}"#,
            "linux.resources.unified: invalid key \"../x\"",
        ),
        (
            r#"{"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}"#,
            "linux.resources.hugepageLimits: invalid pageSize \"2M\"",
        ),
    ] {
        let e = validate(&res(j)).expect_err(j);
        assert!(e.to_string().starts_with(want), "{e}");
        assert!(e.is_invalid_config());
    }
}

#[test]
fn nothing_is_written_for_empty_resources() {
    let f = fake_v1(&ALL_V1, None);
    apply(&f.hier, &f.cg, &LinuxResources::default(), None, false).expect("apply");
    for (c, files) in V1_FILES {
        for spec in *files {
            let (name, content) = spec.split_once('=').unwrap_or((spec, ""));
            assert_eq!(f.file(c, name), content, "{c}/{name} untouched");
        }
    }
}
