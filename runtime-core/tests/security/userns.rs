//! User namespaces: rootful with mappings (maps seen inside, ids of created files seen on
//! the host, devices bind-mounted because mknod is not allowed, /proc and /sys mounted),
//! and an unprivileged caller asking for mappings only newuidmap could write.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use serde_json::json;

use crate::support::{self, World};

const MAP: u32 = 100_000;

fn userns_bundle(w: &World, id: &str) -> support::Bundle {
    let mut b = w.bundle(id, false);
    let caps = ["CAP_CHOWN", "CAP_MKNOD", "CAP_DAC_OVERRIDE", "CAP_FOWNER"];
    b.spec["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    b.with_ns("user", None);
    b.spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": MAP, "size": 65536}]);
    b.spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": MAP, "size": 65536}]);
    b
}

#[test]
fn mapped_ids_inside_and_on_the_host() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("userns");
    let id = w.id("c");
    let data = w.dir.join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let mut b = userns_bundle(&w, &id);
    // The shared rootfs belongs to the host's root (unmapped here): mount on an
    // existing directory.
    b.mount(
        json!({"destination": "/home", "type": "bind", "source": data, "options": ["rbind", "rw"]}),
    );
    b.sh("echo uid_map $(cat /proc/self/uid_map); echo gid_map $(cat /proc/self/gid_map); \
          touch /home/f0; touch /home/f1 && chown 1000:1000 /home/f1; \
          grep -E ' /(proc|sys|dev/null) ' /proc/self/mountinfo; \
          echo null $(stat -c '%F %t:%T' /dev/null); echo x > /dev/null && echo null-writable; \
          mknod /dev/shm/n c 1 3 || echo mknod-refused; echo owner-of-bin $(stat -c %u /bin/busybox)");
    let o = w.run(&b, &id);
    assert!(o.ok(), "{o:?}");
    let out = &o.stdout;
    assert!(out.contains(&format!("uid_map 0 {MAP} 65536")), "{out}");
    assert!(out.contains(&format!("gid_map 0 {MAP} 65536")), "{out}");
    let f0 = std::fs::metadata(data.join("f0")).expect("f0 on the host");
    assert_eq!(
        (f0.uid(), f0.gid()),
        (MAP, MAP),
        "root of the container is {MAP} on the host"
    );
    let f1 = std::fs::metadata(data.join("f1")).expect("f1 on the host");
    assert_eq!((f1.uid(), f1.gid()), (MAP + 1000, MAP + 1000));
    let mount_type = |dest: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(4) == Some(dest))
            .and_then(|l| l.split(" - ").nth(1))
            .and_then(|r| r.split(' ').next())
            .map(str::to_string)
    };
    assert_eq!(mount_type("/proc").as_deref(), Some("proc"), "{out}");
    assert_eq!(mount_type("/sys").as_deref(), Some("sysfs"), "{out}");
    // /dev/null is the host's node bind-mounted (mknod is not allowed in a user
    // namespace, even with CAP_MKNOD).
    assert!(
        mount_type("/dev/null").is_some(),
        "/dev/null is not a bind mount: {out}"
    );
    assert!(
        out.contains("null character special file 1:3") && out.contains("null-writable"),
        "{out}"
    );
    assert!(out.contains("mknod-refused"), "{out}");
    assert!(
        out.contains("owner-of-bin 65534"),
        "unmapped host root shows as the overflow uid: {out}"
    );

    // Without a network namespace sysfs cannot be mounted: the host's /sys is bound.
    let id = w.id("nonet");
    let mut b = userns_bundle(&w, &id);
    b.without_ns("network");
    b.sh("grep -E ' /sys ' /proc/self/mountinfo; ls /sys/class/net | grep -q lo && echo sys-ok");
    let o = w.run(&b, &id);
    assert!(o.ok() && o.stdout.contains("sys-ok"), "{o:?}");
    w.assert_clean();
}

#[test]
fn unprivileged_caller_cannot_map_foreign_ids() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("rootless");
    let id = w.id("c");
    let mut b = w.bundle(&id, false);
    b.with_ns("user", None);
    b.without_ns("network");
    b.spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": MAP, "size": 65536}]);
    b.spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": MAP, "size": 65536}]);
    // No cgroupsPath: rootless mode leaves out the cgroups it may not create, so what
    // refuses is the foreign root: the exec fifo cannot be given to it (runc fails there
    // too), and newuidmap would refuse uid 65534, which has no subordinate ids.
    if let Some(l) = b.spec["linux"].as_object_mut() {
        l.remove("cgroupsPath");
    }
    b.sh("true");
    b.write();
    for p in [&w.dir, &b.dir] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(
        b.dir.join("config.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let state = w.dir.join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown");
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(support::runtime())
        .arg("--root")
        .arg(&state)
        .args(["create", "--bundle"])
        .arg(&b.dir)
        .arg(&id);
    let o = w.run_cmd(&mut c);
    assert!(!o.ok(), "{o:?}");
    if support::is_runrs() {
        assert!(
            o.stderr.contains("newuidmap") || o.stderr.contains("Operation not permitted"),
            "{}",
            o.stderr
        );
    }
    assert_eq!(
        std::fs::read_dir(&state).expect("state").count(),
        0,
        "nothing created"
    );
    w.assert_clean();
}
