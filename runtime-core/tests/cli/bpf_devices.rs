//! The cgroup v2 device filter on the real kernel: a cgroup made in this host's cgroup2
//! hierarchy (the unified mount of a hybrid host, or the root of a v2 host) gets the
//! program; a shell moved into it must be refused (EPERM) what the policy denies and
//! allowed what it allows; replacing the policy swaps the program without a gap;
//! removing it leaves no program attached. Needs root and a cgroup2 mount.

use std::path::{Path, PathBuf};
use std::process::Command;

use runtime_core::testing::{bpf, with_defaults, Policy};

fn cgroup2_mount() -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if !post.starts_with("cgroup2 ") {
            return None;
        }
        pre.split(' ').nth(4).map(PathBuf::from)
    })
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = bpf::remove(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Open `node` for reading from a shell (placed in the cgroup `dir` if given); what
/// the shell says ("ok" or its error).
fn open_in(dir: Option<&Path>, node: &Path) -> String {
    let enter = dir.map_or(String::new(), |d| {
        format!("echo $$ > {}/cgroup.procs && ", d.display())
    });
    let script = format!("{enter}(exec 3<{}) 2>&1 && echo ok", node.display());
    let out = Command::new("/bin/sh")
        .args(["-c", &script])
        .output()
        .expect("run sh");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn policy(rules: &str) -> Policy {
    let r: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_str(rules).expect("rules json");
    Policy::from_rules(&with_defaults(&r, &[]).expect("rules"))
}

#[test]
fn device_filter_on_the_real_kernel() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        crate::common::skip("device_filter_on_the_real_kernel", "needs root");
        return;
    }
    let Some(mount) = cgroup2_mount() else {
        crate::common::skip("device_filter_on_the_real_kernel", "no cgroup2 mount");
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("runrs-res-bpf-")
        .tempdir()
        .expect("tmp");
    // Host devices this machine lets root open: /dev/null (in the default allow list)
    // and /dev/kmsg (c 1:11, not in it).
    let null = tmp.path().join("null");
    let kmsg = tmp.path().join("kmsg");
    for (p, dev) in [(&null, libc::makedev(1, 3)), (&kmsg, libc::makedev(1, 11))] {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: valid C string; mknod of a char device node in our temp dir.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, dev) };
        assert_eq!(r, 0, "mknod {}", p.display());
    }
    let outside = open_in(None, &kmsg);
    if !outside.contains("ok") {
        crate::common::skip(
            "device_filter_on_the_real_kernel",
            &format!("this host refuses /dev/kmsg itself: {outside}"),
        );
        return;
    }
    let dir = Dir(mount.join(format!("runrs-res-bpf-{}", std::process::id())));
    std::fs::create_dir(&dir.0).expect("mkdir cgroup");

    bpf::install(&dir.0, &policy(r#"[{"allow":false,"access":"rwm"}]"#)).expect("install");
    assert!(
        open_in(Some(&dir.0), &null).contains("ok"),
        "null is allowed"
    );
    let denied = open_in(Some(&dir.0), &kmsg);
    assert!(denied.contains("Operation not permitted"), "kmsg: {denied}");
    let cg = std::fs::File::open(&dir.0).expect("open cgroup");
    let fd = std::os::fd::AsFd::as_fd(&cg);
    assert_eq!(bpf::attached(fd, "test").expect("query").len(), 1);

    // Replace: allow kmsg for reading.
    bpf::install(
        &dir.0,
        &policy(r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":11,"access":"r"}]"#),
    )
    .expect("replace");
    assert_eq!(
        bpf::attached(fd, "test").expect("query").len(),
        1,
        "old program detached"
    );
    assert!(
        open_in(Some(&dir.0), &kmsg).contains("ok"),
        "kmsg allowed now"
    );

    bpf::remove(&dir.0).expect("remove");
    assert!(bpf::attached(fd, "test").expect("query").is_empty());
}
