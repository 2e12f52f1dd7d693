//! A create that fails exits non-zero, says what is wrong on stderr (and in the `--log`
//! file), and leaves nothing behind: no state dir, mount, cgroup or process (the leak
//! checker's snapshot before and after, and the container's own leftovers).
//!
//! Each step of create is made to fail once: the config (malformed, truncated, wrong
//! types), the bundle (rootfs), the cgroup (a value the kernel rejects), seccomp, hooks
//! (failing, timing out), mounts, and the process (missing or non-executable binary, cwd).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use integration::config::{add_mount, remove, set_args, set_namespace};
use integration::leaks::{assert_no_leaks, Snapshot};
use integration::{Bundle, CmdOutput, Runtime};
use serde_json::{json, Value};

/// Creates `b`, requires failure with stderr mentioning `keyword`, and no leftovers.
fn create_fails(rt: &Runtime, b: &Bundle, keyword: &str) -> Result<CmdOutput> {
    create_fails_any(rt, b, &[keyword])
}

/// Creates `b`, requires failure with stderr mentioning one of `keywords` (the runtimes
/// word some parse errors differently), and no leftovers.
fn create_fails_any(rt: &Runtime, b: &Bundle, keywords: &[&str]) -> Result<CmdOutput> {
    let scope = rt.leak_scope(b);
    let before = Snapshot::take(&scope);
    let out = rt.create(b)?.fails()?;
    ensure!(
        keywords
            .iter()
            .any(|k| out.stderr.to_lowercase().contains(&k.to_lowercase())),
        "stderr mentions none of {keywords:?}: {out}"
    );
    ensure!(rt.list()?.is_empty(), "a failed create is listed: {out}");
    rt.assert_no_leftovers(b)?;
    assert_no_leaks(&before, &scope, Duration::from_secs(2))?;
    Ok(out)
}

/// A file `name` in `b`'s rootfs with `text` and permission bits `mode`.
fn rootfs_file(b: &Bundle, name: &str, text: &str, mode: u32) -> Result<()> {
    let p = b.rootfs().join(name);
    std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[test]
fn bind_mount_source_missing() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-mount", |c| {
        add_mount(c, "/mnt", "bind", "/runrs-it-no-such-source", &["rbind"]);
    })?;
    create_fails(&rt, &b, "/runrs-it-no-such-source")?;
    Ok(())
}

#[test]
fn missing_binary_fails_at_create() -> Result<()> {
    // runc resolves the executable in init before waiting for `start`, so create fails.
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-nobin", |c| set_args(c, &["/runrs-it-nonexistent"]))?;
    create_fails(&rt, &b, "/runrs-it-nonexistent")?;
    let b = Bundle::with_config("err-nobin-path", |c| set_args(c, &["runrs-it-no-such-cmd"]))?;
    create_fails(&rt, &b, "runrs-it-no-such-cmd")?;
    Ok(())
}

#[test]
fn invalid_json() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("err-json")?;
    // Truncated: both Go's encoding/json and serde_json report an unexpected EOF.
    b.write_config("{\"ociVersion\": \"1.0.2\", \"process\": {")?;
    create_fails(&rt, &b, "EOF")?;
    Ok(())
}

#[test]
fn unknown_namespace_type() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-ns", |c| set_namespace(c, "foo", None))?;
    create_fails(&rt, &b, "foo")?;
    Ok(())
}

#[test]
fn missing_or_empty_args() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-noargs", |c| {
        remove(&mut c["process"], "args");
    })?;
    create_fails(&rt, &b, "args")?;
    let b = Bundle::with_config("err-emptyargs", |c| set_args(c, &[]))?;
    create_fails(&rt, &b, "args")?;
    Ok(())
}

#[test]
fn missing_process() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-noprocess", |c| {
        remove(c, "process");
    })?;
    create_fails(&rt, &b, "process")?;
    Ok(())
}

#[test]
fn missing_bundle_dir() -> Result<()> {
    let rt = Runtime::new()?;
    let out = rt
        .cli([
            "create",
            "--bundle",
            "/runrs-it-no-such-bundle",
            "runrs-it-nobundle",
        ])?
        .fails()?;
    out.stderr_mentions("/runrs-it-no-such-bundle")?;
    ensure!(!rt.root().join("runrs-it-nobundle").exists());
    Ok(())
}

#[test]
fn invalid_container_ids() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("err-id")?;
    for id in ["../runrs-it-escape", "runrs-it/slash"] {
        let out = rt
            .cli(["create", "--bundle", &b.path().to_string_lossy(), id])?
            .fails()?;
        out.stderr_mentions("container id")?;
    }
    ensure!(!rt
        .root()
        .parent()
        .context("root parent")?
        .join("runrs-it-escape")
        .exists());
    let out = rt
        .cli(["create", "--bundle", &b.path().to_string_lossy(), ""])?
        .fails()?;
    out.stderr_mentions("id")?;
    ensure!(rt.list()?.is_empty());
    Ok(())
}

#[test]
fn duplicate_id() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-dup", |c| set_args(c, &["sleep", "30"]))?;
    rt.create(&b)?.ok()?;
    let before = rt.state(b.id())?;
    let out = rt.create(&b)?.fails()?;
    out.stderr_mentions("exists")?;
    // The first container is untouched.
    let after = rt.state(b.id())?;
    ensure!(
        after.status == "created" && after.pid == before.pid && after.created == before.created,
        "{}",
        after.raw
    );
    ensure!(integration::proc::pid_alive(after.pid));
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn errors_go_to_the_log_file_as_json() -> Result<()> {
    // containerd's runc shim runs `runc --log <bundle>/log.json --log-format json` and reads
    // the error back from that file when a command fails.
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-log", |c| {
        add_mount(c, "/mnt", "bind", "/runrs-it-no-such-source", &["rbind"]);
    })?;
    let log = b.path().join("log.json");
    let log_s = log.to_string_lossy().into_owned();
    let mut cmd = std::process::Command::new(rt.bin());
    cmd.args([
        "--root",
        &rt.root().to_string_lossy(),
        "--log",
        &log_s,
        "--log-format",
        "json",
    ]);
    cmd.args(["create", "--bundle", &b.path().to_string_lossy(), b.id()]);
    let out = integration::cmd::run_capture(cmd, None, integration::cmd::CMD_TIMEOUT)?.fails()?;
    let text = std::fs::read_to_string(&log).with_context(|| format!("no log file: {out}"))?;
    let errors: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "error")
        .collect();
    ensure!(
        text.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "log has non-JSON lines:\n{text}"
    );
    ensure!(
        errors.iter().any(|e| e["msg"]
            .as_str()
            .is_some_and(|m| m.contains("/runrs-it-no-such-source"))),
        "no error line naming the mount source in the log:\n{text}"
    );
    ensure!(
        errors.iter().all(|e| e["time"].is_string()),
        "log lines without time:\n{text}"
    );
    rt.assert_no_leftovers(&b)
}

#[test]
fn non_executable_binary() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-noexec", |c| set_args(c, &["/runrs-it-noexec"]))?;
    rootfs_file(&b, "runrs-it-noexec", "#!/bin/sh\necho never\n", 0o644)?;
    create_fails(&rt, &b, "/runrs-it-noexec")?;
    Ok(())
}

#[test]
fn cwd_is_a_file() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-cwd", |c| c["process"]["cwd"] = json!("/runrs-it-cwd"))?;
    rootfs_file(&b, "runrs-it-cwd", "", 0o644)?;
    // runc: chdir to cwd ("/runrs-it-cwd") …; runrs: create process.cwd: openat2 runrs-it-cwd …
    create_fails(&rt, &b, "runrs-it-cwd")?;
    Ok(())
}

#[test]
fn rootfs_missing() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-rootfs", |c| {
        c["root"]["path"] = json!("/runrs-it-no-such-rootfs")
    })?;
    create_fails(&rt, &b, "/runrs-it-no-such-rootfs")?;
    Ok(())
}

#[test]
fn malformed_json() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("err-malformed")?;
    b.write_config("{\"ociVersion\": \"1.0.2\", \"process\": ]}")?;
    // Go: "invalid character ']' looking for beginning of value"; serde_json: "expected
    // value at line 1 column 33".
    create_fails_any(&rt, &b, &["invalid character", "line 1 column"])?;
    Ok(())
}

#[test]
fn wrong_types() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-type-args", |c| c["process"]["args"] = json!("sh"))?;
    create_fails(&rt, &b, "args")?;
    let b = Bundle::with_config("err-type-uid", |c| {
        c["process"]["user"]["uid"] = json!("root")
    })?;
    create_fails(&rt, &b, "uid")?;
    let b = Bundle::with_config("err-type-mounts", |c| c["mounts"] = json!({"a": 1}))?;
    create_fails(&rt, &b, "mounts")?;
    Ok(())
}

/// A hook that runs `script` with /bin/sh on the host.
fn sh_hook(script: &str, timeout: Option<u64>) -> Value {
    let mut h = json!({ "path": "/bin/sh", "args": ["sh", "-c", script] });
    if let Some(t) = timeout {
        h["timeout"] = json!(t);
    }
    h
}

#[test]
fn failing_hooks() -> Result<()> {
    let rt = Runtime::new()?;
    for kind in ["prestart", "createRuntime"] {
        let b = Bundle::with_config(&format!("err-hook-{kind}"), |c| {
            c["hooks"][kind] = json!([sh_hook("exit 3", None)]);
        })?;
        create_fails(&rt, &b, "hook")?;
    }
    Ok(())
}

#[test]
fn hook_timeout() -> Result<()> {
    let rt = Runtime::new()?;
    // `exec sleep` so the hook is one process, whose command line the leak checker finds
    // by its odd duration.
    let b = Bundle::with_config("err-hook-timeout", |c| {
        c["hooks"]["createRuntime"] = json!([sh_hook("exec sleep 29.123", Some(1))]);
    })?;
    let mut scope = rt.leak_scope(&b);
    scope.process_needles.push("sleep 29.123".into());
    let before = Snapshot::take(&scope);
    let t = Instant::now();
    create_fails(&rt, &b, "hook")?;
    ensure!(
        t.elapsed() < Duration::from_secs(15),
        "the hook has a 1 s timeout, create took {:?}",
        t.elapsed()
    );
    assert_no_leaks(&before, &scope, Duration::from_secs(2))
}

#[test]
fn bad_seccomp() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-seccomp-action", |c| {
        c["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_RUNRS_BOGUS" });
    })?;
    create_fails(&rt, &b, "SCMP_ACT_RUNRS_BOGUS")?;
    let b = Bundle::with_config("err-seccomp-arch", |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_RUNRS_BOGUS"],
        });
    })?;
    create_fails(&rt, &b, "SCMP_ARCH_RUNRS_BOGUS")?;
    Ok(())
}

#[test]
fn cgroup_value_the_kernel_rejects() -> Result<()> {
    // Valid JSON and a well-formed cpu list, but the host has no CPU 1023: the kernel
    // refuses the write to cpuset.cpus (v1) / cpuset.cpus (v2) with EINVAL.
    let rt = Runtime::new()?;
    let b = Bundle::with_config("err-cpuset", |c| {
        c["linux"]["resources"]["cpu"] = json!({ "cpus": "1023" });
    })?;
    create_fails(&rt, &b, "cpuset.cpus")?;
    Ok(())
}
