//! Regression tests for the runtime-binary and leaked-descriptor escapes:
//! CVE-2019-5736 (overwrite the runtime through /proc/<init>/exe) and CVE-2024-21626
//! (a host descriptor leaked into the container, used as process.cwd).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::support::{self, pass_fds, shared_dir, wait_for, World};

/// CVE-2019-5736. Precondition reproduced: while container A is created (its init, the
/// runtime, blocked on the exec fifo), container B joins A's pid namespace and can see
/// the runtime as its pid 1; B has CAP_SYS_PTRACE, so it can open /proc/1/exe. B keeps
/// that descriptor, A is started (the runtime image is no longer being executed, so the
/// kernel's ETXTBSY no longer protects it) and B reopens it for writing and writes.
/// The defence: init runs from a sealed memfd copy (writes fail; the binary on disk is
/// out of reach) and is non-dumpable (a process without CAP_SYS_PTRACE cannot even open
/// it, while it can open a sibling with the same credentials).
///
/// Checked to fail without the defence: with spawn.rs exec'ing the binary on disk
/// (current_exe) instead of the memfd, B's write after start succeeds and the copy of
/// the runtime this test runs is modified ("binary copy was modified"); without
/// PR_SET_DUMPABLE 0 in init, C reads /proc/1/environ ("init-environ-readable").
#[test]
fn cve_2019_5736_runtime_binary_is_out_of_reach() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("cve5736");
    // Attack a copy of the runtime, so a broken defence cannot corrupt the real one.
    // In a directory of its own: runrs execs init through a read-only overlay of the
    // binary's directory, which cannot contain the bundles (it falls back to a memfd).
    let copy = w.dir.join("bin").join("runtime-copy");
    std::fs::create_dir(w.dir.join("bin")).expect("mkdir bin");
    std::fs::copy(support::runtime(), &copy).expect("copy runtime");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let before = std::fs::read(&copy).expect("read copy");
    let as_copy = |w: &World, args: &[&str]| {
        w.run_cmd(
            std::process::Command::new(&copy)
                .arg("--root")
                .arg(&w.root)
                .args(args),
        )
    };
    // For containers that outlive the command: their stdio goes to a log file.
    let detached = |w: &World, name: &str, args: &[&str]| {
        let path = w.dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&path).expect("log");
        let st = std::process::Command::new(&copy)
            .arg("--root")
            .arg(&w.root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .status()
            .expect("spawn runtime copy");
        (
            st.success(),
            std::fs::read_to_string(&path).unwrap_or_default(),
        )
    };

    let a = w.id("a");
    let mut ba = w.bundle(&a, false);
    ba.spec["process"]["capabilities"] = json!({"bounding": [], "effective": [], "permitted": []});
    ba.spec["process"]["args"] = json!(["sleep", "1000"]);
    ba.write();
    let (ok, log) = detached(&w, "a", &["create", "--bundle", &c_dir(&ba), &a]);
    assert!(ok, "create a: {log}");
    let pid = w.pid(&a);

    if support::is_runrs() {
        // The host's view: init's executable is the binary seen through a detached
        // read-only overlayfs, or (fallback) a sealed memfd copy.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("readlink exe");
        let f = std::fs::File::open(format!("/proc/{pid}/exe")).expect("open exe");
        // SAFETY: statfs is plain old data; all-zero is a valid value.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `f` is open and `st` is writable.
        let r = unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) };
        assert_eq!(r, 0, "fstatfs exe");
        if exe.to_string_lossy().starts_with("/memfd:runrs") {
            // SAFETY: F_GET_SEALS takes no argument.
            let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
            let want =
                libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
            assert_eq!(seals & want, want, "seals {seals:#x}");
        } else {
            assert_eq!(
                st.f_type,
                libc::OVERLAYFS_SUPER_MAGIC,
                "init runs {exe:?}, neither a memfd nor a read-only overlay"
            );
            let ro = std::fs::OpenOptions::new()
                .append(true)
                .open(format!("/proc/{pid}/exe"));
            assert_eq!(
                ro.expect_err("writable").raw_os_error(),
                Some(libc::EROFS),
                "the overlay of init's executable is not read-only"
            );
        }
        // Even the host's root cannot write it.
        let w_ok = std::fs::OpenOptions::new()
            .append(true)
            .open(format!("/proc/{pid}/exe"))
            .and_then(|mut f| f.write_all(b"x"));
        assert!(w_ok.is_err(), "the host wrote to init's executable");
    }

    let pidns = format!("/proc/{pid}/ns/pid");
    // C: same pid namespace, root without capabilities, like A's init now.
    let c = w.id("c");
    let mut bc = w.bundle(&c, false);
    bc.with_ns("pid", Some(std::path::Path::new(&pidns)));
    bc.spec["process"]["capabilities"] = json!({"bounding": [], "effective": [], "permitted": []});
    bc.sh("head -c 0 /proc/1/environ 2>/dev/null && echo init-environ-readable || echo init-environ-denied; \
           head -c 0 /proc/1/exe 2>/dev/null && echo init-exe-readable || echo init-exe-denied; \
           sleep 100 & s=$!; head -c 0 /proc/$s/environ && echo sibling-readable; kill $s");
    bc.write();
    let o = as_copy(&w, &["run", "--bundle", &c_dir(&bc), &c]);
    assert!(o.ok(), "{o:?}");
    assert!(
        o.stdout.contains("sibling-readable"),
        "precondition: {}",
        o.stdout
    );
    assert!(
        o.stdout.contains("init-environ-denied"),
        "init is dumpable: {}",
        o.stdout
    );
    assert!(o.stdout.contains("init-exe-denied"), "{}", o.stdout);

    // B: same pid namespace, with CAP_SYS_PTRACE (it can open /proc/1/exe).
    let sync = shared_dir(&w, "sync");
    let b = w.id("b");
    let mut bb = w.bundle(&b, false);
    bb.with_ns("pid", Some(std::path::Path::new(&pidns)));
    let caps = [
        "CAP_SYS_PTRACE",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_SYS_ADMIN",
    ];
    bb.spec["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    bb.mount(
        json!({"destination": "/home", "type": "bind", "source": sync, "options": ["rbind", "rw"]}),
    );
    bb.sh("r=/home/result; \
           exec 3< /proc/1/exe && echo opened-exe >> $r || echo open-exe-failed >> $r; \
           (echo pwned >> /proc/1/exe) 2>/dev/null && echo wrote-while-created >> $r; \
           echo ready > /home/ready; while [ ! -e /home/go ]; do sleep 0.05; done; \
           (echo pwned >> /proc/self/fd/3) 2>/dev/null && echo wrote-after-start >> $r; \
           (echo pwned > /proc/self/fd/3) 2>/dev/null && echo truncated-after-start >> $r; \
           echo finished >> $r; echo done > /home/done");
    bb.write();
    let (ok, log) = detached(&w, "b", &["run", "-d", "--bundle", &c_dir(&bb), &b]);
    assert!(ok, "run b: {log}");
    wait_for(&sync.join("ready"));
    let o = as_copy(&w, &["start", &a]);
    assert!(o.ok(), "start a: {o:?}");
    std::fs::write(sync.join("go"), "").expect("go");
    wait_for(&sync.join("done"));
    let result = std::fs::read_to_string(sync.join("result")).expect("result");
    assert!(
        result.contains("opened-exe"),
        "precondition (B reaches the exe): {result}"
    );
    assert!(result.contains("finished"), "{result}");
    for bad in [
        "wrote-while-created",
        "wrote-after-start",
        "truncated-after-start",
    ] {
        assert!(!result.contains(bad), "{bad}: {result}");
    }
    assert!(
        std::fs::read(&copy).expect("read copy") == before,
        "binary copy was modified"
    );
    for id in [&b, &c, &a] {
        let _ = as_copy(&w, &["delete", "-f", id]);
    }
    w.assert_clean();
}

fn c_dir(b: &support::Bundle) -> String {
    b.dir.to_string_lossy().into_owned()
}

/// CVE-2024-21626. Precondition reproduced: the runtime is started with a host
/// directory descriptor it did not mean to pass on (fd 7, not close-on-exec), and the
/// spec's process.cwd points at /proc/self/fd/N. The defence: every descriptor past
/// the preserved ones is close-on-exec in init, process.cwd is resolved inside the
/// rootfs (magic links refused) and checked with getcwd after chdir.
///
/// Checked to fail: with the cwd checks removed from init (mkdir_all's EXDEV ignored,
/// no getcwd check), the container starts in the host's /proc through init's own procfs
/// handle (fd 6) and the test stops at "the container ran outside its root: escaped into
/// : 1 10 ... kallsyms ...". runc 1.1.5 happens not to leak a directory descriptor with
/// this setup (its own /sys/fs/cgroup leak needs the cgroup v2 openat2 path) and the
/// descriptors the test passes to it are replaced by its own before `runc init` runs.
#[test]
fn cve_2024_21626_no_host_fd_and_no_cwd_through_one() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("cve21626");
    let host = w.dir.join("host-dir");
    std::fs::create_dir(&host).expect("mkdir");
    std::fs::write(host.join("host-secret"), "secret").expect("write");
    let leak = std::fs::File::open(&host).expect("open host dir");
    let preserved = std::fs::File::open("/dev/null").expect("open");

    // 1. Only stdio and the preserved descriptor are visible.
    let id = w.id("fds");
    let mut b = w.bundle(&id, false);
    // The shell (pid 1) as its child ls sees it; no redirection or substitution, which
    // would make the shell open descriptors of its own.
    b.sh("echo fds-begin; ls /proc/1/fd; echo fds-end; ls -l /proc/1/fd/");
    b.write();
    let mut cmd = w.command();
    cmd.args(["run", "--preserve-fds", "1", "--bundle"])
        .arg(&b.dir)
        .arg(&id);
    pass_fds(
        &mut cmd,
        &[(preserved.as_raw_fd(), 3), (leak.as_raw_fd(), 7)],
    );
    let o = w.run_cmd(&mut cmd);
    assert!(o.ok(), "{o:?}");
    let fds: Vec<&str> = o
        .stdout
        .lines()
        .skip_while(|l| *l != "fds-begin")
        .skip(1)
        .take_while(|l| *l != "fds-end")
        .collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "{}", o.stdout);
    assert!(!o.stdout.contains("host-dir"), "{}", o.stdout);

    // 2. process.cwd through a descriptor: the leaked one (7) and whatever init holds.
    for n in 3..=12 {
        let id = w.id(&format!("cwd{n}"));
        let mut b = w.bundle(&id, false);
        b.spec["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        b.sh("echo escaped into $(pwd): $(ls)");
        b.write();
        let mut cmd = w.command();
        cmd.args(["run", "--bundle"]).arg(&b.dir).arg(&id);
        pass_fds(&mut cmd, &[(leak.as_raw_fd(), 7)]);
        let o = w.run_cmd(&mut cmd);
        assert!(
            !o.stdout.contains("escaped"),
            "fd {n}: the container ran outside its root: {}",
            o.stdout
        );
        assert!(!o.ok(), "fd {n}: {o:?}");
        if support::is_runrs() {
            assert!(o.stderr.contains("process.cwd"), "fd {n}: {}", o.stderr);
        }
        if n == 7 && support::is_runrs() {
            assert!(
                o.stderr.contains("resolves outside the container's root"),
                "{}",
                o.stderr
            );
        }
    }

    // 3. The same through `exec --cwd` (docker exec -w /proc/self/fd/N).
    if support::is_runrs() {
        let id = w.id("exec");
        let mut b = w.bundle(&id, false);
        b.spec["process"]["args"] = json!(["sleep", "1000"]);
        b.write();
        let log = std::fs::File::create(w.dir.join("exec.log")).expect("log");
        let st = w
            .command()
            .args(["run", "-d", "--bundle"])
            .arg(&b.dir)
            .arg(&id)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .status()
            .expect("run");
        assert!(st.success());
        for n in 3..=12 {
            let mut cmd = w.command();
            let cwd = format!("/proc/self/fd/{n}");
            cmd.args([
                "exec",
                "--cwd",
                &cwd,
                &id,
                "sh",
                "-c",
                "echo escaped into $(pwd): $(ls)",
            ]);
            pass_fds(&mut cmd, &[(leak.as_raw_fd(), 7)]);
            let o = w.run_cmd(&mut cmd);
            assert!(
                !o.stdout.contains("escaped"),
                "exec fd {n}: ran outside the root: {}",
                o.stdout
            );
            assert!(
                !o.ok() && o.stderr.contains("process.cwd"),
                "exec fd {n}: {o:?}"
            );
        }
    }
    w.assert_clean();
}
