//! Intel RDT through the CLI on this host: without resctrl, a spec that asks for RDT
//! fails create with a clear error and leaves nothing behind. (The resctrl logic itself
//! is tested against a fake tree in runtime-core's unit tests.)

use serde_json::json;

use crate::common::{skip, stderr, Env};

#[test]
fn intel_rdt_without_resctrl_fails_cleanly() {
    let Some(env) = Env::new("rdt_absent") else {
        return;
    };
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    if mi.lines().any(|l| l.contains(" - resctrl ")) {
        skip("rdt_absent", "this host has resctrl mounted");
        return;
    }
    let mut c = env.config();
    c["linux"]["intelRdt"] = json!({"l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:0=50"});
    env.write_config(&c);
    for args in [vec!["create"], vec!["run", "-d"]] {
        let mut a = args.clone();
        let b = env.bundle.to_str().expect("utf8");
        a.extend(["-b", b, &env.id]);
        let out = env.runrs(&a);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(
            err.contains("linux.intelRdt is set, but no resctrl filesystem is mounted"),
            "{args:?}: {err}"
        );
        env.assert_no_leftovers(None);
    }
    // A malformed schema is refused before anything else, naming field and value.
    c["linux"]["intelRdt"] = json!({"l3CacheSchema": "L3:0=xyz"});
    env.write_config(&c);
    let out = env.create();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        // (logrus text format: the quotes inside msg="..." are escaped)
        err.contains(r#"linux.intelRdt.l3CacheSchema \"L3:0=xyz\""#) && err.contains("hexadecimal"),
        "{err}"
    );
    env.assert_no_leftovers(None);
}

/// A resctrl tree laid out like the kernel's (two L3 domains, CAT, MBA, monitoring).
fn fake_resctrl(root: &std::path::Path) {
    let f = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    f("info/last_cmd_status", "ok\n");
    f("info/L3/cbm_mask", "fffff\n");
    f("info/L3/min_cbm_bits", "1\n");
    f("info/L3/num_closids", "16\n");
    f("info/MB/min_bandwidth", "10\n");
    f("info/MB/bandwidth_gran", "10\n");
    f("info/MB/num_closids", "8\n");
    f(
        "info/L3_MON/mon_features",
        "llc_occupancy\nmbm_total_bytes\nmbm_local_bytes\n",
    );
    f("schemata", "L3:0=fffff;1=fffff\nMB:0=100;1=100\n");
    f("tasks", "");
    f("shared/schemata", "L3:0=000ff;1=000ff\nMB:0=100;1=100\n");
    f("shared/tasks", "");
}

fn pids(path: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn container_and_exec_join_their_group_and_delete_removes_only_its_own() {
    let Some(env) = Env::new("rdt_fake") else {
        return;
    };
    let rc = env.scratch().join("resctrl");
    fake_resctrl(&rc);
    let rc_arg = rc.to_str().expect("utf8").to_string();
    let b = env.bundle.to_str().expect("utf8").to_string();

    // Its own group: exactly the schemata lines asked for, init and exec'd pids in tasks.
    let mut c = env.config();
    c["process"]["args"] = json!(["sleep", "100"]);
    c["linux"]["intelRdt"] =
        json!({"l3CacheSchema": "L3:0=ff;1=f0", "memBwSchema": "MB:0=20;1=70"});
    env.write_config(&c);
    let out = env.runrs(&["--resctrl-root", &rc_arg, "create", "-b", &b, &env.id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let group = rc.join(&env.id);
    assert_eq!(
        std::fs::read_to_string(group.join("schemata")).expect("schemata"),
        "L3:0=ff;1=f0\nMB:0=20;1=70\n"
    );
    let init = env.state()["pid"].as_i64().expect("pid") as i32;
    assert!(
        pids(&group.join("tasks")).contains(&init),
        "init {init} not in tasks"
    );
    let out = env.runrs(&["start", &env.id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let pid_file = env.scratch().join("exec.pid");
    let pf = pid_file.to_str().expect("utf8");
    let out = env.runrs(&["exec", "-d", "--pid-file", pf, &env.id, "sleep", "50"]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let exec_pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(
        pids(&group.join("tasks")).contains(&exec_pid),
        "exec'd {exec_pid} not in tasks"
    );
    let out = env.runrs(&["delete", "-f", &env.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(!group.exists(), "the container's own group was not removed");
    env.assert_no_leftovers(Some(init));

    // A pre-existing closID group with matching values: joined, then left alone.
    c["linux"]["intelRdt"] = json!({"closID": "shared", "l3CacheSchema": "L3:0=ff;1=ff"});
    env.write_config(&c);
    let out = env.runrs(&["--resctrl-root", &rc_arg, "create", "-b", &b, &env.id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let init = env.state()["pid"].as_i64().expect("pid") as i32;
    assert!(pids(&rc.join("shared/tasks")).contains(&init));
    let out = env.runrs(&["delete", "-f", &env.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(rc.join("shared/schemata")).expect("kept"),
        "L3:0=000ff;1=000ff\nMB:0=100;1=100\n"
    );
    env.assert_no_leftovers(Some(init));

    // A mismatching one: create fails before anything runs, nothing is left.
    c["linux"]["intelRdt"] = json!({"closID": "shared", "memBwSchema": "MB:0=50;1=50"});
    env.write_config(&c);
    let out = env.runrs(&["--resctrl-root", &rc_arg, "create", "-b", &b, &env.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not match"), "{}", stderr(&out));
    assert!(rc.join("shared").exists());
    env.assert_no_leftovers(None);
}
