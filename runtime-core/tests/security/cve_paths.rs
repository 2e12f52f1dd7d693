//! Regression tests for escapes through symlinks and mounts the container controls:
//! CVE-2021-30465 and CVE-2024-45310 (mount destinations and created paths followed out
//! of the rootfs), CVE-2025-31133 (masking with a /dev/null that is a symlink),
//! CVE-2025-52565 (/dev/console a symlink) and CVE-2025-52881 (procfs writes redirected
//! by mounts or a symlinked /proc). Each prepares a hostile rootfs (a copy of the
//! busybox one) and checks the host afterwards.

use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::Path;

use serde_json::json;

use crate::support::{self, World};

const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";

/// Restores the host's core_pattern if a vulnerable runtime let a test change it.
struct CorePattern(String);

impl CorePattern {
    fn save() -> CorePattern {
        CorePattern(std::fs::read_to_string(CORE_PATTERN).expect("read core_pattern"))
    }
    fn unchanged(&self) -> bool {
        std::fs::read_to_string(CORE_PATTERN).is_ok_and(|now| now == self.0)
    }
}

impl Drop for CorePattern {
    fn drop(&mut self) {
        if !self.unchanged() {
            let _ = std::fs::write(CORE_PATTERN, self.0.trim_end());
        }
    }
}

/// A masked file that exists on this kernel.
fn masked_file() -> &'static str {
    ["/proc/kcore", "/proc/keys", "/proc/timer_list"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("no masked file exists on this host")
}

/// CVE-2021-30465 / CVE-2024-45310. Precondition: the image holds symlinks that point
/// out of the rootfs when followed on the host — /etc/evil -> /, a relative one with
/// enough `..` to climb out, an absolute one to /tmp — and the spec mounts (and, for a
/// file bind, creates) through them. Everything must land inside the rootfs; nothing
/// is created on the host. A symlink to a host-only directory (dangling inside the
/// rootfs) is refused.
///
/// Checked to fail: with rootfs::safe resolving without RESOLVE_IN_ROOT (plain openat2
/// lookups, as a runtime joining paths naively would), the mounts and the created file
/// land on the host ("created on the host").
#[test]
fn cve_2021_30465_2024_45310_mounts_stay_in_the_rootfs() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("cve30465");
    let src = w.dir.join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("from-host"), "x").expect("write");
    let src_file = w.dir.join("src-file");
    std::fs::write(&src_file, "file").expect("write");
    let host_only = w.dir.join("host-only");
    std::fs::create_dir(&host_only).expect("mkdir");
    let m = format!("runrs-sec-evil-{}", std::process::id());
    // Where each mount would land if the symlinks were followed on the host.
    let on_host = [
        Path::new("/").join(format!("{m}-sub")),
        Path::new("/tmp").join(format!("{m}-bound")),
        Path::new("/").join(format!("{m}-file")),
        Path::new("/").join(&m),
    ];
    let hostile = |b: &mut support::Bundle| {
        let r = b.rootfs.clone();
        symlink("/", r.join("etc/evil")).expect("symlink");
        symlink("../../../../../../../../../..", r.join("up")).expect("symlink");
        symlink("/tmp", r.join("abs-tmp")).expect("symlink");
        symlink(&host_only, r.join("abs-host")).expect("symlink");
    };

    let id = w.id("c");
    let mut b = w.bundle(&id, true);
    hostile(&mut b);
    b.mount(json!({"destination": format!("/up/{m}-sub"), "type": "tmpfs", "source": "tmpfs"}));
    b.mount(json!({"destination": format!("/abs-tmp/{m}-bound"), "type": "bind", "source": src, "options": ["rbind"]}));
    b.mount(json!({"destination": format!("/etc/evil/{m}-file"), "type": "bind", "source": src_file, "options": ["bind"]}));
    b.mount(json!({"destination": format!("/etc/evil/{m}"), "type": "tmpfs", "source": "tmpfs"}));
    b.sh(&format!(
        "echo sub=$(stat -f -c %T /{m}-sub) marker=$(stat -f -c %T /{m}) \
         bound=$(ls /tmp/{m}-bound) file=$(cat /{m}-file)"
    ));
    let o = w.run(&b, &id);
    let escaped: Vec<_> = on_host.iter().filter(|p| p.exists()).cloned().collect();
    for p in &escaped {
        let _ = std::fs::remove_dir(p).or_else(|_| std::fs::remove_file(p));
    }
    assert!(escaped.is_empty(), "created on the host: {escaped:?}");
    assert!(o.ok(), "{o:?}");
    assert!(
        o.stdout
            .contains("sub=tmpfs marker=tmpfs bound=from-host file=file"),
        "mounts not where the container sees them: {}",
        o.stdout
    );
    // Made inside the copy of the rootfs.
    let r = &b.rootfs;
    assert!(r.join(format!("{m}-sub")).is_dir() && r.join(format!("tmp/{m}-bound")).is_dir());
    assert!(r.join(format!("{m}-file")).is_file() && r.join(&m).is_dir());

    // Through a symlink to a directory only the host has: refused, nothing created.
    let id = w.id("hostonly");
    let mut b = w.bundle(&id, true);
    hostile(&mut b);
    b.mount(json!({"destination": "/abs-host/sub", "type": "tmpfs", "source": "tmpfs"}));
    b.sh("true");
    let o = w.create(&b, &id);
    assert_eq!(
        std::fs::read_dir(&host_only).expect("read").count(),
        0,
        "created on the host"
    );
    if support::is_runrs() {
        assert!(!o.ok() && o.stderr.contains("/abs-host/sub"), "{o:?}");
    }
    w.assert_clean();
}

/// CVE-2025-31133. Precondition: the container's /dev/null (the image's /dev, no tmpfs
/// over it) is a symlink to /proc/sys/kernel/core_pattern; a runtime that bind-mounts
/// "/dev/null" over masked paths would expose core_pattern, writable, at the masked
/// path. The defence: masking uses the host's /dev/null, opened before entering the
/// container and checked to be 1:3.
///
/// Checked to fail: runc 1.1.5 (RUNRS_SEC_RUNTIME=/usr/sbin/runc) mounts core_pattern
/// over the masked file and the container's write changes the host's core_pattern (the
/// guard restores it).
#[test]
fn cve_2025_31133_masking_ignores_a_symlinked_dev_null() {
    if !support::root_or_skip() {
        return;
    }
    let saved = CorePattern::save();
    let mut w = World::new("cve31133");
    let id = w.id("c");
    let mut b = w.bundle(&id, true);
    b.without_mount("/dev");
    symlink(CORE_PATTERN, b.rootfs.join("dev/null")).expect("symlink");
    let f = masked_file();
    b.sh(&format!(
        "echo masked $(stat -L -c '%F %t:%T' {f}) bytes=$(cat {f} | wc -c); \
         echo core-runrs-sec > {f}; echo inside $(cat {CORE_PATTERN})"
    ));
    let o = w.run(&b, &id);
    assert!(
        saved.unchanged(),
        "the host's core_pattern was changed through {f}"
    );
    assert!(o.ok(), "{o:?}");
    assert!(
        o.stdout
            .contains("masked character special file 1:3 bytes=0"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("inside core-runrs-sec"), "{}", o.stdout);
    w.assert_clean();
}

/// CVE-2025-52565. Precondition: /dev/console in the container (image /dev) is a
/// symlink to /proc/sys/kernel/core_pattern; a runtime bind-mounting the pty "at
/// /dev/console" by path would mount it over core_pattern's target. The defence: the
/// console mount target is opened without following symlinks and must be a regular
/// file or character device; otherwise create fails.
///
/// Checked to fail: runc 1.1.5 creates the container with the pty mounted on
/// /proc/sys/kernel/core_pattern ("pty mounted over").
#[test]
fn cve_2025_52565_console_symlink_is_refused() {
    if !support::root_or_skip() {
        return;
    }
    let saved = CorePattern::save();
    let mut w = World::new("cve52565");
    let id = w.id("c");
    let mut b = w.bundle(&id, true);
    b.without_mount("/dev");
    symlink(CORE_PATTERN, b.rootfs.join("dev/console")).expect("symlink");
    b.spec["process"]["terminal"] = json!(true);
    b.spec["process"]["args"] = json!(["sleep", "1000"]);
    b.write();
    let sock = w.dir.join("console.sock");
    let l = UnixListener::bind(&sock).expect("bind");
    let holder = std::thread::spawn(move || {
        let (c, _) = l.accept().expect("accept");
        runtime_core::recv_master(c.as_fd()).ok()
    });
    let mut cmd = w.command();
    cmd.args(["create", "--console-socket"])
        .arg(&sock)
        .arg("--bundle")
        .arg(&b.dir)
        .arg(&id);
    let o = w.run_cmd(&mut cmd);
    let _ = std::os::unix::net::UnixStream::connect(&sock);
    let _master = holder.join().expect("console holder");
    if o.ok() {
        let mi =
            std::fs::read_to_string(format!("/proc/{}/mountinfo", w.pid(&id))).expect("mountinfo");
        assert!(
            !mi.lines()
                .any(|l| l.split(' ').nth(4) == Some(CORE_PATTERN)),
            "pty mounted over {CORE_PATTERN}:\n{mi}"
        );
    }
    if support::is_runrs() {
        assert!(!o.ok(), "{o:?}");
        assert!(o.stderr.contains("/dev/console"), "{}", o.stderr);
    }
    assert!(saved.unchanged());
    w.assert_clean();
}

/// CVE-2025-52881. Precondition: the paths the runtime writes (sysctls, masked and
/// read-only paths) are redirected — a spec mount over /proc/sys/..., /proc in the
/// image a symlink, or another procfs over /proc/sys. The defences: mounts inside /proc
/// are refused (except runc's lxcfs list and procfs itself), proc is only mounted on an
/// ordinary directory, and sysctls are written through the host procfs descriptor init
/// opened before entering the container (openat2 without symlinks or mount crossings,
/// checked to be procfs), so they land in the container's namespaces whatever its /proc
/// looks like.
///
/// Checked to fail: with sysctl::apply writing through the container's /proc (the
/// rootfs path) instead of the host handle, case 3 cannot find the sysctl and create
/// fails ("case 3"). runc 1.1.5 refuses cases 1 and 2 too (its published attack needs a
/// mount race between containers sharing a volume) but fails case 3 exactly so: it
/// writes through the container's /proc ("open /proc/sys/net/ipv4/ip_forward: no such
/// file or directory").
#[test]
fn cve_2025_52881_procfs_writes_are_not_redirected() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("cve52881");
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("read");
    let want = if host_fwd.trim() == "1" { "0" } else { "1" };

    // 1. A bind mount from the spec over a sysctl file: refused.
    let fake = w.dir.join("fake-sysctl");
    std::fs::write(&fake, "fake\n").expect("write");
    let id = w.id("bind");
    let mut b = w.bundle(&id, false);
    b.mount(json!({"destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind", "source": fake, "options": ["bind"]}));
    b.spec["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want});
    b.sh("cat /proc/sys/net/ipv4/ip_forward");
    let o = w.create(&b, &id);
    assert!(!o.ok(), "case 1: {o:?}");
    if support::is_runrs() {
        assert!(
            o.stderr.contains("/proc/sys/net/ipv4/ip_forward") && o.stderr.contains("inside /proc"),
            "{}",
            o.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(&fake).expect("read"), "fake\n");
    let left = w.leftovers();
    assert!(left.is_empty(), "case 1 left:\n{}", left.join("\n"));

    // 2. /proc in the image is a symlink: proc is not mounted through it.
    let id = w.id("symlinked");
    let mut b = w.bundle(&id, true);
    std::fs::remove_dir(b.rootfs.join("proc")).expect("rmdir");
    std::fs::create_dir(b.rootfs.join("tmp/fakeproc")).expect("mkdir");
    symlink("tmp/fakeproc", b.rootfs.join("proc")).expect("symlink");
    b.sh("true");
    let o = w.create(&b, &id);
    assert!(!o.ok(), "case 2: {o:?}");
    if support::is_runrs() {
        assert!(
            o.stderr.contains("ordinary directory") && o.stderr.contains("symlink"),
            "{}",
            o.stderr
        );
    }
    let left = w.leftovers();
    assert!(left.is_empty(), "case 2 left:\n{}", left.join("\n"));

    // 3. The container's /proc/sys is another procfs (allowed: a procfs over a procfs
    //    directory), so /proc/sys/net/... in the container is not the sysctl: the value
    //    still lands in the container's network namespace (seen in the real sysctl
    //    tree, /proc/sys/sys/net/...), the host keeps its own.
    let id = w.id("sysctl");
    let mut b = w.bundle(&id, false);
    b.mount(json!({"destination": "/proc/sys", "type": "proc", "source": "proc"}));
    b.spec["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want});
    b.sh("echo fwd=$(cat /proc/sys/sys/net/ipv4/ip_forward); ls /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo not-a-sysctl");
    let o = w.run(&b, &id);
    assert!(o.ok(), "case 3: {o:?}");
    assert!(
        o.stdout.contains(&format!("fwd={want}")) && o.stdout.contains("not-a-sysctl"),
        "case 3: {}",
        o.stdout
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("read"),
        host_fwd
    );
    w.assert_clean();
}
