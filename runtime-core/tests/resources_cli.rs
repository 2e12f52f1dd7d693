//! Resource control through the runrs CLI on this (cgroup v1 / hybrid) host, as root:
//! limits visible from inside and outside and changed live by `runrs update`, OOM
//! kill with exit status 137 and the oom event, a fork bomb held at pids.max, the
//! default device policy, rlimits and oom_score_adj, pause/resume, ps/events, and
//! cleanup of every cgroup. cgroup v2 is covered by integration/v2/run-cli-v2.sh.

mod support;

use std::io::{BufRead, Read, Write};
use std::process::Stdio;

use serde_json::{json, Value};
use support::{a_block_device, kv, v1_file, wait_for, Env};

/// Whether hugepage limits can be applied here (v1 hugetlb, or in the unified hierarchy).
fn hugetlb_dir(id: &str) -> Option<String> {
    if std::path::Path::new("/sys/fs/cgroup/hugetlb").is_dir() {
        return Some(format!("/sys/fs/cgroup/hugetlb/{id}"));
    }
    let ctl = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").ok()?;
    ctl.split_whitespace()
        .any(|c| c == "hugetlb")
        .then(|| format!("/sys/fs/cgroup/unified/{id}"))
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
fn limits_visible_inside_and_outside_and_updated_live() {
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
    let why = if support::cgroup_mode() == "hybrid" {
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

fn memory_hog(env: &Env, id: &str) -> Value {
    let mut s = env.spec(
        id,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    s["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    s
}

#[test]
fn memory_hog_is_oom_killed_with_137() {
    let Some(env) = Env::new("oom") else { return };
    let id = env.id("run");
    let b = env.bundle(&id, &memory_hog(&env, &id));
    let status = env
        .cmd(&["run", "--bundle", b.to_str().expect("path"), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .status()
        .expect("runrs run");
    assert_eq!(
        status.code(),
        Some(137),
        "exit status of an OOM-killed container"
    );
    env.finish();
}

#[test]
fn events_reports_oom_before_the_container_ends() {
    let Some(env) = Env::new("oomev") else { return };
    let id = env.id("c1");
    let o = env.create(&id, &memory_hog(&env, &id));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut ev = env
        .cmd(&["events", "--interval", "100ms", &id])
        .stdout(Stdio::piped())
        .spawn()
        .expect("runrs events");
    let mut stdout = std::io::BufReader::new(ev.stdout.take().expect("stdout"));
    // The first stats line says the watcher is in place: only then start the hog.
    let mut text = String::new();
    stdout.read_line(&mut text).expect("first event");
    assert!(text.starts_with(r#"{"type":"stats""#), "{text}");
    env.ok(&["start", &id]);
    stdout.read_to_string(&mut text).expect("read events");
    assert!(ev.wait().expect("events").success());
    let oom = format!(r#"{{"type":"oom","id":"{id}"}}"#);
    assert!(text.lines().any(|l| l == oom), "no oom event in:\n{text}");
    assert_eq!(env.status(&id), "stopped");
    env.finish();
}

#[test]
fn fork_bomb_stays_at_pids_max() {
    let Some(env) = Env::new("forkbomb") else {
        return;
    };
    let id = env.id("c1");
    let mut s = env.spec(&id, &["sh", "-c", "f(){ f|f& }; f; sleep 1000"]);
    s["linux"]["resources"]["pids"] = json!({"limit": 32});
    s["linux"]["resources"]["cpu"] = json!({"quota": 20000, "period": 100000});
    env.start(&id, &s);
    wait_for(20, "pids.current to reach 32", || {
        (v1_file("pids", &id, "pids.current") == "32").then_some(())
    });
    for _ in 0..50 {
        let n: u32 = v1_file("pids", &id, "pids.current")
            .parse()
            .expect("number");
        assert!(n <= 32, "pids.current {n} above pids.max");
    }
    let refused: u64 = v1_file("pids", &id, "pids.events")
        .strip_prefix("max ")
        .and_then(|n| n.parse().ok())
        .expect("pids.events");
    assert!(refused > 0, "the kernel refused forks");
    env.finish();
}

#[test]
fn default_device_policy_blocks_mknod_and_open() {
    let Some(env) = Env::new("devices") else {
        return;
    };
    let script = "mknod /tmp/tun c 10 200 && echo mknod=ok; \
                  if (exec 3</tmp/tun) 2>/tmp/err; then echo open=ok; else echo open=$(cat /tmp/err); fi; \
                  mknod /tmp/null c 1 3 && (exec 3</tmp/null) && echo null=ok";
    let run = |suffix: &str, extra: Option<Value>| {
        let id = env.id(suffix);
        let mut s = env.spec(&id, &["sh", "-c", script]);
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set]
                .as_array_mut()
                .expect("caps")
                .push(json!("CAP_MKNOD"));
        }
        if let Some(rule) = extra {
            s["linux"]["resources"]["devices"]
                .as_array_mut()
                .expect("devices")
                .push(rule);
        }
        let b = env.bundle(&id, &s);
        let o = env
            .cmd(&["run", "--bundle", b.to_str().expect("path"), &id])
            .stdin(Stdio::null())
            .output()
            .expect("runrs run");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        kv(&String::from_utf8_lossy(&o.stdout))
    };
    // runc's default spec (deny all) plus the default allow list.
    let out = run("default", None);
    assert_eq!(out.get("mknod").map(String::as_str), Some("ok"), "{out:?}");
    assert!(out["open"].contains("Operation not permitted"), "{out:?}");
    assert_eq!(out.get("null").map(String::as_str), Some("ok"));
    // The same device allowed by a rule opens.
    let out = run(
        "allowed",
        Some(json!({"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"})),
    );
    assert_eq!(out.get("open").map(String::as_str), Some("ok"), "{out:?}");
    env.finish();
}

#[test]
fn rlimits_and_oom_score_adj_inside() {
    let Some(env) = Env::new("rlimits") else {
        return;
    };
    let id = env.id("ok");
    let mut s = env.spec(&id, &["sh", "-c", "echo soft=$(ulimit -n); echo hard=$(ulimit -Hn); echo adj=$(cat /proc/self/oom_score_adj)"]);
    s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]);
    s["process"]["oomScoreAdj"] = json!(500);
    let b = env.bundle(&id, &s);
    let o = env
        .cmd(&["run", "--bundle", b.to_str().expect("path"), &id])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = kv(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        (m["soft"].as_str(), m["hard"].as_str(), m["adj"].as_str()),
        ("321", "654", "500")
    );

    // What root without CAP_SYS_RESOURCE cannot do fails clearly and leaves nothing.
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) }, 0);
    let id = env.id("hard");
    let mut s = env.spec(&id, &["true"]);
    s["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": cur.rlim_max + 1}]);
    let o = env.create(&id, &s);
    let e = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        eprintln!("note: this runtime may raise hard limits (has CAP_SYS_RESOURCE)");
    } else {
        assert!(
            e.contains("setrlimit RLIMIT_NOFILE") && e.contains("CAP_SYS_RESOURCE"),
            "{e}"
        );
        assert!(!env.root.join(&id).exists(), "state dir left");
    }
    let id = env.id("neg");
    let mut s = env.spec(&id, &["true"]);
    s["process"]["oomScoreAdj"] = json!(-500);
    let o = env.create(&id, &s);
    let e = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        assert!(
            e.contains("oom_score_adj to -500") && e.contains("CAP_SYS_RESOURCE"),
            "{e}"
        );
        assert!(!env.root.join(&id).exists(), "state dir left");
    }
    env.finish();
}

#[test]
fn pause_and_resume_stop_and_restart_a_counter() {
    let Some(env) = Env::new("pause") else { return };
    let id = env.id("c1");
    let mut s = env.spec(
        &id,
        &[
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo $i > /out/count; done",
        ],
    );
    s["linux"]["resources"]["cpu"] = json!({"quota": 20000, "period": 100000});
    env.start(&id, &s);
    let count = || std::fs::read_to_string(env.out().join("count")).unwrap_or_default();
    let num = |s: &str| s.trim().parse::<u64>().ok();
    wait_for(20, "the counter to run", || {
        num(&count()).filter(|n| *n > 10)
    });
    env.ok(&["pause", &id]);
    assert_eq!(env.status(&id), "paused");
    let list = env.ok(&["list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains(" paused ")),
        "{list}"
    );
    let e = env.fails(&["pause", &id]);
    assert!(e.contains("it is paused, must be running"), "{e}");
    assert_eq!(v1_file("freezer", &id, "freezer.state"), "FROZEN");
    let frozen = count();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(count(), frozen, "the counter moved while paused");
    env.ok(&["resume", &id]);
    assert_eq!(env.status(&id), "running");
    let base = num(&frozen).unwrap_or(0);
    wait_for(20, "the counter to move again", || {
        num(&count()).filter(|n| *n > base)
    });
    let e = env.fails(&["resume", &id]);
    assert!(e.contains("it is running, must be paused"), "{e}");
    // A paused container is deleted completely with --force.
    env.ok(&["pause", &id]);
    env.ok(&["delete", "--force", &id]);
    env.finish();
}

#[test]
fn delete_after_sigkill_removes_every_cgroup() {
    let Some(env) = Env::new("sigkill") else {
        return;
    };
    let id = env.id("c1");
    let mut s = env.spec(&id, &["sh", "-c", "sleep 1000 & sleep 1000"]);
    s["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    if hugetlb_dir(&id).is_some() {
        s["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 2 << 20}]);
    }
    env.start(&id, &s);
    let pid = env.state_json(&id)["init_pid"].as_i64().expect("pid") as i32;
    // SAFETY: kill with a pid we just read from the container's state.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_for(10, "stopped", || {
        (env.status(&id) == "stopped").then_some(())
    });
    env.ok(&["delete", &id]);
    env.finish();
}

#[test]
fn ps_and_events_stats() {
    let Some(env) = Env::new("ps") else { return };
    let id = env.id("c1");
    let mut s = env.spec(&id, &["sleep", "1000"]);
    s["linux"]["resources"]["memory"] = json!({"limit": 48 << 20});
    s["linux"]["resources"]["pids"] = json!({"limit": 20});
    env.start(&id, &s);
    let pid = env.state_json(&id)["init_pid"].as_i64().expect("pid");
    let pids: Vec<i64> =
        serde_json::from_str(env.ok(&["ps", "--format", "json", &id]).trim()).expect("json");
    assert_eq!(pids, vec![pid]);
    let table = env.ok(&["ps", &id]);
    let mut lines = table.lines();
    assert!(lines.next().expect("header").contains("PID"));
    let rest: Vec<&str> = lines.collect();
    assert_eq!(rest.len(), 1, "{table}");
    assert!(rest[0].contains("sleep 1000") && rest[0].contains(&pid.to_string()));
    let custom = env.ok(&["ps", &id, "-o", "pid,comm"]);
    assert!(
        custom.lines().any(|l| l.trim() == format!("{pid} sleep")),
        "{custom}"
    );

    let ev: Value =
        serde_json::from_str(env.ok(&["events", "--stats", &id]).trim()).expect("event json");
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    let d = &ev["data"];
    assert_eq!(d["memory"]["usage"]["limit"], json!(48 << 20));
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0);
    assert_eq!(d["pids"]["current"], json!(1));
    assert_eq!(d["pids"]["limit"], json!(20));
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0);
    let e = env.fails(&["events", "--stats", &env.id("nosuch")]);
    assert!(e.contains("does not exist"), "{e}");
    env.finish();
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
