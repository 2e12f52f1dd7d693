//! process.capabilities and noNewPrivileges as the container sees them in
//! /proc/self/status.

use serde_json::json;

use crate::support::{self, cap_field, cap_mask, World};

const STATUS: &str = "cat /proc/self/status";

#[test]
fn non_root_process_gets_exactly_the_spec_sets_with_ambient() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("capamb");
    let id = w.id("c");
    let mut b = w.bundle(&id, false);
    let bounding = [
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_CHOWN",
        "CAP_SETUID",
    ];
    let set = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    b.spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.spec["process"]["noNewPrivileges"] = json!(true);
    b.spec["process"]["capabilities"] = json!({
        "bounding": bounding, "effective": set, "permitted": set, "inheritable": set, "ambient": set
    });
    b.sh(STATUS);
    let o = w.run(&b, &id);
    assert!(o.ok(), "{o:?}");
    let s = &o.stdout;
    // A non-root process keeps across execve exactly its ambient set (capabilities(7)),
    // so effective == permitted == ambient == the spec's sets.
    assert_eq!(cap_field(s, "CapBnd"), cap_mask(&bounding), "{s}");
    assert_eq!(cap_field(s, "CapAmb"), cap_mask(&set), "{s}");
    assert_eq!(cap_field(s, "CapEff"), cap_mask(&set), "{s}");
    assert_eq!(cap_field(s, "CapPrm"), cap_mask(&set), "{s}");
    assert_eq!(cap_field(s, "CapInh"), cap_mask(&set), "{s}");
    assert!(s.contains("NoNewPrivs:\t1"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("1000")),
        "{s}"
    );
    w.assert_clean();
}

#[test]
fn root_process_gets_the_spec_sets_and_nnp_is_off_unless_asked() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("caproot");
    // Docker's default set.
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ];
    let id = w.id("docker");
    let mut b = w.bundle(&id, false);
    b.spec["process"]["noNewPrivileges"] = json!(false);
    b.spec["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    b.sh(STATUS);
    let o = w.run(&b, &id);
    assert!(o.ok(), "{o:?}");
    let s = &o.stdout;
    for f in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(cap_field(s, f), cap_mask(&caps), "{f}: {s}");
    }
    assert_eq!(cap_field(s, "CapAmb"), 0, "{s}");
    assert_eq!(cap_field(s, "CapInh"), 0, "{s}");
    assert!(s.contains("NoNewPrivs:\t0"), "{s}");

    // The default spec lists ambient capabilities without inheritable ones: the kernel
    // refuses to raise them and, like runc, the runtime goes on without them.
    let id = w.id("default");
    let mut b = w.bundle(&id, false);
    b.sh(STATUS);
    let o = w.run(&b, &id);
    assert!(o.ok(), "{o:?}");
    let dflt = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    assert_eq!(
        cap_field(&o.stdout, "CapBnd"),
        cap_mask(&dflt),
        "{}",
        o.stdout
    );
    assert_eq!(
        cap_field(&o.stdout, "CapEff"),
        cap_mask(&dflt),
        "{}",
        o.stdout
    );
    assert_eq!(cap_field(&o.stdout, "CapAmb"), 0, "{}", o.stdout);
    assert!(o.stdout.contains("NoNewPrivs:\t1"), "{}", o.stdout);
    w.assert_clean();
}

#[test]
fn unknown_capability_is_a_clear_error() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("capbad");
    let id = w.id("c");
    let mut b = w.bundle(&id, false);
    b.spec["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_NOT_A_CAPABILITY"]);
    b.sh("true");
    let o = w.create(&b, &id);
    assert!(!o.ok(), "{o:?}");
    assert!(
        o.stderr.contains("process.capabilities.bounding") && o.stderr.contains("NOT_A_CAPABILITY"),
        "{}",
        o.stderr
    );
    w.assert_clean();
}
