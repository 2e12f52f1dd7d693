//! The default state root of a non-root caller (issue 14, item 1's first step): runc
//! uses `$XDG_RUNTIME_DIR/runc` (created 0700 and sticky) when it does not run as the
//! real root, and /run/runc otherwise; runrs does the same with `runrs`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use anyhow::{ensure, Result};
use integration::cmd::{run_capture, CMD_TIMEOUT};
use integration::{runtime_name, runtime_path};

#[test]
fn a_non_root_caller_keeps_state_in_xdg_runtime_dir() -> Result<()> {
    integration::rootfs::check_prerequisites()?;
    let xdg = tempfile::Builder::new().prefix("runrs-it-xdg-").tempdir()?;
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    nix::unistd::chown(xdg.path(), Some(nobody), Some(nogroup))?;
    std::fs::set_permissions(xdg.path(), std::fs::Permissions::from_mode(0o700))?;
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(runtime_path()?)
        .arg("list")
        .env("XDG_RUNTIME_DIR", xdg.path());
    let out = run_capture(c, None, CMD_TIMEOUT)?;
    ensure!(out.success(), "list as uid 65534: {out}");
    let root = xdg.path().join(runtime_name());
    let m = std::fs::metadata(&root)?;
    ensure!(
        m.is_dir() && m.uid() == 65534 && m.mode() & 0o7777 == 0o1700,
        "{}: mode {:o} owner {}",
        root.display(),
        m.mode(),
        m.uid()
    );
    // The real root ignores XDG_RUNTIME_DIR.
    let root_xdg = tempfile::Builder::new().prefix("runrs-it-xdg-").tempdir()?;
    let mut c = Command::new(runtime_path()?);
    c.arg("list").env("XDG_RUNTIME_DIR", root_xdg.path());
    run_capture(c, None, CMD_TIMEOUT)?.ok()?;
    ensure!(
        std::fs::read_dir(root_xdg.path())?.next().is_none(),
        "root used XDG_RUNTIME_DIR"
    );
    Ok(())
}

/// runc's rootless mode (issue 14, item 1): an unprivileged caller runs `spec --rootless`
/// and `run` (its own user namespace mapping only its uid, no cgroup it may not create,
/// device nodes bind-mounted); a limit for a cgroup it could not create fails naming it,
/// and `--rootless false` makes a cgroup it may not create fail the run.
#[test]
fn an_unprivileged_caller_runs_a_rootless_container() -> Result<()> {
    integration::rootfs::check_prerequisites()?;
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    let own = |p: &std::path::Path, mode: u32| -> Result<()> {
        nix::unistd::chown(p, Some(nobody), Some(nogroup))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let xdg = tempfile::Builder::new().prefix("runrs-it-xdg-").tempdir()?;
    own(xdg.path(), 0o700)?;
    let bundle = tempfile::Builder::new().prefix("runrs-it-rl-").tempdir()?;
    own(bundle.path(), 0o755)?;
    let rootfs = bundle.path().join("rootfs");
    let mut cp = Command::new("cp");
    cp.arg("-a")
        .arg(integration::rootfs::busybox_rootfs()?)
        .arg(&rootfs);
    run_capture(cp, None, CMD_TIMEOUT)?.ok()?;
    let as_nobody = |args: &[&str]| -> Result<integration::CmdOutput> {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(runtime_path()?)
            .args(args)
            .current_dir(bundle.path())
            .env("XDG_RUNTIME_DIR", xdg.path())
            .env_remove("NOTIFY_SOCKET");
        run_capture(c, None, CMD_TIMEOUT)
    };
    as_nobody(&["spec", "--rootless"])?.ok()?;
    let config = bundle.path().join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&config)?)?;
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "cat /proc/self/uid_map; ls -l /dev/null; echo rootless-ok"
    ]);
    std::fs::write(&config, serde_json::to_vec(&spec)?)?;
    let id = format!("runrs-it-rl-{}", std::process::id());
    let out = as_nobody(&["run", &id])?;
    ensure!(
        out.success() && out.stdout.contains("rootless-ok"),
        "rootless run: {out}"
    );
    let map: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        map == ["0", "65534", "1"],
        "uid_map in the container: {out}"
    );
    ensure!(
        out.stdout.contains("crw-rw-rw-"),
        "/dev/null is not the host's device node: {out}"
    );

    // A limit on a cgroup it could not create: runc's message.
    spec["linux"]["resources"] = serde_json::json!({"pids": {"limit": 10}});
    std::fs::write(&config, serde_json::to_vec(&spec)?)?;
    let out = as_nobody(&["run", &id])?;
    ensure!(
        !out.success()
            && out
                .stderr
                .contains("cannot set pids limit: container could not join or create cgroup"),
        "rootless run with a pids limit: {out}"
    );
    // --rootless false: the cgroup it may not create fails the run.
    spec["linux"]["resources"] = serde_json::json!({});
    std::fs::write(&config, serde_json::to_vec(&spec)?)?;
    let out = as_nobody(&["--rootless", "false", "run", &id])?;
    ensure!(
        !out.success() && out.stderr.contains("ermission denied"),
        "--rootless false as uid 65534: {out}"
    );
    // Nothing left: no container in the state root.
    let list = as_nobody(&["list", "-q"])?;
    ensure!(
        list.success() && list.stdout.trim().is_empty(),
        "left behind: {list}"
    );
    Ok(())
}
