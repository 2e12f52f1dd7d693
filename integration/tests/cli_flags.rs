//! How callers spell runc's command line (issue 14): single-dash long flags
//! (`-root`, `-log`, `list -format json`, `restore -no-subreaper`, as containerd's runc shim
//! and Docker send them), repeated flags (Podman repeats `--leave-running`; the last one
//! wins), and usage errors written to `--log` in JSON (the runc shim reads the reason from
//! there). Validated against runc with `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use anyhow::{ensure, Context, Result};
use integration::cmd::{run_capture, CMD_TIMEOUT};
use integration::runtime_path;

fn runtime(args: &[&str]) -> Result<integration::CmdOutput> {
    let mut cmd = std::process::Command::new(runtime_path()?);
    cmd.args(args);
    run_capture(cmd, None, CMD_TIMEOUT)
}

fn state_dir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix("runrs-it-flags-")
        .tempdir_in("/run")?)
}

fn list_json(out: &integration::CmdOutput) -> Result<()> {
    let v: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).with_context(|| format!("not JSON: {out}"))?;
    ensure!(v.is_null() || v.is_array(), "list -format json: {v}");
    Ok(())
}

#[test]
fn single_dash_long_flags() -> Result<()> {
    let root = state_dir()?;
    let r = root.path().to_str().context("utf8")?;
    let out = runtime(&["-root", r, "-log-format", "text", "list", "-format", "json"])?.ok()?;
    list_json(&out)?;
    let out = runtime(&[&format!("-root={r}"), "list", "-format=json"])?.ok()?;
    list_json(&out)?;
    // `-no-subreaper` and `-bundle` are restore's (containerd's runc shim sends them);
    // the restore fails for want of a checkpoint, but not on the flags.
    let out = runtime(&[
        "-root",
        r,
        "restore",
        "-no-subreaper",
        "-bundle",
        "/nonexistent-bundle",
        "-image-path",
        "/nonexistent-image",
        "runrs-it-flags-none",
    ])?
    .fails()?;
    let text = format!("{}{}", out.stdout, out.stderr);
    ensure!(
        !text.contains("unexpected argument") && !text.contains("flag provided but not defined"),
        "a single-dash flag was refused: {out}"
    );
    Ok(())
}

#[test]
fn repeated_flags_take_the_last_value() -> Result<()> {
    let root = state_dir()?;
    let r = root.path().to_str().context("utf8")?;
    // The first --root does not exist: only the last one is used.
    let out = runtime(&[
        "--root",
        "/nonexistent/runrs-it-flags",
        "--root",
        r,
        "list",
        "--format",
        "table",
        "--format",
        "json",
    ])?
    .ok()?;
    list_json(&out)?;
    Ok(())
}

#[test]
fn usage_errors_reach_the_json_log() -> Result<()> {
    let root = state_dir()?;
    let log = root.path().join("log.json");
    let out = runtime(&[
        "--root",
        root.path().to_str().context("utf8")?,
        "--log",
        log.to_str().context("utf8")?,
        "--log-format",
        "json",
        "state",
    ])?
    .fails()?;
    let text = std::fs::read_to_string(&log).with_context(|| format!("no log file: {out}"))?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("not JSON lines: {text}"))?;
    ensure!(
        lines
            .iter()
            .any(|l| l["level"] == "error" && l["msg"].as_str().is_some_and(|m| !m.is_empty())),
        "no error line in the log: {text}"
    );
    Ok(())
}

/// Issue 16: with `--debug --log FILE`, init's progress reaches the log at debug level
/// (runc: nsexec's stages, "unshare remaining namespaces", init's pipe handshake), so a
/// create that fails inside init (here: proc over a symlink) can be followed step by
/// step. runrs logged only the failure.
#[test]
fn debug_logs_init_progress() -> Result<()> {
    let rt = integration::Runtime::new()?;
    let b = integration::Bundle::new("flags-debug")?;
    let proc_dir = b.rootfs().join("proc");
    if proc_dir.exists() {
        std::fs::remove_dir(&proc_dir)?;
    }
    std::os::unix::fs::symlink("tmp", &proc_dir)?;
    let log = b.path().join("debug.log");
    let log_arg = log.to_str().context("utf8")?;
    rt.detached_with_globals(&["--debug", "--log", log_arg], "create", &b, &[])?
        .fails()?;
    let text = std::fs::read_to_string(&log)?;
    let debug: Vec<&str> = text.lines().filter(|l| l.contains("level=debug")).collect();
    ensure!(
        debug.iter().any(|l| l.contains("unshare")),
        "no debug line about unsharing namespaces in {}:\n{text}",
        log.display()
    );
    ensure!(
        debug.len() >= 3,
        "fewer than 3 debug lines in {}:\n{text}",
        log.display()
    );
    ensure!(
        text.lines()
            .any(|l| l.contains("level=error") && l.contains("ordinary directory")),
        "the failure is not in {}:\n{text}",
        log.display()
    );
    rt.assert_no_leftovers(&b)
}
