//! runrs-specific resource control through the CLI on a cgroup v1 / hybrid host, as
//! root: what runc (1.1) does not do or says differently. Settings runc ignores (cpu
//! burst, hugetlb and `unified` on the cgroup2 side of a hybrid host, blkio throttle
//! updates), resources persisted in state.json across updates, and clear errors that
//! leave nothing behind. The runc-validated behaviour (limits, update, OOM, pids,
//! devices, pause, ps, events) is in integration/tests/cli_resources.rs; cgroup v2 in
//! integration/v2/run-v2.sh.

use std::io::Write;
use std::process::Stdio;

use super::resources_support::{a_block_device, kv, v1_file, wait_for, Env};
use serde_json::{json, Value};

/// Where hugepage limits of cgroup `id` land here: the v1 hugetlb hierarchy, else the
/// cgroup2 hierarchy when it offers hugetlb. Decided from the mount table, as the runtime
/// does: a plain directory named hugetlb under /sys/fs/cgroup (some tools create them on
/// the cgroup tmpfs) is not a mounted controller.
fn hugetlb_dir(id: &str) -> Option<String> {
    let mounts = integration::proc::cgroup_mounts().expect("read the mount table");
    let cg = format!("/{id}");
    if let Some(m) = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.has_super_option("hugetlb"))
    {
        return integration::proc::cgroup_dir(m, &cg).map(|d| d.display().to_string());
    }
    let v2 = mounts.iter().find(|m| m.fstype == "cgroup2")?;
    let ctl = std::fs::read_to_string(format!("{}/cgroup.controllers", v2.mount_point)).ok()?;
    if !ctl.split_whitespace().any(|c| c == "hugetlb") {
        return None;
    }
    integration::proc::cgroup_dir(v2, &cg).map(|d| d.display().to_string())
}

/// Whether the blkio controller offers BFQ weights in a new cgroup.
fn bfq_weight() -> bool {
    let probe = format!(
        "/sys/fs/cgroup/blkio/runrs-res-probe-{}",
        std::process::id()
    );
    if std::fs::create_dir(&probe).is_err() {
        return false;
    }
    let ok = std::path::Path::new(&probe)
        .join("blkio.bfq.weight")
        .exists();
    let _ = std::fs::remove_dir(&probe);
    ok
}

const INSIDE: &str = r#"n=0; while :; do n=$((n+1)); {
  echo n=$n
  echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
  echo memsw=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes)
  echo soft=$(cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes)
  echo swappiness=$(cat /sys/fs/cgroup/memory/memory.swappiness)
  echo shares=$(cat /sys/fs/cgroup/cpu/cpu.shares)
  echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
  echo period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
  echo burst=$(cat /sys/fs/cgroup/cpu/cpu.cfs_burst_us)
  echo cpus=$(cat /sys/fs/cgroup/cpuset/cpuset.cpus)
  echo pids=$(cat /sys/fs/cgroup/pids/pids.max)
  echo rbps=$(cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device)
  echo weight=$(cat /sys/fs/cgroup/blkio/blkio.bfq.weight 2>/dev/null)
  echo devices=$(tr '\n' , < /sys/fs/cgroup/devices/devices.list)
} > /out/inside.tmp; mv /out/inside.tmp /out/inside; sleep 0.05; done"#;

/// A fresh snapshot of what the container sees (written after `after`).
fn inside_after(env: &Env, after: u64) -> std::collections::BTreeMap<String, String> {
    let path = env.out().join("inside");
    wait_for(20, "the container's view of its cgroup", || {
        let m = kv(&std::fs::read_to_string(&path).ok()?);
        let n: u64 = m.get("n")?.parse().ok()?;
        (n > after + 1).then_some(m)
    })
}

#[test]
fn limits_beyond_runc_and_persisted_updates() {
    let Some(env) = Env::new("limits") else {
        return;
    };
    let id = env.id("c1");
    let (major, minor) = a_block_device().expect("a block device");
    let bfq = bfq_weight();
    let huge = hugetlb_dir(&id);
    let mut s = env.spec(&id, &["sh", "-c", INSIDE]);
    s["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20, "swappiness": 20},
        "cpu": {"shares": 512, "quota": 30000, "period": 100000, "burst": 1000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 64},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}]}
    });
    if bfq {
        s["linux"]["resources"]["blockIO"]["weight"] = json!(300);
    }
    if huge.is_some() {
        s["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4 << 20}]);
    }
    env.start(&id, &s);
    let dev = format!("{major}:{minor}");
    let first = inside_after(&env, 0);
    let expect = |m: &std::collections::BTreeMap<String, String>, want: &[(&str, String)]| {
        for (k, v) in want {
            assert_eq!(m.get(*k), Some(v), "inside: {k} in {m:?}");
        }
    };
    let mut want = vec![
        ("mem", (64u64 << 20).to_string()),
        ("memsw", (96u64 << 20).to_string()),
        ("soft", (32u64 << 20).to_string()),
        ("swappiness", "20".into()),
        ("shares", "512".into()),
        ("quota", "30000".into()),
        ("period", "100000".into()),
        ("burst", "1000".into()),
        ("cpus", "0".into()),
        ("pids", "64".into()),
        ("rbps", format!("{dev} {}", 1 << 20)),
    ];
    if bfq {
        want.push(("weight", "300".into()));
    }
    expect(&first, &want);
    assert!(first["devices"].contains("c 1:3 rwm") && first["devices"].contains("b *:* m"));
    assert!(!first["devices"].contains("a *:*"), "{}", first["devices"]);
    // The host sees the same files.
    for (c, f, v) in [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("memory", "memory.memsw.limit_in_bytes", "100663296"),
        ("cpu", "cpu.cfs_quota_us", "30000"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "64"),
    ] {
        assert_eq!(v1_file(c, &id, f), v, "{c}/{f}");
    }
    if let Some(h) = &huge {
        let v = std::fs::read_to_string(format!("{h}/hugetlb.2MB.max"))
            .or_else(|_| std::fs::read_to_string(format!("{h}/hugetlb.2MB.limit_in_bytes")))
            .expect("hugetlb file");
        assert_eq!(v.trim(), (4u64 << 20).to_string());
    }

    // Update live, with flags and with JSON on stdin.
    let cpus = if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        "0-1"
    } else {
        "0"
    };
    let mut args = vec![
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "192m",
        "--memory-reservation",
        "64m",
        "--cpu-share",
        "256",
        "--cpu-quota",
        "40000",
        "--cpu-period",
        "200000",
        "--cpuset-cpus",
        cpus,
        "--pids-limit",
        "48",
    ];
    if bfq {
        args.extend(["--blkio-weight", "200"]);
    }
    args.push(&id);
    env.ok(&args);
    let patch = json!({
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 2 << 20}]},
        "cpu": {"burst": 2000},
        "memory": {"swappiness": 30},
        "hugepageLimits": if huge.is_some() { json!([{"pageSize": "2MB", "limit": 8 << 20}]) } else { json!(null) }
    });
    let mut child = env
        .cmd(&["update", "-r", "-", &id])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("update -r -");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(patch.to_string().as_bytes())
        .expect("write patch");
    let o = child.wait_with_output().expect("update");
    assert!(
        o.status.success(),
        "update -r -: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let n_now: u64 = kv(&std::fs::read_to_string(env.out().join("inside")).expect("inside"))["n"]
        .parse()
        .expect("n");
    let after = inside_after(&env, n_now);
    let mut want = vec![
        ("mem", (128u64 << 20).to_string()),
        ("memsw", (192u64 << 20).to_string()),
        ("soft", (64u64 << 20).to_string()),
        ("swappiness", "30".into()),
        ("shares", "256".into()),
        ("quota", "40000".into()),
        ("period", "200000".into()),
        ("burst", "2000".into()),
        ("cpus", cpus.into()),
        ("pids", "48".into()),
        ("rbps", format!("{dev} {}", 2 << 20)),
    ];
    if bfq {
        want.push(("weight", "200".into()));
    }
    expect(&after, &want);
    assert_eq!(v1_file("memory", &id, "memory.limit_in_bytes"), "134217728");
    if let Some(h) = &huge {
        let v = std::fs::read_to_string(format!("{h}/hugetlb.2MB.max"))
            .or_else(|_| std::fs::read_to_string(format!("{h}/hugetlb.2MB.limit_in_bytes")))
            .expect("hugetlb file");
        assert_eq!(v.trim(), (8u64 << 20).to_string());
    }

    // state.json carries the merged resources; a later update keeps them.
    env.ok(&["update", "--pids-limit", "40", &id]);
    let r = &env.state_json(&id)["config"]["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], json!(128 << 20));
    assert_eq!(r["memory"]["swap"], json!(192 << 20));
    assert_eq!(r["cpu"]["quota"], json!(40000));
    assert_eq!(r["cpu"]["period"], json!(200000));
    assert_eq!(r["cpu"]["burst"], json!(2000));
    assert_eq!(r["pids"]["limit"], json!(40));
    assert_eq!(
        r["blockIO"]["throttleReadBpsDevice"][0]["rate"],
        json!(2 << 20)
    );
    assert_eq!(r["devices"][0]["allow"], json!(false));
    assert_eq!(v1_file("pids", &id, "pids.max"), "40");
    assert_eq!(v1_file("memory", &id, "memory.limit_in_bytes"), "134217728");

    // A device list in an update replaces the policy, by difference (runc 1.1 ignores it).
    for (rules, has_loop) in [
        (
            json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]),
            true,
        ),
        (json!([{"allow": false, "access": "rwm"}]), false),
    ] {
        let mut child = env
            .cmd(&["update", "-r", "-", &id])
            .stdin(Stdio::piped())
            .spawn()
            .expect("update");
        let doc = json!({ "devices": rules }).to_string();
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(doc.as_bytes())
            .expect("write");
        assert!(child.wait().expect("update").success());
        let list = v1_file("devices", &id, "devices.list");
        assert_eq!(list.lines().any(|l| l == "b 7:0 r"), has_loop, "{list}");
        assert!(
            list.contains("c 1:3 rwm"),
            "the default allow list stays: {list}"
        );
    }
    env.finish();
}

#[test]
fn update_errors_are_clear_and_change_nothing() {
    let Some(env) = Env::new("upderr") else {
        return;
    };
    let id = env.id("c1");
    let mut s = env.spec(&id, &["sleep", "1000"]);
    s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    env.start(&id, &s);
    let before = env.state_json(&id)["config"]["linux"]["resources"].clone();

    let e = env.fails(&["update", "--memory", "1k", &id]);
    assert!(
        e.contains(
            "linux.resources.memory.limit: unable to set the memory limit to 1024 (current usage: "
        ),
        "{e}"
    );
    assert_eq!(v1_file("memory", &id, "memory.limit_in_bytes"), "67108864");
    assert_eq!(env.state_json(&id)["config"]["linux"]["resources"], before);

    let e = env.fails(&["update", "--memory-swap", "32m", &id]);
    assert!(e.contains("memory.swap"), "{e}");
    assert_eq!(env.state_json(&id)["config"]["linux"]["resources"], before);

    let mut child = env
        .cmd(&["update", "-r", "-", &id])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("update");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(br#"{"unified": {"memory.high": "1000000"}}"#)
        .expect("write");
    let o = child.wait_with_output().expect("update");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    let why = if super::resources_support::cgroup_mode() == "hybrid" {
        "linux.resources.unified.memory.high: the memory controller is on cgroup v1 on this hybrid host"
    } else {
        "no cgroup2 hierarchy"
    };
    assert!(e.contains(why), "{e}");

    let bad = env.tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"memory": {"limit": "lots"}}"#).expect("write");
    let e = env.fails(&["update", "-r", bad.to_str().expect("path"), &id]);
    assert!(
        e.contains("decode resources from") && e.contains("memory.limit"),
        "{e}"
    );
    let e = env.fails(&["update", "--l3-cache-schema", "L3:0=f", &id]);
    assert!(e.contains("Intel RDT"), "{e}");
    let e = env.fails(&["update", "--memory", "12parsecs", &id]);
    assert!(e.contains("--memory"), "{e}");
    let e = env.fails(&["update", "--memory", "1g", &env.id("nosuch")]);
    assert!(e.contains("does not exist"), "{e}");
    assert_eq!(env.state_json(&id)["config"]["linux"]["resources"], before);

    env.ok(&["kill", &id, "KILL"]);
    wait_for(10, "stopped", || {
        (env.status(&id) == "stopped").then_some(())
    });
    let e = env.fails(&["update", "--memory", "1g", &id]);
    assert!(
        e.contains("cannot update container") && e.contains("stopped"),
        "{e}"
    );
    env.finish();
}

#[test]
fn create_errors_are_clear_and_leave_nothing() {
    let Some(env) = Env::new("createerr") else {
        return;
    };
    // What root without CAP_SYS_RESOURCE cannot do (skipped where the runtime can).
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) }, 0);
    let hard = cur.rlim_max + 1;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "hard",
            json!({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard}]}}),
            "raising a hard limit needs CAP_SYS_RESOURCE",
        ),
        (
            "adj",
            json!({"process": {"oomScoreAdj": -500}}),
            "set oom_score_adj to -500 (lowering oom_score_adj needs CAP_SYS_RESOURCE",
        ),
        (
            "swappiness",
            json!({"linux": {"resources": {"memory": {"swappiness": 200}}}}),
            "linux.resources.memory.swappiness: 200 is out of range 0-100",
        ),
        (
            "rt",
            json!({"linux": {"resources": {"cpu": {"realtimeRuntime": 2000000, "realtimePeriod": 1000000}}}}),
            "linux.resources.cpu.realtimeRuntime: write ",
        ),
        (
            "fifo",
            json!({"linux": {"resources": {"devices": [{"allow": true, "type": "p"}]}}}),
            "(fifo) is not subject to the device cgroup",
        ),
        (
            "hugepage",
            json!({"linux": {"resources": {"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]}}}),
            "page size 3MB is not supported",
        ),
    ];
    for (suffix, patch, want) in cases {
        let id = env.id(suffix);
        let mut s = env.spec(&id, &["true"]);
        merge_json(&mut s, &patch);
        let o = env.create(&id, &s);
        let e = String::from_utf8_lossy(&o.stderr);
        if o.status.success() && matches!(suffix, "hard" | "adj") {
            eprintln!("note: {suffix}: this runtime has CAP_SYS_RESOURCE");
            continue;
        }
        assert!(!o.status.success(), "{suffix}: create succeeded");
        assert!(e.contains(want), "{suffix}: {e}");
        assert!(!env.root.join(&id).exists(), "{suffix}: state dir left");
        let left = std::process::Command::new("find")
            .args(["/sys/fs/cgroup", "-maxdepth", "2", "-name", &id])
            .output()
            .expect("find");
        assert!(left.stdout.is_empty(), "{suffix}: cgroup left");
    }
    env.finish();
}

/// Deep-merge `patch` into `v`.
fn merge_json(v: &mut Value, patch: &Value) {
    match (v, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, pv) in b {
                merge_json(a.entry(k.clone()).or_insert(Value::Null), pv);
            }
        }
        (slot, p) => *slot = p.clone(),
    }
}

#[test]
fn systemd_driver_is_refused_clearly() {
    let Some(env) = Env::new("systemd") else {
        return;
    };
    let id = env.id("c1");
    let b = env.bundle(&id, &env.spec(&id, &["true"]));
    let b = b.to_str().expect("path");
    let e = env.fails(&["--systemd-cgroup", "create", "--bundle", b, &id]);
    assert!(e.contains("systemd cgroup driver is not available"), "{e}");
    if !std::path::Path::new("/run/systemd/system").exists() {
        assert!(e.contains("systemd is not running on this host"), "{e}");
    }
    let mut s = env.spec(&id, &["true"]);
    s["linux"]["cgroupsPath"] = json!("system.slice:runrs-res:x");
    let o = env.create(&id, &s);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("slice:prefix:name") && e.contains("cgroupfs driver"),
        "{e}"
    );
    assert!(!env.root.join(&id).exists());
    env.finish();
}
