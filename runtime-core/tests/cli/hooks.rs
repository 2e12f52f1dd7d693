//! OCI hooks through the CLI: order, state, namespaces and failure semantics.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{ns, stderr, Env};

/// A hook that records its stdin state, namespaces and hostname under `dir`
/// (a path as the hook sees it) and appends its kind to `dir/order`.
fn recorder(kind: &str, dir: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!(
            "cat > {dir}/{kind}.json; \
             for n in mnt uts pid; do readlink /proc/self/ns/$n > {dir}/{kind}.$n; done; \
             hostname > {dir}/{kind}.hostname; echo {kind} >> {dir}/order"
        )]
    })
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .to_string()
}

fn state_of(dir: &Path, kind: &str) -> Value {
    serde_json::from_str(&read(dir, &format!("{kind}.json"))).expect("hook state json")
}

#[test]
fn each_hook_runs_once_in_order_with_its_state_and_namespaces() {
    let Some(env) = Env::new("hooks_order") else {
        return;
    };
    let out_dir = env.scratch().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let host = out_dir.display().to_string();
    let mut c = env.config();
    c["process"]["args"] = json!(["sleep", "100"]);
    // The container sees the output directory at /home (an empty dir of the rootfs),
    // for startContainer, which runs after pivot_root.
    c["mounts"].as_array_mut().expect("mounts").push(
        json!({"destination": "/home", "type": "bind", "source": host, "options": ["rbind", "rw"]}),
    );
    c["hooks"] = json!({
        "prestart": [recorder("prestart", &host)],
        "createRuntime": [recorder("createRuntime", &host)],
        "createContainer": [recorder("createContainer", &host)],
        "startContainer": [recorder("startContainer", "/home")],
        "poststart": [recorder("poststart", &host)],
        "poststop": [recorder("poststop", &host)]
    });
    env.write_config(&c);

    let out = env.create();
    assert!(out.status.success(), "create: {}", stderr(&out));
    let st = env.state();
    let pid = st["pid"].as_i64().expect("pid") as i32;
    let p = pid.to_string();
    assert_eq!(
        read(&out_dir, "order"),
        "prestart\ncreateRuntime\ncreateContainer"
    );

    let me = |k: &str| ns("self", k);
    let container = |k: &str| ns(&p, k);
    for kind in ["prestart", "createRuntime"] {
        let s = state_of(&out_dir, kind);
        assert_eq!(s["status"], "creating", "{kind}");
        assert_eq!(s["pid"], pid, "{kind} sees the host pid");
        assert_eq!(s["id"], env.id.as_str());
        assert_eq!(s["bundle"], env.bundle.display().to_string());
        for n in ["mnt", "uts", "pid"] {
            assert_eq!(
                read(&out_dir, &format!("{kind}.{n}")),
                me(n),
                "{kind} runs in the runtime's {n} ns"
            );
        }
    }
    let s = state_of(&out_dir, "createContainer");
    assert_eq!(s["status"], "creating");
    assert_eq!(
        s["pid"], 1,
        "createContainer sees the pid as the container sees it"
    );
    for n in ["mnt", "uts", "pid"] {
        assert_eq!(
            read(&out_dir, &format!("createContainer.{n}")),
            container(n),
            "createContainer {n} ns"
        );
        assert_ne!(container(n), me(n));
    }

    let out = env.runrs(&["start", &env.id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let s = state_of(&out_dir, "startContainer");
    assert_eq!(
        s["status"], "created",
        "startContainer runs before the program"
    );
    assert_eq!(s["pid"], 1);
    for n in ["mnt", "uts", "pid"] {
        assert_eq!(
            read(&out_dir, &format!("startContainer.{n}")),
            container(n),
            "startContainer {n} ns"
        );
    }
    assert_eq!(read(&out_dir, "startContainer.hostname"), "runrs");
    let s = state_of(&out_dir, "poststart");
    assert_eq!(s["status"], "running");
    assert_eq!(s["pid"], pid);
    assert_eq!(read(&out_dir, "poststart.mnt"), me("mnt"));

    let out = env.runrs(&["delete", "-f", &env.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    let s = state_of(&out_dir, "poststop");
    assert_eq!(s["status"], "stopped");
    assert_eq!(s["pid"], 0);
    assert_eq!(read(&out_dir, "poststop.mnt"), me("mnt"));
    assert_eq!(
        read(&out_dir, "order"),
        "prestart\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\npoststop"
    );
    env.assert_no_leftovers(Some(pid));
}

#[test]
fn a_hook_that_times_out_fails_create_and_leaves_nothing() {
    let Some(env) = Env::new("hooks_timeout") else {
        return;
    };
    let scratch = env.scratch().display().to_string();
    let mut c = env.config();
    c["hooks"] = json!({
        "createRuntime": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo $$ > {scratch}/hook.pid; exec sleep 100")],
            "timeout": 1
        }],
        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {scratch}/poststop.json")]}]
    });
    env.write_config(&c);
    let out = env.create();
    assert!(!out.status.success(), "create succeeded");
    let err = stderr(&out);
    assert!(
        err.contains("createRuntime hook #0 /bin/sh timed out after 1 s and was killed"),
        "{err}"
    );
    let hook_pid: i32 = read(env.scratch(), "hook.pid").parse().expect("pid");
    env.assert_no_leftovers(Some(hook_pid));
    // The lifecycle continued at "destroy, then poststop" (runtime.md steps 12-13).
    let s: Value = serde_json::from_str(&read(env.scratch(), "poststop.json")).expect("json");
    assert_eq!(s["status"], "stopped");
}

#[test]
fn failing_create_phase_hooks_abort_create_and_clean_up() {
    for (kind, status) in [
        ("prestart", 3),
        ("createRuntime", 4),
        ("createContainer", 5),
    ] {
        let Some(env) = Env::new(&format!("hooks_fail_{}", kind.to_lowercase())) else {
            return;
        };
        let mut c = env.config();
        c["hooks"] = json!({
            kind: [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind} says no >&2; exit {status}")]}]
        });
        env.write_config(&c);
        let out = env.create();
        assert!(!out.status.success(), "{kind}: create succeeded");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "{kind} hook #0 /bin/sh exited with status {status}: {kind} says no"
            )),
            "{kind}: {err}"
        );
        env.assert_no_leftovers(None);
    }
}

#[test]
fn failing_poststart_and_poststop_are_warnings() {
    let Some(env) = Env::new("hooks_post_fail") else {
        return;
    };
    let scratch = env.scratch().display().to_string();
    let mut c = env.config();
    c["process"]["args"] = json!(["sleep", "100"]);
    let fail = |k: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {k} broke >&2; exit 1")]});
    let mark = |k: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("touch {scratch}/{k}.ran")]});
    c["hooks"] = json!({
        "poststart": [fail("poststart"), mark("poststart")],
        "poststop": [fail("poststop"), mark("poststop")]
    });
    env.write_config(&c);
    let out = env.create();
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = env.runrs(&["start", &env.id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    assert!(
        stderr(&out).contains("poststart hook #0 /bin/sh exited with status 1: poststart broke"),
        "{}",
        stderr(&out)
    );
    assert!(
        env.scratch().join("poststart.ran").exists(),
        "the next poststart hook did not run"
    );
    assert_eq!(env.state()["status"], "running");
    let pid = env.state()["pid"].as_i64().map(|p| p as i32);
    let out = env.runrs(&["delete", "-f", &env.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(
        stderr(&out).contains("poststop hook #0 /bin/sh exited with status 1: poststop broke"),
        "{}",
        stderr(&out)
    );
    assert!(
        env.scratch().join("poststop.ran").exists(),
        "the next poststop hook did not run"
    );
    env.assert_no_leftovers(pid);
}

#[test]
fn a_failing_start_container_hook_fails_start() {
    let Some(env) = Env::new("hooks_start_fail") else {
        return;
    };
    let mut c = env.config();
    c["process"]["args"] = json!(["sleep", "100"]);
    c["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo not today >&2; exit 7"]}]
    });
    env.write_config(&c);
    let out = env.create();
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid = env.state()["pid"].as_i64().map(|p| p as i32);
    let out = env.runrs(&["start", &env.id]);
    assert!(!out.status.success(), "start succeeded");
    let err = stderr(&out);
    assert!(
        err.contains("startContainer hook #0 /bin/sh exited with status 7: not today"),
        "{err}"
    );
    assert_eq!(env.state()["status"], "stopped", "the program must not run");
    let out = env.runrs(&["delete", &env.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    env.assert_no_leftovers(pid);
}
