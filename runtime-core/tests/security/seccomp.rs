//! linux.seccomp end to end: the filter is active in the container (Seccomp: 2), a
//! denied syscall fails with the configured errno whether it was loaded before the
//! capability drop (no NNP) or right before exec (NNP), the notify listener reaches the
//! agent at listenerPath with runc's state document and can answer, and bad profiles or
//! an unreachable agent fail create with nothing left behind.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

use crate::support::{self, World};

#[test]
fn denied_syscall_gets_the_configured_errno_with_and_without_nnp() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("scerr");
    for nnp in [true, false] {
        let id = w.id(if nnp { "nnp" } else { "caps" });
        let mut b = w.bundle(&id, false);
        b.spec["process"]["noNewPrivileges"] = json!(nnp);
        b.spec["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOMEDIUM},
                {"names": ["not_a_syscall_in_any_libseccomp"], "action": "SCMP_ACT_KILL"}
            ]
        });
        b.sh("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; \
              touch /dev/shm/control && echo control-ok; mkdir /dev/shm/d; echo rc=$?");
        let o = w.run(&b, &id);
        assert!(o.ok(), "nnp={nnp}: {o:?}");
        assert!(o.stdout.contains("Seccomp:\t2"), "nnp={nnp}: {}", o.stdout);
        let want = format!("NoNewPrivs:\t{}", u8::from(nnp));
        assert!(o.stdout.contains(&want), "nnp={nnp}: {}", o.stdout);
        assert!(
            o.stdout.contains("control-ok") && o.stdout.contains("rc=1"),
            "{}",
            o.stdout
        );
        assert!(
            o.stderr.contains("No medium found"),
            "nnp={nnp}: {}",
            o.stderr
        );
        if support::is_runrs() {
            assert!(
                o.stderr.contains("not_a_syscall_in_any_libseccomp"),
                "warned: {}",
                o.stderr
            );
        }
    }
    w.assert_clean();
}

/// Receive the agent's message: JSON with one descriptor.
fn recv_state(conn: RawFd) -> (Value, Option<OwnedFd>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let m = recvmsg::<()>(conn, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .expect("recvmsg");
    let mut fd = None;
    for c in m.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed these descriptors for us.
            fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
        }
    }
    let n = m.bytes;
    let v = if n == 0 {
        Value::Null
    } else {
        serde_json::from_slice(&buf[..n]).expect("state json")
    };
    (v, fd)
}

#[test]
fn notify_listener_receives_the_fd_and_answers() {
    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("scnotify");
    let id = w.id("c");
    let sock = w.dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        let (state, fd) = recv_state(conn.as_raw_fd());
        let Some(fd) = fd else {
            return (state, Vec::new());
        };
        let mut answered = Vec::new();
        loop {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; no timeout (the container's exit hangs us up).
            if unsafe { libc::poll(&mut p, 1, -1) } < 0 || p.revents & libc::POLLIN == 0 {
                break; // POLLHUP: every task using the filter is gone
            }
            let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) else {
                break;
            };
            let name = req.data.syscall.get_name().unwrap_or_default();
            // First mkdir: fail it with ENOMEDIUM; later ones: report success without
            // doing anything (the directory will not exist).
            let resp = if answered.is_empty() {
                ScmpNotifResp::new_error(req.id, -libc::ENOMEDIUM, ScmpNotifRespFlags::empty())
            } else {
                ScmpNotifResp::new_val(req.id, 0, ScmpNotifRespFlags::empty())
            };
            if resp.respond(fd.as_raw_fd()).is_ok() {
                answered.push(name);
            }
        }
        (state, answered)
    });

    let mut b = w.bundle(&id, false);
    b.spec["annotations"] = json!({"org.example/k": "v"});
    b.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "runrs-sec-metadata",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    b.sh("grep '^Seccomp:' /proc/self/status; mkdir /dev/shm/a; echo rc1=$?; mkdir /dev/shm/b; echo rc2=$?; \
          if [ -d /dev/shm/b ]; then echo b-exists; else echo b-absent; fi");
    b.write();
    let pid_file = w.dir.join("pid");
    let o = w.run_cmd(
        w.command()
            .args(["run", "--pid-file"])
            .arg(&pid_file)
            .arg("--bundle")
            .arg(&b.dir)
            .arg(&id),
    );
    // Unblock the agent's accept if the runtime never connected (then the asserts fail).
    let _ = std::os::unix::net::UnixStream::connect(&sock);
    let (state, answered) = agent.join().expect("agent thread");
    assert!(o.ok(), "{o:?}");
    assert!(o.stdout.contains("Seccomp:\t2"), "{}", o.stdout);
    assert!(
        o.stdout.contains("rc1=1") && o.stderr.contains("No medium found"),
        "{o:?}"
    );
    assert!(
        o.stdout.contains("rc2=0") && o.stdout.contains("b-absent"),
        "agent's success answer: {o:?}"
    );
    assert_eq!(answered.len(), 2, "answered {answered:?}");
    assert!(
        answered.iter().all(|n| n.starts_with("mkdir")),
        "{answered:?}"
    );

    let pid: i64 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["pid"], json!(pid), "{state}");
    assert_eq!(state["metadata"], json!("runrs-sec-metadata"), "{state}");
    assert_eq!(state["state"]["id"], json!(id), "{state}");
    assert_eq!(state["state"]["status"], json!("creating"), "{state}");
    assert_eq!(state["state"]["pid"], json!(pid), "{state}");
    assert_eq!(state["state"]["bundle"], json!(b.dir), "{state}");
    assert_eq!(
        state["state"]["annotations"],
        json!({"org.example/k": "v"}),
        "{state}"
    );
    assert!(
        state["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{state}"
    );
    w.assert_clean();
}

#[test]
fn bad_profiles_and_missing_agents_leave_nothing() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("scbad");
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
            "linux.seccomp.defaultAction",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                   "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_BOGUS"}),
            "linux.seccomp.defaultAction",
        ),
        // Init loads the filter, then the runtime cannot reach the agent: init is killed.
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": w.dir.join("nobody-listens.sock"),
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "nobody-listens.sock",
        ),
    ];
    for (i, (profile, want)) in cases.into_iter().enumerate() {
        let id = w.id(&format!("c{i}"));
        let mut b = w.bundle(&id, false);
        b.spec["linux"]["seccomp"] = profile;
        b.sh("true");
        let o = w.create(&b, &id);
        assert!(!o.ok(), "case {i} was accepted");
        assert!(
            o.stderr.contains(want),
            "case {i}: want {want:?} in {}",
            o.stderr
        );
        let left = w.leftovers();
        assert!(left.is_empty(), "case {i} left:\n{}", left.join("\n"));
    }
    w.assert_clean();
}

/// containerd's default profile (`ctr run --seccomp`, containerd 1.6.20; saved from the
/// config.json containerd wrote for runc) is a plain OCI profile: defaultAction
/// SCMP_ACT_ERRNO (EPERM), x86_64/x86/x32, 11 rules over 360 names, SCMP_ACT_ALLOW with
/// EQ and MASKED_EQ conditions (personality, clone) and clone3 -> ERRNO 38 (ENOSYS).
/// Under runrs the container behaves as under runc 1.1.5 (same output, checked by hand).
#[test]
fn containerd_default_profile_behaves_like_runc() {
    if !support::root_or_skip() {
        return;
    }
    let profile: Value =
        serde_json::from_str(include_str!("containerd-1.6-default-seccomp.json")).expect("profile");
    let mut w = World::new("scctrd");
    let id = w.id("c");
    let mut b = w.bundle(&id, false);
    b.spec["process"]["noNewPrivileges"] = json!(false);
    b.spec["linux"]["seccomp"] = profile;
    b.sh(
        "grep '^Seccomp:' /proc/self/status; ls / > /dev/null && echo ls-ok; \
          unshare -U true; echo unshare=$?; mount -t tmpfs t /tmp; echo mount=$?",
    );
    let o = w.run(&b, &id);
    assert!(o.ok(), "{o:?}");
    assert!(
        o.stdout.contains("Seccomp:\t2") && o.stdout.contains("ls-ok"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("unshare=1") && o.stdout.contains("mount=1"),
        "{}",
        o.stdout
    );
    assert!(
        o.stderr
            .contains("unshare(0x10000000): Operation not permitted"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("unknown to libseccomp"), "{}", o.stderr);
    w.assert_clean();
}

/// `runrs exec` runs under the container's profile (as with runc): the denied syscall
/// fails with the configured errno, and with a notify rule the agent receives a second
/// listener, for the exec'd process, with state status `running` and the init's pid.
#[test]
fn exec_runs_under_the_container_profile() {
    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
    if !support::root_or_skip() || !support::is_runrs() {
        return;
    }
    let mut w = World::new("scexec");
    let id = w.id("c");
    let sock = w.dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    let agent = std::thread::spawn(move || {
        let mut states = Vec::new();
        let mut held = Vec::new();
        let mut answered = 0;
        // The container's init first, then the exec'd process.
        for _ in 0..2 {
            let (conn, _) = listener.accept().expect("accept");
            let (state, fd) = recv_state(conn.as_raw_fd());
            states.push(state);
            let Some(fd) = fd else { break };
            if states.len() == 2 {
                if let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) {
                    let r = ScmpNotifResp::new_error(
                        req.id,
                        -libc::ENOMEDIUM,
                        ScmpNotifRespFlags::empty(),
                    );
                    answered += usize::from(r.respond(fd.as_raw_fd()).is_ok());
                }
            }
            held.push(fd);
        }
        (states, answered)
    });
    let mut b = w.bundle(&id, false);
    b.spec["process"]["args"] = json!(["sleep", "1000"]);
    b.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["chmod", "fchmodat", "fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV}
        ]
    });
    b.write();
    let log = std::fs::File::create(w.dir.join("c.log")).expect("log");
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
    assert!(
        st.success(),
        "{}",
        std::fs::read_to_string(w.dir.join("c.log")).unwrap_or_default()
    );
    let init = w.pid(&id);
    let o = w.verb(&[
        "exec",
        &id,
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; touch /dev/shm/f; chmod 600 /dev/shm/f; mkdir /dev/shm/x; echo rc=$?",
    ]);
    let _ = std::os::unix::net::UnixStream::connect(&sock);
    let (states, answered) = agent.join().expect("agent");
    assert!(o.ok(), "{o:?}");
    assert!(
        o.stdout.contains("Seccomp:\t2") && o.stdout.contains("rc=1"),
        "{}",
        o.stdout
    );
    assert!(
        o.stderr.contains("No medium found"),
        "notify answered for exec: {}",
        o.stderr
    );
    assert!(
        o.stderr.contains("Invalid cross-device link"),
        "errno rule for exec: {}",
        o.stderr
    );
    assert_eq!(answered, 1);
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(
        states[0]["state"]["status"],
        json!("creating"),
        "{states:?}"
    );
    assert_eq!(states[1]["state"]["status"], json!("running"), "{states:?}");
    assert_eq!(states[1]["state"]["pid"], json!(init), "{states:?}");
    assert_ne!(
        states[1]["pid"],
        json!(init),
        "the exec'd process' own pid: {states:?}"
    );
    w.assert_clean();
}
