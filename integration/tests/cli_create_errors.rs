//! A create that fails exits non-zero, says what is wrong on stderr (and in the `--log`
//! file), and leaves nothing behind: no state dir, mount, cgroup or process.

use anyhow::{ensure, Context, Result};
use integration::config::{add_mount, remove, set_args, set_namespace};
use integration::{Bundle, CmdOutput, Runtime};
use serde_json::Value;

/// Creates `b`, requires failure with stderr mentioning `keyword`, and no leftovers.
fn create_fails(rt: &Runtime, b: &Bundle, keyword: &str) -> Result<CmdOutput> {
    let out = rt.create(b)?.fails()?;
    out.stderr_mentions(keyword)?;
    ensure!(rt.list()?.is_empty(), "a failed create is listed: {out}");
    rt.assert_no_leftovers(b)?;
    Ok(out)
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
