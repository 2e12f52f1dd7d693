//! rdt against a fake resctrl tree laid out like the kernel's (two L3 domains, CAT
//! with a 20-bit mask, MBA in percent with a 10 % minimum, L3 monitoring).

use super::stats::MonDomain;
use super::*;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::Builder::new()
            .prefix("runrs-ops-resctrl-")
            .tempdir()
            .expect("tmp");
        let f = Fake { dir };
        f.file("info/last_cmd_status", "ok\n");
        f.file("info/L3/cbm_mask", "fffff\n");
        f.file("info/L3/min_cbm_bits", "1\n");
        f.file("info/L3/num_closids", "16\n");
        f.file("info/L3/shareable_bits", "0\n");
        f.file("info/L3/sparse_masks", "0\n");
        f.file(
            "info/L3/bit_usage",
            "0=SSSSSSSSSSSSSSSSSSSS;1=SSSSSSSSSSSSSSSSSSSS\n",
        );
        f.file("info/MB/bandwidth_gran", "10\n");
        f.file("info/MB/delay_linear", "1\n");
        f.file("info/MB/min_bandwidth", "10\n");
        f.file("info/MB/num_closids", "8\n");
        f.file("info/MB/thread_throttle_mode", "max\n");
        f.file(
            "info/L3_MON/mon_features",
            "llc_occupancy\nmbm_total_bytes\nmbm_local_bytes\n",
        );
        f.file("info/L3_MON/num_rmids", "224\n");
        f.file("info/L3_MON/max_threshold_occupancy", "1474560\n");
        f.file("schemata", "L3:0=fffff;1=fffff\nMB:0=100;1=100\n");
        f.file("tasks", "1\n");
        f.file("cpus", "ffff\n");
        f.file("cpus_list", "0-15\n");
        f.file("mode", "shareable\n");
        f.file("size", "L3:0=11534336;1=11534336\nMB:0=100;1=100\n");
        std::fs::create_dir_all(f.path("mon_groups")).expect("mkdir");
        for d in ["00", "01"] {
            f.file(&format!("mon_data/mon_L3_{d}/llc_occupancy"), "1048576\n");
            f.file(&format!("mon_data/mon_L3_{d}/mbm_total_bytes"), "99\n");
            f.file(&format!("mon_data/mon_L3_{d}/mbm_local_bytes"), "98\n");
        }
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    #[allow(clippy::disallowed_methods, reason = "test scratch directory")]
    fn file(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).expect("read")
    }

    fn rc(&self) -> Resctrl {
        Resctrl::at(self.dir.path(), false)
    }
}

fn spec(rdt: serde_json::Value) -> Spec {
    serde_json::from_value(serde_json::json!({
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "linux": {"intelRdt": rdt}
    }))
    .expect("spec")
}

const ID: &str = "runrs-ops-rdt";

#[test]
fn own_group_gets_exactly_the_schemata_and_tasks_and_is_removed() {
    let f = Fake::new();
    let s = spec(serde_json::json!({
        "l3CacheSchema": "L3:0=ff;1=f0", "memBwSchema": "MB:0=20;1=70"
    }));
    validate(&s, ID).expect("valid");
    let st = setup(&f.rc(), &s, ID).expect("setup").expect("rdt");
    assert_eq!(st.group, f.path(ID));
    assert!(st.created_group);
    assert_eq!(
        f.read(&format!("{ID}/schemata")),
        "L3:0=ff;1=f0\nMB:0=20;1=70\n"
    );
    add_task(&st, 4242).expect("task");
    add_task(&st, 4243).expect("task");
    assert_eq!(f.read(&format!("{ID}/tasks")), "4242\n4243\n");
    remove(&st).expect("remove");
    assert!(!f.path(ID).exists());
    // The root is untouched.
    assert_eq!(f.read("schemata"), "L3:0=fffff;1=fffff\nMB:0=100;1=100\n");
}

#[test]
fn preexisting_clos_is_joined_compared_and_left_alone() {
    let f = Fake::new();
    f.file("shared/schemata", "L3:0=000ff;1=000ff\nMB:0=50;1=50\n");
    f.file("shared/tasks", "");
    let s = spec(serde_json::json!({"closID": "shared", "l3CacheSchema": "L3:0=ff;1=FF"}));
    let st = setup(&f.rc(), &s, ID).expect("setup").expect("rdt");
    assert!(!st.created_group);
    add_task(&st, 77).expect("task");
    assert_eq!(f.read("shared/tasks"), "77\n");
    remove(&st).expect("remove");
    assert!(
        f.path("shared/schemata").exists(),
        "a group we did not create was removed"
    );
    assert_eq!(
        f.read("shared/schemata"),
        "L3:0=000ff;1=000ff\nMB:0=50;1=50\n"
    );

    // Different values: a clear error, nothing written.
    let s = spec(serde_json::json!({"closID": "shared", "memBwSchema": "MB:0=50;1=60"}));
    let e = setup(&f.rc(), &s, ID).expect_err("mismatch").to_string();
    assert!(
        e.contains("shared") && e.contains("MB:0=50;1=60") && e.contains("MB:0=50;1=50"),
        "{e}"
    );
    assert_eq!(
        f.read("shared/schemata"),
        "L3:0=000ff;1=000ff\nMB:0=50;1=50\n"
    );

    // closID alone: joined when it exists, an error when it does not.
    let s = spec(serde_json::json!({"closID": "shared"}));
    assert!(
        !setup(&f.rc(), &s, ID)
            .expect("join")
            .expect("rdt")
            .created_group
    );
    let s = spec(serde_json::json!({"closID": "absent"}));
    let e = setup(&f.rc(), &s, ID).expect_err("missing").to_string();
    assert!(
        e.contains("\"absent\"") && e.contains("does not exist"),
        "{e}"
    );
    assert!(!f.path("absent").exists());
}

#[test]
fn new_clos_with_schemata_is_created_and_removed() {
    let f = Fake::new();
    let s = spec(serde_json::json!({
        "closID": "gold", "l3CacheSchema": "L3:0=ff;1=ff", "schemata": ["L3:1=f", "MB:0=30"]
    }));
    let st = setup(&f.rc(), &s, ID).expect("setup").expect("rdt");
    assert!(st.created_group);
    // schemata is applied last, domain by domain.
    assert_eq!(f.read("gold/schemata"), "L3:0=ff;1=f\nMB:0=30\n");
    remove(&st).expect("remove");
    assert!(!f.path("gold").exists());
}

#[test]
fn legacy_mb_line_in_l3_schema_gives_way_to_mem_bw_schema() {
    let f = Fake::new();
    let s = spec(serde_json::json!({
        "l3CacheSchema": "L3:0=ff;1=ff\nMB:0=90;1=90", "memBwSchema": "MB:0=20;1=20"
    }));
    let st = setup(&f.rc(), &s, ID).expect("setup").expect("rdt");
    assert_eq!(
        f.read(&format!("{ID}/schemata")),
        "L3:0=ff;1=ff\nMB:0=20;1=20\n"
    );
    remove(&st).expect("remove");
}

#[test]
fn malformed_schemas_name_field_and_value() {
    let cases = [
        (
            serde_json::json!({"l3CacheSchema": "L3:0=zz"}),
            "linux.intelRdt.l3CacheSchema",
            "not a hexadecimal",
        ),
        (
            serde_json::json!({"l3CacheSchema": "L3 0=ff"}),
            "linux.intelRdt.l3CacheSchema",
            "RESOURCE:",
        ),
        (
            serde_json::json!({"l3CacheSchema": "l3:0=ff"}),
            "linux.intelRdt.l3CacheSchema",
            "resource name",
        ),
        (
            serde_json::json!({"l3CacheSchema": "L3:0=ff;0=f"}),
            "linux.intelRdt.l3CacheSchema",
            "twice",
        ),
        (
            serde_json::json!({"l3CacheSchema": "L3:x=ff"}),
            "linux.intelRdt.l3CacheSchema",
            "not a number",
        ),
        (
            serde_json::json!({"memBwSchema": "L3:0=ff"}),
            "linux.intelRdt.memBwSchema",
            "must start with MB:",
        ),
        (
            serde_json::json!({"memBwSchema": "MB:0=20\nMB:1=20"}),
            "linux.intelRdt.memBwSchema",
            "single line",
        ),
        (
            serde_json::json!({"memBwSchema": "MB:0=2x"}),
            "linux.intelRdt.memBwSchema",
            "decimal",
        ),
        (
            serde_json::json!({"schemata": ["L3:0=f", "MB0=1"]}),
            "linux.intelRdt.schemata[1]",
            "RESOURCE:",
        ),
        (
            serde_json::json!({"closID": "a/b"}),
            "linux.intelRdt.closID",
            "plain directory name",
        ),
        (
            serde_json::json!({"closID": "info"}),
            "linux.intelRdt.closID",
            "reserved",
        ),
    ];
    for (rdt, field, reason) in cases {
        let value = rdt.to_string();
        let e = validate(&spec(rdt), ID).expect_err(&value).to_string();
        assert!(e.contains(field) && e.contains(reason), "{value}: {e}");
    }
    // The value itself is quoted in the message.
    let e = validate(&spec(serde_json::json!({"l3CacheSchema": "L3:0=zz"})), ID)
        .expect_err("bad")
        .to_string();
    assert!(e.contains("\"L3:0=zz\""), "{e}");
    // A container named like a resctrl file cannot get a group of its own.
    let e = validate(&spec(serde_json::json!({})), "schemata").expect_err("reserved");
    assert!(e.to_string().contains("reserved"), "{e}");
}

#[test]
fn values_the_host_cannot_take_are_refused_before_anything_is_made() {
    let f = Fake::new();
    let cases = [
        (
            serde_json::json!({"l3CacheSchema": "L3:0=ff;5=ff"}),
            "no domain 5",
        ),
        (
            serde_json::json!({"l3CacheSchema": "L3:0=1fffff"}),
            "exceeds cbm_mask",
        ),
        (
            serde_json::json!({"l3CacheSchema": "L3:0=f0f"}),
            "not contiguous",
        ),
        (
            serde_json::json!({"l3CacheSchema": "L3:0=0"}),
            "empty capacity bitmask",
        ),
        (
            serde_json::json!({"memBwSchema": "MB:0=5"}),
            "outside 10..=100",
        ),
        (
            serde_json::json!({"schemata": ["L2:0=f"]}),
            "no L2 resource",
        ),
    ];
    for (rdt, reason) in cases {
        let value = rdt.to_string();
        let s = spec(rdt);
        validate(&s, ID).expect("syntax is fine");
        let e = setup(&f.rc(), &s, ID).expect_err(&value).to_string();
        assert!(e.contains(reason), "{value}: {e}");
        assert!(!f.path(ID).exists(), "{value}: group left behind");
    }
    // With sparse masks allowed, a non-contiguous mask passes; with mba_MBps, MB is MBps.
    f.file("info/L3/sparse_masks", "1\n");
    let s = spec(serde_json::json!({"l3CacheSchema": "L3:0=f0f", "memBwSchema": "MB:0=5000"}));
    let st = setup(&Resctrl::at(f.path(""), true), &s, ID)
        .expect("setup")
        .expect("rdt");
    remove(&st).expect("remove");
}

#[test]
fn cdp_and_padded_root_schemata() {
    let f = Fake::new();
    std::fs::rename(f.path("info/L3"), f.path("info/L3CODE")).expect("mv");
    f.file("info/L3DATA/cbm_mask", "7ff\n");
    f.file(
        "schemata",
        "L3CODE:0=7ff;1=7ff\nL3DATA:0=7ff;1=7ff\n    MB:0=100;1=100\n",
    );
    let s = spec(serde_json::json!({"schemata": ["L3CODE:0=f;1=f", "L3DATA:0=f0;1=f0"]}));
    let st = setup(&f.rc(), &s, ID).expect("setup").expect("rdt");
    assert_eq!(
        f.read(&format!("{ID}/schemata")),
        "L3CODE:0=f;1=f\nL3DATA:0=f0;1=f0\n"
    );
    remove(&st).expect("remove");
}

#[test]
fn monitoring_group_tasks_stats_and_removal() {
    let f = Fake::new();
    f.file("shared/schemata", "L3:0=fffff;1=fffff\n");
    let s = spec(serde_json::json!({"closID": "shared", "enableMonitoring": true}));
    let st = setup(&f.rc(), &s, ID).expect("setup").expect("rdt");
    let mon = f.path(&format!("shared/mon_groups/{ID}"));
    assert_eq!(st.mon_group.as_deref(), Some(mon.as_path()));
    add_task(&st, 100).expect("task");
    // Control group first (the kernel refuses a task from another CLOS in a mon group).
    assert_eq!(f.read("shared/tasks"), "100\n");
    assert_eq!(
        std::fs::read_to_string(mon.join("tasks")).expect("tasks"),
        "100\n"
    );
    // The kernel fills mon_data of the new group.
    let m = |d: &str, file: &str, v: &str| {
        f.file(
            &format!("shared/mon_groups/{ID}/mon_data/mon_L3_{d}/{file}"),
            v,
        )
    };
    m("00", "llc_occupancy", "360448\n");
    m("00", "mbm_total_bytes", "1234567\n");
    m("00", "mbm_local_bytes", "1200000\n");
    m("01", "llc_occupancy", "0\n");
    m("01", "mbm_total_bytes", "Unavailable\n");
    m("01", "mbm_local_bytes", "0\n");
    let stats = stats(&st).expect("stats");
    assert_eq!(stats.schemata, vec!["L3:0=fffff;1=fffff"]);
    assert_eq!(
        stats.root_schemata,
        vec!["L3:0=fffff;1=fffff", "MB:0=100;1=100"]
    );
    assert_eq!(
        stats.monitoring,
        vec![
            MonDomain {
                id: 0,
                llc_occupancy: Some(360448),
                mbm_total_bytes: Some(1234567),
                mbm_local_bytes: Some(1200000)
            },
            MonDomain {
                id: 1,
                llc_occupancy: Some(0),
                mbm_total_bytes: None,
                mbm_local_bytes: Some(0)
            },
        ]
    );
    remove(&st).expect("remove");
    assert!(!mon.exists());
    assert!(f.path("shared/schemata").exists());

    // A second container with the same id cannot take over the monitoring group.
    let st = setup(&f.rc(), &s, ID).expect("setup").expect("rdt");
    let e = setup(&f.rc(), &s, ID).expect_err("exists").to_string();
    assert!(e.contains("already exists"), "{e}");
    remove(&st).expect("remove");
}

#[test]
fn monitoring_needs_l3_mon() {
    let f = Fake::new();
    std::fs::remove_dir_all(f.path("info/L3_MON")).expect("rm");
    let e = setup(
        &f.rc(),
        &spec(serde_json::json!({"enableMonitoring": true})),
        ID,
    )
    .expect_err("no mon")
    .to_string();
    assert!(
        e.contains("enableMonitoring") && e.contains("no monitoring"),
        "{e}"
    );
    assert!(!f.path(ID).exists());
    // The deprecated per-feature flags (oci-spec 0.10 reads them as enableCmt/enableMbm,
    // so they are checked here directly).
    let e = check_monitoring(&f.rc(), false, true, false).expect_err("no mon");
    assert!(e.to_string().contains("enableCMT"), "{e}");
    f.file("info/L3_MON/mon_features", "llc_occupancy\n");
    check_monitoring(&f.rc(), false, true, false).expect("cmt");
    let e = check_monitoring(&f.rc(), false, false, true).expect_err("no mbm");
    assert!(e.to_string().contains("memory bandwidth"), "{e}");
}

#[test]
fn own_group_stats_without_monitoring_group() {
    let f = Fake::new();
    let st = setup(&f.rc(), &spec(serde_json::json!({})), ID)
        .expect("setup")
        .expect("rdt");
    f.file(
        &format!("{ID}/schemata"),
        "L3:0=fffff;1=fffff\nMB:0=100;1=100\n",
    );
    f.file(&format!("{ID}/mon_data/mon_L3_00/llc_occupancy"), "4096\n");
    let s = stats(&st).expect("stats");
    assert_eq!(s.monitoring.len(), 1);
    assert_eq!(s.monitoring[0].llc_occupancy, Some(4096));
    assert_eq!(s.monitoring[0].mbm_total_bytes, None);
    remove(&st).expect("remove");
}

#[test]
fn existing_group_named_after_the_container_is_not_taken() {
    let f = Fake::new();
    f.file(&format!("{ID}/schemata"), "L3:0=f;1=f\n");
    let e = setup(&f.rc(), &spec(serde_json::json!({})), ID)
        .expect_err("exists")
        .to_string();
    assert!(e.contains("already exists"), "{e}");
    assert!(f.path(ID).exists());
}

#[test]
fn not_mounted_and_mountinfo() {
    let dir = tempfile::Builder::new()
        .prefix("runrs-ops-")
        .tempdir()
        .expect("tmp");
    let e = setup(
        &Resctrl::at(dir.path(), false),
        &spec(serde_json::json!({})),
        ID,
    )
    .expect_err("no resctrl");
    assert!(matches!(e, RdtError::NotMounted), "{e}");
    assert!(e.to_string().contains("no resctrl filesystem is mounted"));
    let mi = "25 1 0:22 / /sys rw,nosuid - sysfs sysfs rw\n\
              40 25 0:35 / /sys/fs/resctrl rw,relatime - resctrl resctrl rw,mba_MBps\n";
    assert_eq!(
        Resctrl::from_mountinfo(mi),
        Some(Resctrl::at("/sys/fs/resctrl", true))
    );
    assert_eq!(
        Resctrl::from_mountinfo("25 1 0:22 / /sys rw - sysfs sysfs rw\n"),
        None
    );
    // No intelRdt: resctrl is not touched at all.
    let s: Spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.2.0", "root": {"path": "r"}, "linux": {}
    }))
    .expect("spec");
    assert_eq!(
        setup(&Resctrl::at("/nonexistent", false), &s, ID).expect("ok"),
        None
    );
}
