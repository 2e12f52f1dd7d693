//! runc's words where callers grep them (issue 16): "invalid configuration" for a
//! configuration the runtime refuses or only tolerates, "must be mounted on ordinary
//! directory" for proc over a symlink, "error running hook" for a failing hook.
//! Validated against runc with `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use anyhow::{ensure, Result};
use integration::config::{add_mount, set_args};
use integration::{Bundle, Runtime};
use serde_json::json;

/// A failing prestart hook: create fails saying "error running hook" and leaves nothing.
#[test]
fn a_failing_hook_says_error_running_hook() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("word-hook", |c| {
        c["hooks"] = json!({ "prestart": [{ "path": "/bin/false" }] });
    })?;
    let out = rt.create(&b)?.fails()?;
    ensure!(out.stderr.contains("error running hook"), "stderr: {out}");
    rt.assert_no_leftovers(&b)
}

/// proc mounted over a symlink in the rootfs: refused in runc's words.
#[test]
fn proc_over_a_symlink_must_be_mounted_on_ordinary_directory() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("word-procsym")?;
    let proc_dir = b.rootfs().join("proc");
    if proc_dir.exists() {
        std::fs::remove_dir(&proc_dir)?;
    }
    std::os::unix::fs::symlink("tmp", &proc_dir)?;
    let out = rt.create(&b)?.fails()?;
    ensure!(
        out.stderr.contains("must be mounted on ordinary directory"),
        "stderr: {out}"
    );
    rt.assert_no_leftovers(&b)
}

/// A relative mount destination is tolerated with runc's "invalid configuration"
/// warning (runrs resolved it silently).
#[test]
fn a_relative_mount_destination_warns_invalid_configuration() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("word-reldest", |c| {
        set_args(c, &["test", "-d", "/rel-dest"]);
        add_mount(c, "rel-dest", "tmpfs", "tmpfs", &[]);
    })?;
    let out = rt.run(&b, b"", integration::cmd::CMD_TIMEOUT)?;
    ensure!(out.success(), "run: {out}");
    ensure!(
        out.stderr.contains("invalid configuration"),
        "stderr: {out}"
    );
    rt.assert_no_leftovers(&b)
}

/// `linux.resources.unified` where the unified hierarchy does not hold the controllers
/// (cgroup v1 or hybrid): refused as "invalid configuration" (runrs said "cgroup").
#[test]
fn unified_resources_without_cgroup_v2_are_an_invalid_configuration() -> Result<()> {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        integration::skip("this host is cgroup v2 only: unified resources are valid here");
        return Ok(());
    }
    let rt = Runtime::new()?;
    let b = Bundle::with_config("word-unified", |c| {
        c["linux"]["resources"]["unified"] = json!({ "pids.max": "10" });
    })?;
    let out = rt.create(&b)?.fails()?;
    ensure!(
        out.stderr.contains("invalid configuration"),
        "stderr: {out}"
    );
    rt.assert_no_leftovers(&b)
}
