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
