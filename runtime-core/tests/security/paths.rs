//! Masked and read-only paths, a read-only rootfs, and linux.sysctl, seen from inside.

use std::path::Path;

use serde_json::json;

use crate::support::{self, World};

#[test]
fn masked_paths_are_empty_and_readonly_paths_refuse_writes() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("masked");
    let id = w.id("c");
    let mut b = w.bundle(&id, false);
    // The default spec's masked files and dirs that exist on this kernel (/proc/kcore
    // needs CONFIG_PROC_KCORE; the development machine has none).
    let files: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    let dirs: Vec<&str> = ["/proc/acpi", "/proc/scsi", "/sys/firmware"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    assert!(
        !files.is_empty() && !dirs.is_empty(),
        "nothing to check on this host"
    );
    let mut script = String::new();
    for f in &files {
        script += &format!("echo \"F {f} $(stat -c '%F %t:%T' {f}) $(cat {f} | wc -c)\"; ");
    }
    for d in &dirs {
        script += &format!(
            "echo \"D {d} $(ls -A {d} | wc -l)\"; touch {d}/x 2>/dev/null || echo \"RO {d}\"; "
        );
    }
    script += "echo 1 > /proc/sys/kernel/domainname || echo sys-write-failed; \
               grep -E ' /proc/(sys|bus|fs|irq) ' /proc/self/mountinfo; \
               touch /rootfs-file || echo root-ro; touch /dev/shm/ok && echo shm-rw";
    b.sh(&script);
    let o = w.run(&b, &id);
    assert!(o.ok(), "{o:?}");
    let out = &o.stdout;
    for f in &files {
        // The host's /dev/null (character device 1:3) is mounted over it: reads nothing.
        assert!(
            out.contains(&format!("F {f} character special file 1:3 0")),
            "{f} not masked:\n{out}"
        );
    }
    for d in &dirs {
        assert!(out.contains(&format!("D {d} 0")), "{d} not empty:\n{out}");
        assert!(out.contains(&format!("RO {d}")), "{d} writable:\n{out}");
    }
    assert!(out.contains("sys-write-failed"), "{out}");
    assert!(o.stderr.contains("Read-only file system"), "{}", o.stderr);
    for p in ["/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"] {
        let line = out
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(p))
            .unwrap_or_else(|| panic!("{p} is not a mount:\n{out}"));
        assert!(
            line.split(' ')
                .nth(5)
                .is_some_and(|o| o.split(',').any(|x| x == "ro")),
            "{line}"
        );
    }
    assert!(out.contains("root-ro") && out.contains("shm-rw"), "{out}");
    w.assert_clean();
}

#[test]
fn sysctls_apply_in_the_container_and_are_validated() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("sysctl");
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("read");
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").expect("read");
    let flip = |v: &str| if v.trim() == "1" { "0" } else { "1" };
    let (want_fwd, want_shm) = (flip(&host_fwd), flip(&host_shm));

    let id = w.id("ok");
    let mut b = w.bundle(&id, false);
    b.spec["linux"]["sysctl"] =
        json!({"net.ipv4.ip_forward": want_fwd, "kernel/shm_rmid_forced": want_shm});
    b.sh(
        "echo fwd=$(cat /proc/sys/net/ipv4/ip_forward) shm=$(cat /proc/sys/kernel/shm_rmid_forced)",
    );
    let o = w.run(&b, &id);
    assert!(o.ok(), "{o:?}");
    assert!(
        o.stdout.contains(&format!("fwd={want_fwd} shm={want_shm}")),
        "{}",
        o.stdout
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("read"),
        host_fwd
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").expect("read"),
        host_shm
    );

    let refused = [
        (
            json!({"net.ipv4.ip_forward": "1"}),
            Some("network"),
            "needs a private network namespace",
        ),
        (
            json!({"kernel.shm_rmid_forced": "1"}),
            Some("ipc"),
            "needs a private IPC namespace",
        ),
        (json!({"vm.swappiness": "10"}), None, "is not namespaced"),
        (
            json!({"kernel.../vm/swappiness": "10"}),
            None,
            "not a valid sysctl name",
        ),
    ];
    for (i, (sysctl, drop_ns, want)) in refused.into_iter().enumerate() {
        let id = w.id(&format!("bad{i}"));
        let mut b = w.bundle(&id, false);
        if let Some(t) = drop_ns {
            b.without_ns(t);
        }
        b.spec["linux"]["sysctl"] = sysctl;
        b.sh("true");
        let o = w.create(&b, &id);
        assert!(!o.ok(), "case {i} accepted");
        assert!(
            o.stderr.contains("linux.sysctl") && o.stderr.contains(want),
            "case {i}: {}",
            o.stderr
        );
    }
    w.assert_clean();
}
