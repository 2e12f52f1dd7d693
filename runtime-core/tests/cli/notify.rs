//! sd_notify readiness through the CLI: `runrs run -d` with NOTIFY_SOCKET set returns
//! only once the container said READY=1, and the host's socket receives the relayed
//! messages with MAINPID as a host pid.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::common::{skip, stderr, Env};

/// Build the static sdnotify helper into `dir`; None (after saying why) without gcc.
fn helper(test: &str, dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/sdnotify.c");
    let out = dir.join("sdnotify");
    match Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
    {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => {
            skip(test, &format!("gcc -static failed: {}", stderr(&o)));
            None
        }
        Err(e) => {
            skip(test, &format!("no gcc to build the sdnotify helper: {e}"));
            None
        }
    }
}

/// The host's notify socket: a reader thread collects every datagram.
struct HostListener {
    path: PathBuf,
    got: Arc<Mutex<Vec<String>>>,
    sock: UnixDatagram,
}

impl HostListener {
    fn new(dir: &Path) -> HostListener {
        let path = dir.join("host-notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind host socket");
        let got = Arc::new(Mutex::new(Vec::new()));
        let (r, g) = (sock.try_clone().expect("clone"), got.clone());
        std::thread::spawn(move || {
            let mut b = [0u8; 4096];
            // Receiving without control data closes passed descriptors.
            while let Ok(n) = r.recv(&mut b) {
                g.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&b[..n]).into_owned());
            }
        });
        HostListener { path, got, sock }
    }

    fn messages(&self) -> Vec<String> {
        self.got.lock().expect("lock").clone()
    }

    /// The messages once one has a READY=1 line (the runtime sent it before it
    /// returned; the reader thread may not have read it yet), waiting at most 5 s. Then
    /// checks that no sd_notify barrier was sent: runc 1.1 sends none, and a barrier's
    /// descriptor makes start wait for a receiver that keeps it (`socat UNIX-RECV`).
    fn messages_after_ready(&self) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let has_ready = |got: &[String]| got.iter().any(|m| m.lines().any(|l| l == "READY=1"));
        while !has_ready(&self.messages()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // A barrier would follow READY at once.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let got = self.messages();
        assert!(
            !got.iter().any(|m| m.lines().any(|l| l == "BARRIER=1")),
            "an sd_notify barrier was sent (runc sends none): {got:?}"
        );
        got
    }
}

impl Drop for HostListener {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// Mount the helper's directory (the test's scratch dir) at /home, an empty dir of the
/// busybox rootfs.
fn with_helper(env: &Env, helper: &Path, script: &str) {
    let mut c = env.config();
    c["process"]["args"] = json!(["sh", "-c", script]);
    c["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": "/home", "type": "bind",
        "source": helper.parent().expect("dir"), "options": ["rbind", "rw"]
    }));
    env.write_config(&c);
}

#[test]
fn run_detached_returns_after_ready_with_mainpid_as_host_pid() {
    let Some(env) = Env::new("notify_ready") else {
        return;
    };
    let Some(helper) = helper("notify_ready", env.scratch()) else {
        return;
    };
    // STATUS first, then after ~2 s READY naming a child as the main process.
    with_helper(
        &env,
        &helper,
        "/home/sdnotify STATUS=warming-up; sleep 100 & sleep 2; touch /home/before-ready; \
         /home/sdnotify \"READY=1\\nSTATUS=serving\\nMAINPID=$!\"; wait",
    );
    let host = HostListener::new(env.scratch());
    let mut c = env.cmd(&[
        "run",
        "-d",
        "-b",
        env.bundle.to_str().expect("utf8"),
        &env.id,
    ]);
    c.env("NOTIFY_SOCKET", &host.path);
    let out = env.output(c);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    // Sent when run returned: READY was relayed, with no barrier after it.
    let got = host.messages_after_ready();
    assert!(
        env.scratch().join("before-ready").exists(),
        "run -d returned before READY=1"
    );
    let st = env.state();
    assert_eq!(st["status"], "running");
    let init = st["pid"].as_i64().expect("pid") as i32;
    assert_eq!(
        got.first().map(String::as_str),
        Some("STATUS=warming-up"),
        "{got:?}"
    );
    let ready = got
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 before run returned: {got:?}"));
    let main: i32 = ready
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .expect("MAINPID")
        .parse()
        .expect("int");
    assert!(ready.lines().any(|l| l == "STATUS=serving"), "{ready}");
    // MAINPID is the host pid of the container's `sleep 100`: in the container's pid
    // namespace (two NSpid levels), in its cgroup, not init.
    assert_ne!(main, init);
    let status = std::fs::read_to_string(format!("/proc/{main}/status")).expect("status");
    let nspid: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("NSpid")
        .split_whitespace()
        .collect();
    assert_eq!(nspid.len(), 2, "{status}");
    assert_eq!(nspid[0], main.to_string());
    let cmdline = std::fs::read(format!("/proc/{main}/cmdline")).expect("cmdline");
    assert_eq!(cmdline, b"sleep\x00100\x00");
    let out = env.runrs(&["delete", "-f", &env.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    env.assert_no_leftovers(Some(init));
}

#[test]
fn ready_without_mainpid_names_init_and_start_waits() {
    let Some(env) = Env::new("notify_start") else {
        return;
    };
    let Some(helper) = helper("notify_start", env.scratch()) else {
        return;
    };
    with_helper(
        &env,
        &helper,
        "[ \"$NOTIFY_SOCKET\" = /run/notify/notify.sock ] || exit 9; \
         /home/sdnotify READY=1; exec sleep 100",
    );
    let host = HostListener::new(env.scratch());
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("NOTIFY_SOCKET", &host.path);
        env.output(c)
    };
    let out = run(&["create", "-b", env.bundle.to_str().expect("utf8"), &env.id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let init = env.state()["pid"].as_i64().expect("pid") as i32;
    let out = run(&["start", &env.id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let got = host.messages_after_ready();
    assert_eq!(
        got.first().map(String::as_str),
        Some(format!("READY=1\nMAINPID={init}").as_str()),
        "{got:?}"
    );
    assert_eq!(env.state()["status"], "running");
    let out = env.runrs(&["delete", "-f", &env.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    env.assert_no_leftovers(Some(init));
}

#[test]
fn the_annotation_opts_in_without_notify_socket() {
    let Some(env) = Env::new("notify_annotation") else {
        return;
    };
    let Some(helper) = helper("notify_annotation", env.scratch()) else {
        return;
    };
    with_helper(
        &env,
        &helper,
        "sleep 1; touch /home/before-ready; /home/sdnotify READY=1; exec sleep 100",
    );
    let mut c = env.config();
    c["annotations"] = json!({"io.github.runrs.notify": "true"});
    env.write_config(&c);
    let out = env.runrs(&[
        "run",
        "-d",
        "-b",
        env.bundle.to_str().expect("utf8"),
        &env.id,
    ]);
    assert!(out.status.success(), "run -d: {}", stderr(&out));
    // The container touches the file just before READY=1: run returned after it.
    assert!(
        env.scratch().join("before-ready").exists(),
        "run -d returned before READY=1"
    );
    let st = env.state();
    assert_eq!(st["status"], "running");
    let init = st["pid"].as_i64().map(|p| p as i32);
    let out = env.runrs(&["delete", "-f", &env.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    env.assert_no_leftovers(init);

    // A value other than true/false is refused.
    c["annotations"] = json!({"io.github.runrs.notify": "yes"});
    env.write_config(&c);
    let out = env.create();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("io.github.runrs.notify"),
        "{}",
        stderr(&out)
    );
    env.assert_no_leftovers(None);
}

#[test]
fn a_container_that_exits_before_ready_fails_run_and_leaves_nothing() {
    let Some(env) = Env::new("notify_exit") else {
        return;
    };
    // The container names its own socket path; it is honoured.
    let mut c = env.config();
    c["process"]["args"] = json!(["sh", "-c", "[ -S /tmp/ready.sock ] && exit 3; exit 4"]);
    c["process"]["env"]
        .as_array_mut()
        .expect("env")
        .push("NOTIFY_SOCKET=/tmp/ready.sock".into());
    env.write_config(&c);
    let host = HostListener::new(env.scratch());
    // In the foreground runrs is init's parent and can tell how it ended: exit 3 says
    // the socket was there.
    let mut c = env.cmd(&["run", "-b", env.bundle.to_str().expect("utf8"), &env.id]);
    c.env("NOTIFY_SOCKET", &host.path);
    let out = env.output(c);
    assert!(!out.status.success(), "run succeeded");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "container {} exited before it sent READY=1 (exit status 3)",
            env.id
        )),
        "{err}"
    );
    assert!(host.messages().is_empty());
    env.assert_no_leftovers(None);
}

#[test]
fn readiness_wait_is_bounded() {
    let Some(env) = Env::new("notify_timeout") else {
        return;
    };
    let mut c = env.config();
    c["process"]["args"] = json!(["sleep", "100"]);
    env.write_config(&c);
    let host = HostListener::new(env.scratch());
    let mut c = env.cmd(&[
        "run",
        "-d",
        "--ready-timeout",
        "1",
        "-b",
        env.bundle.to_str().expect("utf8"),
        &env.id,
    ]);
    c.env("NOTIFY_SOCKET", &host.path);
    let out = env.output(c);
    assert!(!out.status.success(), "run -d succeeded");
    let err = stderr(&out);
    assert!(err.contains("did not send READY=1 within 1 s"), "{err}");
    env.assert_no_leftovers(None);
}

#[test]
fn start_refuses_to_relay_for_a_container_created_without_notify() {
    let Some(env) = Env::new("notify_unprepared") else {
        return;
    };
    let out = env.create();
    assert!(out.status.success(), "create: {}", stderr(&out));
    let mut c = env.cmd(&["start", &env.id]);
    c.env("NOTIFY_SOCKET", "/run/runrs-ops-nonexistent.sock");
    let out = env.output(c);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("was created without sd_notify support"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.state()["status"],
        "created",
        "start must not have released it"
    );
}
