use super::*;
use crate::state::Status;

fn hook(v: serde_json::Value) -> Hook {
    serde_json::from_value(v).expect("hook")
}

fn state() -> OciState {
    OciState {
        oci_version: "1.2.0".into(),
        id: "runrs-ops-unit".into(),
        pid: 42,
        status: Status::Creating,
        bundle: "/b".into(),
        rootfs: "/b/rootfs".into(),
        created: "2026-01-01T00:00:00Z".into(),
        owner: String::new(),
        annotations: Default::default(),
    }
}

#[test]
fn state_on_stdin_args_and_env() {
    let dir = tempfile::Builder::new()
        .prefix("runrs-ops-")
        .tempdir()
        .expect("tmp");
    let out = dir.path().join("out");
    let h = hook(serde_json::json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("{{ cat; echo; echo \"$0 $1 $FOO\"; }} > {}", out.display()), "arg0", "one"],
        "env": ["FOO=bar"]
    }));
    run("prestart", &[h], &state()).expect("hook runs");
    let text = std::fs::read_to_string(&out).expect("out");
    let (json, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let got: OciState = serde_json::from_str(json.trim()).expect("state json");
    assert_eq!(got, state());
    assert_eq!(rest.trim(), "arg0 one bar");
}

#[test]
fn env_inherited_only_without_env() {
    let Ok(home) = std::env::var("HOME") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("runrs-ops-")
        .tempdir()
        .expect("tmp");
    let out = dir.path().join("out");
    let script = format!("echo \"[$HOME]\" >> {}", out.display());
    let inherit = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}));
    let empty =
        hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": []}));
    run("prestart", &[inherit, empty], &state()).expect("hooks run");
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        format!("[{home}]\n[]\n")
    );
}

#[test]
fn failure_names_kind_index_status_and_output() {
    let ok = hook(serde_json::json!({"path": "/bin/true"}));
    let bad = hook(serde_json::json!({
        "path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]
    }));
    let e = run("createRuntime", &[ok, bad], &state())
        .expect_err("fails")
        .to_string();
    assert_eq!(
        e, "error running hook: createRuntime hook #1 /bin/sh exited with status 3: broken",
        "{e}"
    );
}

#[test]
fn timeout_kills_the_whole_group() {
    let dir = tempfile::Builder::new()
        .prefix("runrs-ops-")
        .tempdir()
        .expect("tmp");
    let pidfile = dir.path().join("pid");
    // The hook starts a background child that would outlive a plain kill.
    let h = hook(serde_json::json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("sleep 100 & echo $! > {}; wait", pidfile.display())],
        "timeout": 1
    }));
    let e = run("prestart", &[h], &state()).expect_err("times out");
    assert!(matches!(e, HookError::Timeout { secs: 1, .. }), "{e}");
    assert!(e.to_string().contains("timed out after 1 s"), "{e}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("int");
    // The orphaned sleep was killed with the group (it may linger as a zombie
    // until init reaps it, but it no longer runs).
    assert!(
        crate::sys::wait_gone(pid, Duration::from_secs(5))
            || crate::state::proc_stat(pid).is_some_and(|s| s.state == 'Z'),
        "background child of the hook survived"
    );
}

#[test]
fn run_all_keeps_going() {
    let dir = tempfile::Builder::new()
        .prefix("runrs-ops-")
        .tempdir()
        .expect("tmp");
    let mark = dir.path().join("second");
    let bad = hook(serde_json::json!({"path": "/bin/false"}));
    let good = hook(serde_json::json!({
        "path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", mark.display())]
    }));
    let failed = run_all("poststop", &[bad, good], &state());
    assert_eq!(failed.len(), 1);
    assert!(mark.exists(), "the hook after the failing one did not run");
}

/// Issue 15: the pump polled only the pidfd and stdin, so a hook writing more than
/// a pipe's worth of output blocked until its timeout.
#[test]
fn a_hook_writing_more_than_a_pipe_holds_finishes() {
    let h = hook(serde_json::json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", "head -c 1048576 /dev/zero; head -c 200000 /dev/zero >&2; exit 0"],
        "timeout": 20
    }));
    // Without reading as it comes, the hook blocks and this is a Timeout error.
    run("prestart", &[h], &state()).expect("the hook finishes");
    let loud = hook(serde_json::json!({
        "path": "/bin/sh", "args": ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; exit 4"]
    }));
    let e = run("prestart", &[loud], &state())
        .expect_err("fails")
        .to_string();
    assert!(
        e.contains("exited with status 4"),
        "{}",
        &e[..e.len().min(200)]
    );
}

#[test]
fn big_state_does_not_block_a_hook_that_ignores_stdin() {
    let mut st = state();
    st.annotations.insert("big".into(), "x".repeat(1024 * 1024));
    let h = hook(serde_json::json!({"path": "/bin/true"}));
    run("prestart", &[h], &st).expect("runs");
}

#[test]
fn validation() {
    let spec = |hooks: serde_json::Value| -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "r"}, "hooks": hooks
        }))
        .expect("spec")
    };
    let e = validate(&spec(
        serde_json::json!({"poststop": [{"path": "rel/hook"}]}),
    ))
    .expect_err("relative")
    .to_string();
    assert!(
        e.contains("hooks.poststop[0].path") && e.contains("rel/hook"),
        "{e}"
    );
    let e = validate(&spec(
        serde_json::json!({"createRuntime": [{"path": "/bin/true"}, {"path": "/bin/true", "timeout": 0}]}),
    ))
    .expect_err("zero timeout")
    .to_string();
    assert!(e.contains("hooks.createRuntime[1].timeout"), "{e}");
    validate(&spec(
        serde_json::json!({"prestart": [{"path": "/bin/true", "timeout": 5}]}),
    ))
    .expect("valid");
}
